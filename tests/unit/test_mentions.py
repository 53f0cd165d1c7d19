"""Mention stripping on text shapes Teams really sends."""

from __future__ import annotations

import pytest

from bot.commands import parse_command
from bot.mentions import addressed_name, command_text

BOT = "28:bot-app-id"


def mention(name: str, bot_id: str = BOT) -> dict:
    return {
        "type": "mention",
        "text": f"<at>{name}</at>",
        "mentioned": {"id": bot_id, "name": name},
    }


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        ("<at>mlbot</at> status", [mention("mlbot")], "status"),
        ("<at>mlbot</at>&nbsp;status\n", [mention("mlbot")], "status"),
        ("<at>ML Ops Helper</at> status PLANT001", [mention("ML Ops Helper")], "status PLANT001"),
        ("<at>mlbot</at>\u00a0STATUS\r\n\n", [mention("mlbot")], "STATUS"),
        # Teams sometimes wraps channel text in HTML.
        ("<p><at>mlbot</at>&nbsp;help</p>\n", [mention("mlbot")], "help"),
        # No entities (older clients): a leading <at> is still the bot's mention.
        ("<at>mlbot</at> help", [], "help"),
        # Personal chat: no mention at all.
        ("  status  ", [], "status"),
        ("", [], ""),
        (None, [], ""),
        # Another person's mention stays in the arguments (as their plain name).
        (
            "<at>mlbot</at> status <at>Grace</at>",
            [mention("mlbot"), mention("Grace", "29:grace")],
            "status Grace",
        ),
        (
            "<at>mlbot</at> retry PLANT001/CIRCUIT01, PLANT002/CIRCUIT02",
            [mention("mlbot")],
            "retry PLANT001/CIRCUIT01, PLANT002/CIRCUIT02",
        ),
        ("<at>mlbot</at> status &amp; more", [mention("mlbot")], "status & more"),
    ],
)
def test_command_text(text: str | None, entities: list, expected: str) -> None:
    assert command_text(text, entities, BOT) == expected


def test_parse_command_is_case_insensitive_and_keeps_arguments() -> None:
    parsed = parse_command("STATUS Plant001/Circuit01")
    assert parsed.name == "status" and parsed.args == "Plant001/Circuit01"
    assert parse_command("").name == ""
    assert parse_command("/help").name == "help"


def test_the_addressed_name_comes_from_the_bots_mention() -> None:
    entities = [
        {"type": "mention", "text": "<at>Someone</at>", "mentioned": {"id": "29:u", "name": "U"}},
        {"type": "mention", "text": "<at>Test Bot</at>", "mentioned": {"id": "28:bot"}},
    ]
    assert addressed_name(entities, "28:bot", "mlbot") == "Test Bot"
    named = [{"type": "mention", "text": "<at>x</at>", "mentioned": {"id": "28:bot", "name": "ML"}}]
    assert addressed_name(named, "28:bot", "mlbot") == "ML"


def test_without_a_mention_the_recipient_name_is_the_bots_name() -> None:
    assert addressed_name([], "28:bot", "Release Helper") == "Release Helper"
    assert addressed_name([{"type": "clientInfo"}], "28:bot", " ") is None
