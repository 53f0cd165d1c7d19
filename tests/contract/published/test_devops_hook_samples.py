"""Azure DevOps service hooks, as the published samples send them, through mlbot's parser
and its endpoint.

Source: MicrosoftDocs/azure-devops-docs `docs/service-hooks/events.md` at
09dc63ed0e56c9e324f697fd41998b4f2f6e9675, each sample stored verbatim:
- "Run state changed" (`ms.vss-pipelines.run-state-changed-event`)
  -> examples/devops_hook_run_state_changed.json
- "Run stage state changed" (`ms.vss-pipelines.stage-state-changed-event`)
  -> examples/devops_hook_stage_state_changed.json
- "Run stage waiting for approval" (`ms.vss-pipelinechecks-events.approval-pending`)
  -> examples/devops_hook_approval_pending.json
- "Run stage approval completed" (`ms.vss-pipelinechecks-events.approval-completed`)
  -> examples/devops_hook_approval_completed.json
- "Build completed" (`build.complete`) -> examples/devops_hook_build_complete.json
- "Run job state changed" (`ms.vss-pipelines.job-state-changed-event`, which mlbot does
  not handle) -> examples/devops_hook_job_state_changed.json

In the approval samples `pipeline`, `stage`, `run` and `stageName` are null and the
approvers' `displayName` is null: what mlbot knows comes from the approval and the
message. The run-state sample gives its pipeline `"id": 11` (its run's id) while the
pipeline's url and links name pipeline 1; the build sample's message links build 3 while
its resource is build 2. The samples are posted as published; the endpoint's clock is
set just after each sample's `createdDate`, so none is refused as a replay.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.devops_hooks import (
    DevOpsEventKind,
    DevOpsHook,
    event_key,
    notification_time,
    parse_devops_hook,
)
from service.hook_auth import HookGuard
from store.monitoring import NewEvent

EXAMPLES = Path(__file__).parent / "examples"


def _sample(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def test_the_published_approval_pending_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_approval_pending.json"))

    assert event is not None and event.kind is DevOpsEventKind.APPROVAL_REQUIRED
    assert event.approval_id == "0f027b05-0942-4a35-9218-26fa07d8760a"
    assert event.approval_status == "pending"
    assert event.instructions == "Instructions" and event.min_approvers == 2
    # Run and environment come from the message: the resource leaves them null.
    assert event.run_id == 2
    assert event.environment == "env1"
    assert event.web_url == (
        "https://dev.azure.com/fabfiber/Fabrikam-Fiber-Git/_build/results?buildId=2&view=results"
    )
    # Approvers without display names are not shown as empty names.
    assert event.approvers == ()
    assert event_key(event) == "devops/approval/0f027b05-0942-4a35-9218-26fa07d8760a/pending"


def test_the_published_approval_completed_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_approval_completed.json"))

    assert event is not None and event.kind is DevOpsEventKind.APPROVAL_DECIDED
    assert event.approval_status == "approved"
    assert event.comment == "Sample comment"
    assert event.environment == "env1" and event.run_id == 2
    # The sample names no `actualApprover`: who decided is unknown, not invented.
    assert event.decided_by is None
    assert event_key(event) == "devops/approval/0f027b05-0942-4a35-9218-26fa07d8760a/approved"


def test_the_published_run_state_changed_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_run_state_changed.json"))

    assert event is not None and event.kind is DevOpsEventKind.PIPELINE_RUN_COMPLETED
    assert (event.run_id, event.run_name, event.pipeline) == (11, "11", "TEST-CI")
    # The pipeline's own url names pipeline 1; the sample's "id": 11 is its run's id.
    assert event.pipeline_id == 1
    assert (event.state, event.result) == ("completed", "succeeded")
    assert event.finished_at == "2019-12-13T04:46:13.613Z"
    assert event.web_url == (
        "https://codedev.ms/org/863d0a5b-3c91-4bf3-8ad7-7f33736b7f4c/_build/results?buildId=11"
    )
    assert not event.partial and not event.rollback
    # A run of a pipeline that deploys nothing is not announced.
    assert not event.notifies
    assert event_key(event) == "devops/run/11/completed/succeeded/20191213T044613"


def test_the_published_stage_state_changed_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_stage_state_changed.json"))

    assert event is not None and event.kind is DevOpsEventKind.STAGE_STATE_CHANGED
    assert (event.run_id, event.pipeline, event.pipeline_id) == (2, "TEST-CI", 2)
    # `__default` is the one stage of a pipeline without stages: no stage, no environment.
    assert event.stage is None and event.environment is None
    assert (event.state, event.result) == ("completed", "succeeded")
    assert not event.notifies and not event.partial


def test_the_stage_sample_of_a_deployment_stage_is_a_deployment() -> None:
    body = _sample("devops_hook_stage_state_changed.json")
    body["resource"]["stage"]["name"] = "Deploy_Prod"  # the stage of a deployment pipeline

    event = parse_devops_hook(body)

    assert event is not None and event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert (event.stage, event.environment, event.run_id) == ("Deploy_Prod", "prod", 2)
    assert event.notifies


def test_the_published_build_complete_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_build_complete.json"))

    assert event is not None and event.kind is DevOpsEventKind.PIPELINE_RUN_COMPLETED
    assert (event.run_id, event.pipeline, event.pipeline_id) == (2, "ConsumerAddressModule", 2)
    # The 1.0 payload puts the result in `status`.
    assert (event.state, event.result) == ("completed", "succeeded")
    assert event.run_name == "ConsumerAddressModule_20150407.1"
    assert event.requested_for == "Normal Paulk"
    # The results page of build 2 (the resource), not the build 3 its message links.
    assert event.web_url == (
        "https://dev.azure.com/fabrikam-fiber-inc/DefaultCollection/"
        "71777fbc-1cf2-4bd1-9540-128c1c71f766/_build/results?buildId=2"
    )
    # `build.complete` and the run event of one run share a key: one card for both.
    run_event = parse_devops_hook(_sample("devops_hook_run_state_changed.json"))
    assert run_event is not None
    assert (
        event_key(event).split("/")[:2]
        == event_key(run_event).split("/")[:2]
        == [
            "devops",
            "run",
        ]
    )


def test_a_published_event_mlbot_does_not_handle_is_ignored() -> None:
    assert parse_devops_hook(_sample("devops_hook_job_state_changed.json")) is None


# --- the samples posted to /api/hooks/devops ------------------------------------------

SECRET = "published-hook-secret"


@dataclass
class Endpoint:
    url: str
    session: aiohttp.ClientSession
    clock: list[datetime]
    recorded: list[NewEvent] = field(default_factory=list)

    async def post(self, body: Any) -> tuple[int, Any]:
        at = notification_time(body)
        if at is not None:
            self.clock[0] = at + timedelta(seconds=5)  # delivered five seconds later
        async with self.session.post(
            f"{self.url}/api/hooks/devops", params={"key": SECRET}, json=body
        ) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    clock = [datetime.fromisoformat("2019-12-13T06:20:00+00:00")]
    recorded: list[NewEvent] = []

    async def record(event: NewEvent) -> bool:
        recorded.append(event)
        return True

    guard = HookGuard(
        "MLBOT_DEVOPS_HOOK_SECRET", lambda: SECRET, lambda: clock[0], lambda: timedelta(minutes=15)
    )
    app = web.Application()
    # Recording only: confirming what a hook claims is tested in tests/security.
    app.router.add_post("/api/hooks/devops", DevOpsHook(guard, record, verifier=None).post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield Endpoint(f"http://127.0.0.1:{port}", session, clock, recorded)
    await runner.cleanup()


async def test_the_published_approval_samples_are_recorded(endpoint: Endpoint) -> None:
    pending = await endpoint.post(_sample("devops_hook_approval_pending.json"))
    completed = await endpoint.post(_sample("devops_hook_approval_completed.json"))

    assert pending == (200, {"recorded": "approval_required", "new": True})
    assert completed == (200, {"recorded": "approval_decided", "new": True})
    required, decided = endpoint.recorded
    assert required.key == "devops/approval/0f027b05-0942-4a35-9218-26fa07d8760a/pending"
    assert required.payload["approval_id"] == "0f027b05-0942-4a35-9218-26fa07d8760a"
    assert required.payload["environment"] == "env1" and required.payload["run_id"] == 2
    assert decided.payload["approval_status"] == "approved"


async def test_published_run_events_of_other_pipelines_are_acknowledged(
    endpoint: Endpoint,
) -> None:
    for name in (
        "devops_hook_run_state_changed.json",
        "devops_hook_stage_state_changed.json",
        "devops_hook_build_complete.json",
    ):
        status, answer = await endpoint.post(_sample(name))
        assert status == 200 and "ignored" in answer, name
    assert endpoint.recorded == []


async def test_a_published_deployment_stage_is_recorded(endpoint: Endpoint) -> None:
    body = copy.deepcopy(_sample("devops_hook_stage_state_changed.json"))
    body["resource"]["stage"]["name"] = "Deploy_Prod"

    status, answer = await endpoint.post(body)

    assert (status, answer) == (200, {"recorded": "deployment_completed", "new": True})
    (event,) = endpoint.recorded
    assert event.payload["environment"] == "prod" and event.payload["pipeline_id"] == 2


async def test_the_published_unhandled_event_is_acknowledged(endpoint: Endpoint) -> None:
    status, answer = await endpoint.post(_sample("devops_hook_job_state_changed.json"))

    assert (status, answer) == (200, {"ignored": "ms.vss-pipelines.job-state-changed-event"})
    assert endpoint.recorded == []


# --- what the sandbox sends -------------------------------------------------------------


def _paths(value: Any, path: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= {f"{path}/{key}"} | _paths(item, f"{path}/{key}")
    return found


def test_the_sandbox_sends_stage_events_in_the_published_shape() -> None:
    from sandbox.service_hooks import StageFinished, stage_finished_body

    body = stage_finished_body(
        StageFinished(
            org_url="https://dev.azure.com/contoso",
            project="mlops",
            pipeline_id=7,
            pipeline_name="deployment-pipeline",
            run_id=41,
            run_name="20261207.3",
            stage="Deploy_Prod",
            result="succeeded",
            finished=datetime.fromisoformat("2026-12-07T20:00:00+00:00"),
        ),
        "b0f1c2d3-0000-4000-8000-000000000001",
    )
    published = [
        _sample("devops_hook_stage_state_changed.json"),
        # Fields of a run, a notification and links the stage sample lacks but others have.
        _sample("devops_hook_run_state_changed.json"),
        _sample("devops_hook_job_state_changed.json"),
    ]
    allowed = set().union(*(_paths(sample) for sample in published))
    assert _paths(body) <= allowed
    event = parse_devops_hook(body)
    assert event is not None and event.kind is DevOpsEventKind.DEPLOYMENT_COMPLETED
    assert (event.pipeline_id, event.run_id, event.environment) == (7, 41, "prod")
