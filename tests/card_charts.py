"""Checks for Teams' chart elements in cards (msteams-docs `charts-in-adaptive-cards.md`).

The official Adaptive Card schemas do not know `Chart.*` (a Teams extension of 1.5), so a
card is schema-checked as a host without charts draws it (`cards.common.without_charts`),
and its charts are checked here: the documented shape, and a fallback on every one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cards.common import CHART_TYPES

# The documented `color` values of chart data (a subset is enough to catch a typo).
CHART_COLORS = frozenset(
    {"good", "warning", "attention", "neutral", "categoricalBlue", "categoricalRed"}
)


def charts_in(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from charts_in(item)
    elif isinstance(node, dict):
        if node.get("type") in CHART_TYPES:
            yield node
        for value in node.values():
            yield from charts_in(value)


def _point_errors(point: Any, where: str) -> list[str]:
    if not isinstance(point, dict) or not isinstance(point.get("x"), str):
        return [f"{where}: a point needs a text x"]
    y = point.get("y")
    if isinstance(y, bool) or not isinstance(y, int | float):
        return [f"{where}: a point needs a numeric y"]
    if "color" in point and point["color"] not in CHART_COLORS:
        return [f"{where}: unknown color {point['color']!r}"]
    return []


def chart_errors(card: dict[str, Any]) -> list[str]:
    """What is wrong with the card's charts; empty when every one is well formed."""
    errors: list[str] = []
    for chart in charts_in(card.get("body", [])):
        kind = chart["type"]
        if card.get("version") != "1.5":
            errors.append(f"{kind} in a {card.get('version')} card (Teams draws charts in 1.5)")
        fallback = chart.get("fallback")
        if not isinstance(fallback, dict) or fallback.get("type") in CHART_TYPES:
            errors.append(f"{kind} without a non-chart fallback (iOS draws no charts)")
        data = chart.get("data")
        if not isinstance(data, list) or not data:
            errors.append(f"{kind} without data")
            continue
        if kind == "Chart.Line":
            for n, line in enumerate(data):
                values = line.get("values") if isinstance(line, dict) else None
                if not isinstance(line.get("legend"), str) or not isinstance(values, list):
                    errors.append(f"{kind} data[{n}] needs legend and values")
                    continue
                for m, point in enumerate(values):
                    errors += _point_errors(point, f"{kind} data[{n}].values[{m}]")
        else:
            for n, point in enumerate(data):
                errors += _point_errors(point, f"{kind} data[{n}]")
    return errors
