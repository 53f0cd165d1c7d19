"""A daily digest end to end: asked for in a channel, recorded at its local time once,
delivered to that conversation only, with the day's circuits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import SANDBOX_START, StartSandboxBot
from tests.integration.test_chatops import OPERATOR, ChatOps
from tests.integration.test_living_cards import install_in_channel
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import CHANNEL_ID


async def test_a_digest_arrives_once_at_its_time_with_the_days_trainings(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_OPERATORS": OPERATOR, "MLBOT_GROUP_WAIT_SECONDS": "0"})
    await install_in_channel(bot, connector)
    ops = ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector)
    at = (SANDBOX_START + timedelta(minutes=40)).strftime("%H:%M")
    answer = await ops.say(f"digest daily at {at} UTC")
    assert "Daily digest set" in str(answer)

    engine, digests = bot.runtime.engine, bot.runtime.digests
    assert engine is not None and digests is not None

    def digests_posted() -> list[dict[str, Any]]:
        return [
            m.body["attachments"][0]["content"]
            for m in connector.conversation_messages(CHANNEL_ID)
            if m.body.get("attachments") and "Daily digest —" in str(m.body)
        ]

    end = bot.clock.now() + timedelta(minutes=70)
    while bot.clock.now() < end:
        now = bot.clock.advance(30)
        bot.stack.tick(now)
        if now >= await engine.next_wakeup():
            await engine.tick()
        await digests.tick()
        await bot.runtime.dispatcher.dispatch_pending()
        if bot.clock.now() < SANDBOX_START + timedelta(minutes=39):
            assert digests_posted() == []

    posted = digests_posted()
    assert len(posted) == 1
    text = str(posted[0]["body"])
    assert "PLANT002/CIRCUIT03" in text and "❌" in text
    assert "completed" in text and "Seen" in text
    shown = str(await ops.say("digest"))
    assert f"Every day at {at} (UTC)" in shown
    assert "Daily digest stopped." in str(await ops.say("digest off"))
