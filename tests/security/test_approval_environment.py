"""Who may decide an approval depends on the environment Azure DevOps says it guards.

Neither the instructions, the run name nor what a card was told decide it: when a button
is pressed, mlbot reads the approval's run timeline and check suite from Azure DevOps
(the sandbox's emulator), and an approval whose environment cannot be found needs the
approvers of production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import SandboxOptions, build_runtime, sandbox_settings, start_sandbox
from bot.card_signing import CardSigner
from config.settings import settings_from_mapping
from sandbox.clock import ManualClock
from sandbox.scenario import ApprovalSpec
from sandbox.stack import SandboxStack
from tests.conftest import SANDBOX_START, serve_app
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import card_action, channel_message

SIGNING_KEY = "card-signing-key-for-tests-0123456789abcdef"
GENERAL = {"id": "29:general", "name": "Gene Approver", "aadObjectId": "aad-general-1"}
PROD = {"id": "29:prod", "name": "Pat Prod", "aadObjectId": "aad-prod-1"}


@dataclass
class Bot:
    url: str
    stack: SandboxStack
    clock: ManualClock
    session: aiohttp.ClientSession
    connector: ConnectorStandIn

    async def say(self, text: str, user: dict[str, Any]) -> dict[str, Any]:
        activity = channel_message(f"<at>mlbot</at> {text}", self.connector.url)
        activity["from"] = user
        before = len(self.connector.calls)
        async with self.session.post(f"{self.url}/api/messages", json=activity) as response:
            assert response.status == 201
        return (await self.connector.wait_for(before + 1))[before].body

    async def press(self, action: dict[str, Any], user: dict[str, Any]) -> str:
        activity = card_action(action["verb"], action["data"], self.connector.url, user=user)
        async with self.session.post(f"{self.url}/api/messages", json=activity) as response:
            assert response.status == 200
            return str(await response.json())

    def status_of(self, approval_id: str) -> str:
        return next(a["status"] for a in self.stack.state()["approvals"] if a["id"] == approval_id)


def buttons_for(body: dict[str, Any], approval_id: str) -> dict[str, dict[str, Any]]:
    """The Action.Execute buttons of one approval on a card, by verb."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            pressed = data.get("approval_id") if isinstance(data, dict) else None
            if node.get("type") == "Action.Execute" and pressed == approval_id:
                found[node["verb"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body.get("attachments", []))
    return found


@pytest.fixture
async def bot(tmp_path: Path, connector: ConnectorStandIn) -> AsyncIterator[Bot]:
    clock = ManualClock(SANDBOX_START)
    configured = settings_from_mapping(
        {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/approvals.db",
            "MLBOT_SANDBOX": "true",
            "MLBOT_APPROVERS": GENERAL["aadObjectId"],
            "MLBOT_CARD_SIGNING_KEY": SIGNING_KEY,
        }
    )
    stack, clients = await start_sandbox(
        configured, SandboxOptions(clock=clock, tick_interval_s=None)
    )
    runtime = await build_runtime(
        sandbox_settings(configured, stack),
        azure=clients,
        clock=clock.now,
        background=False,
        # Per-environment approvers are read from the environment given to the app.
        environ={"MLBOT_APPROVERS_PROD": PROD["aadObjectId"]},
    )
    runner, url = await serve_app(runtime.web_app)
    session = aiohttp.ClientSession()
    try:
        yield Bot(url, stack, clock, session, connector)
    finally:
        await session.close()
        await runner.cleanup()
        await stack.stop()


async def test_a_prod_approval_mentioning_devops_needs_a_prod_approver(bot: Bot) -> None:
    approval = bot.stack.add_approval(
        ApprovalSpec(
            pipeline="deployment-pipeline",
            stage="Deploy_Prod",
            environment="prod",
            instructions="Check the devops dashboard, then approve the latest contest models",
        )
    )
    reply = await bot.say("approvals", user=GENERAL)
    approve = buttons_for(reply, approval["id"])["approval.approve"]

    refused = await bot.press(approve, user=GENERAL)
    assert "prod" in refused and "approver" in refused
    assert bot.status_of(approval["id"]) == "pending"

    decided = await bot.press(approve, user=PROD)
    assert "Approved" in decided and "prod" in decided
    assert bot.status_of(approval["id"]) == "approved"


async def test_a_card_that_names_the_wrong_environment_does_not_decide(bot: Bot) -> None:
    # A hook payload (or an old card) said "dev": the signature is valid, the claim is not.
    approval = bot.stack.add_approval(
        ApprovalSpec(pipeline="deployment-pipeline", stage="Deploy_Prod", environment="prod")
    )
    data = CardSigner(SIGNING_KEY.encode(), bot.clock.now).sign(
        "approval.reject", {"approval_id": approval["id"], "environment": "dev"}
    )
    refused = await bot.press({"verb": "approval.reject", "data": data}, user=GENERAL)
    assert "approver" in refused
    assert bot.status_of(approval["id"]) == "pending"


async def test_an_approval_whose_environment_is_unknown_needs_production_approvers(
    bot: Bot,
) -> None:
    run = bot.stack.devops.queue_run("deployment-pipeline", {"environment": "dev"})
    approval = bot.stack.devops.add_approval(run.id, instructions="dev only", environment=None)
    reply = await bot.say("approvals", user=GENERAL)
    approve = buttons_for(reply, approval.id)["approval.approve"]

    refused = await bot.press(approve, user=GENERAL)
    assert "could not find out" in refused and "production" in refused
    assert bot.status_of(approval.id) == "pending"

    decided = await bot.press(approve, user=PROD)
    assert "Approved" in decided
    assert bot.status_of(approval.id) == "approved"
