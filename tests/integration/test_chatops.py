"""Commands and card buttons end to end: the bot over HTTP, the connector stand-in, and
the sandbox's Azure DevOps whose state shows every effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from app import Runtime
from cards.help import display_usage
from sandbox.stack import SandboxStack
from tests.conftest import StartSandboxBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import USER, card_action, channel_message

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
OPERATOR = USER["aadObjectId"]
APPROVER = {"id": "29:approver", "name": "Grace Hopper", "aadObjectId": "aad-approver-1"}
VIEWER = {"id": "29:viewer", "name": "Vic Viewer", "aadObjectId": "aad-viewer-1"}


@dataclass
class ChatOps:
    runtime: Runtime
    stack: SandboxStack
    url: str
    session: aiohttp.ClientSession
    connector: ConnectorStandIn

    async def say(self, text: str, user: dict[str, Any] | None = None) -> dict[str, Any]:
        activity = channel_message(f"<at>mlbot</at> {text}", self.connector.url)
        if user is not None:
            activity["from"] = user
        before = len(self.connector.calls)
        async with self.session.post(f"{self.url}/api/messages", json=activity) as response:
            assert response.status == 201
        calls = await self.connector.wait_for(before + 1)
        return calls[before].body

    async def press(
        self, action: dict[str, Any], user: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        activity = card_action(action["verb"], action["data"], self.connector.url, user=user)
        async with self.session.post(f"{self.url}/api/messages", json=activity) as response:
            return response.status, await response.json()

    baseline: int = 0

    def runs(self, pipeline: str) -> list[dict[str, Any]]:
        """Runs queued by the test (the engine's own automatic retries left out)."""
        runs = self.stack.state()["pipeline_runs"][self.baseline :]
        return [r for r in runs if r["pipeline"] == pipeline]


def actions_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute":
                found[node["verb"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body.get("attachments", []))
    return found


def card_text(response: dict[str, Any]) -> str:
    return str(response.get("value", response))


@pytest.fixture
async def chatops(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> AsyncIterator[ChatOps]:
    bot = await start_sandbox_bot(
        {
            "MLBOT_OPERATORS": OPERATOR,
            "MLBOT_APPROVERS": APPROVER["aadObjectId"],
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
        }
    )
    runtime, stack, clock = bot.runtime, bot.stack, bot.clock
    stack.tick(clock.advance(60))
    assert runtime.engine is not None
    await runtime.engine.tick()  # the store learns the circuits
    baseline = len(stack.state()["pipeline_runs"])
    yield ChatOps(runtime, stack, bot.url, bot.session, connector, baseline)


async def test_retry_confirm_queues_once_and_updates_the_card(chatops: ChatOps) -> None:
    reply = await chatops.say("retry PLANT001/CIRCUIT01, PLANT002/CIRCUIT02")
    confirm = actions_of(reply)["retry.confirm"]
    assert chatops.runs("training-pipeline") == []

    status, body = await chatops.press(confirm)
    assert status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Retry queued" in card_text(body) and "Ada Lovelace" in card_text(body)
    runs = chatops.runs("training-pipeline")
    assert [r["parameters"] for r in runs] == [
        {"manualCircuits": "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02"}
    ]
    # The original card is replaced for everyone.
    put = chatops.connector.calls[-1]
    assert put.method == "PUT" and put.path.endswith("/activities/activity-1")

    # A double click: the same answer, no second run.
    status, again = await chatops.press(confirm)
    assert status == 200 and "Retry queued" in card_text(again)
    assert len(chatops.runs("training-pipeline")) == 1
    audit = [e.action for e in await chatops.runtime.audit.recent()]
    assert "card:retry.confirm" in audit


async def test_the_submit_fallback_of_older_clients_acts_like_the_button(
    chatops: ChatOps,
) -> None:
    # A Teams client without Universal Actions draws the Action.Submit fallback and sends
    # a message whose `value` is its data, replying to the card.
    reply = await chatops.say("retry PLANT001/CIRCUIT01")
    fallback = actions_of(reply)["retry.confirm"]["fallback"]
    assert fallback["type"] == "Action.Submit"
    activity = channel_message("", chatops.connector.url, with_entities=False)
    activity["value"] = fallback["data"]
    activity["replyToId"] = "activity-1"
    before = len(chatops.connector.calls)

    async with chatops.session.post(f"{chatops.url}/api/messages", json=activity) as response:
        assert response.status == 201
    calls = await chatops.connector.wait_for(before + 1)

    assert [r["parameters"] for r in chatops.runs("training-pipeline")] == [
        {"manualCircuits": "PLANT001/CIRCUIT01"}
    ]
    put = calls[-1]
    assert put.method == "PUT" and put.path.endswith("/activities/activity-1")
    assert "Retry queued" in str(put.body)
    # Pressed again, it does not queue a second run.
    async with chatops.session.post(f"{chatops.url}/api/messages", json=activity) as response:
        assert response.status == 201
    await chatops.connector.wait_for(before + 2)
    assert len(chatops.runs("training-pipeline")) == 1


async def test_tampered_card_data_is_refused(chatops: ChatOps) -> None:
    reply = await chatops.say("rollback staging flaky")
    confirm = actions_of(reply)["rollback.confirm"]
    tampered = {**confirm, "data": {**confirm["data"], "environment": "prod"}}
    status, body = await chatops.press(tampered)
    assert status == 200 and "changed" in card_text(body)
    assert chatops.runs("rollback-pipeline") == []
    refused = await chatops.runtime.audit.recent()
    assert refused[0].outcome == "refused"


async def test_malformed_and_unknown_circuits_get_clear_answers(chatops: ChatOps) -> None:
    bad = await chatops.say("retry PLANT001/CIRCUIT01, not-a-circuit")
    assert "not-a-circuit" in bad["text"] and "Nothing was queued" in bad["text"]
    unknown = await chatops.say("retry PLANT009/CIRCUIT09")
    assert "PLANT009/CIRCUIT09" in unknown["text"]
    assert chatops.runs("training-pipeline") == []


async def test_viewer_is_refused_politely_and_audited(chatops: ChatOps) -> None:
    reply = await chatops.say("retry PLANT001/CIRCUIT01", user=VIEWER)
    assert "operator" in reply["text"]
    entry = (await chatops.runtime.audit.recent())[0]
    assert (entry.action, entry.outcome, entry.actor_id) == (
        "command:retry",
        "refused",
        "aad-viewer-1",
    )
    # help shows only what this user may run
    help_card = str(await chatops.say("help", user=VIEWER))
    shown = display_usage
    assert shown("status [filter]") in help_card and shown("retry <circuits>") not in help_card


async def test_rollback_prod_needs_an_approver(chatops: ChatOps) -> None:
    refused = await chatops.say("rollback prod latency doubled")  # an operator only
    assert "approver" in refused["text"]
    reply = await chatops.say("rollback prod latency doubled", user=APPROVER)
    confirm = actions_of(reply)["rollback.confirm"]
    # An operator pressing the approver's confirmation is refused too.
    status, body = await chatops.press(confirm)
    assert status == 200 and "approver" in card_text(body)
    status, body = await chatops.press(confirm, user=APPROVER)
    assert "Rollback of prod queued" in card_text(body)
    runs = chatops.runs("rollback-pipeline")
    assert [r["parameters"]["environment"] for r in runs] == ["prod"]
    assert runs[0]["parameters"]["reason"] == "latency doubled"


async def test_approvals_approve_from_the_card(chatops: ChatOps) -> None:
    reply = await chatops.say("approvals", user=APPROVER)
    approve = actions_of(reply)["approval.approve"]
    status, body = await chatops.press(approve, user=VIEWER)
    assert "approver" in card_text(body)
    status, body = await chatops.press(approve, user=APPROVER)
    assert status == 200 and "Approved" in card_text(body)
    approval = chatops.stack.state()["approvals"][0]
    assert approval["status"] == "approved"
    assert "Approved in Teams by Grace Hopper" in approval["comment"]


async def test_watch_and_unwatch_a_job_by_name(chatops: ChatOps) -> None:
    job = chatops.stack.state()["jobs"][0]
    name = job["name"]
    refused = await chatops.say(f"watch {name}", user=VIEWER)
    assert "operator" in refused["text"]

    reply = await chatops.say(f"watch {name}")
    assert reply["text"].startswith(f"Watching {name} ({job['circuit']}, ")
    assert "post its changes here" in reply["text"]
    status = await chatops.say("status")
    assert name in str(status) or job["circuit"] in str(status)

    stopped = await chatops.say(f"unwatch {name}")
    assert stopped["text"] == f"Stopped watching {name}."
    again = await chatops.say(f"unwatch {name}")
    assert "not watching" in again["text"] and name in again["text"]


async def test_watching_an_unknown_job_names_it(chatops: ChatOps) -> None:
    reply = await chatops.say("watch no-such-job-42")
    assert "no-such-job-42" in reply["text"] and "can't find" in reply["text"]
    usage = await chatops.say("watch")
    assert "Which job?" in usage["text"]


async def test_operators_given_as_upns_are_recognised(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_OPERATORS": "Ada.Lovelace@Contoso.com"})
    connector.members[USER["id"]] = {
        "name": USER["name"],
        "aadObjectId": USER["aadObjectId"],
        "userPrincipalName": "ada.lovelace@contoso.com",
    }
    ops = ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector)
    reply = await ops.say("config")
    assert "Effective settings" in str(reply)  # an operator command
    refused = await ops.say("config", user=VIEWER)  # unknown member: no UPN, refused
    assert "operator" in refused["text"]


async def test_a_slow_azure_devops_gets_a_working_card_then_the_outcome_for_everyone(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot(
        {
            "MLBOT_OPERATORS": OPERATOR,
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
            "MLBOT_ACTION_ANSWER_SECONDS": "0.3",
        }
    )
    bot.stack.tick(bot.clock.advance(60))
    assert bot.runtime.engine is not None
    await bot.runtime.engine.tick()
    ops = ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector)
    ops.baseline = len(bot.stack.state()["pipeline_runs"])
    reply = await ops.say("retry PLANT001/CIRCUIT01")
    bot.stack.devops.inject_fault("slow", path_contains="/runs", method="POST", delay_s=1.5)

    status, body = await ops.press(actions_of(reply)["retry.confirm"])
    assert status == 200
    assert "Working on it" in card_text(body)
    assert "Retry queued" not in card_text(body)

    # A second press while it works acts no second time.
    _, again = await ops.press(actions_of(reply)["retry.confirm"])
    assert "already being handled" in card_text(again)

    before = len(connector.calls)
    await connector.wait_for(before + 1, limit_s=10)  # the card, updated for everyone
    put = connector.calls[-1]
    assert put.method == "PUT" and put.path.endswith("/activities/activity-1")
    assert "Retry queued" in str(put.body)
    assert len(ops.runs("training-pipeline")) == 1
    # Once done, pressing again shows the outcome.
    _, later = await ops.press(actions_of(reply)["retry.confirm"])
    assert "Retry queued" in card_text(later)
