"""Forged hooks must not act: a secret per hook, a replay window, claims checked with
Azure DevOps, and alerts that only make the health watch look again.

The bot runs over real HTTP with the sandbox emulators (the real azure-devops SDK against
the emulated Azure DevOps) on a manual clock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import SandboxOptions, build_runtime, sandbox_settings, start_sandbox
from config.settings import settings_from_mapping
from sandbox.clock import ManualClock
from tests.conftest import SANDBOX_START, SandboxBot, StartSandboxBot, serve_app
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team, card_action
from tests.unit.test_devops_hooks import approval_event, pipeline_ref, stage_event

ROLLBACK_SCENARIO = Path(__file__).parents[2] / "sandbox" / "scenarios" / "rollback.yaml"
SECRETS = {
    "MLBOT_DEVOPS_HOOK_SECRET": "devops-hook-s3cret",
    "MLBOT_EVENTGRID_HOOK_SECRET": "eventgrid-hook-s3cret",
    "MLBOT_ALERTS_HOOK_SECRET": "alerts-hook-s3cret",
}
HOOKS = {
    "MLBOT_DEVOPS_HOOK_SECRET": "devops",
    "MLBOT_EVENTGRID_HOOK_SECRET": "eventgrid",
    "MLBOT_ALERTS_HOOK_SECRET": "alerts",
}


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _alert(bot: SandboxBot, fired: dt.datetime) -> dict[str, Any]:
    target = bot.stack.endpoints.rollback_targets[0].split("=", 1)[1].split("@", 1)[0]
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/x1",
                "alertRule": "plant-models-prod 5xx",
                "severity": "Sev1",
                "signalType": "Metric",
                "monitorCondition": "Fired",
                "alertTargetIDs": [target.lower()],
                "firedDateTime": _stamp(fired),
            },
            "alertContext": {},
        },
    }


def _eventgrid(at: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": "e1",
            "topic": "/subscriptions/s/resourceGroups/rg/providers/"
            "Microsoft.MachineLearningServices/workspaces/ws",
            "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
            "eventTime": _stamp(at),
            "data": {"runId": "job-1", "runStatus": "Failed"},
        }
    ]


def _deploy_prod(bot: SandboxBot, run_id: int, pipeline_id: int) -> dict[str, Any]:
    body = stage_event(name="Deploy_Prod", result="succeeded")
    body["resource"]["run"]["id"] = run_id
    # The pipeline's id as Azure DevOps writes it: in the reference's `id` and its `url`.
    body["resource"]["run"]["pipeline"] = pipeline_ref(pipeline_id=pipeline_id)
    body["resource"]["pipeline"] = pipeline_ref(pipeline_id=pipeline_id)
    body["createdDate"] = _stamp(bot.clock.now())
    return body


async def _post(bot: SandboxBot, hook: str, body: Any, key: str | None) -> tuple[int, Any]:
    params = {"key": key} if key is not None else {}
    async with bot.session.post(f"{bot.url}/api/hooks/{hook}", params=params, json=body) as r:
        return r.status, await r.json(content_type=None)


def _body_for(bot: SandboxBot, hook: str) -> Any:
    now = bot.clock.now()
    if hook == "alerts":
        return _alert(bot, now)
    if hook == "eventgrid":
        return _eventgrid(now)
    return {"eventType": "git.push", "resource": {}, "createdDate": _stamp(now)}


@pytest.fixture
async def bot(start_sandbox_bot: StartSandboxBot) -> SandboxBot:
    return await start_sandbox_bot(dict(SECRETS), scenario=ROLLBACK_SCENARIO)


# --- a secret per hook -----------------------------------------------------------------


async def test_each_hook_takes_its_own_secret_and_no_other(bot: SandboxBot) -> None:
    for setting, hook in HOOKS.items():
        status, _ = await _post(bot, hook, _body_for(bot, hook), SECRETS[setting])
        assert status == 200, hook
        for other, secret in SECRETS.items():
            if other != setting:
                status, _ = await _post(bot, hook, _body_for(bot, hook), secret)
                assert status == 401, f"{hook} accepted the secret of {HOOKS[other]}"


async def test_the_shared_secret_still_works_but_start_up_says_it_is_shared(
    start_sandbox_bot: StartSandboxBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bot = await start_sandbox_bot(
        {"MLBOT_HOOK_SECRET": "shared-hook-s3cret", "MLBOT_ALERTS_HOOK_SECRET": "own-s3cret"}
    )
    status, _ = await _post(bot, "eventgrid", _eventgrid(bot.clock.now()), "shared-hook-s3cret")
    assert status == 200
    status, _ = await _post(bot, "alerts", _alert(bot, bot.clock.now()), "shared-hook-s3cret")
    assert status == 401  # it has a secret of its own
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    shared = [w for w in warnings if "shared MLBOT_HOOK_SECRET" in w]
    assert any("MLBOT_DEVOPS_HOOK_SECRET" in w for w in shared)
    assert any("MLBOT_EVENTGRID_HOOK_SECRET" in w for w in shared)
    assert not any("MLBOT_ALERTS_HOOK_SECRET" in w for w in shared)
    assert not any("shared-hook-s3cret" in w for w in warnings)


# --- the replay window -----------------------------------------------------------------


@pytest.mark.parametrize("age", [dt.timedelta(minutes=16), dt.timedelta(minutes=-10)])
async def test_stale_or_future_notifications_are_refused(
    bot: SandboxBot, age: dt.timedelta
) -> None:
    at = bot.clock.now() - age
    status, body = await _post(bot, "alerts", _alert(bot, at), SECRETS["MLBOT_ALERTS_HOOK_SECRET"])
    assert status == 400 and "replay" in body["error"]
    status, body = await _post(
        bot, "eventgrid", _eventgrid(at), SECRETS["MLBOT_EVENTGRID_HOOK_SECRET"]
    )
    assert status == 400 and "replay" in body["error"]
    pipeline = bot.stack.devops.pipeline_named("deployment-pipeline")
    run = bot.stack.devops.queue_run("deployment-pipeline")
    deploy = _deploy_prod(bot, run.id, pipeline.id) | {"createdDate": _stamp(at)}
    status, body = await _post(bot, "devops", deploy, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 400 and "replay" in body["error"]
    assert await bot.runtime.monitoring.events_of_kind("deployment_completed") == []


@pytest.mark.parametrize("hook", ["devops", "eventgrid", "alerts"])
async def test_deeply_nested_json_on_a_hook_is_400(bot: SandboxBot, hook: str) -> None:
    depth = 30_000  # far deeper than Python's recursion limit
    secret = next(name for name, target in HOOKS.items() if target == hook)
    async with bot.session.post(
        f"{bot.url}/api/hooks/{hook}",
        params={"key": SECRETS[secret]},
        data=b"[" * depth + b"]" * depth,
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400, await response.text()
        body = await response.json(content_type=None)
    assert "error" in body and "Traceback" not in json.dumps(body)


# --- claims checked with Azure DevOps ---------------------------------------------------


async def test_a_deployment_azure_devops_does_not_know_starts_no_watch(bot: SandboxBot) -> None:
    watcher = bot.runtime.watcher
    assert watcher is not None
    pipeline = bot.stack.devops.pipeline_named("deployment-pipeline")
    forged = _deploy_prod(bot, 987654, pipeline.id)
    status, body = await _post(bot, "devops", forged, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 422 and "not confirmed by Azure DevOps" in body["error"]
    assert await watcher.next_due_at() is None
    assert await bot.runtime.monitoring.events_of_kind("deployment_completed") == []

    failed = bot.stack.devops.fail_run(bot.stack.devops.queue_run("deployment-pipeline").id)
    status, _ = await _post(
        bot,
        "devops",
        _deploy_prod(bot, failed.id, pipeline.id),
        SECRETS["MLBOT_DEVOPS_HOOK_SECRET"],
    )
    assert status == 422
    assert await watcher.next_due_at() is None

    # A real run of the pipeline whose Deploy_Prod stage never ran (a dev-only run).
    real = bot.stack.devops.queue_run("deployment-pipeline")
    bot.stack.devops.finish_stage(real.id, "Deploy_Dev")
    deploy = _deploy_prod(bot, real.id, pipeline.id)
    status, body = await _post(bot, "devops", deploy, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 422 and "Deploy_Prod" in body["error"]
    assert await watcher.next_due_at() is None

    bot.stack.devops.finish_stage(real.id, "Deploy_Prod")
    status, body = await _post(bot, "devops", deploy, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert (status, body["recorded"]) == (200, "deployment_completed")
    assert await watcher.next_due_at() is not None


async def test_when_azure_devops_cannot_answer_the_hook_asks_for_a_redelivery(
    bot: SandboxBot,
) -> None:
    pipeline = bot.stack.devops.pipeline_named("deployment-pipeline")
    run = bot.stack.devops.queue_run("deployment-pipeline")
    bot.stack.devops.pat = "rotated-elsewhere"  # every call is now refused
    status, _ = await _post(
        bot, "devops", _deploy_prod(bot, run.id, pipeline.id), SECRETS["MLBOT_DEVOPS_HOOK_SECRET"]
    )
    assert status == 503
    assert bot.runtime.watcher is not None and await bot.runtime.watcher.next_due_at() is None


def _approval_pending(bot: SandboxBot, approval_id: str, environment: str) -> dict[str, Any]:
    body = approval_event()
    body["resource"]["approval"]["id"] = approval_id
    body["resource"]["resource"] = {"type": "environment", "name": environment}
    body["createdDate"] = _stamp(bot.clock.now())
    return body


async def test_an_approval_that_is_not_pending_gets_no_card(bot: SandboxBot) -> None:
    body = _approval_pending(bot, "8d3c3f0a-0000-4000-8000-00000000f0e1", "dev")
    status, body = await _post(bot, "devops", body, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 422 and "not pending" in body["error"]
    assert await bot.runtime.monitoring.events_of_kind("approval_required") == []


async def test_an_approval_labelled_dev_is_signed_for_production(bot: SandboxBot) -> None:
    run = bot.stack.devops.queue_run("deployment-pipeline")
    approval = bot.stack.devops.add_approval(run.id)
    body = _approval_pending(bot, approval.id, "dev")
    status, answer = await _post(bot, "devops", body, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert (status, answer["recorded"]) == (200, "approval_required")
    [event] = await bot.runtime.monitoring.events_of_kind("approval_required")
    # The approvals API cannot say which environment it guards: the strictest decides.
    assert event.payload["environment"] == "prod"
    assert event.payload["claimed_environment"] == "dev"
    assert event.payload["run_id"] == run.id


# --- alerts only make the watch look -----------------------------------------------------


async def test_forged_alerts_on_healthy_traffic_queue_no_rollback(bot: SandboxBot) -> None:
    watcher = bot.runtime.watcher
    assert watcher is not None
    pipeline = bot.stack.devops.pipeline_named("deployment-pipeline")
    run = bot.stack.devops.finish_stage(
        bot.stack.devops.queue_run("deployment-pipeline").id, "Deploy_Prod"
    )
    deploy = _deploy_prod(bot, run.id, pipeline.id)
    status, _ = await _post(bot, "devops", deploy, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 200 and await watcher.next_due_at() is not None
    for number in range(3):
        bot.clock.advance(60)
        alert = _alert(bot, bot.clock.now())
        alert["data"]["essentials"]["alertId"] += f"-{number}"
        status, body = await _post(bot, "alerts", alert, SECRETS["MLBOT_ALERTS_HOOK_SECRET"])
        assert (status, body) == (200, {"matched": 1})
    assert await bot.runtime.monitoring.events_of_kind("rollback_pending") == []
    assert bot.stack.devops.runs_of("rollback-pipeline") == []


DEV_APPROVER = {"id": "29:dev", "name": "Dev Approver", "aadObjectId": "aad-dev-approver"}
PROD_APPROVER = {"id": "29:prod", "name": "Prod Approver", "aadObjectId": "aad-prod-approver"}


@pytest.fixture
async def bot_with_approvers(tmp_path: Path) -> AsyncIterator[SandboxBot]:
    """The sandbox bot with per-environment approvers (read from its environment)."""
    environ = {
        "MLBOT_APPROVERS_DEV": DEV_APPROVER["aadObjectId"],
        "MLBOT_APPROVERS_PROD": PROD_APPROVER["aadObjectId"],
    }
    clock = ManualClock(SANDBOX_START)
    configured = settings_from_mapping(
        {
            **SECRETS,
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/approvers.db",
            "MLBOT_SANDBOX": "true",
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789abcdef",
        }
    )
    options = SandboxOptions(scenario=ROLLBACK_SCENARIO, clock=clock, tick_interval_s=None)
    stack, clients = await start_sandbox(configured, options)
    try:
        runtime = await build_runtime(
            sandbox_settings(configured, stack),
            azure=clients,
            clock=clock.now,
            background=False,
            environ=environ,
        )
        runner, url = await serve_app(runtime.web_app)
        try:
            async with aiohttp.ClientSession() as session:
                yield SandboxBot(runtime, stack, clock, url, session)
        finally:
            await runner.cleanup()
    finally:
        await stack.stop()


async def test_a_dev_approver_cannot_approve_an_approval_labelled_dev(
    bot_with_approvers: SandboxBot, connector: ConnectorStandIn
) -> None:
    bot = bot_with_approvers
    async with bot.session.post(
        f"{bot.url}/api/messages", json=bot_added_to_team(connector.url)
    ) as response:
        assert response.status == 201
    run = bot.stack.devops.queue_run("deployment-pipeline")
    approval = bot.stack.devops.add_approval(run.id)
    body = _approval_pending(bot, approval.id, "dev")
    status, _ = await _post(bot, "devops", body, SECRETS["MLBOT_DEVOPS_HOOK_SECRET"])
    assert status == 200
    await bot.runtime.dispatcher.dispatch_pending()
    approve = next(
        action
        for card in connector.cards()
        for action in card.get("actions", [])
        if action.get("verb") == "approval.approve"
    )

    async def press(user: dict[str, Any]) -> str:
        activity = card_action(approve["verb"], approve["data"], connector.url, user=user)
        async with bot.session.post(f"{bot.url}/api/messages", json=activity) as response:
            assert response.status == 200
            return json.dumps(await response.json())

    refused = await press(DEV_APPROVER)
    assert "needs an approver for prod" in refused
    assert bot.stack.devops.approvals[approval.id].status == "pending"
    await press(PROD_APPROVER)
    assert bot.stack.devops.approvals[approval.id].status == "approved"
