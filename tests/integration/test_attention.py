"""Silences, Acknowledge and Snooze end to end: the bot over real HTTP, the sandbox's
default scenario (PLANT002/CIRCUIT02 fails within a minute, PLANT003/CIRCUIT01 runs past
four hours), the Bot Connector stand-in showing what Teams users see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from store.attention import AttentionStore
from store.tables import deliveries, held_events
from tests.conftest import SandboxBot, StartSandboxBot
from tests.integration.test_chatops import APPROVER, OPERATOR, ChatOps, actions_of
from tests.integration.test_living_cards import install_in_channel, kind_of, play
from tests.standins.connector import ConnectorStandIn, Message
from tests.teams_payloads import CHANNEL_ID, USER

SETTINGS = {
    "MLBOT_OPERATORS": f"{OPERATOR},{APPROVER['aadObjectId']}",
    "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
    "MLBOT_GROUP_WAIT_SECONDS": "0",
    # A reminder every half hour (PLANT003/CIRCUIT01 runs until about 2 h in).
    "MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS": "0.5",
    "MLBOT_MONITORING_MAX_WAIT_HOURS": "12",
}


@pytest.fixture
async def bot(start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn) -> SandboxBot:
    started = await start_sandbox_bot(dict(SETTINGS))
    await install_in_channel(started, connector)
    return started


def _ops(bot: SandboxBot, connector: ConnectorStandIn) -> ChatOps:
    return ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector)


def _replies(connector: ConnectorStandIn) -> list[Message]:
    return [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "reply"]


def _card(message: Message) -> dict[str, Any]:
    found: dict[str, Any] = message.body["attachments"][0]["content"]
    return found


def _reminders(connector: ConnectorStandIn, circuit: str = "PLANT003/CIRCUIT01") -> list[Message]:
    return [
        m
        for m in _replies(connector)
        if "still running" in str(_card(m)["body"][0]) and circuit in str(_card(m)["body"][0])
    ]


def _failures_of(connector: ConnectorStandIn, circuit: str) -> list[Message]:
    return [
        m
        for m in _replies(connector)
        if "training failed" in str(_card(m)["body"][0]) and circuit in str(_card(m)["body"][0])
    ]


async def _held_ids(bot: SandboxBot) -> list[int]:
    async with bot.runtime.db.sessions() as session:
        rows = (await session.execute(select(held_events.c.event_id))).all()
    return [int(row.event_id) for row in rows]


async def test_a_silence_holds_matching_failures_and_never_posts_them_late(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    ops = _ops(bot, connector)
    created = await ops.say("silence circuit=PLANT002/ kinds=failed for 10m cluster maintenance")
    assert "Silence #1" in str(created)

    await play(bot, 9 * 60)
    assert _failures_of(connector, "PLANT002/") == []
    held = await _held_ids(bot)
    failed = await bot.runtime.monitoring.events_of_kind("training_failed")
    assert held and {e.id for e in failed if (e.circuit or "").startswith("PLANT002/")} <= set(held)
    # Failures elsewhere still go out.
    listing = await ops.say("silences")
    assert "Held so far" in str(listing) and "cluster maintenance" in str(listing)
    status = str(await ops.say("status"))
    assert "1 active silence(s)" in status and "held back in the last 24 h" in status

    await play(bot, 30 * 60)  # the silence ended 20 minutes ago
    async with bot.runtime.db.sessions() as session:
        sent_for_held = await session.scalar(
            select(func.count()).select_from(deliveries).where(deliveries.c.event_id.in_(held))
        )
    assert sent_for_held == 0, "a held event was delivered after its silence ended"
    assert "No active silences" in str(await ops.say("silences"))


async def test_unsilence_ends_a_silence_and_bad_input_is_explained(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    ops = _ops(bot, connector)
    assert "at least one matcher" in str(await ops.say("silence for 2h"))
    assert "Silence #1" in str(await ops.say("silence env=prod for 1h release freeze"))
    assert "Silence #1 ended" in str(await ops.say("unsilence 1"))
    assert "No active silence #1" in str(await ops.say("unsilence 1"))
    viewer = {"id": "29:viewer", "name": "Vic Viewer", "aadObjectId": "aad-viewer-1"}
    refused = await ops.say("silence env=prod for 1h", user=viewer)
    assert "operators" in refused["text"] and "Silence #2" not in str(refused)
    assert await AttentionStore(bot.runtime.db).active_silences(bot.clock.now()) == []


async def test_acknowledge_is_seen_by_everyone_and_stops_the_jobs_reminders(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    ops = _ops(bot, connector)
    # PLANT003/CIRCUIT01 has run for four hours within minutes: its first reminder.
    await play(bot, 10 * 60)
    reminders = _reminders(connector)
    assert reminders, "no long-running reminder was posted"
    buttons = actions_of(reminders[0].body)
    assert {"alert.ack", "alert.snooze"} <= set(buttons)

    status, answer = await ops.press(buttons["alert.ack"])
    assert status == 200 and answer["statusCode"] == 200
    assert f"{USER['name']}** is on it" in str(answer["value"])
    assert "alert.ack" not in actions_of({"attachments": [{"content": answer["value"]}]})
    # The card is replaced in place for everyone in the channel.
    put = connector.calls[-1]
    assert put.method == "PUT" and "is on it" in str(put.body)
    # Someone else pressing the old button later sees who took it, not themselves.
    status, again = await ops.press(buttons["alert.ack"], user=APPROVER)
    assert status == 200 and f"{USER['name']}** is on it" in str(again["value"])

    await play(bot, 100 * 60, step=60)  # three more reminders fall due
    assert len(_reminders(connector)) == len(reminders), "an acknowledged job was reminded"
    held = set(await _held_ids(bot))
    of_job = [
        e
        for e in await bot.runtime.monitoring.events_of_kind("long_running")
        if e.circuit == "PLANT003/CIRCUIT01"
    ]
    assert len([e for e in of_job if e.id in held]) == 3


async def test_a_snoozed_job_is_reminded_again_when_the_snooze_ends(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    ops = _ops(bot, connector)
    await play(bot, 10 * 60)
    reminders = _reminders(connector)
    assert reminders
    actions = reminders[0].body["attachments"][0]["content"]["actions"]
    snooze = next(a for a in actions if a["type"] == "Action.ShowCard")
    assert snooze["title"] == "Snooze…"
    one_hour = next(a for a in snooze["card"]["actions"] if a["title"] == "1 hour")
    status, answer = await ops.press(one_hour)
    assert status == 200 and "Reminders snoozed until" in str(answer["value"])

    # Reminders due about 30 and 60 minutes in are held, the one 90 minutes in is posted.
    await play(bot, 100 * 60, step=60)
    assert len(_reminders(connector)) == len(reminders) + 1
    held = set(await _held_ids(bot))
    of_job = [
        e
        for e in await bot.runtime.monitoring.events_of_kind("long_running")
        if e.circuit == "PLANT003/CIRCUIT01"
    ]
    assert len([e for e in of_job if e.id in held]) == 2


async def test_a_bot_without_attention_store_is_not_needed_for_other_cards(
    bot: SandboxBot, connector: ConnectorStandIn
) -> None:
    # Failures carry Acknowledge; the timestamp of the answer is the bot's clock.
    await play(bot, 2 * 60)
    failures = _failures_of(connector, "PLANT002/CIRCUIT02")
    assert failures and "alert.ack" in actions_of(failures[0].body)
    assert bot.clock.now() - timedelta(minutes=3) < bot.clock.now()
