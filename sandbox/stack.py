"""The sandbox stack: both emulators on loopback, playing a scenario on a simulated clock.

`SandboxStack.start()` serves the Azure ML jobs API (HTTPS) and the Azure DevOps API
(HTTP) on ephemeral ports of 127.0.0.1 and returns `SandboxEndpoints`, everything the
production adapters need to talk to them. A driver then moves the world along:

- scenario jobs are submitted at their start time and go NotStarted → Queued → Running
  → Completed / Failed / Canceled by their durations;
- queuing the training pipeline (with `manualCircuits`) submits one new Azure ML job per
  circuit, the circuit's next attempt; the run ends when its jobs have ended;
- deployment and rollback runs take their scenario duration, after any approval that
  gates them has been approved (a rejection fails the run).

Every state is a function of the clock, so `tick(now)` can be called directly (tests use
a `ManualClock`) and a coarse tick still stamps exact start and end times. A status set
from outside (a cancel through Azure ML, the control API) takes the job off the schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.jobs import Workspace
from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLOptions, CloudEndpoints
from monitoring.metrics import online_endpoint_id
from sandbox.azureml_emulator import AzureMLEmulator, EmulatedJob
from sandbox.clock import SandboxClock, SimClock, describe
from sandbox.credentials import StaticTokenCredential
from sandbox.devops_emulator import DevOpsEmulator, EmulatedApproval, EmulatedRun
from sandbox.metrics_emulator import MetricsEmulator, TrafficPhase
from sandbox.scenario import (
    DEFAULT_SCENARIO_PATH,
    HEALTHY_TRAFFIC,
    OUTCOMES,
    ApprovalSpec,
    AttemptPlan,
    EndpointSpec,
    JobPlan,
    Scenario,
    ScenarioError,
    TimedPipelineSpec,
    TrafficSpec,
    circuit_name,
    job_status,
    load_scenario,
)
from sandbox.service_hooks import ApprovalPending, ServiceHookSender, StageFinished, stage_name
from sandbox.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger(__name__)

DEFAULT_TICK_INTERVAL_S = 0.5
# A circuit without a plan in the scenario trains successfully in this long.
_UNPLANNED_ATTEMPT = AttemptPlan(outcome="Completed", duration_s=120.0)
_UNPLANNED_TIMED = TimedPipelineSpec("pipeline", (60.0,), ("succeeded",))
_TERMINAL = frozenset(OUTCOMES)
_NOT_A_NAME_CHAR = re.compile(r"[^a-z0-9_-]+")


class UnknownJobError(LookupError):
    """No job of that name in the emulated Azure ML."""


@dataclass(frozen=True, slots=True)
class SandboxEndpoints:
    """Where the sandbox's services listen, and what to present to them."""

    azureml_base_url: str
    ca_path: str  # the generated CA that signed the Azure ML emulator's certificate
    cloud: CloudEndpoints  # for AzureMLOptions(cloud=...)
    subscription_id: str
    resource_group: str
    workspaces: list[Workspace]
    devops_org_url: str
    devops_project: str
    devops_pat: str
    training_pipeline: str
    deployment_pipeline: str
    rollback_pipeline: str
    variable_groups: tuple[str, ...] = ()
    # Azure Monitor metrics of the scenario's online endpoints (HTTPS, its own CA).
    metrics_base_url: str = ""
    metrics_ca_path: str = ""
    # `MLBOT_AUTO_ROLLBACK_ENDPOINTS` entries for the scenario's endpoints.
    rollback_targets: tuple[str, ...] = ()
    # The mail sink on 127.0.0.1 (plain SMTP); None when aiosmtpd is not installed.
    smtp_port: int | None = None
    # The Azure ML emulator accepts any bearer token; this one never reaches Azure.
    credential_factory: Callable[[], TokenCredential] = StaticTokenCredential

    @property
    def cloud_name(self) -> str:
        return self.cloud.name

    @property
    def cloud_metadata(self) -> dict[str, str]:
        return self.cloud.metadata()

    def azureml_options(
        self, *, circuit_tag: str = "circuit", retry: RetryPolicy | None = None
    ) -> AzureMLOptions:
        """`AzureMLOptions` that point `AzureMLJobSource` at the emulator."""
        return AzureMLOptions(
            circuit_tag=circuit_tag,
            retry=retry or RetryPolicy(),
            connection_verify=self.ca_path,
            cloud=self.cloud,
        )


# --- what the driver keeps ---------------------------------------------------------------


@dataclass(slots=True)
class _CircuitPlan:
    """Upcoming attempts of one circuit; once they run out the last one repeats."""

    upcoming: list[AttemptPlan]
    last: AttemptPlan
    not_started_s: float = 1.0
    queued_s: float = 2.0
    next_attempt: int = 1

    def take(self) -> tuple[int, AttemptPlan]:
        plan = self.upcoming.pop(0) if self.upcoming else self.last
        self.last = plan
        number = self.next_attempt
        self.next_attempt += 1
        return number, plan


@dataclass(slots=True)
class _DrivenJob:
    workspace: Workspace
    name: str
    circuit: str
    attempt: int
    plan: AttemptPlan
    submitted_at: dt.datetime
    not_started_s: float
    queued_s: float
    run_id: int | None = None
    on_schedule: bool = True
    last_status: str = "NotStarted"

    @property
    def key(self) -> tuple[str, str]:
        return (self.workspace.key.lower(), self.name)

    @property
    def queued_at(self) -> dt.datetime:
        return self.submitted_at + dt.timedelta(seconds=self.not_started_s)

    @property
    def running_at(self) -> dt.datetime:
        return self.queued_at + dt.timedelta(seconds=self.queued_s)

    @property
    def ends_at(self) -> dt.datetime:
        return self.running_at + dt.timedelta(seconds=self.plan.duration_s)

    def status_at(self, now: dt.datetime) -> str:
        if now < self.queued_at:
            return "NotStarted"
        if now < self.running_at:
            return "Queued"
        if now < self.ends_at:
            return "Running"
        return self.plan.outcome


@dataclass(slots=True)
class _ScheduledDeployment:
    due: dt.datetime
    endpoint: EndpointSpec


def endpoint_resource_id(scenario: Scenario, endpoint: EndpointSpec) -> str:
    return online_endpoint_id(
        scenario.subscription_id, scenario.resource_group, endpoint.workspace, endpoint.name
    )


def _phases(traffic: Iterable[TrafficSpec]) -> list[TrafficPhase]:
    return [
        TrafficPhase(
            t.minutes,
            requests_per_minute=t.requests_per_minute,
            error_percent=t.error_percent,
            latency_p95_ms=t.latency_p95_ms,
        )
        for t in traffic
    ]


@dataclass(slots=True)
class _Submission:
    """A scenario job not yet submitted (its start time lies ahead)."""

    due: dt.datetime
    circuit: str


@dataclass(slots=True)
class _TrainingRun:
    run_id: int
    circuits: tuple[str, ...]
    submit_at: dt.datetime
    finish_after_s: float
    jobs: list[tuple[str, str]] | None = None  # emulator keys, once submitted


@dataclass(slots=True)
class _TimedRun:
    run_id: int
    duration_s: float
    result: str
    started_at: dt.datetime | None  # None while an approval holds the run
    approval_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _ScheduledApproval:
    due: dt.datetime
    spec: ApprovalSpec


@dataclass(frozen=True, slots=True)
class _ApprovalContext:
    stage: str
    environment: str


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else None


# --- the stack -----------------------------------------------------------------------------


class SandboxStack:
    """Azure ML and Azure DevOps emulators on loopback, driven by a scenario and a clock."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        clock: SandboxClock | None = None,
        tick_interval_s: float | None = DEFAULT_TICK_INTERVAL_S,
    ) -> None:
        """`clock` overrides `speed`; `tick_interval_s=None` leaves ticking to the caller."""
        self.scenario = scenario
        self._speed = speed
        self._own_clock = clock is None
        self.clock: SandboxClock = clock or SimClock(speed, scenario.start)
        self._tick_interval_s = tick_interval_s
        self.azureml = AzureMLEmulator()
        self.devops = DevOpsEmulator(
            pipelines=scenario.pipelines.names,
            variable_groups=scenario.variable_groups,
            clock=lambda: self.clock.now(),  # the clock is replaced at start (see there)
        )
        self.metrics = MetricsEmulator(self.clock)
        self.service_hooks = ServiceHookSender()
        self.smtp = SmtpSink(lambda: self.clock.now())
        self.workspaces = {
            ws.name.lower(): Workspace(scenario.subscription_id, scenario.resource_group, ws.name)
            for ws in scenario.workspaces
        }
        self._scheduled_deployments: list[_ScheduledDeployment] = []
        self._plans: dict[str, _CircuitPlan] = {}
        self._jobs: dict[tuple[str, str], _DrivenJob] = {}
        self._submissions: list[_Submission] = []
        self._training_runs: dict[int, _TrainingRun] = {}
        self._timed_runs: dict[int, _TimedRun] = {}
        self._scheduled_approvals: list[_ScheduledApproval] = []
        self._approval_context: dict[str, _ApprovalContext] = {}
        self._origin: dt.datetime | None = None
        self._endpoints: SandboxEndpoints | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def endpoints(self) -> SandboxEndpoints:
        if self._endpoints is None:
            raise RuntimeError("the sandbox is not started")
        return self._endpoints

    async def start(self) -> SandboxEndpoints:
        """Serve both emulators on 127.0.0.1, lay out the scenario and start the driver."""
        if self._endpoints is not None or self._stopped:
            raise RuntimeError("a SandboxStack starts once")
        try:
            azureml_url = await self.azureml.start()
            org_url = await self.devops.start()
            metrics_url = await self.metrics.start()
            smtp_port = await self.smtp.start()
        except BaseException:
            await self._stop_emulators()
            raise
        self.devops.run_hooks.append(self._on_run_queued)
        if self._own_clock:
            # Simulated time starts now, not at construction: generating TLS material and
            # binding ports must not eat into the scenario (a second is a minute at 60x).
            self.clock = SimClock(self._speed, self.scenario.start)
        self.metrics.clock = self.clock
        origin = self.clock.now()
        self._origin = origin
        self._lay_out(origin)
        self.tick(origin)
        scenario = self.scenario
        self._endpoints = SandboxEndpoints(
            azureml_base_url=azureml_url,
            ca_path=self.azureml.ca_path,
            cloud=CloudEndpoints(resource_manager=azureml_url),
            subscription_id=scenario.subscription_id,
            resource_group=scenario.resource_group,
            workspaces=list(self.workspaces.values()),
            devops_org_url=org_url,
            devops_project=self.devops.project,
            devops_pat=self.devops.pat,
            training_pipeline=scenario.pipelines.training.name,
            deployment_pipeline=scenario.pipelines.deployment.name,
            rollback_pipeline=scenario.pipelines.rollback.name,
            variable_groups=tuple(scenario.variable_groups),
            metrics_base_url=metrics_url,
            metrics_ca_path=self.metrics.ca_path,
            smtp_port=smtp_port,
            rollback_targets=tuple(
                f"{e.environment}={endpoint_resource_id(scenario, e)}@{e.deployment}"
                for e in scenario.endpoints
            ),
        )
        if self._tick_interval_s is not None:
            self._task = asyncio.create_task(self._drive(self._tick_interval_s))
        log.info("sandbox scenario %r started at %s", scenario.name, _iso(origin))
        return self._endpoints

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._stop_emulators()

    async def __aenter__(self) -> SandboxEndpoints:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _stop_emulators(self) -> None:
        await self.service_hooks.close()
        await self.smtp.stop()
        await self.metrics.stop()
        await self.devops.stop()
        await self.azureml.stop()

    async def _drive(self, interval_s: float) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # one bad tick must not stop the world for good
                log.exception("sandbox tick failed")
            await asyncio.sleep(interval_s)

    def _lay_out(self, origin: dt.datetime) -> None:
        for circuit in self.scenario.circuits:
            plan = self.scenario.job_plan(circuit)
            self._plans[circuit] = self._circuit_plan(plan)
            if plan is not None and plan.start_after_s is not None:
                due = origin + dt.timedelta(seconds=plan.start_after_s)
                self._submissions.append(_Submission(due, circuit))
        for spec in self.scenario.approvals:
            due = origin + dt.timedelta(seconds=spec.after_s)
            self._scheduled_approvals.append(_ScheduledApproval(due, spec))
        for endpoint in self.scenario.endpoints:
            # The model in place before the story starts serves well.
            self._set_traffic(endpoint, HEALTHY_TRAFFIC, origin)
            if endpoint.deploy_after_s is not None:
                due = origin + dt.timedelta(seconds=endpoint.deploy_after_s)
                self._scheduled_deployments.append(_ScheduledDeployment(due, endpoint))

    @staticmethod
    def _circuit_plan(plan: JobPlan | None) -> _CircuitPlan:
        if plan is None:
            return _CircuitPlan([], _UNPLANNED_ATTEMPT)
        return _CircuitPlan(
            list(plan.attempts), plan.attempts[0], plan.not_started_s, plan.queued_s
        )

    # --- the driver --------------------------------------------------------------------

    def tick(self, now: dt.datetime | None = None) -> list[str]:
        """Bring every scheduled thing up to `now` (default: the clock); return what changed.

        Idempotent for a given `now`; call it with times that do not go backwards.
        """
        moment = now or self.clock.now()
        changes: list[str] = []
        self._submit_due(moment, changes)
        self._open_due_approvals(moment, changes)
        self._queue_due_deployments(moment, changes)
        self._start_training(moment, changes)
        self._move_jobs(moment, changes)
        self._finish_training(moment, changes)
        self._finish_timed(moment, changes)
        for change in changes:
            log.info("sandbox: %s", change)
        return changes

    def _submit_due(self, now: dt.datetime, changes: list[str]) -> None:
        due = [s for s in self._submissions if s.due <= now]
        self._submissions = [s for s in self._submissions if s.due > now]
        for submission in sorted(due, key=lambda s: s.due):
            job = self._submit(submission.circuit, submission.due, trigger="scenario")
            changes.append(f"job {job.name} submitted for {job.circuit}")

    def _open_due_approvals(self, now: dt.datetime, changes: list[str]) -> None:
        due = [a for a in self._scheduled_approvals if a.due <= now]
        self._scheduled_approvals = [a for a in self._scheduled_approvals if a.due > now]
        for scheduled in due:
            approval = self._open_approval(scheduled.spec)
            changes.append(f"approval {approval.id} pending for {scheduled.spec.environment}")

    def _queue_due_deployments(self, now: dt.datetime, changes: list[str]) -> None:
        due = [d for d in self._scheduled_deployments if d.due <= now]
        self._scheduled_deployments = [d for d in self._scheduled_deployments if d.due > now]
        for scheduled in sorted(due, key=lambda d: d.due):
            environment = scheduled.endpoint.environment
            run = self._queue_timed_run(
                self.scenario.pipelines.deployment.name, environment, started_at=scheduled.due
            )
            run.created = scheduled.due
            changes.append(f"run {run.id} deploying to {environment}")

    def _start_training(self, now: dt.datetime, changes: list[str]) -> None:
        for run in self._training_runs.values():
            if run.jobs is not None or run.submit_at > now:
                continue
            run.jobs = []
            for circuit in run.circuits:
                job = self._submit(circuit, run.submit_at, trigger="pipeline", run_id=run.run_id)
                run.jobs.append(job.key)
                changes.append(f"run {run.run_id} submitted job {job.name} for {circuit}")

    def _move_jobs(self, now: dt.datetime, changes: list[str]) -> None:
        for driven in self._jobs.values():
            if not driven.on_schedule:
                continue
            job = self.azureml.jobs.get(driven.key)
            if job is None or job.status != driven.last_status:
                # Removed, or moved from outside (a cancel, the control API): hands off.
                driven.on_schedule = False
                continue
            target = driven.status_at(now)
            if target == job.status:
                continue
            self._apply(driven, job, target)
            changes.append(f"job {driven.name} {driven.last_status} -> {target}")
            driven.last_status = target
            if target in _TERMINAL:
                driven.on_schedule = False

    @staticmethod
    def _apply(driven: _DrivenJob, job: EmulatedJob, status: str) -> None:
        # Times are the scheduled moments, not the tick's, so coarse ticks stay exact.
        job.status = status
        if status != "NotStarted" and status != "Queued" and job.started_at is None:
            job.started_at = driven.running_at
        if status in _TERMINAL:
            job.ended_at = driven.ends_at
            if status == "Failed":
                job.error_message = driven.plan.error_message

    def _finish_training(self, now: dt.datetime, changes: list[str]) -> None:
        for run_id, run in list(self._training_runs.items()):
            if run.jobs is None:
                continue
            if self._run_finished_elsewhere(run_id):
                del self._training_runs[run_id]
                continue
            jobs = [self.azureml.jobs.get(key) for key in run.jobs]
            if any(job is not None and job.status not in _TERMINAL for job in jobs):
                continue
            ends = [job.ended_at for job in jobs if job is not None and job.ended_at is not None]
            finish = max(ends, default=run.submit_at) + dt.timedelta(seconds=run.finish_after_s)
            if finish > now:
                continue
            ok = all(job is not None and job.status == "Completed" for job in jobs)
            self._complete(run_id, "succeeded" if ok else "failed", finish)
            del self._training_runs[run_id]
            changes.append(f"run {run_id} completed: {'succeeded' if ok else 'failed'}")

    def _finish_timed(self, now: dt.datetime, changes: list[str]) -> None:
        for run_id, run in list(self._timed_runs.items()):
            if self._run_finished_elsewhere(run_id):
                del self._timed_runs[run_id]
                continue
            if run.approval_ids:
                approvals = [self.devops.approvals.get(i) for i in run.approval_ids]
                if any(a is None or a.status not in ("pending", "approved") for a in approvals):
                    # Rejected (or withdrawn): the stage fails and the run with it.
                    self._complete(run_id, "failed", _decided_at(approvals, now))
                    del self._timed_runs[run_id]
                    changes.append(f"run {run_id} completed: failed (approval rejected)")
                    continue
                if any(a is not None and a.status == "pending" for a in approvals):
                    continue
                run.approval_ids = []
                run.started_at = _decided_at(approvals, now)
                changes.append(f"run {run_id} approved")
            if run.started_at is None:
                continue
            finish = run.started_at + dt.timedelta(seconds=run.duration_s)
            if finish <= now:
                self._complete(run_id, run.result, finish)
                del self._timed_runs[run_id]
                changes.append(f"run {run_id} completed: {run.result}")

    def _run_finished_elsewhere(self, run_id: int) -> bool:
        run = self.devops.runs.get(run_id)
        return run is None or run.state == "completed"

    def _complete(self, run_id: int, result: str, finished: dt.datetime) -> None:
        run = self.devops.runs[run_id]
        run.state = "completed"
        run.result = result  # type: ignore[assignment]  # one of RUN_RESULTS
        run.finished = finished
        self._deployment_finished(run, result, finished)

    def _deployment_finished(self, run: EmulatedRun, result: str, finished: dt.datetime) -> None:
        """A deployment or rollback run ended: the endpoints change, the hook is sent."""
        pipelines = self.scenario.pipelines
        name = run.pipeline_name.lower()
        if name == pipelines.deployment.name.lower():
            action = "Deploy"
        elif name == pipelines.rollback.name.lower():
            action = "Rollback"
        else:
            return
        environment = run.template_parameters.get("environment", "").strip().lower()
        if not environment:
            return
        if result == "succeeded":
            for endpoint in self.scenario.endpoints:
                if endpoint.environment == environment:
                    traffic = endpoint.traffic if action == "Deploy" else HEALTHY_TRAFFIC
                    self._set_traffic(endpoint, traffic, finished)
        stage = stage_name(action, environment)
        self.devops.finish_stage(run.id, stage, result)  # type: ignore[arg-type]  # a RunResult
        self.service_hooks.publish(
            StageFinished(
                org_url=self.devops.org_url,
                project=self.devops.project,
                pipeline_id=run.pipeline_id,
                pipeline_name=run.pipeline_name,
                run_id=run.id,
                run_name=run.name,
                stage=stage,
                result=result,
                finished=finished,
            )
        )

    def _set_traffic(
        self, endpoint: EndpointSpec, traffic: Iterable[TrafficSpec], start: dt.datetime
    ) -> None:
        self.metrics.set_traffic(
            endpoint_resource_id(self.scenario, endpoint),
            _phases(traffic),
            start=start,
            deployment=endpoint.deployment,
        )

    # --- submissions -------------------------------------------------------------------

    def _plan_for(self, circuit: str) -> _CircuitPlan:
        plan = self._plans.get(circuit)
        if plan is None:
            plan = self._plans[circuit] = _CircuitPlan([], _UNPLANNED_ATTEMPT)
        return plan

    def _workspace_for(self, circuit: str) -> Workspace:
        name = self.scenario.workspace_of(circuit)
        if name is None:
            return next(iter(self.workspaces.values()))
        return self.workspaces[name.lower()]

    def _submit(
        self,
        circuit: str,
        at: dt.datetime,
        *,
        trigger: str,
        run_id: int | None = None,
        workspace: Workspace | None = None,
    ) -> _DrivenJob:
        """Create the circuit's next attempt in Azure ML, submitted at `at`."""
        plan = self._plan_for(circuit)
        number, attempt = plan.take()
        target = workspace or self._workspace_for(circuit)
        base = f"train-{_NOT_A_NAME_CHAR.sub('-', circuit.lower())}-{number}"
        name = base
        suffix = 1
        while (target.key.lower(), name) in self.azureml.jobs:
            suffix += 1
            name = f"{base}-{suffix}"
        tags = {"circuit": circuit, "attempt": str(number), "trigger": trigger}
        if run_id is not None:
            tags["pipelineRunId"] = str(run_id)
        self.azureml.add_job(
            target,
            name,
            status="NotStarted",
            display_name=f"{circuit} training (attempt {number})",
            experiment=self.scenario.experiment,
            tags=tags,
            created_at=at,
        )
        driven = _DrivenJob(
            workspace=target,
            name=name,
            circuit=circuit,
            attempt=number,
            plan=attempt,
            submitted_at=at,
            not_started_s=plan.not_started_s,
            queued_s=plan.queued_s,
            run_id=run_id,
        )
        self._jobs[driven.key] = driven
        return driven

    def _on_run_queued(self, run: EmulatedRun) -> None:
        """Azure DevOps queued a run through its API: make the pipeline do its work."""
        pipelines = self.scenario.pipelines
        now = run.created
        if run.pipeline_name.lower() == pipelines.training.name.lower():
            raw = run.template_parameters.get(pipelines.training.circuits_parameter, "")
            circuits = _circuits_of(raw, self.scenario.circuits)
            if circuits is None:
                # The pipeline's own parameter check fails the run straight away.
                self._complete(run.id, "failed", now)
                log.info("sandbox: run %s failed: bad circuits %r", run.id, raw)
                return
            self._training_runs[run.id] = _TrainingRun(
                run.id,
                circuits,
                now + dt.timedelta(seconds=pipelines.training.submit_after_s),
                pipelines.training.finish_after_s,
            )
        else:
            spec = pipelines.timed(run.pipeline_name) or _UNPLANNED_TIMED
            number = len(self.devops.runs_of(run.pipeline_name))
            duration, result = spec.run(number)
            self._timed_runs[run.id] = _TimedRun(run.id, duration, result, started_at=now)
        self.tick(now)

    def _open_approval(self, spec: ApprovalSpec) -> EmulatedApproval:
        run = self._queue_timed_run(spec.pipeline, spec.environment, started_at=None)
        approval = self.devops.add_approval(
            run.id,
            approvers=spec.approvers,
            instructions=spec.instructions,
            stage=spec.stage,
            environment=spec.environment,
        )
        self._approval_context[approval.id] = _ApprovalContext(spec.stage, spec.environment)
        self._timed_runs[run.id].approval_ids.append(approval.id)
        # Azure DevOps tells its "Approval pending" subscribers at once.
        self.service_hooks.publish(
            ApprovalPending(
                org_url=self.devops.org_url,
                project=self.devops.project,
                pipeline_id=run.pipeline_id,
                pipeline_name=run.pipeline_name,
                run_id=run.id,
                run_name=run.name,
                stage=spec.stage,
                environment=spec.environment,
                approval_id=approval.id,
                approvers=spec.approvers,
                instructions=spec.instructions,
                created=approval.created,
            )
        )
        return approval

    def _queue_timed_run(
        self, pipeline: str, environment: str, *, started_at: dt.datetime | None
    ) -> EmulatedRun:
        """A deployment-like run queued by the scenario (not through the API: no hooks);
        `started_at=None` holds it until its approvals are decided."""
        run = self.devops.queue_run(pipeline, {"environment": environment})
        timed = self.scenario.pipelines.timed(pipeline) or _UNPLANNED_TIMED
        duration, result = timed.run(len(self.devops.runs_of(pipeline)))
        self._timed_runs[run.id] = _TimedRun(run.id, duration, result, started_at)
        return run

    # --- control (the /_sandbox/ API) ----------------------------------------------------

    def submit_job(self, plan: JobPlan, *, workspace: str | None = None) -> dict[str, Any]:
        """Submit the circuit's next attempt now; `plan`'s attempts become its future."""
        target = self._workspace_named(workspace) if workspace is not None else None
        now = self.clock.now()
        circuit_plan = self._plan_for(plan.circuit)
        circuit_plan.upcoming = list(plan.attempts)
        circuit_plan.not_started_s = plan.not_started_s
        circuit_plan.queued_s = plan.queued_s
        driven = self._submit(plan.circuit, now, trigger="control", workspace=target)
        self.tick(now)
        return self.job_view(self.azureml.jobs[driven.key])

    def set_job_status(
        self, name: str, status: str, *, workspace: str | None = None
    ) -> dict[str, Any]:
        """Force a job's status; the job leaves the schedule."""
        canonical = job_status(status)
        job = self._find_job(name, workspace)
        now = self.clock.now()
        self.azureml.set_status(job.workspace, job.name, canonical, at=now)
        driven = self._jobs.get((job.workspace.key.lower(), job.name))
        if driven is not None:
            driven.on_schedule = False
        self.tick(now)
        return self.job_view(job)

    def add_approval(self, spec: ApprovalSpec) -> dict[str, Any]:
        """Open an approval now, on a new run of `spec.pipeline`."""
        approval = self._open_approval(spec)
        return self.approval_view(approval)

    def _workspace_named(self, name: str) -> Workspace:
        found = self.workspaces.get(name.lower())
        if found is None:
            known = ", ".join(ws.name for ws in self.workspaces.values())
            raise ScenarioError("workspace", f"unknown workspace {name!r} (known: {known})")
        return found

    def _find_job(self, name: str, workspace: str | None) -> EmulatedJob:
        wanted = self._workspace_named(workspace).key.lower() if workspace is not None else None
        for (ws_key, job_name), job in self.azureml.jobs.items():
            if job_name == name and (wanted is None or ws_key == wanted):
                return job
        raise UnknownJobError(name)

    # --- inspection ----------------------------------------------------------------------

    def job_view(self, job: EmulatedJob) -> dict[str, Any]:
        driven = self._jobs.get((job.workspace.key.lower(), job.name))
        attempt = job.tags.get("attempt")
        return {
            "name": job.name,
            "workspace": job.workspace.name,
            "circuit": job.tags.get("circuit"),
            "attempt": int(attempt) if attempt and attempt.isdigit() else None,
            "status": job.status,
            "experiment": job.experiment,
            "display_name": job.display_name,
            "tags": dict(job.tags),
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "ended_at": _iso(job.ended_at),
            "error_message": job.error_message,
            "on_schedule": bool(driven and driven.on_schedule),
            "planned_outcome": driven.plan.outcome if driven else None,
            "planned_end": _iso(driven.ends_at) if driven else None,
            "pipeline_run_id": driven.run_id if driven else None,
        }

    def run_view(self, run: EmulatedRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "pipeline": run.pipeline_name,
            "name": run.name,
            "parameters": dict(run.template_parameters),
            "state": run.state,
            "result": run.result,
            "created_at": _iso(run.created),
            "finished_at": _iso(run.finished),
            "requested_by": run.requested_by,
        }

    def approval_view(self, approval: EmulatedApproval) -> dict[str, Any]:
        context = self._approval_context.get(approval.id)
        return {
            "id": approval.id,
            "pipeline": approval.pipeline_name,
            "run_id": approval.run_id,
            "stage": context.stage if context else None,
            "environment": context.environment if context else None,
            "status": approval.status,
            "comment": approval.comment,
            "decided_by": approval.decided_by,
            "approvers": list(approval.approvers),
            "instructions": approval.instructions,
            "created_at": _iso(approval.created),
        }

    def state(self) -> dict[str, Any]:
        """Everything the sandbox holds, as plain data (the body of `GET /_sandbox/state`)."""
        jobs = sorted(self.azureml.jobs.values(), key=lambda j: (j.created_at, j.name))
        return {
            "scenario": self.scenario.name,
            "jobs": [self.job_view(job) for job in jobs],
            "pipeline_runs": [self.run_view(run) for run in self.devops.runs.values()],
            "approvals": [self.approval_view(a) for a in self.devops.approvals.values()],
            "endpoints": self.metrics.snapshot(),
            "service_hooks": [d.view() for d in self.service_hooks.deliveries],
            # How often mlbot asked (benchmarks and tests compare call rates).
            "requests": {
                "azureml": len(self.azureml.requests),
                "metrics": len(self.metrics.requests),
            },
            "clock": {**describe(self.clock), "origin": _iso(self._origin)},
        }


def _decided_at(approvals: Iterable[EmulatedApproval | None], fallback: dt.datetime) -> dt.datetime:
    moments = [a.modified for a in approvals if a is not None and a.modified is not None]
    return max(moments, default=fallback)


def _circuits_of(raw: str, all_circuits: tuple[str, ...]) -> tuple[str, ...] | None:
    """The circuits a training run trains: the list given, or every circuit; None if bad."""
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        return all_circuits
    try:
        checked = [circuit_name(name, "manualCircuits") for name in names]
    except ScenarioError:
        return None
    return tuple(dict.fromkeys(checked))  # once each, in the order given


# --- stand-alone -------------------------------------------------------------------------


async def _serve(scenario: Scenario, speed: float, port: int) -> None:
    from aiohttp import web

    from sandbox.control_api import add_sandbox_routes

    stack = SandboxStack(scenario, speed=speed)
    endpoints = await stack.start()
    app = web.Application()
    add_sandbox_routes(app, stack)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    control_port = runner.addresses[0][1]
    summary = {
        "control": f"http://127.0.0.1:{control_port}/_sandbox/state",
        "azureml": endpoints.azureml_base_url,
        "ca_path": endpoints.ca_path,
        "subscription_id": endpoints.subscription_id,
        "resource_group": endpoints.resource_group,
        "workspaces": [ws.name for ws in endpoints.workspaces],
        "devops_org_url": endpoints.devops_org_url,
        "devops_project": endpoints.devops_project,
    }
    print(json.dumps(summary, indent=2), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await stack.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m sandbox.stack [--scenario FILE] [--speed N] [--port P]`: the sandbox alone."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.stack", description=main.__doc__)
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO_PATH)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--port", type=int, default=0, help="control API port on 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.speed > 0:
        parser.error("--speed must be a positive number")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(scenario, args.speed, args.port))


if __name__ == "__main__":
    main()
