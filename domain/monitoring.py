"""What the monitoring engine and its store exchange: sessions, job progress, events.

The store reads and writes these; the engine plans with them. Neither side's code is
needed to use them, so the engine never imports the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.jobs import TrainingJob


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    kind: str
    key: str
    title: str
    workspace: str | None
    pipeline_run_id: int | None
    status: str
    started_at: datetime
    checks_done: int
    last_check_at: datetime | None
    next_check_at: datetime | None
    created_by: str | None
    # Bumped by every write to the session or to which jobs it holds: a pass planned
    # from an older version is refused (see `Observation.planned_from`).
    version: int = 0


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored job and the engine's memory of it (None/False until first observed)."""

    job: TrainingJob
    session_id: int | None
    first_seen_at: datetime | None
    observed_at: datetime | None
    running_since: datetime | None
    announced_start: bool
    timed_out: bool
    reminders_sent: int
    cancel_requested_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    key: str
    kind: str
    payload: dict[str, Any]
    session_id: int | None = None
    workspace: str | None = None
    job_name: str | None = None
    circuit: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    session_id: int | None
    workspace: str | None
    job_name: str | None
    circuit: str | None
    created_at: datetime
    delivered_at: datetime | None
    delivery_attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job's latest observation plus what the engine has announced about it."""

    job: TrainingJob
    session_id: int | None
    running_since: datetime | None
    announced_start: bool
    timed_out: bool
    reminders_sent: int
    cancel_requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionSchedule:
    session_id: int
    status: str
    checks_done: int
    last_check_at: datetime | None
    next_check_at: datetime | None


@dataclass
class Observation:
    """Everything one engine pass learned; applied atomically by the store.

    `planned_from` holds the version of each session the pass read. The store applies
    the jobs, schedule and events of such a session only while its version is still
    that one; a session written meanwhile (an unwatch, a push, another replica) is left
    as that writer left it and planned again from fresh rows at the next pass. Sessions
    not named there (hooks, a hand-made watch) are written unconditionally.
    """

    now: datetime
    jobs: list[JobProgress] = field(default_factory=list)
    schedules: list[SessionSchedule] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    planned_from: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppliedPass:
    """What `apply_pass` wrote: the new events, and the sessions it refused as stale."""

    created: list[str]
    stale_sessions: frozenset[int] = frozenset()
