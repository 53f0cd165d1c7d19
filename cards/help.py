"""The `help` card and the short "did you mean" answer."""

from __future__ import annotations

from dataclasses import dataclass

from cards.common import Card, card, facts, heading, text


@dataclass(frozen=True, slots=True)
class CommandHelp:
    usage: str
    summary: str


def render_help_card(commands: list[CommandHelp], bot_name: str) -> Card:
    body = [
        heading(f"{bot_name} commands"),
        text(
            f"In a channel, mention me first (**@{bot_name} status**); in a personal chat "
            "just type the command."
        ),
        facts([(c.usage, c.summary) for c in commands]),
    ]
    return card(body)


def unknown_command_text(typed: str, suggestion: str | None, bot_name: str) -> str:
    """A short, friendly answer to something that isn't a command."""
    if not typed:
        return f"Hi! Try `@{bot_name} status` to see training jobs, or `help` for everything."
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return f"I don't know the command `{typed}`.{hint} Type `help` to see what I can do."
