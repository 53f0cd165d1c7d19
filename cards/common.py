"""Building blocks shared by mlbot's Adaptive Cards (schema 1.5 for bot messages)."""

from __future__ import annotations

from typing import Any

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

Card = dict[str, Any]


def card(body: list[dict[str, Any]], *, version: str = "1.5", **extra: Any) -> Card:
    # msteams.width=Full lets wide tables breathe in channels.
    return {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": version,
        "msteams": {"width": "Full"},
        "body": body,
        **extra,
    }


def text(value: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **props}


def heading(value: str) -> dict[str, Any]:
    return text(value, size="Large", weight="Bolder", style="heading")


def facts(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in pairs]}


def escape_markdown(value: str) -> str:
    # Adaptive Card TextBlocks render a markdown subset; keep names literal.
    for ch in ("\\", "*", "_", "[", "]", "`"):
        value = value.replace(ch, "\\" + ch)
    return value


# Teams' chart elements (card 1.5 in Teams only; msteams-docs charts-in-adaptive-cards).
CHART_TYPES = frozenset(
    {
        "Chart.Donut",
        "Chart.Gauge",
        "Chart.HorizontalBar",
        "Chart.HorizontalBar.Stacked",
        "Chart.Line",
        "Chart.Pie",
        "Chart.VerticalBar",
        "Chart.VerticalBar.Grouped",
    }
)


def without_charts(node: Any) -> Any:
    """The card as a host without Teams' charts draws it: each chart replaced by its
    `fallback` (dropped when it has none, as such hosts do)."""
    if isinstance(node, list):
        replaced = [without_charts(item) for item in node]
        return [item for item in replaced if item is not None]
    if isinstance(node, dict):
        if node.get("type") in CHART_TYPES:
            fallback = node.get("fallback")
            return without_charts(fallback) if isinstance(fallback, dict) else None
        return {key: without_charts(value) for key, value in node.items()}
    return node
