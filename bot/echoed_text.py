"""What the bot repeats back of a user's words (pure).

Teams renders the bot's text as Markdown under the bot's name. A typed word is echoed
inside a code span, where Markdown is inert unless the word itself closes the span: so
backticks, line breaks and control characters go, and long words are cut.
"""

from __future__ import annotations

_MAX = 40


def echoed(text: str, limit: int = _MAX) -> str:
    """`text` made safe to place between backticks in a Teams message."""
    kept = "".join(" " if ch == "`" or not ch.isprintable() else ch for ch in text)
    flat = " ".join(kept.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
