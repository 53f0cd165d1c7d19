"""The `help` card and the short "did you mean" answer."""

from __future__ import annotations

from dataclasses import dataclass

from cards.common import Card, card, heading, text

# Teams reads `<circuits>` in a TextBlock as an HTML tag and drops it, so placeholders
# are shown between single guillemets, which no client interprets.
_PLACEHOLDER_MARKS = str.maketrans({"<": "\u2039", ">": "\u203a"})


@dataclass(frozen=True, slots=True)
class CommandHelp:
    usage: str
    summary: str


def display_usage(usage: str) -> str:
    """A command's syntax as the help card shows it: placeholders between guillemets."""
    return usage.translate(_PLACEHOLDER_MARKS)


def _command_block(command: CommandHelp) -> dict[str, object]:
    # One block per command, syntax above its description: nothing is clipped at the
    # card's edge on a narrow (phone) screen, as a two-column FactSet was.
    return {
        "type": "Container",
        "spacing": "Medium",
        "items": [
            text(display_usage(command.usage), weight="Bolder", fontType="Monospace"),
            text(command.summary, isSubtle=True, spacing="None"),
        ],
    }


def render_help_card(commands: list[CommandHelp], bot_name: str) -> Card:
    body = [
        heading(f"{bot_name} commands"),
        text(
            f"In a channel, mention me first (**@{bot_name} status**); in a personal chat "
            f"just type the command. {display_usage('<…>')} is a value you give, […] one "
            "you may leave out."
        ),
        *(_command_block(command) for command in commands),
    ]
    return card(body)


def unknown_command_text(typed: str, suggestion: str | None, bot_name: str) -> str:
    """A short, friendly answer to something that isn't a command."""
    if not typed:
        return f"Hi! Try `@{bot_name} status` to see training jobs, or `help` for everything."
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return f"I don't know the command `{typed}`.{hint} Type `help` to see what I can do."
