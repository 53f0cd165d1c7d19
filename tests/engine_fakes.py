"""In-memory stand-ins for the monitoring engine's ports (no database, no HTTP).

`MemoryRepository` keeps the same rules as the SQLAlchemy store: every write from people
or hooks bumps a session's version, and a pass's `apply_pass` leaves out the sessions
whose version changed since the pass read them. The job source is
`tests.gated_job_source.GatedJobSource`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.events import checked_payload
from domain.monitoring import (
    AppliedPass,
    EventRecord,
    JobProgress,
    JobRecord,
    Observation,
    SessionRecord,
)
from domain.pipeline_intents import (
    PENDING,
    POSTING,
    QUEUED,
    UNRESOLVED,
    PipelineIntent,
    StoredEvent,
)

WATCHING = ("active", "timed_out")


class MemoryRepository:
    def __init__(self) -> None:
        self.sessions: dict[int, SessionRecord] = {}
        self.jobs: dict[tuple[str, str], JobRecord] = {}
        self.events: list[EventRecord] = []

    # --- sessions ----------------------------------------------------------------------
    async def open_session(
        self,
        *,
        kind: str,
        key: str,
        title: str,
        now: datetime,
        workspace: str | None = None,
        pipeline_run_id: int | None = None,
        created_by: str | None = None,
    ) -> SessionRecord:
        for existing in self.sessions.values():
            if existing.key == key:
                return existing
        record = SessionRecord(
            id=len(self.sessions) + 1,
            kind=kind,
            key=key,
            title=title,
            workspace=workspace,
            pipeline_run_id=pipeline_run_id,
            status="active",
            started_at=now,
            checks_done=0,
            last_check_at=None,
            next_check_at=now,
            created_by=created_by,
        )
        self.sessions[record.id] = record
        return record

    def _bump(self, session_id: int, **values: Any) -> None:
        current = self.sessions[session_id]
        self.sessions[session_id] = dataclasses.replace(
            current, version=current.version + 1, **values
        )

    async def reactivate(self, session_id: int, now: datetime) -> None:
        self._bump(session_id, status="active", started_at=now, checks_done=0, next_check_at=now)

    async def check_now(self, session_id: int, now: datetime) -> None:
        if self.sessions[session_id].status == "active":
            self._bump(session_id, next_check_at=now, checks_done=0)

    async def check_now_matching(
        self,
        now: datetime,
        *,
        workspace: str | None = None,
        job_name: str | None = None,
        due_at: datetime | None = None,
        restart: bool = True,
    ) -> int:
        matched = [
            s
            for s in self.sessions.values()
            if s.status in WATCHING
            and (workspace is None or s.workspace == workspace)
            and (
                job_name is None
                or any(
                    r.session_id == s.id
                    and r.job.name == job_name
                    and (workspace is None or r.job.workspace == workspace)
                    for r in self.jobs.values()
                )
            )
        ]
        at = due_at or now
        for session in matched:
            if session.status != "active":
                continue
            if restart:
                self._bump(session.id, next_check_at=at, checks_done=0)
            elif session.next_check_at is None or session.next_check_at > at:
                self._bump(session.id, next_check_at=at)
        return len(matched)

    async def move_job(
        self,
        workspace: str,
        name: str,
        *,
        to_session: int,
        now: datetime,
        stop_watching: bool = False,
    ) -> bool:
        record = self.jobs.get((workspace, name))
        if record is None:
            return False
        self.jobs[(workspace, name)] = dataclasses.replace(record, session_id=to_session)
        if record.session_id is not None and record.session_id != to_session:
            self._bump(record.session_id)
        if stop_watching:
            self._bump(to_session, status="unwatched", next_check_at=None)
        else:
            self._bump(to_session)
        return True

    async def session(self, session_id: int) -> SessionRecord | None:
        return self.sessions.get(session_id)

    async def due_sessions(self, now: datetime) -> list[SessionRecord]:
        due = [
            s
            for s in self.sessions.values()
            if s.status in WATCHING and s.next_check_at is not None and s.next_check_at <= now
        ]
        return sorted(due, key=lambda s: (s.next_check_at or now, s.id))

    async def next_due_at(self) -> datetime | None:
        times = [
            s.next_check_at
            for s in self.sessions.values()
            if s.status in WATCHING and s.next_check_at is not None
        ]
        return min(times, default=None)

    # --- jobs --------------------------------------------------------------------------
    async def session_jobs(self, session_id: int) -> list[JobRecord]:
        held = [r for r in self.jobs.values() if r.session_id == session_id]
        return sorted(held, key=lambda r: (r.job.circuit or "", r.job.attempt))

    async def job_records(
        self,
        workspace: str,
        names: Collection[str] | None = None,
        *,
        unfinished: bool = False,
    ) -> dict[str, JobRecord]:
        everything = names is None and not unfinished
        return {
            name: r
            for (ws, name), r in self.jobs.items()
            if ws == workspace
            and (
                everything
                or (names is not None and name in names)
                or (unfinished and not r.job.state.is_terminal)
            )
        }

    def job(self, workspace: str, name: str) -> JobRecord:
        return self.jobs[(workspace, name)]

    # --- the atomic write --------------------------------------------------------------
    async def apply(self, observation: Observation) -> list[str]:
        return (await self.apply_pass(observation)).created

    async def apply_pass(self, observation: Observation) -> AppliedPass:
        payloads = [checked_payload(e.kind, e.payload) for e in observation.events]
        stale = {
            session_id
            for session_id, version in observation.planned_from.items()
            if self.sessions[session_id].version != version
        }
        for progress in observation.jobs:
            row = self.jobs.get((progress.job.workspace, progress.job.name))
            if (
                progress.session_id in observation.planned_from
                and row is not None
                and row.session_id is not None
                and row.session_id != progress.session_id
            ):
                assert progress.session_id is not None
                stale.add(progress.session_id)
        for session_id in set(observation.planned_from) - stale:
            self._bump(session_id)
        for progress in observation.jobs:
            if progress.session_id not in stale:
                self._upsert(progress, observation.now)
        for schedule in observation.schedules:
            if schedule.session_id in stale:
                continue
            current = self.sessions[schedule.session_id]
            self.sessions[schedule.session_id] = dataclasses.replace(
                current,
                status=schedule.status,
                checks_done=schedule.checks_done,
                last_check_at=schedule.last_check_at,
                next_check_at=schedule.next_check_at,
            )
        created = []
        known = {e.key for e in self.events}
        for event, payload in zip(observation.events, payloads, strict=True):
            if event.session_id in stale or event.key in known:
                continue
            known.add(event.key)
            self.events.append(
                EventRecord(
                    id=len(self.events) + 1,
                    key=event.key,
                    kind=event.kind,
                    payload=payload,
                    session_id=event.session_id,
                    workspace=event.workspace,
                    job_name=event.job_name,
                    circuit=event.circuit,
                    created_at=observation.now,
                    delivered_at=None,
                    delivery_attempts=0,
                    last_error=None,
                )
            )
            created.append(event.key)
        return AppliedPass(created, frozenset(stale))

    def _upsert(self, progress: JobProgress, now: datetime) -> None:
        key = (progress.job.workspace, progress.job.name)
        before = self.jobs.get(key)
        self.jobs[key] = JobRecord(
            job=progress.job,
            session_id=progress.session_id,
            first_seen_at=before.first_seen_at if before else now,
            observed_at=now,
            running_since=progress.running_since,
            announced_start=progress.announced_start,
            timed_out=progress.timed_out,
            reminders_sent=progress.reminders_sent,
            cancel_requested_at=progress.cancel_requested_at,
        )

    # --- events ------------------------------------------------------------------------
    async def events_of_kind(
        self, kind: str, *, session_id: int | None = None
    ) -> list[EventRecord]:
        return [
            e
            for e in self.events
            if e.kind == kind and (session_id is None or e.session_id == session_id)
        ]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def update_payload(self, event_id: int, payload: dict[str, Any]) -> None:
        index = event_id - 1
        self.events[index] = dataclasses.replace(self.events[index], payload=dict(payload))

    async def mark_cancel_requested(self, workspace: str, name: str, now: datetime) -> None:
        key = (workspace, name)
        self.jobs[key] = dataclasses.replace(self.jobs[key], cancel_requested_at=now)


@dataclass(frozen=True)
class QueuedRun:
    run_id: int
    web_url: str


class RecordingPipelines:
    """Azure DevOps pipelines that remember every queued run."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, dict[str, str]]] = []

    async def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str]
    ) -> QueuedRun:
        self.queued.append((pipeline_name, dict(template_parameters)))
        run_id = len(self.queued)
        return QueuedRun(run_id, f"http://127.0.0.1/runs/{run_id}")

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> QueuedRun | None:
        for index, (pipeline, parameters) in enumerate(self.queued, start=1):
            if pipeline == pipeline_name and parameters == dict(template_parameters):
                return QueuedRun(index, f"http://127.0.0.1/runs/{index}")
        return None


class MemoryIntents:
    """Pipeline intents and the event cursor in memory, over a MemoryRepository's events."""

    def __init__(self, repo: MemoryRepository) -> None:
        self._repo = repo
        self.intents: dict[str, PipelineIntent] = {}
        self.cursors: dict[str, int] = {}

    async def open(
        self,
        key: str,
        pipeline: str,
        parameters: Mapping[str, str],
        now: datetime,
        *,
        event_id: int | None = None,
        posted_at: datetime | None = None,
        run_id: int | None = None,
        run_url: str | None = None,
    ) -> tuple[PipelineIntent, bool]:
        if key in self.intents:
            return self.intents[key], False
        intent = PipelineIntent(
            key=key,
            pipeline=pipeline,
            parameters=dict(parameters),
            status=QUEUED if run_id is not None else PENDING,
            run_id=run_id,
            run_url=run_url,
            posts=1 if posted_at is not None else 0,
            posted_at=posted_at,
            error=None,
            event_id=event_id,
            created_at=now,
            updated_at=now,
        )
        self.intents[key] = intent
        return intent, True

    async def get(self, key: str) -> PipelineIntent | None:
        return self.intents.get(key)

    async def begin_post(self, intent: PipelineIntent, now: datetime) -> bool:
        current = self.intents.get(intent.key)
        if current is None or (current.status, current.posts) != (intent.status, intent.posts):
            return False
        self.intents[intent.key] = dataclasses.replace(
            current, status=POSTING, posts=current.posts + 1, posted_at=now, updated_at=now
        )
        return True

    async def mark_queued(self, key: str, run_id: int, run_url: str, now: datetime) -> None:
        self.intents[key] = dataclasses.replace(
            self.intents[key], status=QUEUED, run_id=run_id, run_url=run_url, updated_at=now
        )

    async def mark_unsettled(self, key: str, status: str, error: str, now: datetime) -> None:
        if self.intents[key].status == POSTING:
            self.intents[key] = dataclasses.replace(
                self.intents[key], status=status, error=error, updated_at=now
            )

    async def unresolved(self, key_prefix: str, limit: int) -> list[PipelineIntent]:
        found = [
            i
            for i in self.intents.values()
            if i.key.startswith(key_prefix) and i.status in UNRESOLVED
        ]
        return sorted(found, key=lambda i: i.created_at)[:limit]

    async def run_taken(self, pipeline: str, run_id: int, other_than: str) -> bool:
        return any(
            i.pipeline == pipeline and i.run_id == run_id and i.key != other_than
            for i in self.intents.values()
        )

    async def new_events(self, cursor: str, kind: str, limit: int) -> tuple[list[StoredEvent], int]:
        start = self.cursors.get(cursor, 0)
        newer = [e for e in self._repo.events if e.id > start][:limit]
        position = newer[-1].id if newer else start
        return [
            StoredEvent(e.id, e.key, dict(e.payload)) for e in newer if e.kind == kind
        ], position

    async def event_payload(self, event_id: int) -> dict[str, Any] | None:
        return dict(self._repo.events[event_id - 1].payload)

    async def move_cursor(self, cursor: str, position: int, now: datetime) -> None:
        self.cursors[cursor] = position
