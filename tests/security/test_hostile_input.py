"""Hostile bodies on /api/messages: a readable 4xx, never a 500, and the bot keeps serving."""

from __future__ import annotations

import json

import pytest

from tests.conftest import StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import card_action, channel_message

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
