"""Living cards in Teams: one card per session, updated in place; details in its thread.

The sandbox plays the default scenario; the bot runs over real HTTP with the real
CloudAdapter; the Bot Connector is the stand-in, which keeps what users would see.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.subscriptions import DEFAULT_KINDS, Subscription
from sandbox.card_catalog import sample_events
from store.monitoring import NewEvent, Observation
from store.posted_activities import PostedActivityStore
from tests.conftest import SandboxBot, StartSandboxBot
from tests.standins.connector import ConnectorStandIn, Message
from tests.teams_payloads import CHANNEL_ID, bot_added_to_team, installation_update


async def play(bot: SandboxBot, seconds: float, step: float = 15.0) -> None:
    engine = bot.runtime.engine
    assert engine is not None
    end = bot.clock.now() + timedelta(seconds=seconds)
    while bot.clock.now() < end:
        now = bot.clock.advance(step)
        bot.stack.tick(now)
        if now >= await engine.next_wakeup():
            await engine.tick()
        await bot.runtime.dispatcher.dispatch_pending()


def kind_of(message: Message) -> str:
    return (message.client_key or "").split(":", 1)[0]


def text_of(message: Message) -> str:
    return str(message.body)


async def install_in_channel(bot: SandboxBot, connector: ConnectorStandIn) -> None:
    status, _ = await bot.server.post(bot_added_to_team(connector.url))
    assert status in (200, 201)
    await connector.wait_for(1)  # the welcome card


async def test_one_card_per_session_updated_in_place_with_details_in_its_thread(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_GROUP_WAIT_SECONDS": "30"})
    await install_in_channel(bot, connector)
    await play(bot, 20 * 60)

    messages = connector.conversation_messages(CHANNEL_ID)
    cards = [m for m in messages if kind_of(m) == "session_card"]
    replies = [m for m in messages if kind_of(m) == "reply"]
    # One card per session, never posted twice, each changed in place as its jobs moved.
    sessions = {m.client_key for m in cards}
    assert cards and len(sessions) == len(cards)
    assert all(m.thread_root is None for m in cards)
    assert sum(m.updates for m in cards) > 0
    # Details are replies in the thread of their session's card.
    card_ids = {m.activity_id for m in cards}
    assert replies and all(m.thread_root in card_ids for m in replies)
    assert any("CUDA out of memory" in text_of(m) for m in replies)
    assert any("Retries exhausted" in text_of(m) for m in replies)
    # The card shows the latest state of every circuit of its session.
    final = " ".join(text_of(m) for m in cards)
    assert "PLANT001/CIRCUIT01" in final and "✅ Completed" in final
    # No card body holds a stale state for a circuit the store says is done.
    for message in cards:
        content = message.body["attachments"][0]["content"]
        assert content["version"] == "1.5"
        assert len(str(content).encode()) < 28 * 1024
    # Every message was recorded with its activity id: a resend would update it.
    posted = await PostedActivityStore(bot.runtime.db).all()
    assert {p.activity_id for p in posted} >= card_ids
    assert all(p.status == "posted" and p.uncertain_posts == 0 for p in posted)


async def test_in_a_personal_chat_details_are_messages_and_the_card_still_changes(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_GROUP_WAIT_SECONDS": "0"})
    activity = installation_update("add", connector.url)
    status, _ = await bot.server.post(activity)
    assert status in (200, 201)
    await connector.wait_for(1)
    conversation = activity["conversation"]["id"]
    # A personal chat gets what its person subscribes to.
    subscribed = await bot.runtime.conversations.save_subscription(
        conversation, Subscription.of(DEFAULT_KINDS), by="test", now=bot.clock.now()
    )
    assert subscribed
    await play(bot, 20 * 60)

    messages = connector.conversation_messages(conversation)
    cards = [m for m in messages if kind_of(m) == "session_card"]
    replies = [m for m in messages if kind_of(m) == "reply"]
    assert cards and replies
    # No threads in chats: nothing is addressed to a `;messageid=` conversation.
    assert all(m.thread_root is None for m in messages)
    assert all(";messageid=" not in call.path for call in connector.calls)
    assert sum(m.updates for m in cards) > 0


def grouped(message: Message) -> bool:
    content: dict[str, Any] = message.body["attachments"][0]["content"]
    return "circuits failed or stopped" in str(content.get("body", [{}])[0])


async def test_failures_close_together_arrive_as_one_reply(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_GROUP_WAIT_SECONDS": "600"})
    await install_in_channel(bot, connector)
    await play(bot, 30 * 60)

    replies = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "reply"]
    failures = await bot.runtime.monitoring.events_of_kind("training_failed")
    assert len(failures) >= 2
    # With a long wait the session's failures share replies: fewer replies than failures.
    failure_replies = [m for m in replies if "failed" in text_of(m)]
    assert len(failure_replies) < len(failures)
    assert any(grouped(m) for m in replies)


async def test_an_update_that_changes_nothing_is_not_sent(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_GROUP_WAIT_SECONDS": "0"})
    await install_in_channel(bot, connector)
    await play(bot, 20 * 60)

    shown: dict[str, Any] = {}
    for call in connector.calls:
        if call.method == "POST" and isinstance(call.body, dict) and call.body.get("attachments"):
            shown.setdefault(f"posted:{len(shown)}", call.body["attachments"])
        if call.method == "PUT" and "/activities/" in call.path:
            activity = call.path.rsplit("/", 1)[-1]
            content = call.body["attachments"]
            assert shown.get(activity) != content, f"update of {activity} changed nothing"
            shown[activity] = content
    assert any(call.method == "PUT" for call in connector.calls)


async def test_one_card_per_pipeline_run_from_approval_to_deployment(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {"MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789"}
    )
    await install_in_channel(bot, connector)
    samples = sample_events(bot.clock.now())
    story = ["approval-required", "approval-decided", "deployment-completed"]
    other_run = dict(samples["deployment-rollback-completed"].payload)  # run 20233
    for name in story:
        record = samples[name]
        await bot.runtime.monitoring.apply(
            Observation(
                bot.clock.now(), events=[NewEvent(f"t/{name}", record.kind, dict(record.payload))]
            )
        )
        await bot.runtime.dispatcher.dispatch_pending()
    await bot.runtime.monitoring.apply(
        Observation(
            bot.clock.now(), events=[NewEvent("t/other", "deployment_completed", other_run)]
        )
    )
    await bot.runtime.dispatcher.dispatch_pending()

    runs = [m for m in connector.conversation_messages(CHANNEL_ID) if kind_of(m) == "run_card"]
    assert len(runs) == 2  # one per run, never one per event
    story_card = next(m for m in runs if m.updates)
    assert story_card.updates == 2  # approval decided, then deployed: in place
    assert "approval.approve" not in text_of(story_card)  # the buttons went with the decision
    assert "completed" in text_of(story_card).lower()
    assert next(m for m in runs if m is not story_card).updates == 0
