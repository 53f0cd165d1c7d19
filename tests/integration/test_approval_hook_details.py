"""Approval hooks in Microsoft's published shape get their names and environment from
Azure DevOps (the sandbox's emulator) before they are recorded.

The bodies are MicrosoftDocs/azure-devops-docs `docs/service-hooks/events.md` at
09dc63ed0e56c9e324f697fd41998b4f2f6e9675 (tests/contract/published/examples), with the
approval id replaced by one the emulator knows: approvers' `displayName` is null, there
is no `actualApprover`, and `pipeline`, `run` and `stage` are null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.scenario import ApprovalSpec
from tests.conftest import SandboxBot, StartSandboxBot

EXAMPLES = Path(__file__).parents[1] / "contract" / "published" / "examples"
SECRET = "hook-secret-for-tests"


def _published(name: str, approval_id: str) -> dict[str, Any]:
    body = json.loads((EXAMPLES / name).read_text())
    body["resource"]["approval"]["id"] = approval_id
    return body


async def _post(bot: SandboxBot, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{bot.url}/api/hooks/devops"
    # The published samples are years old: sent now, as Azure DevOps would.
    body = {**body, "createdDate": bot.clock.now().isoformat()}
    async with bot.session.post(url, params={"key": SECRET}, json=body) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def _payload(bot: SandboxBot, kind: str) -> dict[str, Any]:
    events = [e for e in await bot.runtime.monitoring.events(limit=500) if e.kind == kind]
    assert len(events) == 1
    return dict(events[0].payload)


async def test_a_published_pending_hook_names_the_approvers_and_the_real_environment(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": SECRET})
    approval = bot.stack.add_approval(
        ApprovalSpec(
            pipeline="deployment-pipeline",
            stage="Deploy_Prod",
            environment="prod",
            approvers=("Prod Approvers",),
        )
    )

    answer = await _post(bot, _published("devops_hook_approval_pending.json", approval["id"]))

    assert answer["recorded"] == "approval_required"
    payload = await _payload(bot, "approval_required")
    assert payload["approvers"] == ["Prod Approvers"]
    # The message says "env1"; the approval's check is on prod.
    assert payload["environment"] == "prod"
    assert payload["stage"] == "Deploy_Prod" and payload["pipeline"] == "deployment-pipeline"


async def test_a_published_completed_hook_names_who_decided(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": SECRET})
    run = bot.stack.devops.queue_run("deployment-pipeline", {"environment": "prod"})
    approval = bot.stack.devops.add_approval(run.id, environment="prod")
    approval.status = "approved"
    approval.decided_by = "Ana Lima"
    approval.comment = "Looks good"

    await _post(bot, _published("devops_hook_approval_completed.json", approval.id))

    payload = await _payload(bot, "approval_decided")
    assert payload["decided_by"] == "Ana Lima"
    # The hook's own comment is kept.
    assert payload["comment"] == "Sample comment"
    assert payload["environment"] == "prod" and payload["run_id"] == run.id


async def test_an_approval_azure_devops_does_not_know_is_refused_not_recorded(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    # A pending approval is confirmed with Azure DevOps before buttons are signed for it
    # (tests/security/test_hooks.py): one it does not know gets no card.
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": SECRET})
    body = _published("devops_hook_approval_pending.json", "0f027b05-0942-4a35-9218-26fa07d8760a")
    body["createdDate"] = bot.clock.now().isoformat()
    url = f"{bot.url}/api/hooks/devops"
    async with bot.session.post(url, params={"key": SECRET}, json=body) as response:
        assert response.status == 422
        assert "not pending" in (await response.json())["error"]
    events = await bot.runtime.monitoring.events(limit=500)
    assert not [e for e in events if e.kind == "approval_required"]


# --- "Resource details to send: Minimal / None" ----------------------------------------


async def test_a_minimal_run_event_is_completed_from_azure_devops(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": SECRET})
    run = bot.stack.devops.queue_run("deployment-pipeline", {"environment": "prod"})
    bot.stack.devops.complete_run(run.id, "succeeded")
    minimal = {
        "id": "4d3c2b1a-0000-4000-8000-000000000001",
        "eventType": "ms.vss-pipelines.run-state-changed-event",
        "message": {"text": f"Run {run.name} succeeded."},
        "resource": {"run": {"id": run.id}},
    }

    answer = await _post(bot, minimal)

    assert answer["recorded"] == "deployment_completed"
    payload = await _payload(bot, "deployment_completed")
    assert payload["pipeline"] == "deployment-pipeline" and payload["result"] == "succeeded"
    assert payload["run_id"] == run.id


async def test_an_approval_event_without_resource_finds_its_approval_by_run(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot({"MLBOT_HOOK_SECRET": SECRET})
    approval = bot.stack.add_approval(
        ApprovalSpec(pipeline="deployment-pipeline", stage="Deploy_Prod", environment="prod")
    )
    link = f"https://dev.azure.com/contoso/mlops/_build/results?buildId={approval['run_id']}"
    bare = {
        "id": "4d3c2b1a-0000-4000-8000-000000000002",
        "eventType": "ms.vss-pipelinechecks-events.approval-pending",
        "message": {
            "text": "Approval pending for deployment of pipeline run1 to environment prod.",
            "markdown": f"Approval pending for deployment of pipeline [run1]({link})",
        },
    }

    answer = await _post(bot, bare)

    assert answer["recorded"] == "approval_required"
    payload = await _payload(bot, "approval_required")
    assert payload["approval_id"] == approval["id"]
    assert payload["environment"] == "prod" and payload["approvers"] == ["Release Approvers"]
