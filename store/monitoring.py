"""The monitoring engine's durable state: sessions, per-job progress and events.

Every observation is applied in one transaction: the job rows, the session's schedule
and the events the change caused commit together, so a crash can neither lose an
event nor record one twice (event keys are unique).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from domain.events import checked_payload
from domain.jobs import JobState
from domain.monitoring import (
    AppliedPass,
    EventRecord,
    JobProgress,
    JobRecord,
    NewEvent,
    Observation,
    SessionRecord,
    SessionSchedule,
)
from domain.status import LastDeployment, PendingApproval
from store.database import Database, as_utc
from store.tables import events, monitoring_sessions, watched_jobs
from store.watched_jobs import job_columns, job_from_row, mark_superseded

# Sessions that still have checks scheduled: polling ("active"), or past the max wait
# with jobs still running ("timed_out", checked at each long-running reminder).
WATCHING = ("active", "timed_out")
_FINISHED_STATES = tuple(state.value for state in JobState if state.is_terminal)
_APPROVAL_KINDS = ("approval_required", "approval_decided")
_DEPLOYMENT_KINDS = ("deployment_completed", "deployment_failed")

# The exchanged types live in the domain; importing them from here keeps working.
__all__ = [
    "WATCHING",
    "AppliedPass",
    "EventRecord",
    "JobProgress",
    "JobRecord",
    "MonitoringStore",
    "NewEvent",
    "Observation",
    "SessionRecord",
    "SessionSchedule",
]


class MonitoringStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._recent_cache: dict[tuple[str, ...], tuple[int | None, list[EventRecord]]] = {}

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
        """The session with this key, created (due now) if it does not exist yet."""
        async with self._db.sessions.begin() as session:
            existing = await self._session_by_key(session, key)
            if existing is None:
                await session.execute(
                    monitoring_sessions.insert().values(
                        kind=kind,
                        key=key,
                        title=title,
                        workspace=workspace,
                        pipeline_run_id=pipeline_run_id,
                        status="active",
                        started_at=now,
                        checks_done=0,
                        next_check_at=now,
                        created_by=created_by,
                        updated_at=now,
                        version=0,
                    )
                )
                existing = await self._session_by_key(session, key)
        assert existing is not None
        return existing

    async def reactivate(self, session_id: int, now: datetime) -> None:
        """New work joined a finished session: watch it again from the start of backoff."""
        async with self._db.sessions.begin() as session:
            await session.execute(
                monitoring_sessions.update()
                .where(monitoring_sessions.c.id == session_id)
                .values(
                    status="active",
                    started_at=now,
                    checks_done=0,
                    next_check_at=now,
                    updated_at=now,
                    version=monitoring_sessions.c.version + 1,
                )
            )

    async def check_now(self, session_id: int, now: datetime) -> None:
        async with self._db.sessions.begin() as session:
            await self._check_now(session, [session_id], now)

    async def check_now_matching(
        self,
        now: datetime,
        *,
        workspace: str | None = None,
        job_name: str | None = None,
        due_at: datetime | None = None,
        restart: bool = True,
    ) -> int:
        """A push: every watched session of `workspace` (holding `job_name`) checks now.

        Returns how many watched sessions matched. One query finds them, however many
        sessions were ever created; only polling ones ("active") are brought forward,
        to `due_at` (default `now`). `restart=False` keeps their delays where they were.
        """
        c = monitoring_sessions.c
        # Locked in id order, as every writer of several sessions locks them, so two
        # writers never wait on each other (PostgreSQL; SQLite serializes writers).
        query = (
            select(c.id, c.status).where(c.status.in_(WATCHING)).order_by(c.id).with_for_update()
        )
        if workspace:
            query = query.where(c.workspace == workspace)
        if job_name:
            holding = select(watched_jobs.c.session_id).where(watched_jobs.c.name == job_name)
            if workspace:
                holding = holding.where(watched_jobs.c.workspace == workspace)
            query = query.where(c.id.in_(holding.scalar_subquery()))
        async with self._db.sessions.begin() as session:
            rows = (await session.execute(query)).all()
            active = [row.id for row in rows if row.status == "active"]
            if restart:
                await self._check_now(session, active, now, due_at or now)
            elif active:
                at = due_at or now
                c = monitoring_sessions.c
                await session.execute(
                    monitoring_sessions.update()
                    .where(
                        and_(
                            c.id.in_(active),
                            c.status == "active",
                            or_(c.next_check_at.is_(None), c.next_check_at > at),
                        )
                    )
                    .values(next_check_at=at, updated_at=now, version=c.version + 1)
                )
        return len(rows)

    @staticmethod
    async def _check_now(
        session: AsyncSession, session_ids: list[int], now: datetime, at: datetime | None = None
    ) -> None:
        if not session_ids:
            return
        c = monitoring_sessions.c
        await session.execute(
            monitoring_sessions.update()
            .where(and_(c.id.in_(session_ids), c.status == "active"))
            # A push restarts the delays from the poll interval (the max wait still
            # counts from the session start); the new version makes a pass planned
            # before the push leave this schedule alone.
            .values(next_check_at=at or now, checks_done=0, updated_at=now, version=c.version + 1)
        )

    async def move_job(
        self,
        workspace: str,
        name: str,
        *,
        to_session: int,
        now: datetime,
        stop_watching: bool = False,
    ) -> bool:
        """Put a stored job under another session, in one transaction; False if unknown.

        Both sessions get a new version, so a pass planned before the move writes
        neither. `stop_watching` marks the receiving session unwatched: never checked.
        """
        j = watched_jobs.c
        c = monitoring_sessions.c
        where_job = and_(j.workspace == workspace, j.name == name)
        async with self._db.sessions.begin() as session:
            found = (await session.execute(select(j.session_id).where(where_job))).first()
            if found is None:
                return False
            touched = {to_session} | ({found.session_id} if found.session_id is not None else set())
            # Sessions first, in id order, then the job row: the order an engine pass
            # takes its locks in, so the two never deadlock on PostgreSQL.
            await session.execute(
                select(c.id).where(c.id.in_(touched)).order_by(c.id).with_for_update()
            )
            await session.execute(
                monitoring_sessions.update()
                .where(c.id.in_(touched))
                .values(version=c.version + 1, updated_at=now)
            )
            await session.execute(
                watched_jobs.update().where(where_job).values(session_id=to_session)
            )
            if stop_watching:
                await session.execute(
                    monitoring_sessions.update()
                    .where(c.id == to_session)
                    .values(status="unwatched", next_check_at=None)
                )
        return True

    async def session(self, session_id: int) -> SessionRecord | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(monitoring_sessions).where(monitoring_sessions.c.id == session_id)
                )
            ).first()
        return _session(row._mapping) if row else None

    async def sessions(self, *, active_only: bool = False) -> list[SessionRecord]:
        query = select(monitoring_sessions).order_by(monitoring_sessions.c.id)
        if active_only:
            query = query.where(monitoring_sessions.c.status == "active")
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_session(row._mapping) for row in rows]

    async def due_sessions(self, now: datetime) -> list[SessionRecord]:
        query = (
            select(monitoring_sessions)
            .where(
                and_(
                    monitoring_sessions.c.status.in_(WATCHING),
                    monitoring_sessions.c.next_check_at <= now,
                )
            )
            .order_by(monitoring_sessions.c.next_check_at)
        )
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_session(row._mapping) for row in rows]

    async def next_due_at(self) -> datetime | None:
        query = (
            select(monitoring_sessions.c.next_check_at)
            .where(
                and_(
                    monitoring_sessions.c.status.in_(WATCHING),
                    monitoring_sessions.c.next_check_at.is_not(None),
                )
            )
            .order_by(monitoring_sessions.c.next_check_at)
            .limit(1)
        )
        async with self._db.sessions() as session:
            value = await session.scalar(query)
        return as_utc(value)

    # --- jobs --------------------------------------------------------------------------
    async def session_jobs(self, session_id: int) -> list[JobRecord]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(watched_jobs)
                    .where(watched_jobs.c.session_id == session_id)
                    .order_by(watched_jobs.c.circuit, watched_jobs.c.attempt)
                )
            ).all()
        return [_job_record(row._mapping) for row in rows]

    async def job_records(
        self,
        workspace: str,
        names: Collection[str] | None = None,
        *,
        unfinished: bool = False,
    ) -> dict[str, JobRecord]:
        """The stored jobs of `workspace`: all of them, or only those named and (with
        `unfinished`) every one not finished yet.

        A pass asks for the jobs it listed and the unfinished ones, so its read follows
        the jobs in flight, not the finished history the store keeps.
        """
        j = watched_jobs.c
        queries = []
        if names is None and not unfinished:
            queries.append(select(watched_jobs).where(j.workspace == workspace))
        if names is not None:
            wanted = sorted(set(names))
            queries.extend(
                select(watched_jobs).where(
                    and_(j.workspace == workspace, j.name.in_(wanted[start : start + 500]))
                )
                for start in range(0, len(wanted), 500)
            )
        if unfinished:
            queries.append(
                select(watched_jobs).where(
                    and_(j.workspace == workspace, j.state.not_in(_FINISHED_STATES))
                )
            )
        records: dict[str, JobRecord] = {}
        async with self._db.sessions() as session:
            for query in queries:
                for row in (await session.execute(query)).all():
                    record = _job_record(row._mapping)
                    records[record.job.name] = record
        return records

    # --- the atomic write --------------------------------------------------------------
    async def apply(self, observation: Observation) -> list[str]:
        """Write jobs, schedules and events together; returns the keys of new events."""
        return (await self.apply_pass(observation)).created

    async def apply_pass(self, observation: Observation) -> AppliedPass:
        """Like `apply`, leaving out the sessions written since the pass read them.

        For each session in `observation.planned_from` the version is compared and
        bumped in the same statement (compare-and-set), which also holds the row until
        commit; a job the pass would write under a session it no longer belongs to
        makes that session stale too. What belongs to a stale session (its jobs,
        schedule and events) is not written.
        """
        created: list[str] = []
        # A payload that does not fit its kind is refused before anything is written.
        payloads = [checked_payload(event.kind, event.payload) for event in observation.events]
        async with self._db.sessions.begin() as session:
            stale = await self._stale_sessions(session, observation)
            for progress in observation.jobs:
                if progress.session_id in stale:
                    continue
                await self._upsert_job(session, progress, observation.now)
            for schedule in observation.schedules:
                if schedule.session_id in stale:
                    continue
                await session.execute(
                    monitoring_sessions.update()
                    .where(monitoring_sessions.c.id == schedule.session_id)
                    .values(
                        status=schedule.status,
                        checks_done=schedule.checks_done,
                        last_check_at=schedule.last_check_at,
                        next_check_at=schedule.next_check_at,
                        updated_at=observation.now,
                    )
                )
            for event, payload in zip(observation.events, payloads, strict=True):
                if event.session_id in stale:
                    continue
                exists = await session.scalar(select(events.c.id).where(events.c.key == event.key))
                if exists is not None:
                    continue  # already recorded by an earlier pass: never twice
                await session.execute(
                    events.insert().values(
                        key=event.key,
                        kind=event.kind,
                        session_id=event.session_id,
                        workspace=event.workspace,
                        job_name=event.job_name,
                        circuit=event.circuit,
                        payload=payload,
                        created_at=observation.now,
                        delivery_attempts=0,
                    )
                )
                created.append(event.key)
        return AppliedPass(created, frozenset(stale))

    @staticmethod
    async def _stale_sessions(session: AsyncSession, observation: Observation) -> set[int]:
        c = monitoring_sessions.c
        stale: set[int] = set()
        # In id order, so two writers lock the same rows in the same order.
        for session_id, version in sorted(observation.planned_from.items()):
            result = await session.execute(
                monitoring_sessions.update()
                .where(and_(c.id == session_id, c.version == version))
                .values(version=c.version + 1)
            )
            if not isinstance(result, CursorResult) or result.rowcount != 1:
                stale.add(session_id)
        planned = [p for p in observation.jobs if p.session_id in observation.planned_from]
        for owner, names in _by_workspace(planned):
            j = watched_jobs.c
            moved = await session.execute(
                select(j.name, j.session_id).where(
                    and_(
                        j.workspace == owner,
                        j.name.in_(names),
                        j.session_id.is_not(None),
                    )
                )
            )
            current = {row.name: row.session_id for row in moved}
            for progress in planned:
                if progress.job.workspace != owner or progress.job.name not in current:
                    continue
                if current[progress.job.name] != progress.session_id:
                    assert progress.session_id is not None
                    stale.add(progress.session_id)
        return stale

    async def _upsert_job(
        self, session: AsyncSession, progress: JobProgress, now: datetime
    ) -> None:
        job = progress.job
        values: dict[str, Any] = {
            **job_columns(job, now),
            "session_id": progress.session_id,
            "observed_at": now,
            "running_since": progress.running_since,
            "announced_start": progress.announced_start,
            "timed_out": progress.timed_out,
            "reminders_sent": progress.reminders_sent,
            "cancel_requested_at": progress.cancel_requested_at,
        }
        existing = await session.scalar(
            select(watched_jobs.c.id).where(
                and_(watched_jobs.c.workspace == job.workspace, watched_jobs.c.name == job.name)
            )
        )
        if existing is None:
            await session.execute(
                watched_jobs.insert().values(
                    workspace=job.workspace, name=job.name, first_seen_at=now, **values
                )
            )
        else:
            await session.execute(
                watched_jobs.update().where(watched_jobs.c.id == existing).values(**values)
            )
        await mark_superseded(session, job)

    # --- events ------------------------------------------------------------------------
    async def events(
        self, *, undelivered_only: bool = False, limit: int = 100
    ) -> list[EventRecord]:
        query = select(events).order_by(events.c.id).limit(limit)
        if undelivered_only:
            query = query.where(events.c.delivered_at.is_(None))
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_event(row._mapping) for row in rows]

    async def events_of_kind(
        self, kind: str, *, session_id: int | None = None
    ) -> list[EventRecord]:
        query = select(events).where(events.c.kind == kind).order_by(events.c.id)
        if session_id is not None:
            query = query.where(events.c.session_id == session_id)
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_event(row._mapping) for row in rows]

    async def pending_approvals(self, limit: int = 10) -> list[PendingApproval]:
        """Approvals announced by Azure DevOps hooks and not decided since (newest first)."""
        return self._pending(await self._recent_of_kinds(_APPROVAL_KINDS))[:limit]

    def _pending(self, recent: list[EventRecord]) -> list[PendingApproval]:
        decided = {e.payload.get("approval_id") for e in recent if e.kind == "approval_decided"}
        pending: list[PendingApproval] = []
        for event in reversed(recent):
            approval_id = event.payload.get("approval_id")
            if event.kind != "approval_required" or not approval_id or approval_id in decided:
                continue
            pending.append(
                PendingApproval(
                    pipeline=str(event.payload.get("pipeline") or "?"),
                    stage=str(event.payload.get("stage") or ""),
                    environment=str(event.payload.get("environment") or ""),
                    since=event.created_at,
                )
            )
            decided.add(approval_id)  # the same approval announced twice shows once
        return pending

    async def last_deployments(self) -> list[LastDeployment]:
        """The latest deployment (completed or failed) per environment."""
        return self._latest(await self._recent_of_kinds(_DEPLOYMENT_KINDS))

    async def deployment_overview(
        self, approvals: int = 10
    ) -> tuple[list[PendingApproval], list[LastDeployment]]:
        """`pending_approvals` and `last_deployments` at once, looking at the newest
        event id once for both (`status` asks on every call)."""
        async with self._db.engine.connect() as conn:
            newest = await conn.scalar(select(func.max(events.c.id)))
        pending = self._pending(await self._recent_at(_APPROVAL_KINDS, newest))
        latest = self._latest(await self._recent_at(_DEPLOYMENT_KINDS, newest))
        return pending[:approvals], latest

    @staticmethod
    def _latest(recent: list[EventRecord]) -> list[LastDeployment]:
        latest: dict[str, LastDeployment] = {}
        for event in recent:  # oldest first: later ones replace earlier ones
            environment = str(event.payload.get("environment") or "")
            if not environment:
                continue
            latest[environment] = LastDeployment(
                environment=environment,
                pipeline=str(event.payload.get("pipeline") or "?"),
                run=str(event.payload.get("run_name") or event.payload.get("run_id") or ""),
                succeeded=event.kind == "deployment_completed",
                at=event.created_at,
            )
        return sorted(latest.values(), key=lambda d: d.environment)

    async def _recent_of_kinds(self, kinds: tuple[str, ...]) -> list[EventRecord]:
        async with self._db.engine.connect() as conn:
            newest = await conn.scalar(select(func.max(events.c.id)))
        return await self._recent_at(kinds, newest)

    async def _recent_at(
        self, kinds: tuple[str, ...], newest: int | None, limit: int = 500
    ) -> list[EventRecord]:
        """Recent events of `kinds` while `newest` is the newest event id (None: none)."""
        # Events are append-only: while the newest id is unchanged, so is the answer.
        # `status` asks on every call; hooks add events rarely.
        cached = self._recent_cache.get(kinds)
        if cached is not None and cached[0] == newest:
            return cached[1]
        records = await self._query_recent(kinds, limit)
        self._recent_cache[kinds] = (newest, records)
        return records

    async def _query_recent(self, kinds: tuple[str, ...], limit: int) -> list[EventRecord]:
        query = (
            select(events).where(events.c.kind.in_(kinds)).order_by(events.c.id.desc()).limit(limit)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row._mapping) for row in reversed(rows)]

    async def update_payload(self, event_id: int, payload: dict[str, Any]) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                events.update().where(events.c.id == event_id).values(payload=payload)
            )

    async def mark_cancel_requested(self, workspace: str, name: str, now: datetime) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                watched_jobs.update()
                .where(and_(watched_jobs.c.workspace == workspace, watched_jobs.c.name == name))
                .values(cancel_requested_at=now)
            )

    async def mark_failed(self, event_id: int, error: str) -> None:
        async with self._db.sessions.begin() as session:
            await session.execute(
                events.update()
                .where(events.c.id == event_id)
                .values(last_error=error[:2000], delivery_attempts=events.c.delivery_attempts + 1)
            )

    @staticmethod
    async def _session_by_key(session: AsyncSession, key: str) -> SessionRecord | None:
        row = (
            await session.execute(
                select(monitoring_sessions).where(monitoring_sessions.c.key == key)
            )
        ).first()
        return _session(row._mapping) if row else None


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        kind=row["kind"],
        key=row["key"],
        title=row["title"],
        workspace=row["workspace"],
        pipeline_run_id=row["pipeline_run_id"],
        status=row["status"],
        started_at=as_utc(row["started_at"]) or datetime.now(UTC),
        checks_done=row["checks_done"],
        last_check_at=as_utc(row["last_check_at"]),
        next_check_at=as_utc(row["next_check_at"]),
        created_by=row["created_by"],
        version=row["version"],
    )


def _job_record(row: Any) -> JobRecord:
    job = job_from_row(row)
    return JobRecord(
        job=job,
        session_id=row["session_id"],
        first_seen_at=as_utc(row["first_seen_at"]),
        observed_at=as_utc(row["observed_at"]),
        running_since=as_utc(row["running_since"]),
        announced_start=bool(row["announced_start"]),
        timed_out=bool(row["timed_out"]),
        reminders_sent=row["reminders_sent"] or 0,
        cancel_requested_at=as_utc(row["cancel_requested_at"]),
    )


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        payload=row["payload"],
        session_id=row["session_id"],
        workspace=row["workspace"],
        job_name=row["job_name"],
        circuit=row["circuit"],
        created_at=as_utc(row["created_at"]) or datetime.now(UTC),
        delivered_at=as_utc(row["delivered_at"]),
        delivery_attempts=row["delivery_attempts"],
        last_error=row["last_error"],
    )


def _by_workspace(jobs: Iterable[JobProgress]) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for progress in jobs:
        grouped.setdefault(progress.job.workspace, []).append(progress.job.name)
    return sorted(grouped.items())


# For readers of single events outside this store (buttons, holds).
event_from_row = _event
