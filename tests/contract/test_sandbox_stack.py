"""The sandbox stack through the production adapters and its control API, over loopback.

Time is a `ManualClock` moved by the test and applied with `tick`; the background
driver is switched off except in the one test that checks it runs.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="mlbot-ado-cache-"))

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from domain.jobs import JobState, TrainingJob
from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from sandbox.clock import ManualClock, SimClock
from sandbox.control_api import add_sandbox_routes
from sandbox.scenario import Scenario, load_scenario, parse_scenario
from sandbox.stack import SandboxEndpoints, SandboxStack

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
]

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
CIRCUITS = "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02"
FAST = RetryPolicy(attempts=2, base_delay_s=0.001, timeout_s=20.0)

RETRY_SCENARIO = """
name: retries
workspaces:
  - name: ws-a
    circuits: [PLANT001/CIRCUIT01, PLANT001/CIRCUIT02]
  - name: ws-b
    circuits: [PLANT002/CIRCUIT01]
jobs:
  - circuit: PLANT001/CIRCUIT01
    duration_s: 10
    outcomes: [Failed, Failed, Completed]
    error_message: [first, second, unused]
  - circuit: PLANT002/CIRCUIT01
    start_after_s: null
    duration_s: 20
pipelines:
  training: {submit_after_s: 0, finish_after_s: 2}
"""


class Started:
    """A started stack with its clock and production adapters."""

    def __init__(self, stack: SandboxStack, endpoints: SandboxEndpoints, clock: ManualClock):
        self.stack = stack
        self.endpoints = endpoints
        self.clock = clock
        self.source = AzureMLJobSource(
            endpoints.credential_factory,
            endpoints.workspaces,
            endpoints.azureml_options(retry=FAST),
        )
        self.ado = AzureDevOpsPipelines(
            endpoints.devops_org_url,
            endpoints.devops_project,
            pat=endpoints.devops_pat,
            policy=FAST,
        )

    def at(self, seconds: float) -> list[str]:
        """Move the clock to `seconds` after the start and let the world catch up."""
        target = self.clock.start + dt.timedelta(seconds=seconds)
        self.clock.advance((target - self.clock.now()).total_seconds())
        return self.stack.tick()

    async def jobs(self, workspace: int = 0) -> list[TrainingJob]:
        return await self.source.list_active(self.endpoints.workspaces[workspace])

    def job(self, circuit: str, attempt: int) -> dict[str, Any]:
        found = [
            j
            for j in self.stack.state()["jobs"]
            if j["circuit"] == circuit and j["attempt"] == attempt
        ]
        assert len(found) == 1, found
        return found[0]


StartStack = Callable[[Scenario], Awaitable[Started]]


@pytest.fixture
async def start_stack() -> AsyncIterator[StartStack]:
    stacks: list[SandboxStack] = []

    async def start(scenario: Scenario) -> Started:
        clock = ManualClock(T0)
        stack = SandboxStack(scenario, clock=clock, tick_interval_s=None)
        stacks.append(stack)
        endpoints = await stack.start()
        return Started(stack, endpoints, clock)

    yield start
    for stack in stacks:
        await stack.stop()


@pytest.fixture
async def default(start_stack: StartStack) -> Started:
    return await start_stack(load_scenario())


# --- the stack and the production adapters ---------------------------------------------


async def test_endpoints_are_loopback_and_carry_what_the_adapters_need(default: Started) -> None:
    ep = default.endpoints
    assert ep.azureml_base_url.startswith("https://127.0.0.1:")
    assert ep.devops_org_url.startswith("http://127.0.0.1:")
    assert ep.devops_org_url.endswith("/sandbox-org")
    assert (ep.devops_project, ep.devops_pat) == ("mlops", "sandbox-pat")
    assert await asyncio.to_thread(os.path.isfile, ep.ca_path)
    assert ep.cloud.resource_manager == ep.azureml_base_url
    assert ep.cloud_metadata["resource_manager"] == ep.azureml_base_url + "/"
    assert [ws.name for ws in ep.workspaces] == ["mlw-plants-sandbox"]
    assert ep.workspaces[0].subscription_id == ep.subscription_id
    assert ep.training_pipeline == "training-pipeline"
    assert ep.rollback_pipeline == "rollback-pipeline"
    assert ep.variable_groups == ("mlops-pipeline-settings",)
    with pytest.raises(RuntimeError):
        await default.stack.start()


async def test_the_job_source_sees_the_default_scenario_unfold(default: Started) -> None:
    by_circuit = {j.circuit: j for j in await default.jobs()}
    # At the start: the backdated long job runs; the others were just submitted.
    assert set(by_circuit) == {"PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02", "PLANT003/CIRCUIT01"}
    assert by_circuit["PLANT001/CIRCUIT01"].status == "NotStarted"
    long_job = by_circuit["PLANT003/CIRCUIT01"]
    assert long_job.state is JobState.RUNNING
    assert long_job.started_at is not None
    assert T0 - long_job.started_at < dt.timedelta(hours=4)

    default.at(4)
    by_circuit = {j.circuit: j for j in await default.jobs()}
    assert by_circuit["PLANT001/CIRCUIT01"].status == "Running"
    assert by_circuit["PLANT001/CIRCUIT02"].status == "Queued"  # submitted at 2 s

    default.at(60)
    by_circuit = {j.circuit: j for j in await default.jobs()}
    done = by_circuit["PLANT001/CIRCUIT01"]
    assert done.state is JobState.COMPLETED
    # Times are the scheduled ones, whatever the tick granularity.
    assert done.started_at == T0 + dt.timedelta(seconds=3)
    assert done.ended_at == T0 + dt.timedelta(seconds=48)
    failed = by_circuit["PLANT002/CIRCUIT02"]
    assert failed.state is JobState.FAILED
    assert failed.error_summary is not None and "NaN" in failed.error_summary
    assert by_circuit["PLANT002/CIRCUIT01"].status == "Running"  # submitted at 20 s
    assert "PLANT003/CIRCUIT02" not in by_circuit  # trains only on demand
    long_job = by_circuit["PLANT003/CIRCUIT01"]
    assert long_job.started_at is not None
    assert T0 + dt.timedelta(seconds=60) - long_job.started_at > dt.timedelta(hours=4)
    assert long_job.state is JobState.RUNNING

    approvals = await default.ado.list_pending_approvals()
    assert [a.pipeline_name for a in approvals] == ["deployment-pipeline"]
    state_approval = default.stack.state()["approvals"][0]
    assert (state_approval["environment"], state_approval["stage"]) == ("prod", "Deploy_Prod")

    settings = await default.ado.get_variable_group("mlops-pipeline-settings")
    assert settings["longRunningJobNotificationIntervalHours"] == "4"


async def test_training_pipeline_submits_the_next_attempt_of_exactly_the_manual_circuits(
    default: Started,
) -> None:
    default.at(60)
    before = {j.name for j in await default.jobs()}

    run = await default.ado.queue_run("training-pipeline", {"manualCircuits": CIRCUITS})
    assert run.state == "inProgress"
    assert run.template_parameters == {"manualCircuits": CIRCUITS}
    default.at(64)  # the pipeline needs 5 s before it submits
    assert {j.name for j in await default.jobs()} == before

    default.at(65)
    new = [j for j in await default.jobs() if j.name not in before]
    assert sorted(j.circuit or "" for j in new) == ["PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02"]
    for job in new:
        tags = default.stack.azureml.job(default.endpoints.workspaces[0], job.name).tags
        assert tags["attempt"] == "2"
        assert tags["circuit"] == job.circuit
        assert tags["pipelineRunId"] == str(run.run_id)
    assert default.job("PLANT002/CIRCUIT02", 2)["planned_outcome"] == "Completed"

    default.at(65 + 3 + 89)  # the 90 s retry of PLANT002/CIRCUIT02 is still running
    assert (await default.ado.get_run(run.pipeline_id, run.run_id)).state == "inProgress"
    default.at(65 + 3 + 90)
    assert default.job("PLANT002/CIRCUIT02", 2)["status"] == "Completed"
    assert (await default.ado.get_run(run.pipeline_id, run.run_id)).state == "inProgress"
    default.at(65 + 3 + 90 + 5)  # wrap-up after the last job
    finished = await default.ado.get_run(run.pipeline_id, run.run_id)
    assert (finished.state, finished.result) == ("completed", "succeeded")
    assert finished.finished_at == T0 + dt.timedelta(seconds=163)


async def test_a_retry_that_fails_again_fails_the_run(start_stack: StartStack) -> None:
    started = await start_stack(parse_scenario(RETRY_SCENARIO))
    started.at(13)
    assert started.job("PLANT001/CIRCUIT01", 1)["status"] == "Failed"
    assert started.job("PLANT001/CIRCUIT01", 1)["error_message"] == "first"

    run = await started.ado.queue_run(
        "training-pipeline", {"manualCircuits": "PLANT001/CIRCUIT01, PLANT002/CIRCUIT01"}
    )
    second = started.job("PLANT001/CIRCUIT01", 2)
    assert second["planned_outcome"] == "Failed"
    # A circuit of the second workspace goes to that workspace; its first attempt.
    other = started.job("PLANT002/CIRCUIT01", 1)
    assert other["workspace"] == "ws-b"
    assert [j.circuit for j in await started.jobs(1)] == ["PLANT002/CIRCUIT01"]

    started.at(13 + 3 + 20 + 2)
    result = await started.ado.get_run(run.pipeline_id, run.run_id)
    assert (result.state, result.result) == ("completed", "failed")
    assert started.job("PLANT001/CIRCUIT01", 2)["error_message"] == "second"
    assert started.job("PLANT002/CIRCUIT01", 1)["status"] == "Completed"

    await started.ado.queue_run("training-pipeline", {"manualCircuits": "PLANT001/CIRCUIT01"})
    assert started.job("PLANT001/CIRCUIT01", 3)["planned_outcome"] == "Completed"


async def test_training_without_circuits_trains_all_and_bad_circuits_fail_the_run(
    start_stack: StartStack,
) -> None:
    started = await start_stack(parse_scenario(RETRY_SCENARIO))
    await started.ado.queue_run("training-pipeline", {})
    circuits = sorted(j["circuit"] for j in started.stack.state()["jobs"])
    assert circuits == [
        "PLANT001/CIRCUIT01",
        "PLANT001/CIRCUIT01",
        "PLANT001/CIRCUIT02",
        "PLANT002/CIRCUIT01",
    ]
    bad = await started.ado.queue_run("training-pipeline", {"manualCircuits": "not-a-circuit"})
    result = await started.ado.get_run(bad.pipeline_id, bad.run_id)
    assert (result.state, result.result) == ("completed", "failed")


async def test_rollback_pipeline_completes_after_its_duration(default: Started) -> None:
    default.at(10)
    run = await default.ado.queue_run("rollback-pipeline", {"environment": "prod"})
    default.at(10 + 44)
    assert (await default.ado.get_run(run.pipeline_id, run.run_id)).state == "inProgress"
    default.at(10 + 45)
    done = await default.ado.get_run(run.pipeline_id, run.run_id)
    assert (done.state, done.result) == ("completed", "succeeded")


async def test_approved_deployment_runs_rejected_one_fails(default: Started) -> None:
    pending = await default.ado.list_pending_approvals()
    approval = pending[0]
    default.at(30)
    await default.ado.decide_approval(approval.id, True, "ship it")
    default.at(30 + 89)
    assert default.stack.state()["pipeline_runs"][0]["state"] == "inProgress"
    default.at(30 + 90)
    run = default.stack.state()["pipeline_runs"][0]
    assert (run["pipeline"], run["state"], run["result"]) == (
        "deployment-pipeline",
        "completed",
        "succeeded",
    )

    second = default.stack.add_approval(
        default.stack.scenario.approvals[0]  # the same kind of gate, opened now
    )
    await default.ado.decide_approval(second["id"], False, "not today")
    default.at(200)
    runs = {r["id"]: r for r in default.stack.state()["pipeline_runs"]}
    assert runs[second["run_id"]]["result"] == "failed"


async def test_a_job_canceled_through_azure_ml_leaves_the_schedule(default: Started) -> None:
    default.at(10)
    ws = default.endpoints.workspaces[0]
    name = default.job("PLANT001/CIRCUIT01", 1)["name"]
    await default.source.cancel(ws, name)
    default.at(120)
    job = default.job("PLANT001/CIRCUIT01", 1)
    assert job["status"] == "Canceled"
    assert job["on_schedule"] is False


async def test_the_background_driver_follows_the_scaled_clock() -> None:
    real = [0.0]
    clock = SimClock(60, T0, monotonic=lambda: real[0])
    stack = SandboxStack(load_scenario(), clock=clock, tick_interval_s=0.005)
    await stack.start()
    try:
        real[0] = 1.0  # one real second is a simulated minute: the quick job is done
        for _ in range(400):
            statuses = {j["circuit"]: j["status"] for j in stack.state()["jobs"]}
            if statuses.get("PLANT001/CIRCUIT01") == "Completed":
                break
            await asyncio.sleep(0.005)
        assert statuses["PLANT001/CIRCUIT01"] == "Completed"
        assert statuses["PLANT002/CIRCUIT02"] == "Failed"
    finally:
        await stack.stop()


# --- the control API over HTTP ---------------------------------------------------------


@pytest.fixture
async def control(default: Started) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    app = web.Application()
    add_sandbox_routes(app, default.stack)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/_sandbox"
    async with aiohttp.ClientSession() as session:
        yield session, url
    await runner.cleanup()


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_state_has_jobs_runs_approvals_and_clock(
    default: Started, control: tuple[aiohttp.ClientSession, str]
) -> None:
    session, url = control
    status, state = await _call(session, "GET", f"{url}/state")
    assert status == 200
    assert {"jobs", "pipeline_runs", "approvals", "clock"} <= set(state)
    job = state["jobs"][0]
    assert {"name", "circuit", "status", "attempt", "workspace", "started_at"} <= set(job)
    run = state["pipeline_runs"][0]
    assert {"id", "pipeline", "parameters", "state", "result"} <= set(run)
    approval = state["approvals"][0]
    assert {"id", "status", "comment", "stage", "environment"} <= set(approval)
    assert approval["status"] == "pending"
    assert state["clock"]["now"] == T0.isoformat()


async def test_post_job_and_force_its_status(
    default: Started, control: tuple[aiohttp.ClientSession, str]
) -> None:
    session, url = control
    body = {"circuit": "PLANT003/CIRCUIT02", "duration_s": 30, "outcomes": ["Failed", "Completed"]}
    status, job = await _call(session, "POST", f"{url}/jobs", json=body)
    assert status == 201
    assert (job["circuit"], job["attempt"], job["status"]) == (
        "PLANT003/CIRCUIT02",
        1,
        "NotStarted",
    )
    assert job["planned_outcome"] == "Failed"
    default.at(40)
    assert default.job("PLANT003/CIRCUIT02", 1)["status"] == "Failed"
    # The rest of the posted outcomes are what the next attempt does.
    await default.ado.queue_run("training-pipeline", {"manualCircuits": "PLANT003/CIRCUIT02"})
    default.at(45)
    assert default.job("PLANT003/CIRCUIT02", 2)["planned_outcome"] == "Completed"

    name = default.job("PLANT001/CIRCUIT01", 1)["name"]
    status, forced = await _call(
        session, "POST", f"{url}/jobs/{name}/status", json={"status": "failed"}
    )
    assert status == 200
    assert (forced["status"], forced["on_schedule"]) == ("Failed", False)
    default.at(600)
    assert default.job("PLANT001/CIRCUIT01", 1)["status"] == "Failed"


async def test_post_approval(default: Started, control: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = control
    body = {"pipeline": "deployment-pipeline", "stage": "Deploy_Test", "environment": "test"}
    status, approval = await _call(session, "POST", f"{url}/approvals", json=body)
    assert status == 201
    assert (approval["status"], approval["stage"], approval["environment"]) == (
        "pending",
        "Deploy_Test",
        "test",
    )
    pending = {a.id for a in await default.ado.list_pending_approvals()}
    assert approval["id"] in pending


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected", "words"),
    [
        ("POST", "/jobs", {"data": b"{not json"}, 400, "JSON"),
        ("POST", "/jobs", {"data": b""}, 400, "JSON object"),
        ("POST", "/jobs", {"json": ["a"]}, 400, "JSON object"),
        ("POST", "/jobs", {"json": {"duration_s": 5}}, 400, "circuit"),
        ("POST", "/jobs", {"json": {"circuit": "PLANT001/CIRCUIT01"}}, 400, "duration_s"),
        ("POST", "/jobs", {"json": {"circuit": 5, "duration_s": 5}}, 400, "circuit"),
        ("POST", "/jobs", {"json": {"circuit": "A/B", "duration_s": "x"}}, 400, "duration_s"),
        (
            "POST",
            "/jobs",
            {"json": {"circuit": "A/B", "duration_s": 5, "outcomes": ["Won"]}},
            400,
            "outcomes[0]",
        ),
        (
            "POST",
            "/jobs",
            {"json": {"circuit": "A/B", "duration_s": 5, "workspace": "nope"}},
            400,
            "workspace",
        ),
        (
            "POST",
            "/jobs",
            {"json": {"circuit": "A/B", "duration_s": 5, "workspace": 3}},
            400,
            "workspace",
        ),
        ("POST", "/jobs/no-such-job/status", {"json": {"status": "Failed"}}, 404, "no-such-job"),
        ("POST", "/jobs/x/status", {"json": {}}, 400, "status"),
        ("POST", "/jobs/x/status", {"json": {"status": "Exploded"}}, 400, "status"),
        ("POST", "/jobs/x/status", {"json": {"status": 3}}, 400, "status"),
        ("POST", "/jobs/x/status", {"data": b"\xff\xfe"}, 400, "JSON"),
        ("POST", "/approvals", {"json": {"stage": "s"}}, 400, "pipeline"),
        ("POST", "/approvals", {"json": {"pipeline": "deployment-pipeline"}}, 400, "environment"),
        (
            "POST",
            "/approvals",
            {"json": {"pipeline": "nope", "environment": "prod"}},
            400,
            "unknown pipeline",
        ),
        (
            "POST",
            "/approvals",
            {"json": {"pipeline": "deployment-pipeline", "environment": ["prod"]}},
            400,
            "environment",
        ),
    ],
)
async def test_bad_input_is_a_4xx_with_an_error(
    control: tuple[aiohttp.ClientSession, str],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    expected: int,
    words: str,
) -> None:
    session, url = control
    status, body = await _call(session, method, f"{url}{path}", **kwargs)
    assert status == expected
    assert isinstance(body, dict)
    assert words in body["error"]
