"""Sandbox scenarios: the story the emulated Azure ML and Azure DevOps play out.

A scenario is YAML (see `docs/sandbox.md`): workspaces and their circuits, a training
plan per circuit (when its first job is submitted, and the outcome and duration of each
attempt), the pipelines (training, deployment, rollback) with their run durations and
results, approvals waiting at start, and variable-group values.

Parsing is pure: `scenario_from_dict` and `parse_scenario` do no I/O, and every error is
a `ScenarioError` naming the offending field (`jobs[2].outcomes[0]: ...`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitoring.job_status import AZUREML_STATUSES

DEFAULT_SCENARIO_PATH = Path(__file__).parent / "scenarios" / "default.yaml"

# How an attempt may end; anything else is a state on the way there.
OUTCOMES: tuple[str, ...] = ("Completed", "Failed", "Canceled")
RUN_RESULTS: tuple[str, ...] = ("succeeded", "failed", "canceled")
JOB_STATUSES: tuple[str, ...] = AZUREML_STATUSES

DEFAULT_SUBSCRIPTION_ID = "00000000-0000-0000-0000-00000000a11e"
DEFAULT_RESOURCE_GROUP = "rg-mlops-sandbox"
DEFAULT_EXPERIMENT = "circuit-training"
DEFAULT_ERROR_MESSAGE = "UserError: training script exited with code 1"

_CIRCUIT = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ScenarioError(ValueError):
    """A scenario (or control request) that cannot be used; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


# --- the model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """How one attempt of a circuit's training ends, and how long it runs."""

    outcome: str  # one of OUTCOMES
    duration_s: float  # time spent Running
    error_message: str | None = None  # reported when the outcome is Failed


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A circuit's training: its first submission and the attempts that follow.

    Attempt 1 is submitted `start_after_s` after the scenario starts (negative: it was
    submitted before, so the sandbox starts mid-story; None: only when the training
    pipeline is queued for the circuit). Later attempts are submitted by the training
    pipeline. Attempts beyond the list repeat the last one.
    """

    circuit: str
    attempts: tuple[AttemptPlan, ...]
    start_after_s: float | None = 0.0
    not_started_s: float = 1.0
    queued_s: float = 2.0

    def attempt(self, number: int) -> AttemptPlan:
        """The plan of attempt `number` (1-based)."""
        index = min(max(number, 1), len(self.attempts)) - 1
        return self.attempts[index]


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    name: str
    circuits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrainingPipelineSpec:
    """The training pipeline submits one Azure ML job per circuit it is queued for."""

    name: str = "training-pipeline"
    circuits_parameter: str = "manualCircuits"
    submit_after_s: float = 0.0  # agent start-up before the jobs are submitted
    finish_after_s: float = 0.0  # wrap-up after the last job ends


@dataclass(frozen=True, slots=True)
class TimedPipelineSpec:
    """A pipeline whose runs take a fixed time; the n-th run uses the n-th entries."""

    name: str
    durations_s: tuple[float, ...] = (60.0,)
    results: tuple[str, ...] = ("succeeded",)

    def run(self, number: int) -> tuple[float, str]:
        """(duration, result) of run `number` (1-based); the lists repeat their last entry."""
        duration = self.durations_s[min(max(number, 1), len(self.durations_s)) - 1]
        result = self.results[min(max(number, 1), len(self.results)) - 1]
        return duration, result


@dataclass(frozen=True, slots=True)
class PipelinesSpec:
    training: TrainingPipelineSpec = field(default_factory=TrainingPipelineSpec)
    deployment: TimedPipelineSpec = field(
        default_factory=lambda: TimedPipelineSpec("deployment-pipeline", (120.0,))
    )
    rollback: TimedPipelineSpec = field(
        default_factory=lambda: TimedPipelineSpec("rollback-pipeline", (60.0,))
    )

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.training.name, self.deployment.name, self.rollback.name)

    def timed(self, name: str) -> TimedPipelineSpec | None:
        for spec in (self.deployment, self.rollback):
            if spec.name.lower() == name.lower():
                return spec
        return None


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    """A run of `pipeline` waiting at `stage` for someone to approve `environment`."""

    pipeline: str
    stage: str
    environment: str
    after_s: float = 0.0
    approvers: tuple[str, ...] = ("Release Approvers",)
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    """Steady traffic on an online endpoint for `minutes` (None: from then on)."""

    minutes: float | None = None
    requests_per_minute: float = 120.0
    error_percent: float = 0.5  # share of 5xx answers
    latency_p95_ms: float = 180.0


HEALTHY_TRAFFIC = (TrafficSpec(),)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """An Azure ML online endpoint serving `environment`, and what happens to it.

    Before any deployment it serves healthy traffic. When a run of the deployment
    pipeline for its environment completes, `traffic` plays from that moment (so a
    scenario can make the new model degrade); when a rollback completes, traffic is
    healthy again. `deploy_after_s` queues such a deployment without an approval.
    """

    environment: str
    workspace: str
    name: str
    deployment: str = "blue"
    deploy_after_s: float | None = None
    traffic: tuple[TrafficSpec, ...] = HEALTHY_TRAFFIC


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    workspaces: tuple[WorkspaceSpec, ...]
    jobs: tuple[JobPlan, ...] = ()
    pipelines: PipelinesSpec = field(default_factory=PipelinesSpec)
    approvals: tuple[ApprovalSpec, ...] = ()
    variable_groups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    endpoints: tuple[EndpointSpec, ...] = ()
    description: str = ""
    start: dt.datetime | None = None  # simulated start time; None: the real time at start
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    resource_group: str = DEFAULT_RESOURCE_GROUP
    experiment: str = DEFAULT_EXPERIMENT

    @property
    def circuits(self) -> tuple[str, ...]:
        return tuple(c for ws in self.workspaces for c in ws.circuits)

    def workspace_of(self, circuit: str) -> str | None:
        for ws in self.workspaces:
            if circuit in ws.circuits:
                return ws.name
        return None

    def job_plan(self, circuit: str) -> JobPlan | None:
        return next((plan for plan in self.jobs if plan.circuit == circuit), None)


# --- parsing helpers -------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(where, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(where, f"keys must be text, got {key!r}")
    return value


def _only(value: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
    # Unknown keys are refused so that a typo (`duration` for `duration_s`) is not ignored.
    for key in value:
        if key not in allowed:
            raise ScenarioError(
                _join(where, key), f"unknown field (expected one of: {', '.join(allowed)})"
            )


def _required(value: Mapping[str, Any], where: str, key: str) -> Any:
    if key not in value or value[key] is None:
        raise ScenarioError(_join(where, key), "is required")
    return value[key]


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _text(value: Any, where: str, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(where, f"expected non-empty text, got {_kind(value)}")
    text = value.strip()
    if pattern is not None and not pattern.match(text):
        raise ScenarioError(where, f"{text!r} is not a valid name")
    return text


def _number(value: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(where, f"expected a number of seconds, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ScenarioError(where, "must be a finite number")
    if minimum is not None and number < minimum:
        raise ScenarioError(where, f"must be at least {minimum:g}, got {number:g}")
    return number


def _list(value: Any, where: str) -> list[Any]:
    """A list, or a single value standing for a list of one."""
    if isinstance(value, list | tuple):
        if not value:
            raise ScenarioError(where, "must not be empty")
        return list(value)
    return [value]


def _choice(value: Any, where: str, choices: Sequence[str]) -> str:
    if isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.strip().lower():
                return choice
    raise ScenarioError(where, f"expected one of {', '.join(choices)}, got {value!r}")


def circuit_name(value: Any, where: str = "circuit") -> str:
    """A circuit such as `PLANT001/CIRCUIT01`."""
    text = _text(value, where)
    if not _CIRCUIT.match(text):
        raise ScenarioError(where, f"{text!r} is not a circuit of the form PLANT/CIRCUIT")
    return text


def job_status(value: Any, where: str = "status") -> str:
    """One of the statuses Azure ML reports for a job, in its canonical spelling."""
    return _choice(value, where, JOB_STATUSES)


def _start(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(where, f"{value!r} is not an ISO-8601 time") from None
    else:
        raise ScenarioError(where, f"expected an ISO-8601 time, got {_kind(value)}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# --- sections --------------------------------------------------------------------------

_JOB_FIELDS = (
    "circuit",
    "start_after_s",
    "duration_s",
    "outcomes",
    "error_message",
    "not_started_s",
    "queued_s",
)


def job_plan_from_dict(raw: Any, where: str = "", *, default_start: float | None = 0.0) -> JobPlan:
    """One circuit's training plan; also parses jobs posted to the control API.

    `duration_s` is a number or one per attempt; `outcomes` a status or one per attempt
    (default `[Completed]`); `error_message` a text or one per attempt.
    """
    data = _mapping(raw, where or "job")
    _only(data, where, _JOB_FIELDS)
    circuit = circuit_name(_required(data, where, "circuit"), _join(where, "circuit"))
    outcome_list = _list(data.get("outcomes", ["Completed"]), _join(where, "outcomes"))
    outcomes = [
        _choice(value, f"{_join(where, 'outcomes')}[{i}]", OUTCOMES)
        for i, value in enumerate(outcome_list)
    ]
    durations = _per_attempt(
        _required(data, where, "duration_s"), _join(where, "duration_s"), len(outcomes)
    )
    parsed_durations = [
        _number(value, f"{_join(where, 'duration_s')}[{i}]", minimum=0)
        for i, value in enumerate(durations)
    ]
    messages = _per_attempt(
        data.get("error_message", DEFAULT_ERROR_MESSAGE),
        _join(where, "error_message"),
        len(outcomes),
    )
    parsed_messages = [
        _text(value, f"{_join(where, 'error_message')}[{i}]") for i, value in enumerate(messages)
    ]
    start_raw = data.get("start_after_s", default_start)
    start = None if start_raw is None else _number(start_raw, _join(where, "start_after_s"))
    attempts = tuple(
        AttemptPlan(
            outcome=outcome,
            duration_s=duration,
            error_message=message if outcome == "Failed" else None,
        )
        for outcome, duration, message in zip(
            outcomes, parsed_durations, parsed_messages, strict=True
        )
    )
    return JobPlan(
        circuit=circuit,
        attempts=attempts,
        start_after_s=start,
        not_started_s=_number(
            data.get("not_started_s", 1.0), _join(where, "not_started_s"), minimum=0
        ),
        queued_s=_number(data.get("queued_s", 2.0), _join(where, "queued_s"), minimum=0),
    )


def _per_attempt(value: Any, where: str, attempts: int) -> list[Any]:
    """A single value for every attempt, or a list with one value per attempt."""
    if not isinstance(value, list | tuple):
        return [value] * attempts
    if len(value) != attempts:
        raise ScenarioError(
            where, f"has {len(value)} entries but outcomes has {attempts}; give one per attempt"
        )
    return list(value)


def _workspaces(raw: Any) -> tuple[WorkspaceSpec, ...]:
    items = _list(_required({"workspaces": raw}, "", "workspaces"), "workspaces")
    result: list[WorkspaceSpec] = []
    seen_circuits: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"workspaces[{i}]"
        data = _mapping(item, where)
        _only(data, where, ("name", "circuits"))
        name = _text(_required(data, where, "name"), f"{where}.name", pattern=_NAME)
        if any(ws.name.lower() == name.lower() for ws in result):
            raise ScenarioError(f"{where}.name", f"workspace {name!r} is listed twice")
        circuits: list[str] = []
        raw_circuits = data.get("circuits") or []  # a workspace may start without circuits
        for j, value in enumerate(_list(raw_circuits, f"{where}.circuits") if raw_circuits else []):
            circuit_where = f"{where}.circuits[{j}]"
            circuit = circuit_name(value, circuit_where)
            if circuit in seen_circuits:
                raise ScenarioError(
                    circuit_where, f"{circuit} is already in workspace {seen_circuits[circuit]}"
                )
            seen_circuits[circuit] = name
            circuits.append(circuit)
        result.append(WorkspaceSpec(name, tuple(circuits)))
    return tuple(result)


def _timed_pipeline(raw: Any, where: str, default: TimedPipelineSpec) -> TimedPipelineSpec:
    if raw is None:
        return default
    data = _mapping(raw, where)
    _only(data, where, ("name", "duration_s", "result"))
    name = _text(data.get("name", default.name), f"{where}.name", pattern=_NAME)
    durations = tuple(
        _number(value, f"{where}.duration_s[{i}]", minimum=0)
        for i, value in enumerate(
            _list(data.get("duration_s", list(default.durations_s)), f"{where}.duration_s")
        )
    )
    results = tuple(
        _choice(value, f"{where}.result[{i}]", RUN_RESULTS)
        for i, value in enumerate(
            _list(data.get("result", list(default.results)), f"{where}.result")
        )
    )
    return TimedPipelineSpec(name, durations, results)


def _pipelines(raw: Any) -> PipelinesSpec:
    defaults = PipelinesSpec()
    if raw is None:
        return defaults
    data = _mapping(raw, "pipelines")
    _only(data, "pipelines", ("training", "deployment", "rollback"))
    training = defaults.training
    if data.get("training") is not None:
        where = "pipelines.training"
        section = _mapping(data["training"], where)
        _only(section, where, ("name", "circuits_parameter", "submit_after_s", "finish_after_s"))
        training = TrainingPipelineSpec(
            name=_text(section.get("name", training.name), f"{where}.name", pattern=_NAME),
            circuits_parameter=_text(
                section.get("circuits_parameter", training.circuits_parameter),
                f"{where}.circuits_parameter",
            ),
            submit_after_s=_number(
                section.get("submit_after_s", 0.0), f"{where}.submit_after_s", minimum=0
            ),
            finish_after_s=_number(
                section.get("finish_after_s", 0.0), f"{where}.finish_after_s", minimum=0
            ),
        )
    spec = PipelinesSpec(
        training=training,
        deployment=_timed_pipeline(
            data.get("deployment"), "pipelines.deployment", defaults.deployment
        ),
        rollback=_timed_pipeline(data.get("rollback"), "pipelines.rollback", defaults.rollback),
    )
    lowered = [name.lower() for name in spec.names]
    if len(set(lowered)) != len(lowered):
        raise ScenarioError("pipelines", "training, deployment and rollback need distinct names")
    return spec


def approval_from_dict(raw: Any, where: str, pipelines: PipelinesSpec) -> ApprovalSpec:
    """A pending approval; also parses approvals posted to the control API."""
    data = _mapping(raw, where or "approval")
    _only(data, where, ("pipeline", "stage", "environment", "after_s", "approvers", "instructions"))
    pipeline = _text(data.get("pipeline", pipelines.deployment.name), _join(where, "pipeline"))
    known = {name.lower(): name for name in pipelines.names}
    if pipeline.lower() not in known:
        raise ScenarioError(
            _join(where, "pipeline"),
            f"unknown pipeline {pipeline!r} (known: {', '.join(pipelines.names)})",
        )
    environment = _text(_required(data, where, "environment"), _join(where, "environment"))
    stage = _text(data.get("stage", environment), _join(where, "stage"))
    approvers = tuple(
        _text(value, f"{_join(where, 'approvers')}[{i}]")
        for i, value in enumerate(
            _list(data.get("approvers", ["Release Approvers"]), _join(where, "approvers"))
        )
    )
    instructions = data.get("instructions", f"Approve deployment to {environment}")
    if not isinstance(instructions, str):
        raise ScenarioError(
            _join(where, "instructions"), f"expected text, got {_kind(instructions)}"
        )
    return ApprovalSpec(
        pipeline=known[pipeline.lower()],
        stage=stage,
        environment=environment,
        after_s=_number(data.get("after_s", 0.0), _join(where, "after_s"), minimum=0),
        approvers=approvers,
        instructions=instructions,
    )


def _variable_groups(raw: Any) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    data = _mapping(raw, "variable_groups")
    groups: dict[str, dict[str, str]] = {}
    for group, values in data.items():
        where = f"variable_groups.{group}"
        variables: dict[str, str] = {}
        for key, value in _mapping(values or {}, where).items():
            if isinstance(value, bool):
                variables[key] = "true" if value else "false"  # as Azure DevOps spells them
            elif value is None:
                variables[key] = ""
            elif isinstance(value, str | int | float):
                variables[key] = str(value)
            else:
                raise ScenarioError(
                    f"{where}.{key}", f"expected a single value, got {_kind(value)}"
                )
        groups[group] = variables
    return groups


_SCENARIO_FIELDS = (
    "name",
    "description",
    "start",
    "subscription_id",
    "resource_group",
    "experiment",
    "workspaces",
    "jobs",
    "pipelines",
    "approvals",
    "variable_groups",
    "endpoints",
)


def _traffic(raw: Any, where: str) -> tuple[TrafficSpec, ...]:
    phases: list[TrafficSpec] = []
    items = _list(raw, where)
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        data = _mapping(item, here)
        _only(data, here, ("minutes", "requests_per_minute", "error_percent", "latency_p95_ms"))
        minutes = data.get("minutes")
        if minutes is not None:
            minutes = _number(minutes, f"{here}.minutes", minimum=0)
            if minutes <= 0:
                raise ScenarioError(f"{here}.minutes", "must be positive (or left out: for ever)")
        elif i < len(items) - 1:
            raise ScenarioError(f"{here}.minutes", "only the last phase may last for ever")
        error = _number(data.get("error_percent", 0.5), f"{here}.error_percent", minimum=0)
        if error > 99:
            raise ScenarioError(f"{here}.error_percent", "must be at most 99")
        phases.append(
            TrafficSpec(
                minutes=minutes,
                requests_per_minute=_number(
                    data.get("requests_per_minute", 120.0),
                    f"{here}.requests_per_minute",
                    minimum=0,
                ),
                error_percent=error,
                latency_p95_ms=_number(
                    data.get("latency_p95_ms", 180.0), f"{here}.latency_p95_ms", minimum=0
                ),
            )
        )
    return tuple(phases)


def endpoint_from_dict(raw: Any, where: str, workspaces: Sequence[WorkspaceSpec]) -> EndpointSpec:
    data = _mapping(raw, where)
    _only(
        data,
        where,
        ("environment", "workspace", "name", "deployment", "deploy_after_s", "traffic"),
    )
    known = {ws.name.lower(): ws.name for ws in workspaces}
    workspace = _text(data.get("workspace", workspaces[0].name), _join(where, "workspace"))
    if workspace.lower() not in known:
        raise ScenarioError(
            _join(where, "workspace"),
            f"unknown workspace {workspace!r} (known: {', '.join(known.values())})",
        )
    after = data.get("deploy_after_s")
    traffic = data.get("traffic")
    return EndpointSpec(
        environment=_text(
            _required(data, where, "environment"), _join(where, "environment"), pattern=_NAME
        ).lower(),
        workspace=known[workspace.lower()],
        name=_text(_required(data, where, "name"), _join(where, "name"), pattern=_NAME),
        deployment=_text(data.get("deployment", "blue"), _join(where, "deployment"), pattern=_NAME),
        deploy_after_s=None
        if after is None
        else _number(after, _join(where, "deploy_after_s"), minimum=0),
        traffic=HEALTHY_TRAFFIC if traffic is None else _traffic(traffic, _join(where, "traffic")),
    )


def _endpoints(raw: Any, workspaces: Sequence[WorkspaceSpec]) -> tuple[EndpointSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ScenarioError("endpoints", "expected a list")
    endpoints: list[EndpointSpec] = []
    for i, item in enumerate(raw):
        spec = endpoint_from_dict(item, f"endpoints[{i}]", workspaces)
        if any((e.workspace, e.name) == (spec.workspace, spec.name) for e in endpoints):
            raise ScenarioError(f"endpoints[{i}].name", f"{spec.name} is listed twice")
        endpoints.append(spec)
    return tuple(endpoints)


def scenario_from_dict(raw: Any) -> Scenario:
    """Build and validate a scenario from plain data (what `yaml.safe_load` returns)."""
    data = _mapping(raw, "scenario")
    _only(data, "", _SCENARIO_FIELDS)
    workspaces = _workspaces(data.get("workspaces"))
    jobs: list[JobPlan] = []
    known_circuits = {c for ws in workspaces for c in ws.circuits}
    jobs_raw = data.get("jobs") or []
    if not isinstance(jobs_raw, list):
        raise ScenarioError("jobs", "expected a list")
    for i, item in enumerate(jobs_raw):
        where = f"jobs[{i}]"
        plan = job_plan_from_dict(item, where)
        if plan.circuit not in known_circuits:
            raise ScenarioError(
                f"{where}.circuit", f"{plan.circuit} is not a circuit of any workspace"
            )
        if any(other.circuit == plan.circuit for other in jobs):
            raise ScenarioError(f"{where}.circuit", f"{plan.circuit} already has a plan")
        jobs.append(plan)
    pipelines = _pipelines(data.get("pipelines"))
    approvals_raw = data.get("approvals") or []
    if not isinstance(approvals_raw, list):
        raise ScenarioError("approvals", "expected a list")
    approvals = tuple(
        approval_from_dict(item, f"approvals[{i}]", pipelines)
        for i, item in enumerate(approvals_raw)
    )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description", f"expected text, got {_kind(description)}")
    return Scenario(
        name=_text(data.get("name", "scenario"), "name"),
        description=description.strip(),
        start=_start(data.get("start"), "start"),
        subscription_id=_text(
            data.get("subscription_id", DEFAULT_SUBSCRIPTION_ID), "subscription_id"
        ),
        resource_group=_text(
            data.get("resource_group", DEFAULT_RESOURCE_GROUP), "resource_group", pattern=_NAME
        ),
        experiment=_text(data.get("experiment", DEFAULT_EXPERIMENT), "experiment"),
        workspaces=workspaces,
        jobs=tuple(jobs),
        pipelines=pipelines,
        approvals=approvals,
        variable_groups=_variable_groups(data.get("variable_groups")),
        endpoints=_endpoints(data.get("endpoints"), workspaces),
    )


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    """Parse scenario YAML; syntax errors are reported as a `ScenarioError` on `source`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, f"not valid YAML: {exc}") from None
    if data is None:
        raise ScenarioError(source, "is empty")
    return scenario_from_dict(data)


def load_scenario(path: str | Path = DEFAULT_SCENARIO_PATH) -> Scenario:
    """Read and parse a scenario file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(file), f"cannot be read: {exc.strerror or exc}") from None
    return parse_scenario(text, source=str(file))
