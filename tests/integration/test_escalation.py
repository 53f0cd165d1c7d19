"""Escalation end to end: PLANT002/CIRCUIT03 fails on every attempt in the sandbox's
default scenario; when nobody acknowledges its final failure, it is posted again after
MLBOT_ESCALATION_MINUTES, once, mentioning on-call; acknowledged, it is not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import SandboxBot, StartSandboxBot
from tests.integration.test_chatops import OPERATOR, ChatOps, actions_of
from tests.integration.test_living_cards import install_in_channel
from tests.standins.connector import ConnectorStandIn, Message
from tests.teams_payloads import CHANNEL_ID

ON_CALL = "oncall.engineer@contoso.com"
SETTINGS = {
    "MLBOT_OPERATORS": OPERATOR,
    "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
    "MLBOT_GROUP_WAIT_SECONDS": "0",
    "MLBOT_ESCALATION_MINUTES": "30",
    "MLBOT_ONCALL": ON_CALL,
}


async def _play(bot: SandboxBot, seconds: float, step: float = 30.0) -> None:
    engine, escalations = bot.runtime.engine, bot.runtime.escalations
    assert engine is not None and escalations is not None
    end = bot.clock.now() + timedelta(seconds=seconds)
    while bot.clock.now() < end:
        now = bot.clock.advance(step)
        bot.stack.tick(now)
        if now >= await engine.next_wakeup():
            await engine.tick()
        await escalations.tick()
        await bot.runtime.dispatcher.dispatch_pending()


def _card(message: Message) -> dict[str, Any]:
    found: dict[str, Any] = message.body["attachments"][0]["content"]
    return found


def _headed(connector: ConnectorStandIn, words: str) -> list[Message]:
    return [
        m
        for m in connector.conversation_messages(CHANNEL_ID)
        if m.body.get("attachments") and words in str(_card(m)["body"][0])
    ]


@pytest.fixture
async def bot(start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn) -> SandboxBot:
    started = await start_sandbox_bot(dict(SETTINGS))
    await install_in_channel(started, connector)
    return started


async def test_an_unacknowledged_final_failure_is_escalated_once_to_on_call(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    await _play(bot, 10 * 60)
    finals = [m for m in _headed(connector, "PLANT002/CIRCUIT03") if "exhausted" in str(m.body)]
    assert finals, "the scenario's final failure was not posted"
    assert _headed(connector, "still unhandled") == []

    await _play(bot, 40 * 60)
    escalated = _headed(connector, "PLANT002/CIRCUIT03 — still unhandled")
    assert len(escalated) == 1
    card = _card(escalated[0])
    mentioned = {e["mentioned"]["id"] for e in card["msteams"].get("entities", [])}
    assert ON_CALL in mentioned
    assert "alert.ack" in actions_of(escalated[0].body)
    # A new message (it notifies), never an edit of the old card.
    assert escalated[0].updates == 0 and escalated[0].thread_root is None

    await _play(bot, 60 * 60)
    assert len(_headed(connector, "PLANT002/CIRCUIT03 — still unhandled")) == 1


async def test_an_acknowledged_failure_is_not_escalated(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    await _play(bot, 10 * 60)
    finals = [m for m in _headed(connector, "PLANT002/CIRCUIT03") if "exhausted" in str(m.body)]
    assert finals
    ops = ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector)
    status, _ = await ops.press(actions_of(finals[-1].body)["alert.ack"])
    assert status == 200

    await _play(bot, 40 * 60)
    assert _headed(connector, "still unhandled") == []
