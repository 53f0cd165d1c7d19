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
