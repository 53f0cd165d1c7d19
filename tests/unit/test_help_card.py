"""The help card shows every command's argument syntax, one readable block per command."""

from __future__ import annotations

import json

from bot.command_catalog import COMMANDS
from cards.help import CommandHelp, display_usage, render_help_card


def _blocks(card: dict[str, object]) -> list[dict[str, object]]:
    body = card["body"]
    assert isinstance(body, list)
    return [item for item in body if item.get("type") == "Container"]


def test_placeholders_survive_as_guillemets_that_no_client_reads_as_html() -> None:
    assert display_usage("retry <circuits>") == "retry \u2039circuits\u203a"
    assert display_usage("rollback <environment> [reason]") == (
        "rollback \u2039environment\u203a [reason]"
    )
    card = json.dumps(render_help_card([CommandHelp("retry <circuits>", "queue")], "mlbot"))
    assert "<" not in card and ">" not in card


def test_every_command_gets_its_syntax_above_its_wrapped_description() -> None:
    commands = [CommandHelp(spec.usage, spec.summary) for spec in COMMANDS.specs()]
    blocks = _blocks(render_help_card(commands, "mlbot"))
    assert len(blocks) == len(commands)
    for block, command in zip(blocks, commands, strict=True):
        items = block["items"]
        assert isinstance(items, list) and len(items) == 2
        usage: dict[str, object] = items[0]
        summary: dict[str, object] = items[1]
        assert usage["text"] == display_usage(command.usage)
        assert usage["fontType"] == "Monospace" and usage["wrap"] is True
        assert summary["text"] == command.summary and summary["wrap"] is True
    body = render_help_card(commands, "mlbot")["body"]
    assert isinstance(body, list)
    assert not [item for item in body if item.get("type") == "FactSet"]
