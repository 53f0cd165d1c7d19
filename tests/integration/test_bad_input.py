"""Malformed requests get a 4xx with a reason; the server stays up; nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team, channel_message


@pytest.mark.parametrize(
    ("raw", "content_type", "expected", "reason_part"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        (b"[]", "application/json", 400, "JSON object"),
        (b'{"type": 7}', "application/json", 400, "'type'"),
        (b"type=message", "application/x-www-form-urlencoded", 415, "application/json"),
        (b"hello", "text/plain", 415, "application/json"),
    ],
)
async def test_malformed_bodies(
    start_bot: StartBot, raw: bytes, content_type: str, expected: int, reason_part: str
) -> None:
    bot = await start_bot()
    status, body = await bot.post(None, raw=raw, headers={"Content-Type": content_type})
    assert status == expected
    assert reason_part in body["error"]


async def test_wrong_typed_and_missing_fields(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "unknown type": ({"type": "teleport"}, "unknown activity type"),
        "no serviceUrl": ({"serviceUrl": None}, "'serviceUrl'"),
        "bad serviceUrl": ({"serviceUrl": "ftp://x"}, "http(s) URL"),
        "no conversation": ({"conversation": None}, "'conversation.id'"),
        "text not a string": ({"text": {"a": 1}}, "'text' must be a string"),
        "entities not a list": ({"entities": "x"}, "'entities'"),
        "from not an object": ({"from": "someone"}, "'from'"),
        "channelData not an object": ({"channelData": [1]}, "'channelData'"),
    }
    for case, (change, reason) in cases.items():
        activity = channel_message("<at>mlbot</at> status", connector.url)
        activity.update(change)
        status, body = await bot.post(activity)
        assert status == 400, case
        assert reason in body["error"], case
    assert connector.calls == []
    assert (await bot.get("/healthz"))[0] == 200


async def test_oversized_body_is_413_and_nothing_is_stored(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot({"MLBOT_MAX_REQUEST_BYTES": "8192"})
    activity = bot_added_to_team(connector.url)
    activity["text"] = "x" * 20_000
    status, _ = await bot.post(activity)
    assert status == 413
    assert await bot.runtime.conversations.all() == []
    assert connector.calls == []


async def test_wrong_method_and_unknown_path(start_bot: StartBot) -> None:
    bot = await start_bot()
    async with bot.session.get(f"{bot.url}/api/messages") as response:
        assert response.status == 405
    async with bot.session.post(f"{bot.url}/api/nothing", json={}) as response:
        assert response.status == 404


async def test_readiness_reports_schema(start_bot: StartBot) -> None:
    bot = await start_bot()
    status, body = await bot.get("/readyz")
    assert status == 200
    assert body["status"] == "ready" and body["schema_revision"] == "0011"
