"""POST /api/hooks/devops: Azure DevOps service hooks become mlbot events.

Azure DevOps tells us about deployments and approvals the moment they happen, so
subscribers see "approval required" while the stage is still waiting rather than at the
next poll. Five service hook events are understood:

- `ms.vss-pipelines.run-state-changed-event` and `build.complete`: a whole run;
- `ms.vss-pipelines.stage-state-changed-event`: one stage of a run;
- `ms.vss-pipelinechecks-events.approval-pending` / `approval-completed`: a stage check.

Payloads are read defensively. The documented approval samples carry `pipeline`,
`stage`, `run` and `resource` as null; then the run link and environment are recovered
from the human-readable `message`, and the card says less rather than nothing. A Web
Hooks subscription may send "Resource details: Minimal" (ids and links only) or "None"
(no resource): such a delivery is accepted (a refusal would put the subscription on
probation), marked `partial`, and completed from Azure DevOps before it is classified
(`service.devops_hook_details`), with `with_run_details` here re-reading what it is.

Which runs count as deployments (see `is_deployment_stage` / `is_deployment_pipeline`):

- a *stage* is a deployment when its name (or display name) starts with `Deploy`,
  `Release`, `Rollout` or `Rollback` (`Deploy_Prod`, `DeployStaging`, `deploy-to-prod`);
  its environment is read from the rest of the name (`Deploy_Prod` -> `prod`);
- a *run* (run events and `build.complete`) is a deployment when its pipeline's name
  contains `deploy` or `rollback` (`deployment-pipeline`, `rollback-pipeline`).

Stage events of other stages (Build, Test, ...) and runs of other pipelines (training) are
parsed but not announced: the training engine already reports training from Azure ML.
Subscribe either to stage events (one card per environment) or to run events (one card
per run) for a deployment pipeline; `build.complete` and the run event of the same run
share an event key, so subscribing to both still gives one card.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from domain.events import REGISTRY, EventKind, Source
from service.hook_auth import HookGuard
from service.hook_verification import HookVerifier, Verdict
from store.monitoring import MonitoringStore, NewEvent, Observation

__all__ = [
    "APPROVAL_COMPLETED",
    "APPROVAL_PENDING",
    "BUILD_COMPLETE",
    "KNOWN_EVENT_TYPES",
    "NOTIFIED_KINDS",
    "RUN_STATE_CHANGED",
    "STAGE_STATE_CHANGED",
    "DevOpsEventKind",
    "DevOpsHook",
    "DevOpsHookEvent",
    "RunDetails",
    "environment_from_stage",
    "event_key",
    "is_deployment_pipeline",
    "is_deployment_stage",
    "notification_time",
    "parse_devops_hook",
    "store_recorder",
    "with_run_details",
]

log = logging.getLogger(__name__)

RUN_STATE_CHANGED = "ms.vss-pipelines.run-state-changed-event"
STAGE_STATE_CHANGED = "ms.vss-pipelines.stage-state-changed-event"
APPROVAL_PENDING = "ms.vss-pipelinechecks-events.approval-pending"
APPROVAL_COMPLETED = "ms.vss-pipelinechecks-events.approval-completed"
BUILD_COMPLETE = "build.complete"
KNOWN_EVENT_TYPES = frozenset(
    {RUN_STATE_CHANGED, STAGE_STATE_CHANGED, APPROVAL_PENDING, APPROVAL_COMPLETED, BUILD_COMPLETE}
)


# The hooks' kinds are the registry's (`domain.events`); announced ones reach subscribers.
DevOpsEventKind = EventKind
NOTIFIED_KINDS: frozenset[EventKind] = frozenset(
    spec.kind for spec in REGISTRY.values() if spec.source is Source.DEVOPS and spec.announced
)

# Results (runs, builds and timeline stages use slightly different words), lower case.
_SUCCEEDED = frozenset({"succeeded", "partiallysucceeded", "succeededwithissues"})
_NOT_RUN = frozenset({"skipped"})
# Build `status` values that are states; older `build.complete` samples put the result there.
_BUILD_STATES = frozenset(
    {"completed", "inprogress", "cancelling", "postponed", "notstarted", "none", "all"}
)
_STARTED_STATES = frozenset({"inprogress", "running"})

_DEPLOY_STAGE = re.compile(r"^(?:deploy|release|rollout|rollback)", re.IGNORECASE)
_DEPLOY_PIPELINE = re.compile(r"deploy|rollback", re.IGNORECASE)
_ROLLBACK = re.compile(r"rollback", re.IGNORECASE)
# `Deploy_Prod`, `deploy-to-prod`, `Release prod` (separators) or `DeployProd`, `DeployToProd`.
_STAGE_ENV_SEPARATED = re.compile(
    r"^(?:deploy|release|rollout|rollback)(?:[\s_\-]+to)?[\s_\-]+(?P<env>[A-Za-z0-9][\w\-]*)$",
    re.IGNORECASE,
)
_STAGE_ENV_CAMEL = re.compile(
    r"^(?:Deploy|Release|Rollout|Rollback|DEPLOY|RELEASE|ROLLOUT|ROLLBACK)(?:To|TO)?"
    r"(?P<env>[A-Z][A-Za-z0-9]*)$"
)
# Stage names that are environments on their own (`Prod`, `Staging`).
_ENVIRONMENT_WORDS = frozenset(
    {"prod", "production", "preprod", "staging", "stage", "uat", "qa", "test", "dev"}
)
_MESSAGE_ENVIRONMENT = re.compile(r"\bto environment\s+(?P<env>[^\s<>\[\]()]+?)\.?\s*$")
_URL = re.compile(r"https://[^\s()<>\"'\[\]]+")
_RUN_URL = re.compile(
    r"https://[^\s()<>\"'\[\]]*/_build/results\?buildId=(?P<id>\d+)[^\s()<>\"'\[\]]*"
)
_PIPELINE_URL = re.compile(r"/_apis/pipelines/(?P<id>\d+)(?:[/?#]|$)", re.IGNORECASE)
_BUILD_REST_URL = re.compile(
    r"^(?P<base>https://[^\s?#]+?)/_apis/build/builds/(?P<id>\d+)/?(?:[?#].*)?$", re.IGNORECASE
)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_MAX_TEXT = 2000  # instructions, comments: enough to read, bounded in the event row
_MAX_KEY_PART = 100  # event keys are at most 512 characters
_SINGLE_STAGE = "__default"  # the one stage of a pipeline without stages: not a real name


@dataclass(frozen=True, slots=True)
class DevOpsHookEvent:
    """What one service hook said, in mlbot's words. Unknown values are None."""

    event_type: str
    kind: DevOpsEventKind
    event_id: str | None = None  # the notification's `id`: the same on a redelivery
    pipeline: str | None = None
    pipeline_id: int | None = None
    run_id: int | None = None
    run_name: str | None = None
    stage: str | None = None
    environment: str | None = None
    state: str | None = None  # the run's or stage's state (`completed`, `inProgress`)
    result: str | None = None  # `succeeded`, `failed`, `canceled`, ...
    finished_at: str | None = None  # ISO 8601 as sent
    web_url: str | None = None  # the run's page in Azure DevOps (https only)
    requested_for: str | None = None
    rollback: bool = False  # a rollback deployment (the previous model back in place)
    approval_id: str | None = None
    approval_status: str | None = None
    approvers: tuple[str, ...] = ()
    min_approvers: int | None = None
    instructions: str | None = None
    decided_by: str | None = None
    comment: str | None = None
    message: str | None = None  # Azure DevOps' own one-line summary
    # Sent with "Resource details: Minimal/None": the run's or approval's state is missing.
    partial: bool = False

    @property
    def notifies(self) -> bool:
        return self.kind in NOTIFIED_KINDS

    def payload(self) -> dict[str, Any]:
        """The stored event payload (JSON): the fields, with the kind as plain text."""
        values = asdict(self)
        values.pop("partial")  # how the delivery came, not what happened
        values["kind"] = self.kind.value
        values["approvers"] = list(self.approvers)
        return values


# --- reading JSON defensively --------------------------------------------------------


def _obj(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _str(value: object, limit: int = 400) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _path(value: object, *keys: str) -> object:
    for key in keys:
        found = _obj(value)
        if found is None:
            return None
        value = found.get(key)
    return value


def _https(value: object) -> str | None:
    text = _str(value, 2000)
    return text if text is not None and text.lower().startswith("https://") else None


def _identity(value: object) -> str | None:
    """A person as people know them: display name, else the account name; never a GUID."""
    return _str(_path(value, "displayName")) or _str(_path(value, "uniqueName"))


# --- classification --------------------------------------------------------------------


def is_deployment_stage(name: str | None) -> bool:
    return bool(name) and _DEPLOY_STAGE.match(name or "") is not None


def is_deployment_pipeline(name: str | None) -> bool:
    return bool(name) and _DEPLOY_PIPELINE.search(name or "") is not None


def environment_from_stage(name: str | None) -> str | None:
    """`Deploy_Prod` -> `prod`, `DeployToStaging` -> `staging`, `Prod` -> `prod`; else None."""
    if not name:
        return None
    name = name.strip()
    match = _STAGE_ENV_SEPARATED.match(name) or _STAGE_ENV_CAMEL.match(name)
    if match is not None:
        return match["env"].lower()
    if name.lower() in _ENVIRONMENT_WORDS:
        return name.lower()
    return None


def _deployment_kind(state: str | None, result: str | None) -> DevOpsEventKind:
    state_l = (state or "").lower()
    result_l = (result or "").lower()
    if state_l == "completed":
        if result_l in _SUCCEEDED:
            return DevOpsEventKind.DEPLOYMENT_COMPLETED
        if result_l in _NOT_RUN:
            return DevOpsEventKind.DEPLOYMENT_STATE_CHANGED
        # failed, canceled, rejected, abandoned, and anything unexpected: nothing new is
        # known to be live, which people must hear about.
        return DevOpsEventKind.DEPLOYMENT_FAILED
    if state_l in _STARTED_STATES:
        return DevOpsEventKind.DEPLOYMENT_STARTED
    return DevOpsEventKind.DEPLOYMENT_STATE_CHANGED


# --- the message: where the documented approval samples hide the run ------------------


def _message_texts(body: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for container in ("message", "detailedMessage"):
        for field in ("markdown", "html", "text"):
            value = _str(_path(body, container, field), 4000)
            if value is not None:
                texts.append(html.unescape(value) if field == "html" else value)
    return texts


def _message_run(body: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """The run id and results page linked from the message, when the resource has none."""
    for text in _message_texts(body):
        match = _RUN_URL.search(text)
        if match is not None:
            return int(match["id"]), match.group(0)
    return None, None


_BUILD_URI = re.compile(
    r"builduri=[a-z-]+(?:%3a|:)(?:%2f|/){3}Build(?:%2f|/)Build(?:%2f|/)(?P<id>\d+)", re.I
)


def _message_build_id(body: Mapping[str, Any]) -> int | None:
    """`build.complete` messages link `build.aspx?…&builduri=vstfs:///Build/Build/{id}`."""
    run_id, _ = _message_run(body)
    if run_id is not None:
        return run_id
    for text in _message_texts(body):
        match = _BUILD_URI.search(text)
        if match is not None:
            return int(match["id"])
    return None


def _message_url(body: Mapping[str, Any]) -> str | None:
    for text in _message_texts(body):
        match = _URL.search(text)
        if match is not None:
            return match.group(0)
    return None


def _message_environment(body: Mapping[str, Any]) -> str | None:
    text = _str(_path(body, "message", "text"))
    match = _MESSAGE_ENVIRONMENT.search(text or "")
    return match["env"] if match else None


# --- one reader per event type ---------------------------------------------------------


def _common(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_type": str(body["eventType"]),
        "event_id": _str(body.get("id"), 100),
        "message": _str(_path(body, "message", "text"), 500),
    }


def _resource(body: Mapping[str, Any]) -> Mapping[str, Any]:
    # "Resource details to send: None" leaves it out: the message still names the run.
    return _obj(body.get("resource")) or {}


def _pipeline_of(*candidates: object) -> tuple[str | None, int | None]:
    for candidate in candidates:
        pipeline = _obj(candidate)
        if pipeline is not None and (_str(pipeline.get("name")) or _int(pipeline.get("id"))):
            return _str(pipeline.get("name")), _pipeline_id(pipeline)
    return None, None


def _pipeline_id(pipeline: Mapping[str, Any]) -> int | None:
    """The id in the pipeline's own REST URL (`…/_apis/Pipelines/{id}`), else its `id`.

    The published run-state sample gives its pipeline `"id": 11` (the run's id) while its
    url and links all name pipeline 1; the run is looked up by pipeline id, so the url,
    which Azure DevOps builds from the pipeline itself, is the one trusted.
    """
    match = _PIPELINE_URL.search(_str(pipeline.get("url"), 2000) or "")
    return int(match["id"]) if match else _int(pipeline.get("id"))


def _build_web_url(resource: Mapping[str, Any], build_id: int | None) -> str | None:
    """A build's results page from its REST URL (`…/_apis/build/Builds/{id}`)."""
    url = _https(resource.get("url"))
    match = _BUILD_REST_URL.match(url or "")
    if match is None or build_id is None or int(match["id"]) != build_id:
        return None
    return f"{match['base']}/_build/results?buildId={build_id}"


def _run_state(body: Mapping[str, Any]) -> DevOpsHookEvent:
    resource = _resource(body)
    run = _obj(resource.get("run")) or {}
    message_run_id, message_run_url = _message_run(body)
    run_id = _int(run.get("id")) or message_run_id
    state = _str(run.get("state"), 40)
    result = _str(run.get("result"), 40)
    pipeline, pipeline_id = _pipeline_of(resource.get("pipeline"), run.get("pipeline"))
    return _run_kind(
        DevOpsHookEvent(
            **_common(body),
            kind=DevOpsEventKind.PIPELINE_RUN_STATE_CHANGED,
            pipeline=pipeline,
            pipeline_id=pipeline_id,
            run_id=run_id,
            run_name=_str(run.get("name"), 200),
            state=state,
            result=result,
            finished_at=_str(run.get("finishedDate"), 40),
            web_url=_https(_path(run, "_links", "web", "href"))
            or message_run_url
            or _message_url(body),
            partial=run_id is None or state is None or pipeline is None,
        )
    )


def _run_kind(event: DevOpsHookEvent) -> DevOpsHookEvent:
    """A whole run's kind and rollback flag, from its pipeline, state and result."""
    deploying = is_deployment_pipeline(event.pipeline)
    state = (event.state or "").lower()
    unknown = event.run_id is None or event.state is None
    if unknown or (state == "completed" and event.result is None):
        kind = DevOpsEventKind.PIPELINE_RUN_STATE_CHANGED  # not known yet: not announced
    elif deploying:
        kind = _deployment_kind(event.state, event.result)
    elif state == "completed":
        kind = DevOpsEventKind.PIPELINE_RUN_COMPLETED
    else:
        kind = DevOpsEventKind.PIPELINE_RUN_STATE_CHANGED
    rollback = deploying and _ROLLBACK.search(event.pipeline or "") is not None
    return replace(event, kind=kind, rollback=rollback)


@dataclass(frozen=True, slots=True)
class RunDetails:
    """A run as Azure DevOps reports it (Builds - Get), to complete a partial hook."""

    pipeline: str
    pipeline_id: int | None
    run_name: str
    state: str
    result: str | None
    finished_at: str | None
    web_url: str | None


def with_run_details(event: DevOpsHookEvent, run: RunDetails) -> DevOpsHookEvent:
    """A partial run or build event completed from Azure DevOps, and classified again."""
    if event.event_type not in (RUN_STATE_CHANGED, BUILD_COMPLETE):
        return event
    completed = replace(
        event,
        pipeline=event.pipeline or run.pipeline,
        pipeline_id=event.pipeline_id if event.pipeline_id is not None else run.pipeline_id,
        run_name=event.run_name or run.run_name,
        state=event.state or run.state,
        result=event.result or run.result,
        finished_at=event.finished_at or run.finished_at,
        web_url=event.web_url or _https(run.web_url),
        partial=False,
    )
    return _run_kind(completed)


def _stage_state(body: Mapping[str, Any]) -> DevOpsHookEvent:
    resource = _resource(body)
    stage = _obj(resource.get("stage")) or {}
    # Without its stage (Minimal/None) the event is kept but not announced: the run's
    # own events say how the deployment ended.
    state = _str(stage.get("state"), 40)
    run = _obj(resource.get("run")) or {}
    name = _str(stage.get("name"), 200)
    display = _str(stage.get("displayName"), 200)
    stage_name = display or (name if name != _SINGLE_STAGE else None)
    result = _str(stage.get("result"), 40)
    pipeline, pipeline_id = _pipeline_of(resource.get("pipeline"), run.get("pipeline"))
    deploying = (is_deployment_stage(name) or is_deployment_stage(display)) and state is not None
    kind = _deployment_kind(state, result) if deploying else DevOpsEventKind.STAGE_STATE_CHANGED
    return DevOpsHookEvent(
        **_common(body),
        kind=kind,
        pipeline=pipeline,
        pipeline_id=pipeline_id,
        run_id=_int(run.get("id")) or _message_run(body)[0],
        partial=state is None,
        run_name=_str(run.get("name"), 200),
        stage=stage_name,
        environment=environment_from_stage(name) or environment_from_stage(display),
        state=state,
        result=result,
        web_url=(
            _https(_path(stage, "_links", "web", "href"))
            or _https(_path(run, "_links", "web", "href"))
            or _message_url(body)
        ),
        rollback=deploying and _ROLLBACK.search(f"{name} {display}") is not None,
    )


def _build_complete(body: Mapping[str, Any]) -> DevOpsHookEvent:
    resource = _resource(body)
    build_id = _int(resource.get("id")) or _message_build_id(body)
    status = _str(resource.get("status"), 40)
    result = _str(resource.get("result"), 40)
    # Older payloads put the result in `status` ("succeeded"); newer ones say "completed".
    if result is None and status is not None and status.lower() not in _BUILD_STATES:
        result = status
    pipeline, pipeline_id = _pipeline_of(resource.get("definition"))
    requests = resource.get("requests")
    first_request = requests[0] if isinstance(requests, list) and requests else None
    return _run_kind(
        DevOpsHookEvent(
            **_common(body),
            kind=DevOpsEventKind.PIPELINE_RUN_STATE_CHANGED,
            pipeline=pipeline,
            pipeline_id=pipeline_id,
            run_id=build_id,  # a build id is the pipeline run id
            run_name=_str(resource.get("buildNumber"), 200),
            state="completed",
            result=result,
            finished_at=_str(resource.get("finishTime"), 40),
            # The published sample's message links another build than its resource: the
            # page is built from the resource's own URL before the message is read.
            web_url=_https(_path(resource, "_links", "web", "href"))
            or _build_web_url(resource, build_id)
            or _message_url(body),
            requested_for=_identity(resource.get("requestedFor"))
            or _identity(_path(first_request, "requestedFor")),
            partial=build_id is None or result is None or pipeline is None,
        )
    )


def _approval(body: Mapping[str, Any], kind: DevOpsEventKind) -> DevOpsHookEvent:
    resource = _resource(body)
    approval = _obj(resource.get("approval")) or {}
    # Minimal/None may leave the approval out: it is then looked up from the run.
    approval_id = _str(approval.get("id"), 100)
    status = _str(approval.get("status"), 40)
    if status is None and kind is DevOpsEventKind.APPROVAL_REQUIRED:
        status = "pending"
    steps = [step for step in approval.get("steps") or [] if isinstance(step, Mapping)]
    approvers = tuple(
        dict.fromkeys(name for step in steps if (name := _identity(step.get("assignedApprover"))))
    )
    decided = [s for s in steps if (_str(s.get("status")) or "").lower() not in ("", "pending")]
    decision = decided[-1] if decided else None
    decided_by = None
    comment = None
    if kind is DevOpsEventKind.APPROVAL_DECIDED and decision is not None:
        decided_by = _identity(decision.get("actualApprover")) or _identity(
            decision.get("assignedApprover")
        )
        comment = _str(decision.get("comment"), _MAX_TEXT)
    # pipeline, stage, run and resource are null in the documented samples.
    run = _obj(resource.get("run")) or {}
    stage = _obj(resource.get("stage")) or {}
    checked = _obj(resource.get("resource")) or {}
    pipeline, pipeline_id = _pipeline_of(resource.get("pipeline"), run.get("pipeline"))
    stage_name = (
        _str(resource.get("stageName"), 200)
        or _str(stage.get("displayName"), 200)
        or _str(stage.get("name"), 200)
    )
    if stage_name == _SINGLE_STAGE:
        stage_name = None
    environment = None
    if (_str(checked.get("type")) or "").lower() == "environment":
        environment = _str(checked.get("name"), 100)
    environment = environment or environment_from_stage(stage_name) or _message_environment(body)
    message_run_id, message_run_url = _message_run(body)
    return DevOpsHookEvent(
        **_common(body),
        kind=kind,
        pipeline=pipeline,
        pipeline_id=pipeline_id,
        run_id=_int(run.get("id")) or message_run_id,
        run_name=_str(run.get("name"), 200),
        stage=stage_name,
        environment=environment,
        web_url=_https(_path(run, "_links", "web", "href")) or message_run_url,
        approval_id=approval_id,
        approval_status=status,
        approvers=approvers,
        min_approvers=_int(approval.get("minRequiredApprovers")),
        instructions=_str(approval.get("instructions"), _MAX_TEXT),
        decided_by=decided_by,
        comment=comment,
        partial=approval_id is None or status is None,
    )


def parse_devops_hook(body: Any) -> DevOpsHookEvent | None:
    """Read one service hook delivery; None for an event type mlbot does not handle.

    Raises ValueError naming what is malformed: not an object, no `eventType`, or a
    known event type without the fields that identify its run or approval.
    """
    if not isinstance(body, Mapping):
        raise ValueError("the body is not a JSON object")
    event_type = body.get("eventType")
    if not isinstance(event_type, str) or not event_type.strip():
        raise ValueError("the body has no eventType")
    if event_type == RUN_STATE_CHANGED:
        return _run_state(body)
    if event_type == STAGE_STATE_CHANGED:
        return _stage_state(body)
    if event_type == BUILD_COMPLETE:
        return _build_complete(body)
    if event_type == APPROVAL_PENDING:
        return _approval(body, DevOpsEventKind.APPROVAL_REQUIRED)
    if event_type == APPROVAL_COMPLETED:
        return _approval(body, DevOpsEventKind.APPROVAL_DECIDED)
    return None


# --- event keys: one happening, one event ----------------------------------------------


def _part(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("/", "_")[:_MAX_KEY_PART].lower()


def _second(value: str | None) -> str | None:
    """A timestamp to the second in UTC, so two event types reporting one finish agree."""
    match = _TIMESTAMP.match(value or "")
    if value is None or match is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return match.group(0)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def event_key(event: DevOpsHookEvent) -> str:
    """The deterministic key under which the event is stored (unique in the events table).

    - an approval changes status once: `devops/approval/<id>/<status>`;
    - a run finishes once per attempt: `devops/run/<run>/<state>/<result>/<finished at>`,
      the same for `build.complete` and the run-state event of one run;
    - a stage: `devops/run/<run>/stage/<stage>/<state>/<result>/<notification id>`.

    A redelivered notification (Azure DevOps retries failed deliveries) gets the same key.
    """
    if event.approval_id is not None:
        return f"devops/approval/{_part(event.approval_id)}/{_part(event.approval_status)}"
    when = _second(event.finished_at) or _part(event.event_id)
    run = f"devops/run/{_part(event.run_id)}"
    outcome = f"{_part(event.state)}/{_part(event.result)}"
    if event.event_type == STAGE_STATE_CHANGED:
        stage = event.stage or "default"
        return f"{run}/stage/{_part(stage)}/{outcome}/{_part(event.event_id)}"
    return f"{run}/{outcome}/{when}"


# --- recording -------------------------------------------------------------------------


Record = Callable[[NewEvent], Awaitable[bool]]
# Fills what a Minimal/None delivery left out, from Azure DevOps (never raises).
Complete = Callable[[DevOpsHookEvent], Awaitable[DevOpsHookEvent]]


def store_recorder(
    store: MonitoringStore,
    clock: Callable[[], datetime],
    after: Callable[[], None] | None = None,
) -> Record:
    """Record through the monitoring store; True when new. `after` runs for new events
    (the scheduler's `poke`, so the dispatcher delivers now, not at the next due time)."""

    async def record(event: NewEvent) -> bool:
        try:
            created = await store.apply(Observation(clock(), events=[event]))
        except IntegrityError:
            # Two deliveries of one event raced past the existence check: one was stored.
            return False
        if created and after is not None:
            after()
        return bool(created)

    return record


def notification_time(body: Mapping[str, Any]) -> datetime | None:
    """When Azure DevOps raised the notification (`createdDate`), for the replay window."""
    raw = body.get("createdDate")
    try:
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


class DevOpsHook:
    """The route handler. Claims that act on production are first confirmed by `verifier`
    (`service.hook_verification`); `None` records events as they came, for callers that
    only parse and record (the composition root always passes one). `complete` fills in
    what a hook sent with Minimal or no resource details left out."""

    def __init__(
        self,
        guard: HookGuard,
        record: Record,
        *,
        verifier: HookVerifier | None,
        complete: Complete | None = None,
    ) -> None:
        self._guard = guard
        self._record = record
        self._verifier = verifier
        self._complete = complete

    async def post(self, request: web.Request) -> web.Response:
        refused = self._guard.refuse(request, basic_auth=True)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read())
            event = parse_devops_hook(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return web.json_response(
                {"error": f"not an Azure DevOps service hook: {exc}"}, status=400
            )
        if event is None:
            log.info("devops hook: ignored event type %.100s", body.get("eventType"))
            return web.json_response({"ignored": body["eventType"]})
        if event.partial and self._complete is not None:
            event = await self._complete(event)
        if not event.notifies:
            log.info(
                "devops hook: %s for run %s is not announced (%s)",
                event.event_type,
                event.run_id,
                event.kind.value,
            )
            return web.json_response({"ignored": event.event_type, "kind": event.kind.value})
        # Only what is recorded can act, so only that must be fresh.
        stale = self._guard.stale_response(notification_time(body))
        if stale is not None:
            log.warning("devops hook: %s refused, outside the replay window", event.event_type)
            return stale
        payload = event.payload() | {"at": self._guard.clock().isoformat()}
        if self._verifier is not None:
            verification = await self._verifier.verify(event.kind.value, payload)
            if verification.verdict is Verdict.UNAVAILABLE:
                return web.json_response({"error": verification.reason}, status=503)
            if verification.verdict is Verdict.REFUSED:
                log.warning(
                    "devops hook: %s for run %s not confirmed by Azure DevOps: %s",
                    event.kind.value,
                    event.run_id,
                    verification.reason,
                )
                return web.json_response(
                    {"error": f"not confirmed by Azure DevOps: {verification.reason}"},
                    status=422,
                )
            payload |= verification.updates
        new = await self._record(NewEvent(event_key(event), event.kind.value, payload))
        log.info(
            "devops hook: %s for run %s -> %s (%s)",
            event.event_type,
            event.run_id,
            event.kind.value,
            "recorded" if new else "already recorded",
        )
        return web.json_response({"recorded": event.kind.value, "new": new})
