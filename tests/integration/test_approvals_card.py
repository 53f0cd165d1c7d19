"""The approvals card over real HTTP against the sandbox's Azure DevOps (manual clock).

Deciding one approval on a card that lists several redraws that row only: the others keep
working buttons for everyone. The stage each approval waits at is shown, and a rejected
deployment is announced as rejected (and by whom), not as a failure to read logs about.
The sandbox sends the "approval pending" service hook, so the proactive card with its
Approve and Reject buttons reaches the channel.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.scenario import ApprovalSpec
from tests.conftest import SandboxBot, StartSandboxBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team, card_action, channel_message

HOOK_SECRET = "hook-s3cret-for-approvals"
APPROVER = {"id": "29:approver", "name": "Gene Approver", "aadObjectId": "aad-approver-1"}


@dataclass
class Channel:
    bot: SandboxBot
    connector: ConnectorStandIn

    async def say(self, text: str) -> dict[str, Any]:
        activity = channel_message(f"<at>mlbot</at> {text}", self.connector.url)
        activity["from"] = APPROVER
        before = len(self.connector.calls)
        async with self.bot.session.post(f"{self.bot.url}/api/messages", json=activity) as answer:
            assert answer.status == 201
        return (await self.connector.wait_for(before + 1))[before].body

    async def press(self, action: dict[str, Any]) -> dict[str, Any]:
        activity = card_action(action["verb"], action["data"], self.connector.url, user=APPROVER)
        async with self.bot.session.post(f"{self.bot.url}/api/messages", json=activity) as answer:
            assert answer.status == 200
            body: dict[str, Any] = await answer.json()
        card: dict[str, Any] = body["value"]
        return card

    async def settle(self, seconds: float = 5) -> None:
        """Let the sandbox run its pipelines and deliver its hooks and the bot its cards."""
        now = self.bot.clock.advance(seconds)
        self.bot.stack.tick(now)
        await self.bot.stack.service_hooks.drain()
        await self.bot.runtime.dispatcher.dispatch_pending()

    def status_of(self, approval_id: str) -> str:
        approvals = self.bot.stack.state()["approvals"]
        return str(next(a["status"] for a in approvals if a["id"] == approval_id))


@pytest.fixture
async def channel(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> AsyncIterator[Channel]:
    bot = await start_sandbox_bot(
        {
            "MLBOT_DEVOPS_HOOK_SECRET": HOOK_SECRET,
            "MLBOT_APPROVERS": APPROVER["aadObjectId"],
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789",
        }
    )
    bot.stack.service_hooks.subscribe(f"{bot.url}/api/hooks/devops?key={HOOK_SECRET}")
    async with bot.session.post(
        f"{bot.url}/api/messages", json=bot_added_to_team(connector.url)
    ) as response:
        assert response.status == 201
    await connector.wait_for(1)  # the welcome card
    yield Channel(bot, connector)


def buttons(card: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every Action.Execute of a card by (approval id, verb)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if node.get("type") == "Action.Execute" and isinstance(data, dict):
                found[(str(data.get("approval_id")), str(node["verb"]))] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


def rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in card["body"] if item["type"] == "Container"]


def facts(row: dict[str, Any]) -> dict[str, str]:
    [fact_set] = [item for item in row["items"] if item["type"] == "FactSet"]
    return {fact["title"]: fact["value"] for fact in fact_set["facts"]}


def approval(bot: SandboxBot, environment: str) -> str:
    spec = ApprovalSpec(
        pipeline="deployment-pipeline",
        stage=f"Deploy_{environment.title()}",
        environment=environment,
    )
    return str(bot.stack.add_approval(spec)["id"])


async def test_rejecting_one_approval_keeps_the_others_actionable(channel: Channel) -> None:
    await channel.settle()
    staging, dev = approval(channel.bot, "staging"), approval(channel.bot, "dev")
    reply = await channel.say("approvals")
    [listed] = [a["content"] for a in reply["attachments"]]
    shown = {facts(row)["Environment"]: facts(row) for row in rows(listed)}
    assert {"staging", "dev"} <= set(shown)
    assert shown["staging"]["Stage"] == "Deploy\\_Staging"  # known from the run's timeline
    assert shown["dev"]["Stage"] == "Deploy\\_Dev"

    answer = await channel.press(buttons(listed)[(staging, "approval.reject")])

    assert channel.status_of(staging) == "rejected"
    assert channel.status_of(dev) == "pending"
    answered = {facts(row)["Environment"]: row for row in rows(answer)}
    # The rejected row says who rejected it and has no buttons left ...
    rejected = json.dumps(answered["staging"], ensure_ascii=False)
    assert "Rejected** by Gene Approver" in rejected
    assert (staging, "approval.reject") not in buttons(answer)
    assert facts(answered["staging"])["Stage"] == "Deploy\\_Staging"
    # ... the others are still there, with buttons that work.
    assert "approval.approve" in json.dumps(answered["dev"])
    approved = await channel.press(buttons(answer)[(dev, "approval.approve")])
    assert channel.status_of(dev) == "approved"
    assert "Approved** by Gene Approver" in json.dumps(approved, ensure_ascii=False)
    # Everyone sees the same card: the message was updated in place.
    updates = [c for c in channel.connector.calls if c.method == "PUT"]
    assert updates, "the card message was not updated for everyone"


async def test_a_rejected_deployment_is_not_announced_as_a_failure(channel: Channel) -> None:
    staging = approval(channel.bot, "staging")
    await channel.settle()
    reply = await channel.say("approvals")
    await channel.press(buttons(reply)[(staging, "approval.reject")])

    await channel.settle(10)

    texts = [json.dumps(card, ensure_ascii=False) for card in channel.connector.cards()]
    announced = [t for t in texts if "Deployment to staging" in t]
    assert announced, "the rejected deployment was not announced"
    assert all("the run's logs" not in t.lower() for t in announced)
    assert all("failed" not in t for t in announced)
    assert any(
        "Deployment to staging rejected" in t and "Gene Approver (in Teams)" in t for t in announced
    )


async def test_the_sandbox_sends_the_approval_pending_hook(channel: Channel) -> None:
    staging = approval(channel.bot, "staging")
    await channel.settle()

    hooks = channel.bot.stack.state()["service_hooks"]
    pending = [h for h in hooks if h["event_type"].endswith("approval-pending")]
    assert any(h["status"] == 200 for h in pending), hooks
    required = [
        card
        for card in channel.connector.cards()
        if "Approval required" in json.dumps(card, ensure_ascii=False)
        and (staging, "approval.approve") in buttons(card)
    ]
    assert required, "no proactive Approval required card with buttons"
    shown = json.dumps(required[0], ensure_ascii=False)
    assert '"title": "Stage", "value": "Deploy\\\\_Staging"' in shown  # from the run's timeline
