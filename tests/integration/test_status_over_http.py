"""`help`, `status` and unknown commands, posted to the running bot over real HTTP."""

from __future__ import annotations

from datetime import timedelta

from domain.jobs import JobState, TrainingJob
from tests.conftest import FixedClock, StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import channel_message, personal_message
from tests.unit.card_rows import job_rows


def _texts(card: dict) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                found.append(node["text"])
            if "title" in node and "value" in node:
                found.append(f"{node['title']}: {node['value']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


async def test_status_with_empty_store_says_nothing_is_watched(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, _ = await bot.post(channel_message("<at>mlbot</at> status", connector.url))
    assert status == 201
    calls = await connector.wait_for(1)
    assert calls[0].method == "POST"
    conversation_id = "19:team-general@thread.tacv2;messageid=1732867200000"
    assert calls[0].path.startswith(f"/v3/conversations/{conversation_id}/activities/")
    texts = " ".join(_texts(connector.cards()[0]))
    assert "Nothing is being watched" in texts


async def test_status_lists_jobs_with_circuit_state_and_elapsed(
    start_bot: StartBot, connector: ConnectorStandIn, clock: FixedClock
) -> None:
    bot = await start_bot()
    now = clock.now
    await bot.runtime.jobs.upsert(
        TrainingJob(
            workspace="sub/rg/ws",
            name="train-plant001-circuit01-a1",
            display_name="train PLANT001/CIRCUIT01",
            experiment="circuit-training",
            circuit="PLANT001/CIRCUIT01",
            status="Running",
            state=JobState.RUNNING,
            started_at=now - timedelta(hours=1, minutes=5),
            studio_url="https://ml.azure.com/runs/train-plant001-circuit01-a1",
        ),
        now=now,
    )
    await bot.runtime.jobs.upsert(
        TrainingJob(
            workspace="sub/rg/ws",
            name="train-plant002-circuit02-a2",
            display_name="train PLANT002/CIRCUIT02",
            experiment="circuit-training",
            circuit="PLANT002/CIRCUIT02",
            status="Failed",
            state=JobState.FAILED,
            started_at=now - timedelta(minutes=30),
            ended_at=now - timedelta(minutes=20),
            attempt=2,
        ),
        now=now,
    )
    status, _ = await bot.post(channel_message("<at>mlbot</at> STATUS\n", connector.url))
    assert status == 201
    await connector.wait_for(1)
    texts = _texts(connector.cards()[0])
    joined = " | ".join(texts)
    assert "PLANT001/CIRCUIT01" in joined and "PLANT002/CIRCUIT02" in joined
    running, failed = job_rows(connector.cards()[0])  # running first
    assert (running.circuit, running.state, running.elapsed) == (
        "PLANT001/CIRCUIT01",
        "▶️ Running",
        "1h 05m",  # elapsed so far
    )
    assert (failed.circuit, failed.state, failed.elapsed) == (
        "PLANT002/CIRCUIT02",
        "❌ Failed",
        "10m 00s",  # how long it ran
    )
    assert running.detail.startswith("attempt 1 ") and failed.detail.startswith("attempt 2 ")
    assert "(https://ml.azure.com/runs/train-plant001-circuit01-a1)" in running.detail
    assert "2 job(s): 1 running, 1 failed" in joined

    # A filter narrows the card to matching circuits.
    await bot.post(channel_message("<at>mlbot</at> status plant002", connector.url))
    await connector.wait_for(2)
    filtered = " | ".join(_texts(connector.cards()[1]))
    assert "PLANT002/CIRCUIT02" in filtered and "PLANT001/CIRCUIT01" not in filtered


async def test_renamed_bot_mention_and_nbsp_are_understood(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    activity = channel_message(
        "<at>ML Ops Helper</at>&nbsp;help\n", connector.url, bot_name="ML Ops Helper"
    )
    status, _ = await bot.post(activity)
    assert status == 201
    await connector.wait_for(1)
    texts = " ".join(_texts(connector.cards()[0]))
    assert "commands" in texts and "status [filter]" in str(connector.cards()[0])
    # The help speaks of the bot by the name it was addressed by, not a configured one.
    assert "ML Ops Helper commands" in texts
    assert "@ML Ops Helper status" in texts and "@mlbot" not in texts


async def test_personal_chat_needs_no_mention(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, _ = await bot.post(personal_message("help", connector.url))
    assert status == 201
    calls = await connector.wait_for(1)
    assert calls[0].path.startswith("/v3/conversations/a:1personal-chat-id/activities")
    assert connector.cards(), "help answers with a card"


async def test_unknown_command_gets_did_you_mean(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(channel_message("<at>mlbot</at> stauts", connector.url))
    calls = await connector.wait_for(1)
    text = calls[0].body["text"]
    assert "`stauts`" in text and "Did you mean `status`?" in text


async def test_empty_mention_gets_a_hint_not_silence(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    await bot.post(channel_message("<at>mlbot</at>&nbsp;", connector.url))
    calls = await connector.wait_for(1)
    assert "status" in calls[0].body["text"]
