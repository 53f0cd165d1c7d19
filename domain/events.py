"""Every kind of event mlbot records, in one registry.

An event is a fact the engine, a service hook or the deployment health watch recorded
(a training failed, an approval is waiting, a rollback was queued). Its `EventSpec` says
everything the rest of mlbot needs to know about the kind:

- the payload model: what the stored JSON holds, checked when the event is written and
  typed when it is read;
- what it means for delivery: which subscription receives it (none: recorded for the
  record, never announced), whether it belongs to a living card (a training session's
  card, or a pipeline run's), whether failures close together are grouped, whether it is
  also emailed, whether the Workflows webhook gets it.

Adding a kind is one entry in `REGISTRY` (and its card in `cards.events`); the notifiers,
the living cards, the email notifier, the subscriptions and the tests all read from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class EventKind(StrEnum):
    # Training jobs (the monitoring engine).
    TRAINING_STARTED = "training_started"
    TRAINING_COMPLETED = "training_completed"
    TRAINING_FAILED = "training_failed"
    TRAINING_CANCELED = "training_canceled"
    ATTEMPT_TIMED_OUT = "attempt_timed_out"
    MONITORING_TIMED_OUT = "monitoring_timed_out"
    LONG_RUNNING = "long_running"
    RETRY_QUEUED = "retry_queued"
    # Azure DevOps service hooks: announced.
    DEPLOYMENT_COMPLETED = "deployment_completed"
    DEPLOYMENT_FAILED = "deployment_failed"
    APPROVAL_REQUIRED = "approval_required"
    APPROVAL_DECIDED = "approval_decided"
    # Azure DevOps service hooks: understood, recorded, not announced (progress, and
    # pipelines that are not deployments).
    DEPLOYMENT_STARTED = "deployment_started"
    DEPLOYMENT_STATE_CHANGED = "deployment_state_changed"
    PIPELINE_RUN_COMPLETED = "pipeline_run_completed"
    PIPELINE_RUN_STATE_CHANGED = "pipeline_run_state_changed"
    STAGE_STATE_CHANGED = "stage_state_changed"
    # The deployment health watch.
    ROLLBACK_PENDING = "rollback_pending"
    ROLLBACK_QUEUED = "rollback_queued"
    ROLLBACK_DRY_RUN = "rollback_dry_run"
    ROLLBACK_CANCELLED = "rollback_cancelled"
    ROLLBACK_SKIPPED = "rollback_skipped"  # due while another rollback is in progress
    ROLLBACK_FAILED = "rollback_failed"  # Azure DevOps refused to queue it
    HEALTH_INCONCLUSIVE = "health_inconclusive"
    DEPLOYMENT_HEALTHY = "deployment_healthy"
    # Escalations: nobody acknowledged a failure, or decided an approval, in time.
    FAILURE_ESCALATED = "failure_escalated"
    APPROVAL_ESCALATED = "approval_escalated"
    # The daily digest a conversation asked for (`digest daily at 09:00`).
    DAILY_DIGEST = "daily_digest"


class SubscriptionKind(StrEnum):
    """What people subscribe to (`subscribe failed`): several event kinds map to one."""

    TRAINING_STARTED = "training_started"
    TRAINING_COMPLETED = "training_completed"
    TRAINING_FAILED = "training_failed"
    TRAINING_TIMED_OUT = "training_timed_out"
    LONG_RUNNING = "long_running"
    APPROVAL_REQUIRED = "approval_required"
    DEPLOYMENT_COMPLETED = "deployment_completed"
    DEPLOYMENT_FAILED = "deployment_failed"
    ROLLBACK = "rollback"


class Source(StrEnum):
    TRAINING = "training"  # the monitoring engine, from Azure ML
    DEVOPS = "devops"  # Azure DevOps service hooks
    HEALTH = "health"  # the deployment health watch, from Azure Monitor
    ESCALATION = "escalation"  # mlbot itself, when nobody acted in time
    DIGEST = "digest"  # mlbot itself, once a day for the conversations that asked


class LivingCard(StrEnum):
    """Which living card (one message kept current) an event belongs to, and how."""

    NONE = "none"  # posted as a card of its own
    SESSION = "session"  # changes the training session's card; nothing else is posted
    SESSION_DETAIL = "session_detail"  # changes the session's card and is replied under it
    RUN = "run"  # tells the story of one Azure DevOps pipeline run on its card


# --- payload models ------------------------------------------------------------------
# Lenient by design: every field has a default, unknown fields are kept (older rows,
# newer writers). What the models refuse is a field of the wrong type, which would
# otherwise surface as a broken card long after the write.


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    at: datetime | None = None  # when the change was seen


class JobEventPayload(EventPayload):
    """Training job events: which job, which attempt."""

    kind: str | None = None
    workspace: str | None = None
    job_name: str | None = None
    display_name: str | None = None
    circuit: str | None = None
    status: str | None = None  # the raw Azure ML status when the event was raised
    studio_url: str | None = None
    attempt: int = 1
    max_attempts: int = 1


class TrainingStartedPayload(JobEventPayload):
    started_at: datetime | None = None


class TrainingCompletedPayload(JobEventPayload):
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = None  # seconds; None when the start time is unknown


class TrainingFailedPayload(JobEventPayload):
    error_summary: str | None = None  # Azure ML's error message
    retries_exhausted: bool = False
    duration: float | None = None
    error_code: str | None = None  # e.g. UserError, SystemError
    error_category: str = "unknown"  # user | system | unknown
    log_name: str | None = None  # the log the tail comes from
    log_tail: tuple[str, ...] = ()  # its last lines, secrets masked
    details_unavailable: str | None = None  # why the details or log could not be read


class TrainingCanceledPayload(JobEventPayload):
    duration: float | None = None


class AttemptTimedOutPayload(JobEventPayload):
    running_for: float | None = None  # seconds
    timeout: float | None = None
    retries_exhausted: bool = False


class LongRunningPayload(JobEventPayload):
    reminder: int = 1
    running_for: float | None = None


class MonitoringTimedOutPayload(EventPayload):
    session: str | None = None
    title: str | None = None
    started_at: datetime | None = None
    waited: float | None = None
    unfinished: list[dict[str, Any]] = []


class RetryQueuedPayload(EventPayload):
    circuits: list[str] = []
    manualCircuits: str | None = None  # the training pipeline parameter's own name
    attempt: int | None = None
    next_attempts: dict[str, int] = {}
    max_attempts: int | None = None
    pipeline: str | None = None
    run_id: int | str | None = None
    run_url: str | None = None
    session: str | None = None


class DevOpsPayload(EventPayload):
    """What one Azure DevOps service hook said (`service.devops_hooks.DevOpsHookEvent`)."""

    event_type: str | None = None
    kind: str | None = None
    event_id: str | None = None
    pipeline: str | None = None
    pipeline_id: int | None = None
    run_id: int | None = None
    run_name: str | None = None
    stage: str | None = None
    environment: str | None = None
    state: str | None = None
    result: str | None = None
    finished_at: str | None = None
    web_url: str | None = None
    requested_for: str | None = None
    rollback: bool = False
    approval_id: str | None = None
    approval_status: str | None = None
    approvers: list[str] = []
    min_approvers: int | None = None
    instructions: str | None = None
    decided_by: str | None = None
    comment: str | None = None
    message: str | None = None


class HealthPayload(EventPayload):
    """The deployment health watch: which endpoint, and the evidence."""

    watch_key: str | None = None
    environment: str | None = None
    endpoint: str | None = None
    endpoint_resource_id: str | None = None
    deployment: str | None = None
    deployment_run_id: str | int | None = None
    started_at: datetime | None = None
    reason: str | None = None
    thresholds: dict[str, Any] | None = None
    points: list[Any] = []


class EscalationPayload(EventPayload):
    """What was left unhandled, for how long, and who is told now."""

    original_event_id: int | None = None
    original_kind: str | None = None
    level: int = 1
    waited: float | None = None  # seconds since the original was recorded
    summary: str | None = None  # the original's one-line summary
    workspace: str | None = None
    job_name: str | None = None
    circuit: str | None = None
    attempt: int | None = None
    approval_id: str | None = None
    environment: str | None = None
    pipeline: str | None = None
    run_id: int | str | None = None
    web_url: str | None = None
    studio_url: str | None = None


class DigestPayload(EventPayload):
    """One conversation's daily digest (`domain.digest.DigestFacts`, as JSON)."""

    conversation_id: str | None = None
    day: str | None = None  # the local date it covers, ISO
    zone: str | None = None
    circuits: list[dict[str, Any]] = []
    hidden_circuits: int = 0
    deployments: list[str] = []
    rollbacks: list[str] = []
    open_approvals: list[str] = []


@dataclass(frozen=True, slots=True)
class EventSpec:
    kind: EventKind
    source: Source
    payload: type[EventPayload]
    # The subscription that receives it; None: recorded, never announced.
    subscription: SubscriptionKind | None = None
    living: LivingCard = LivingCard.NONE
    grouped: bool = False  # failures of one session close together go out as one
    emailed: bool = False  # also mailed to the ML engineers (`mlEngineersEmail`)
    webhook: bool = False  # also posted to the Workflows webhook
    # Sent to the one conversation its payload names (`conversation_id`), not by
    # subscription: what a conversation asked for itself (its digest).
    addressed: bool = False

    @property
    def announced(self) -> bool:
        return self.subscription is not None or self.addressed


def _training(
    kind: EventKind,
    payload: type[EventPayload],
    subscription: SubscriptionKind,
    living: LivingCard,
    **meaning: bool,
) -> EventSpec:
    # "Started" is chatty: the webhook gets what the default subscription gets.
    webhook = subscription is not SubscriptionKind.TRAINING_STARTED
    return EventSpec(
        kind, Source.TRAINING, payload, subscription, living, webhook=webhook, **meaning
    )


def _devops(kind: EventKind, subscription: SubscriptionKind | None = None) -> EventSpec:
    announced = subscription is not None
    return EventSpec(
        kind,
        Source.DEVOPS,
        DevOpsPayload,
        subscription,
        LivingCard.RUN if announced else LivingCard.NONE,
        webhook=announced,
    )


def _health(kind: EventKind, subscription: SubscriptionKind) -> EventSpec:
    return EventSpec(kind, Source.HEALTH, HealthPayload, subscription, webhook=True)


_K, _S, _L = EventKind, SubscriptionKind, LivingCard
_SPECS: tuple[EventSpec, ...] = (
    _training(_K.TRAINING_STARTED, TrainingStartedPayload, _S.TRAINING_STARTED, _L.SESSION),
    _training(_K.TRAINING_COMPLETED, TrainingCompletedPayload, _S.TRAINING_COMPLETED, _L.SESSION),
    _training(
        _K.TRAINING_FAILED,
        TrainingFailedPayload,
        _S.TRAINING_FAILED,
        _L.SESSION_DETAIL,
        grouped=True,
    ),
    _training(
        _K.TRAINING_CANCELED,
        TrainingCanceledPayload,
        _S.TRAINING_FAILED,
        _L.SESSION_DETAIL,
        grouped=True,
    ),
    _training(
        _K.ATTEMPT_TIMED_OUT,
        AttemptTimedOutPayload,
        _S.TRAINING_FAILED,
        _L.SESSION_DETAIL,
        grouped=True,
    ),
    _training(
        _K.MONITORING_TIMED_OUT,
        MonitoringTimedOutPayload,
        _S.TRAINING_TIMED_OUT,
        _L.SESSION_DETAIL,
    ),
    _training(
        _K.LONG_RUNNING, LongRunningPayload, _S.LONG_RUNNING, _L.SESSION_DETAIL, emailed=True
    ),
    _training(_K.RETRY_QUEUED, RetryQueuedPayload, _S.TRAINING_FAILED, _L.SESSION_DETAIL),
    _devops(_K.DEPLOYMENT_COMPLETED, _S.DEPLOYMENT_COMPLETED),
    _devops(_K.DEPLOYMENT_FAILED, _S.DEPLOYMENT_FAILED),
    _devops(_K.APPROVAL_REQUIRED, _S.APPROVAL_REQUIRED),
    _devops(_K.APPROVAL_DECIDED, _S.APPROVAL_REQUIRED),
    _devops(_K.DEPLOYMENT_STARTED),
    _devops(_K.DEPLOYMENT_STATE_CHANGED),
    _devops(_K.PIPELINE_RUN_COMPLETED),
    _devops(_K.PIPELINE_RUN_STATE_CHANGED),
    _devops(_K.STAGE_STATE_CHANGED),
    _health(_K.ROLLBACK_PENDING, _S.ROLLBACK),
    _health(_K.ROLLBACK_QUEUED, _S.ROLLBACK),
    _health(_K.ROLLBACK_DRY_RUN, _S.ROLLBACK),
    _health(_K.ROLLBACK_CANCELLED, _S.ROLLBACK),
    _health(_K.ROLLBACK_SKIPPED, _S.ROLLBACK),
    _health(_K.ROLLBACK_FAILED, _S.ROLLBACK),
    _health(_K.HEALTH_INCONCLUSIVE, _S.DEPLOYMENT_FAILED),
    _health(_K.DEPLOYMENT_HEALTHY, _S.DEPLOYMENT_COMPLETED),
    # Cards of their own: a new message notifies, an update of an old one would not.
    EventSpec(
        _K.FAILURE_ESCALATED, Source.ESCALATION, EscalationPayload, _S.TRAINING_FAILED, webhook=True
    ),
    EventSpec(_K.DAILY_DIGEST, Source.DIGEST, DigestPayload, addressed=True),
    EventSpec(
        _K.APPROVAL_ESCALATED,
        Source.ESCALATION,
        EscalationPayload,
        _S.APPROVAL_REQUIRED,
        webhook=True,
    ),
)
REGISTRY: Mapping[EventKind, EventSpec] = MappingProxyType({s.kind: s for s in _SPECS})


class EventPayloadError(ValueError):
    """A payload that does not fit its kind's model (or a kind nobody registered)."""


def spec_of(kind: str) -> EventSpec | None:
    """The registered spec of `kind`, or None for a kind mlbot does not know."""
    try:
        return REGISTRY.get(EventKind(kind))
    except ValueError:
        return None


def checked_payload(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """`payload` as it will be stored, after checking it against its kind's model.

    The stored JSON is the caller's own (not a re-serialisation), so a check never
    changes what older readers see.
    """
    spec = spec_of(kind)
    if spec is None:
        raise EventPayloadError(f"unknown event kind {kind!r}")
    try:
        spec.payload.model_validate(payload)
    except ValidationError as exc:
        raise EventPayloadError(f"{kind} payload does not fit its model: {exc}") from None
    return dict(payload)


def read_payload(kind: str, payload: Mapping[str, Any]) -> EventPayload:
    """The stored payload as its kind's model (a generic model for an unknown kind).

    Reading never fails: a row written by an older version, with a field of the wrong
    type, is read with that field left at its default.
    """
    spec = spec_of(kind)
    model = spec.payload if spec is not None else EventPayload
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        return model.model_validate({k: v for k, v in payload.items() if k not in broken})


def kinds_where(**meaning: object) -> frozenset[str]:
    """The kinds whose spec has every given attribute value, e.g. `kinds_where(emailed=True)`."""
    return frozenset(
        spec.kind.value
        for spec in REGISTRY.values()
        if all(getattr(spec, name) == value for name, value in meaning.items())
    )


def subscription_of(kind: str) -> SubscriptionKind | None:
    spec = spec_of(kind)
    return spec.subscription if spec is not None else None


ANNOUNCED_KINDS: frozenset[str] = frozenset(
    spec.kind.value for spec in REGISTRY.values() if spec.announced
)
