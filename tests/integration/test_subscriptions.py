"""Subscriptions end to end: commands and the card over the real endpoint, who may change
what, and events reaching only the conversations whose filters they pass."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from domain.destinations import TeamsConversation
from domain.jobs import JobState, TrainingJob
from domain.subscriptions import DEFAULT_KINDS, toggle_id
from sandbox.card_catalog import SAMPLE_NOW, sample_events
from store.monitoring import NewEvent, Observation
from tests.conftest import BotServer, FixedClock, StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import (
    CHANNEL_ID,
    USER,
    bot_added_to_team,
    card_action,
    channel_message,
    installation_update,
    personal_message,
)

OPERATOR = USER  # made an operator in the settings below
VIEWER = {"id": "29:viewer", "name": "Vic Viewer", "aadObjectId": "aad-viewer-1"}
PERSONAL_ID = "a:1personal-chat-id"


class Chat:
    def __init__(self, bot: BotServer, connector: ConnectorStandIn) -> None:
        self.bot = bot
        self.connector = connector

    async def _send(self, activity: dict[str, Any]) -> Any:
        before = len(self.connector.calls)
        status, _ = await self.bot.post(activity)
        assert status == 201
        calls = await self.connector.wait_for(before + 1)
        return calls[before].body

    async def say(self, text: str, user: dict[str, Any] | None = None) -> Any:
        activity = channel_message(f"<at>mlbot</at> {text}", self.connector.url)
        activity["from"] = user or OPERATOR
        return await self._send(activity)

    async def say_personal(self, text: str, user: dict[str, Any] | None = None) -> Any:
        activity = personal_message(text, self.connector.url)
        activity["from"] = user or VIEWER
        return await self._send(activity)

    async def press(
        self,
        action: dict[str, Any],
        inputs: dict[str, Any],
        user: dict[str, Any] | None = None,
        personal: bool = False,
    ) -> dict[str, Any]:
        # Teams sends the card's input values merged into the action's data.
        activity = card_action(
            action["verb"], {**action["data"], **inputs}, self.connector.url, user=user
        )
        if personal:
            activity["conversation"] = {
                "conversationType": "personal",
                "tenantId": activity["conversation"]["tenantId"],
                "id": PERSONAL_ID,
            }
            for key in ("team", "channel", "teamsChannelId", "teamsTeamId"):
                activity["channelData"].pop(key, None)
        status, body = await self.bot.post(activity)
        assert status == 200
        assert isinstance(body, dict)
        return body


def text_of(body: Any) -> str:
    return str(body.get("text") or "") if isinstance(body, dict) else ""


def card_of(body: Any) -> dict[str, Any]:
    card: dict[str, Any] = body["attachments"][0]["content"]
    return card


def save_action(card: dict[str, Any]) -> dict[str, Any]:
    found = [a for a in card.get("actions", []) if a.get("verb") == "subscriptions.save"]
    assert found, "the card has no Save button"
    return found[0]


def inputs_of(card: dict[str, Any]) -> dict[str, Any]:
    return {e["id"]: e["value"] for e in card["body"] if e["type"].startswith("Input.")}


@pytest.fixture
async def chat(start_bot: StartBot, connector: ConnectorStandIn) -> Chat:
    bot = await start_bot(
        {"MLBOT_OPERATORS": OPERATOR["aadObjectId"], "MLBOT_GROUP_WAIT_SECONDS": "0"}
    )
    chat = Chat(bot, connector)
    await chat._send(bot_added_to_team(connector.url))  # the welcome card
    await chat._send(installation_update("add", connector.url))
    return chat


async def test_defaults_channel_everything_but_started_personal_nothing(chat: Chat) -> None:
    conversations = chat.bot.runtime.conversations
    assert await conversations.event_kinds(CHANNEL_ID) == list(DEFAULT_KINDS)
    assert await conversations.event_kinds(PERSONAL_ID) == []

    card = card_of(await chat.say_personal("subscriptions"))
    assert "Nothing is posted here yet" in json.dumps(card)
    assert not any(v == "true" for v in inputs_of(card).values())
    channel = inputs_of(card_of(await chat.say("subscriptions", user=VIEWER)) | {"body": []})
    assert channel == {}  # a viewer sees the channel's subscription read-only


async def test_operator_subscribes_and_unsubscribes_the_channel(chat: Chat) -> None:
    reply = text_of(await chat.say("subscribe started circuit=PLANT001/ env=Prod"))
    assert reply.startswith("Done: this channel now gets everything")
    assert "PLANT001/" in reply and "environment prod" in reply
    stored = await chat.bot.runtime.conversations.subscription(CHANNEL_ID)
    assert stored is not None
    assert stored.subscription.filters.circuit_prefixes == ("PLANT001/",)
    assert stored.updated_by is not None and "Ada Lovelace" in stored.updated_by

    reply = text_of(await chat.say("unsubscribe reminders, started"))
    kinds = await chat.bot.runtime.conversations.event_kinds(CHANNEL_ID)
    assert "long_running" not in kinds and "training_started" not in kinds
    assert "training_failed" in kinds and "reminders" not in reply

    reply = text_of(await chat.say("unsubscribe"))
    assert "nothing is posted to this channel" in reply
    assert await chat.bot.runtime.conversations.event_kinds(CHANNEL_ID) == []

    audit = [e for e in await chat.bot.runtime.audit.recent() if e.action.startswith("command:")]
    assert [e.action for e in audit[:3]] == [
        "command:unsubscribe",
        "command:unsubscribe",
        "command:subscribe",
    ]
    assert all(e.outcome == "ok" and e.target == CHANNEL_ID for e in audit[:3])
    assert "-> nothing" in (audit[0].detail or "")


async def test_viewer_may_not_change_a_channel_but_may_their_personal_chat(chat: Chat) -> None:
    reply = text_of(await chat.say("subscribe all", user=VIEWER))
    assert "needs an operator" in reply
    assert await chat.bot.runtime.conversations.event_kinds(CHANNEL_ID) == list(DEFAULT_KINDS)
    refused = (await chat.bot.runtime.audit.recent())[0]
    assert (refused.action, refused.outcome) == ("command:subscribe", "refused")

    reply = text_of(await chat.say_personal("subscribe approvals env=prod", user=VIEWER))
    assert reply.startswith("Done: your personal chat now gets approvals")
    assert await chat.bot.runtime.conversations.event_kinds(PERSONAL_ID) == ["approval_required"]


async def test_unknown_kinds_and_bad_filters_get_helpful_replies(chat: Chat) -> None:
    reply = text_of(await chat.say("subscribe faild"))
    assert "Did you mean `failed`?" in reply and "reminders" in reply
    reply = text_of(await chat.say("subscribe failed circuit=PLANT001/*"))
    assert "not a valid circuit filter" in reply
    reply = text_of(await chat.say("unsubscribe everything-please"))
    assert "I don't know the event kind" in reply
    assert await chat.bot.runtime.conversations.event_kinds(CHANNEL_ID) == list(DEFAULT_KINDS)


async def test_help_lists_what_each_person_may_run_where(chat: Chat) -> None:
    viewer_channel = json.dumps(card_of(await chat.say("help", user=VIEWER)))
    assert "subscriptions" in viewer_channel and "subscribe [kinds]" not in viewer_channel
    viewer_personal = json.dumps(card_of(await chat.say_personal("help", user=VIEWER)))
    assert "subscribe [kinds]" in viewer_personal and "unsubscribe" in viewer_personal
    operator_channel = json.dumps(card_of(await chat.say("help")))
    assert "subscribe [kinds]" in operator_channel


async def test_card_save_changes_the_channel_and_answers_with_the_new_card(chat: Chat) -> None:
    card = card_of(await chat.say("subscriptions"))
    inputs = inputs_of(card)
    assert inputs[toggle_id("training_failed")] == "true"
    inputs[toggle_id("training_started")] = "true"
    inputs[toggle_id("long_running")] = "false"
    inputs["circuit_prefix"] = "PLANT001/, PLANT002/CIRCUIT0"
    inputs["environment"] = "prod"

    answer = await chat.press(save_action(card), inputs)
    updated = answer["value"]
    assert "Saved." in json.dumps(updated)
    shown = inputs_of(updated)
    assert shown[toggle_id("training_started")] == "true"
    assert shown[toggle_id("long_running")] == "false"
    assert shown["circuit_prefix"] == "PLANT001/, PLANT002/CIRCUIT0"
    stored = await chat.bot.runtime.conversations.subscription(CHANNEL_ID)
    assert stored is not None
    assert "training_started" in stored.subscription.kinds
    assert "long_running" not in stored.subscription.kinds
    assert stored.subscription.filters.environments == ("prod",)
    # The answer card carries a fresh Save: the card can be saved again.
    again = await chat.press(save_action(updated), {**shown, "environment": ""})
    assert "Saved." in json.dumps(again["value"])
    stored = await chat.bot.runtime.conversations.subscription(CHANNEL_ID)
    assert stored is not None and stored.subscription.filters.environments == ()
    saves = [e for e in await chat.bot.runtime.audit.recent() if e.action == "subscriptions:save"]
    assert len(saves) == 2


async def test_card_save_with_a_bad_filter_keeps_what_was_typed(chat: Chat) -> None:
    card = card_of(await chat.say("subscriptions"))
    inputs = {**inputs_of(card), "circuit_prefix": "PLANT 1"}
    answer = await chat.press(save_action(card), inputs)
    text = json.dumps(answer["value"])
    assert "Nothing saved" in text and "not a valid circuit filter" in text
    assert inputs_of(answer["value"])["circuit_prefix"] == "PLANT 1"
    stored = await chat.bot.runtime.conversations.subscription(CHANNEL_ID)
    assert stored is not None and stored.subscription.filters.circuit_prefixes == ()


async def test_viewer_cannot_save_a_channel_card(chat: Chat) -> None:
    card = card_of(await chat.say("subscriptions"))  # an operator's card, with Save
    answer = await chat.press(save_action(card), {**inputs_of(card), "environment": "dev"}, VIEWER)
    assert "needs an operator" in json.dumps(answer["value"])
    stored = await chat.bot.runtime.conversations.subscription(CHANNEL_ID)
    assert stored is not None and stored.subscription.filters.environments == ()
    refused = (await chat.bot.runtime.audit.recent())[0]
    assert (refused.action, refused.outcome) == ("card:subscriptions.save", "refused")


async def test_personal_card_save_by_anyone(chat: Chat) -> None:
    card = card_of(await chat.say_personal("subscriptions"))
    inputs = {**inputs_of(card), toggle_id("approval_required"): "true"}
    answer = await chat.press(save_action(card), inputs, VIEWER, personal=True)
    assert "Saved." in json.dumps(answer["value"])
    assert await chat.bot.runtime.conversations.event_kinds(PERSONAL_ID) == ["approval_required"]


async def test_a_card_from_another_conversation_is_refused(chat: Chat) -> None:
    card = card_of(await chat.say_personal("subscriptions"))  # signed for the personal chat
    answer = await chat.press(save_action(card), inputs_of(card), OPERATOR)  # pressed in channel
    assert "another conversation" in json.dumps(answer["value"])
    assert await chat.bot.runtime.conversations.event_kinds(CHANNEL_ID) == list(DEFAULT_KINDS)


async def test_subscribing_in_a_channel_the_bot_was_not_installed_in(
    chat: Chat, connector: ConnectorStandIn
) -> None:
    other = "19:other-channel@thread.tacv2"
    activity = channel_message("<at>mlbot</at> subscribe failed", connector.url)
    activity["conversation"]["id"] = f"{other};messageid=42"
    activity["from"] = OPERATOR
    await chat._send(activity)
    stored = await chat.bot.runtime.conversations.get(other)
    assert stored is not None and stored.reference["conversation"]["id"] == other
    # Not where the bot was installed: it gets what was asked, not the defaults.
    assert await chat.bot.runtime.conversations.event_kinds(other) == ["training_failed"]


# --- routing events ------------------------------------------------------------------


def _new(name: str, **changes: Any) -> NewEvent:
    record = sample_events(SAMPLE_NOW)[name]
    payload = {**record.payload, **changes.pop("payload", {})}
    event = NewEvent(
        key=changes.pop("key", f"test/{name}"),  # sample keys are per kind only
        kind=record.kind,
        payload=payload,
        session_id=None,
        workspace=record.workspace,
        job_name=record.job_name,
        circuit=record.circuit,
    )
    return dataclasses.replace(event, **changes)


async def test_filtered_subscriptions_receive_only_matching_events(
    chat: Chat, connector: ConnectorStandIn, clock: FixedClock
) -> None:
    runtime = chat.bot.runtime
    # The store knows which experiment each job belongs to.
    events = sample_events(SAMPLE_NOW)
    for name, experiment in (
        ("training-completed", "circuit-training"),
        ("training-failed-retries-exhausted", "anomaly-training"),
    ):
        record = events[name]
        assert record.workspace and record.job_name and record.circuit
        await runtime.jobs.upsert(
            TrainingJob(
                workspace=record.workspace,
                name=record.job_name,
                display_name=record.job_name,
                experiment=experiment,
                circuit=record.circuit,
                status="Running",
                state=JobState.RUNNING,
            ),
            now=clock.now,
        )
    await chat.say("subscribe circuit=PLANT001/ experiment=circuit-training")
    await chat.say_personal("subscribe failed approvals circuit=PLANT002/ env=prod")

    staging = events["approval-required"].payload | {"environment": "staging"}
    to_send = {
        "completed PLANT001/CIRCUIT01 circuit-training": _new("training-completed"),
        "failed PLANT001/CIRCUIT03 anomaly-training": _new("training-failed-retries-exhausted"),
        "failed PLANT002/CIRCUIT02": _new("training-failed"),
        "started PLANT001/CIRCUIT01": _new("training-started"),
        "approval prod": _new("approval-required"),
        "approval staging": _new("approval-required", key="approval/staging", payload=staging),
        "deployment failed prod": _new("deployment-failed"),
    }
    await runtime.monitoring.apply(Observation(now=clock.now, events=list(to_send.values())))
    before = len(connector.calls)
    for _ in range(20):  # paced sends and group windows come due as time passes
        report = await runtime.dispatcher.dispatch_pending()
        if not report.next_due:
            break
        clock.now = max(clock.now, report.next_due)

    stored = {e.key: e for e in await runtime.monitoring.events(limit=100)}
    reached: dict[str, set[str]] = {}
    for label, event in to_send.items():
        deliveries = await runtime.deliveries.for_event(stored[event.key].id)
        reached[label] = {d.conversation_id for d in deliveries if isinstance(d, TeamsConversation)}
        assert all(r.status == "sent" for r in deliveries.values()), label
    assert reached == {
        "completed PLANT001/CIRCUIT01 circuit-training": {CHANNEL_ID},
        "failed PLANT001/CIRCUIT03 anomaly-training": set(),
        "failed PLANT002/CIRCUIT02": {PERSONAL_ID},
        "started PLANT001/CIRCUIT01": set(),
        "approval prod": {CHANNEL_ID, PERSONAL_ID},  # the channel has no env filter
        "approval staging": {CHANNEL_ID},
        "deployment failed prod": {CHANNEL_ID},  # a circuit filter leaves deployments alone
    }
    # And the connector saw exactly that: two cards to the personal chat.
    personal_calls = [
        c for c in connector.calls[before:] if c.path.startswith(f"/v3/conversations/{PERSONAL_ID}")
    ]
    assert len(personal_calls) == 2
    assert "PLANT002/CIRCUIT02" in json.dumps(personal_calls[0].body)
