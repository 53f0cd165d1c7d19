"""A training job's life as people hear about it: one event per meaningful change.

Each check of a job is folded into the stored `Observation` of that job by `observe`, which
returns the new observation, the events to notify and whether the engine must cancel the job.
The rules, chosen so that a noisy status feed never turns into noisy notifications:

- UNKNOWN (`NotResponding`, `Unknown`, anything unrecognised) is "no news": it never causes an
  event on its own and the observation keeps the last known state, so Running -> Unknown ->
  Running says nothing, while Waiting -> Unknown -> Running announces the start once.
- Each kind of event happens at most once per attempt: a job that goes Running -> Queued ->
  Running (preempted, paused) is announced as started once.
- The first observation of a job counts like any other: already running gives "started",
  already finished gives exactly one terminal event and no "started" after the fact.
- Terminal states (Completed, Failed, Canceled) are final: once one is recorded, later
  reports of the same job change nothing.
- Time still passes while a job is UNKNOWN: the per-attempt timeout and long-running reminders
  follow the time since the job started, whatever the latest status.
- An attempt that runs for the whole per-attempt timeout is reported once as timed out, counts
  as a failed attempt, and the engine is asked to cancel it until Azure ML acknowledges the
  cancel; the Canceled (or Failed) that follows is the expected end of that attempt and is not
  announced again. A Completed that still arrives is announced: the model exists.

Every event carries an idempotency key built only from stable identifiers, so an engine that
restarts and replays a check produces the same keys and the outbox drops the repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypedDict

from domain.events import EventKind
from domain.jobs import JobFailure, JobState, TrainingJob
from monitoring.backoff import PollState
from monitoring.reminders import reminder_due

_CANCEL_REQUESTED = "cancelrequested"


@dataclass(frozen=True, slots=True)
class Attempt:
    """Attempt `number` of at most `of` for a circuit (the first run is attempt 1)."""

    number: int
    of: int

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ValueError(f"attempt number must be at least 1, got {self.number}")
        if self.of < 1:
            raise ValueError(f"max attempts must be at least 1, got {self.of}")

    @property
    def is_last(self) -> bool:
        """No retry follows a failure of this attempt."""
        return self.number >= self.of


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """What every job event says: which job, which attempt, seen when."""

    kind: EventKind = field(init=False)
    workspace: str  # Workspace.key
    job_name: str
    display_name: str
    circuit: str | None
    status: str  # the raw Azure ML status when the event was raised
    studio_url: str | None
    attempt: int
    max_attempts: int
    at: datetime  # when the engine saw the change

    @property
    def key(self) -> str:
        """Idempotency key: the same change of the same attempt always gets the same key."""
        return f"{self.workspace}/{self.job_name}/{self.kind}/{self.attempt}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingStarted(JobEvent):
    kind: EventKind = field(default=EventKind.TRAINING_STARTED, init=False)
    started_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingCompleted(JobEvent):
    kind: EventKind = field(default=EventKind.TRAINING_COMPLETED, init=False)
    started_at: datetime | None
    ended_at: datetime | None
    duration: timedelta | None  # None when the start time is unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingFailed(JobEvent):
    kind: EventKind = field(default=EventKind.TRAINING_FAILED, init=False)
    error_summary: str | None
    retries_exhausted: bool  # True: this was the last attempt, no automatic retry follows
    duration: timedelta | None
    # What Azure ML's run history says (see monitoring/job_failure.py); flat, so the
    # stored payload stays plain JSON.
    error_code: str | None = None
    error_category: str = "unknown"  # "user", "system" or "unknown"
    log_name: str | None = None
    log_tail: tuple[str, ...] = ()
    details_unavailable: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingCanceled(JobEvent):
    kind: EventKind = field(default=EventKind.TRAINING_CANCELED, init=False)
    duration: timedelta | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptTimedOut(JobEvent):
    """The attempt ran for the whole per-attempt timeout; the engine cancels it."""

    kind: EventKind = field(default=EventKind.ATTEMPT_TIMED_OUT, init=False)
    running_for: timedelta
    timeout: timedelta
    retries_exhausted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LongRunning(JobEvent):
    """Reminder number `reminder`: the job has been running for `reminder` intervals."""

    kind: EventKind = field(default=EventKind.LONG_RUNNING, init=False)
    reminder: int
    running_for: timedelta

    @property
    def key(self) -> str:
        return f"{self.workspace}/{self.job_name}/{self.kind}/{self.attempt}/{self.reminder}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitoringTimedOut:
    """A session reached its max wait with jobs still unfinished (one event per session)."""

    kind: EventKind = field(default=EventKind.MONITORING_TIMED_OUT, init=False)
    session: str
    started_at: datetime
    at: datetime
    waited: timedelta
    unfinished: tuple[TrainingJob, ...]

    @property
    def key(self) -> str:
        return f"{self.session}/{self.kind}"


LifecycleEvent = (
    TrainingStarted
    | TrainingCompleted
    | TrainingFailed
    | TrainingCanceled
    | AttemptTimedOut
    | LongRunning
    | MonitoringTimedOut
)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the engine stores about one job (one attempt) between checks."""

    state: JobState  # the last *known* state; UNKNOWN only while nothing is known yet
    status: str  # the raw status last seen, which may be NotResponding or Unknown
    seen_at: datetime
    running_since: datetime | None = None  # Azure ML's start time, else when first seen running
    announced_start: bool = False
    timed_out: bool = False
    reminders_sent: int = 0  # number of the latest reminder sent (see monitoring.reminders)

    @property
    def attempt_failed(self) -> bool:
        """The attempt counts as failed: it failed, or timed out and did not complete."""
        return self.state is JobState.FAILED or (
            self.timed_out and self.state is not JobState.COMPLETED
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one check: what to store, what to tell, whether to cancel the job."""

    observation: Observation
    events: tuple[JobEvent, ...]
    cancel_job: bool  # ask Azure ML to cancel: the attempt timed out and is still going


# The keyword arguments every job event takes, typed so `**common` type-checks.
class _CommonFields(TypedDict):
    workspace: str
    job_name: str
    display_name: str
    circuit: str | None
    status: str
    studio_url: str | None
    attempt: int
    max_attempts: int
    at: datetime


def _common_fields(job: TrainingJob, now: datetime, attempt: Attempt) -> _CommonFields:
    return {
        "workspace": job.workspace,
        "job_name": job.name,
        "display_name": job.display_name,
        "circuit": job.circuit,
        "status": job.status,
        "studio_url": job.studio_url,
        "attempt": attempt.number,
        "max_attempts": attempt.of,
        "at": now,
    }


def observe(
    previous: Observation | None,
    job: TrainingJob,
    now: datetime,
    attempt: Attempt,
    *,
    attempt_timeout: timedelta | None = None,
    reminder_interval: timedelta | None = None,
) -> Transition:
    """Fold a fresh look at `job` into its stored observation (None for a job first seen).

    `attempt_timeout` None means the attempt may run as long as it likes; `reminder_interval`
    None means no long-running reminders.
    """
    if previous is not None and previous.state.is_terminal:
        return Transition(replace(previous, seen_at=now), (), cancel_job=False)

    known = previous.state if previous is not None else JobState.UNKNOWN
    state = known if job.state is JobState.UNKNOWN else job.state
    running_since = job.started_at or (previous.running_since if previous else None)
    if running_since is None and state is JobState.RUNNING:
        running_since = now
    observation = Observation(
        state=state,
        status=job.status,
        seen_at=now,
        running_since=running_since,
        announced_start=previous.announced_start if previous else False,
        timed_out=previous.timed_out if previous else False,
        reminders_sent=previous.reminders_sent if previous else 0,
    )
    common = _common_fields(job, now, attempt)
    events: list[JobEvent] = []

    started_now = state is JobState.RUNNING and not observation.announced_start
    if started_now:
        events.append(TrainingStarted(**common, started_at=running_since))
        observation = replace(observation, announced_start=True)

    if state.is_terminal:
        terminal = _terminal_event(observation, previous, job, attempt, common)
        return Transition(observation, (*events, *terminal), cancel_job=False)

    if (
        attempt_timeout is not None
        and running_since is not None
        and not observation.timed_out
        and now - running_since >= attempt_timeout
    ):
        events.append(
            AttemptTimedOut(
                **common,
                running_for=now - running_since,
                timeout=attempt_timeout,
                retries_exhausted=attempt.is_last,
            )
        )
        observation = replace(observation, timed_out=True)

    if reminder_interval is not None and running_since is not None and not observation.timed_out:
        due = reminder_due(running_since, observation.reminders_sent, now, reminder_interval)
        if due is not None:
            # Just announced as started: that message already tells it is running, so the
            # reminder is only marked as sent and the next one follows on schedule.
            if not started_now:
                events.append(LongRunning(**common, reminder=due, running_for=now - running_since))
            observation = replace(observation, reminders_sent=due)

    # Repeat the cancel until Azure ML reports it as requested (or the job ends).
    cancel = observation.timed_out and job.status.strip().lower() != _CANCEL_REQUESTED
    return Transition(observation, tuple(events), cancel_job=cancel)


def monitoring_timed_out(
    session: str, poll: PollState, now: datetime, jobs: Iterable[TrainingJob]
) -> MonitoringTimedOut | None:
    """The session's "gave up waiting" event, once its backoff has reached the max wait.

    None while the session is still polling, or when every job has finished anyway.
    """
    if not poll.finished:
        return None
    unfinished = tuple(job for job in jobs if not job.state.is_terminal)
    if not unfinished:
        return None
    return MonitoringTimedOut(
        session=session,
        started_at=poll.started_at,
        at=now,
        waited=now - poll.started_at,
        unfinished=unfinished,
    )


def _terminal_event(
    observation: Observation,
    previous: Observation | None,
    job: TrainingJob,
    attempt: Attempt,
    common: _CommonFields,
) -> tuple[JobEvent, ...]:
    ended_at = job.ended_at or common["at"]
    start = observation.running_since
    duration = ended_at - start if start is not None and ended_at >= start else None
    if observation.state is JobState.COMPLETED:
        return (
            TrainingCompleted(**common, started_at=start, ended_at=job.ended_at, duration=duration),
        )
    if previous is not None and previous.timed_out:
        # The end of an attempt already reported as timed out: nothing new to tell.
        return ()
    if observation.state is JobState.FAILED:
        return (
            TrainingFailed(
                **common,
                error_summary=job.error_summary,
                retries_exhausted=attempt.is_last,
                duration=duration,
                **_failure_fields(job.failure),
            ),
        )
    return (TrainingCanceled(**common, duration=duration),)


def _failure_fields(failure: JobFailure | None) -> dict[str, Any]:
    if failure is None:
        return {}
    return {
        "error_code": failure.code,
        "error_category": failure.category,
        "log_name": failure.log_name,
        "log_tail": failure.log_tail,
        "details_unavailable": failure.unavailable,
    }
