"""Turning what Teams sends into the command the user typed.

Teams puts the bot's mention in the text as `<at>Name</at>`, where Name is the bot's
display name *in that team* (it may have been renamed), adds `&nbsp;` and trailing
newlines, and sometimes wraps the text in HTML. We remove the mention using the
activity's mention entities (they carry the exact text) and fall back to a leading
`<at>…</at>` when entities are missing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

_LEADING_AT = re.compile(r"^\s*<at[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def _mention_texts(entities: Iterable[Mapping[str, Any]], bot_id: str | None) -> list[str]:
    texts = []
    for entity in entities:
        if entity.get("type") != "mention":
            continue
        mentioned = entity.get("mentioned") or {}
        if bot_id and isinstance(mentioned, Mapping) and mentioned.get("id") not in (bot_id, None):
            continue
        text = entity.get("text")
        if isinstance(text, str) and text:
            texts.append(text)
    return texts


def command_text(
    text: str | None, entities: Iterable[Mapping[str, Any]] = (), bot_id: str | None = None
) -> str:
    """The user's words with the bot's mention, markup and odd whitespace removed."""
    if not text:
        return ""
    cleaned = text
    removed = False
    for mention in _mention_texts(entities, bot_id):
        if mention in cleaned:
            cleaned = cleaned.replace(mention, " ", 1)
            removed = True
    if not removed:
        cleaned = _LEADING_AT.sub(" ", cleaned, count=1)
    cleaned = _TAGS.sub(" ", cleaned)
    cleaned = html.unescape(cleaned).replace("\u00a0", " ").replace("\u200b", "")
    return _SPACES.sub(" ", cleaned).strip()


def addressed_name(
    entities: Iterable[Mapping[str, Any]], bot_id: str | None, recipient_name: str | None
) -> str | None:
    """The name the bot was addressed by: the bot's mention (`mentioned.name`, else the
    mention's `<at>` text), else the name Teams gives the bot in the activity; None when
    neither says. A team may have renamed the bot, so this beats a configured name."""
    for entity in entities:
        if entity.get("type") != "mention":
            continue
        mentioned = entity.get("mentioned") or {}
        if not isinstance(mentioned, Mapping) or (bot_id and mentioned.get("id") != bot_id):
            continue
        name = mentioned.get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
        text = entity.get("text")
        if isinstance(text, str):
            shown = _SPACES.sub(" ", html.unescape(_TAGS.sub("", text))).strip()
            if shown:
                return shown
    name = (recipient_name or "").strip()
    return name or None
