"""A hanging Azure ML holds only its own threads: `status` and Teams sends still complete.

The Bot Connector client sends every Teams request with `requests` on asyncio's default
executor (and aiohttp resolves names there), so Azure ML calls that never get an answer
must not be able to take that executor's threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.conftest import StartSandboxBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import CHANNEL_ID, bot_added_to_team, channel_message

# More hanging calls than asyncio's default executor has threads on any machine
# (min(32, cores + 4)), so with a shared pool nothing else could run.
HANGING_CALLS = 40
# Fewer than any Azure ML pool size we ship; reached when the emulator holds that many.
HELD_AT_LEAST = 2


async def _finishes(what: str, step: Awaitable[Any], guard_s: float) -> Any:
    try:
        return await asyncio.wait_for(step, timeout=guard_s)
    except TimeoutError:
        pytest.fail(f"{what} did not complete while Azure ML calls were hanging")


async def test_status_and_teams_sends_complete_while_azure_ml_hangs(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot()
    service_url = connector.url.replace("127.0.0.1", "localhost")
    status, _ = await bot.server.post(bot_added_to_team(service_url))
    assert status == 201
    await connector.wait_for(1)  # the welcome: the channel is known now

    emulator = bot.stack.azureml
    source = bot.runtime.azure.job_source
    assert source is not None
    workspace = source.workspaces[0]
    # A hung call gives its thread back only when the SDK's read timeout (the retry
    # policy's timeout) ends; a stall shorter than that is what a shared pool causes.
    # Half of it detects the stall; on a healthy bot both steps finish at once.
    guard_s = source.options.retry.timeout_s / 2
    emulator.inject("hang", count=HANGING_CALLS * 3)  # retries hang as well
    hanging = [asyncio.create_task(source.list_active(workspace)) for _ in range(HANGING_CALLS)]
    try:
        await _finishes("reaching the hang", emulator.wait_hanging(HELD_AT_LEAST), guard_s)

        answered, sent = await _finishes(
            "a status answer and a proactive Teams send",
            asyncio.gather(
                bot.server.post(channel_message("<at>mlbot</at> status", service_url)),
                bot.runtime.messenger.send_text(CHANNEL_ID, "still here"),
            ),
            guard_s,
        )

        assert answered[0] == 201
        assert sent  # the connector gave the new message an id
        assert emulator.hanging >= HELD_AT_LEAST, "Azure ML answered: nothing was blocked"
        assert not any(task.done() for task in hanging)
        later = (await connector.wait_for(3))[1:]
        status_thread = f"/v3/conversations/{CHANNEL_ID};messageid=1732867200000/activities/"
        assert any(call.path.startswith(status_thread) for call in later)
        assert any(call.body.get("text") == "still here" for call in later)
    finally:
        emulator.release_hung()
        await asyncio.gather(*hanging, return_exceptions=True)
