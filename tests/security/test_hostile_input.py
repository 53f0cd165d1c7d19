"""Hostile bodies on /api/messages: a readable 4xx, never a 500, and the bot keeps serving."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BotServer, StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import USER, card_action, channel_message

DEPTH = 30_000  # far deeper than Python's recursion limit, within the body size cap


async def test_deeply_nested_json_is_400(start_bot: StartBot, connector: ConnectorStandIn) -> None:
    bot = await start_bot()
    raw = b"[" * DEPTH + b"]" * DEPTH
    status, body = await bot.post(None, raw=raw)
    assert status == 400 and "JSON" in body["error"]
    assert (await bot.get("/healthz"))[0] == 200


async def test_deeply_nested_value_inside_an_activity_is_400(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    activity = channel_message("<at>mlbot</at> help", connector.url)
    raw = activity_with_nested_value(activity)
    status, _ = await bot.post(None, raw=raw)
    assert status == 400
    assert connector.calls == []


def activity_with_nested_value(activity: dict[str, object]) -> bytes:
    text = json.dumps({**activity, "value": "NESTED"})
    return text.replace('"NESTED"', "[" * DEPTH + "]" * DEPTH).encode()


@pytest.mark.parametrize(
    "action",
    [
        {"type": "Action.Submit", "id": "btn", "data": {}},
        {"type": "Action.Execute", "verb": 5},
        "not an object",
    ],
)
async def test_a_malformed_card_action_is_400(
    start_bot: StartBot, connector: ConnectorStandIn, action: object
) -> None:
    bot = await start_bot()
    activity = card_action("approval.approve", {}, connector.url)
    activity["value"] = {"action": action, "trigger": "manual"}
    status, body = await bot.post(activity)
    assert status == 400, body
    assert (await bot.get("/healthz"))[0] == 200


LINK = "[Re-login](https://evil.example/login)"


async def _reply(bot: BotServer, connector: ConnectorStandIn, text: str) -> str:
    before = len(connector.calls)
    status, _ = await bot.post(channel_message(f"<at>mlbot</at> {text}", connector.url))
    assert status == 201
    calls = await connector.wait_for(before + 1)
    return str(calls[before].body.get("text", ""))


def _spans_are_closed_around_words(text: str) -> bool:
    """Every backtick pair encloses the echoed word: no Markdown outside a code span."""
    outside = text.split("`")[::2]
    return all("](" not in part for part in outside)


@pytest.mark.parametrize(
    "typed",
    [f"x`{LINK}`", f"x` {LINK} `y", f"x\n{LINK}"],
)
async def test_an_unknown_command_is_echoed_inert(
    start_bot: StartBot, connector: ConnectorStandIn, typed: str
) -> None:
    bot = await start_bot()
    reply = await _reply(bot, connector, typed)
    assert "don't know" in reply
    assert _spans_are_closed_around_words(reply), reply


async def test_rollback_is_refused_before_its_arguments_are_read(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()  # nobody is an operator
    reply = await _reply(bot, connector, f"rollback x`{LINK}`")
    assert "needs an operator" in reply
    assert "evil.example" not in reply


async def test_a_bad_environment_is_echoed_inert_to_an_operator(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot({"MLBOT_OPERATORS": USER["aadObjectId"]})
    reply = await _reply(bot, connector, f"rollback x`{LINK}`")
    assert "not an environment name" in reply
    assert _spans_are_closed_around_words(reply), reply


async def test_a_bad_circuit_is_echoed_inert(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot({"MLBOT_OPERATORS": USER["aadObjectId"]})
    reply = await _reply(bot, connector, f"retry PLANT001/CIRCUIT01,{LINK}")
    assert "not a circuit" in reply
    assert _spans_are_closed_around_words(reply), reply
