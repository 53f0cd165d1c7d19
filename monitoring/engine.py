"""The monitoring engine: turns Azure ML job states into events people act on.

One `tick` checks every session that is due (and, now and then, discovers new jobs):
one listing per workspace covers all of them: it reaches back to the oldest unfinished
watched job, so the ends of jobs come with it (a `get` only for a watched job missing
from it). Each session follows the documented backoff, brought forward
when one of its jobs would otherwise wait longer than its own backoff allows
(`monitoring.job_deadlines`). What it learns — job rows, session schedules and the events
the changes caused — is written in one transaction, and only for sessions nobody wrote
since the pass read them (compare-and-set on the session version): an `unwatch` or a
push that lands while the pass waits on Azure is kept, and that session is planned again
at the next pass (`docs/engine.md`). Side effects that reach Azure
(cancelling an attempt that ran past its timeout, queuing the retry run) happen after
that commit and are driven from the stored state, so a restart repeats none of them
and loses none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.jobs import JobState, TrainingJob, Workspace
from domain.monitoring import (
    JobProgress,
    JobRecord,
    NewEvent,
    SessionRecord,
    SessionSchedule,
)
from domain.monitoring import Observation as StoreObservation
from monitoring.azure_calls import AzureCallError, AzureNotFoundError
from monitoring.backoff import BackoffPolicy, PollState
from monitoring.engine_ports import (
    Clock,
    EngineJobSource,
    EngineRepository,
    PipelineQueue,
    RunFinder,
)
from monitoring.job_deadlines import next_look_due
from monitoring.job_status import job_state
from monitoring.lifecycle import (
    Attempt,
    JobEvent,
    MonitoringTimedOut,
    Observation,
    monitoring_timed_out,
    observe,
)
from monitoring.pipeline_runs import OutcomeUnknown, PipelineRuns, Queued, RunRef
from monitoring.reminders import next_reminder_at
from monitoring.retries import CircuitAttempts, max_attempts, plan_retries

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

RETRY_QUEUED = "retry_queued"
# A cancel that Azure ML has not acknowledged yet is asked for again after this long.
CANCEL_REPEAT = timedelta(minutes=5)
# Retry runs are queued through pipeline intents keyed by their retry event.
RETRY_INTENT_PREFIX = "retry:"
RETRY_EVENTS_CURSOR = "engine.retry_events"
# The events table's key column holds 512 characters; intents add the prefix (600).
RETRY_KEY_MAX = 512
# At most this many retries are carried on per pass (more wait for the next one).
RETRIES_PER_TICK = 50
# A listing goes back this far before the previous one: a job Azure ML shows a little
# after it was created is still found.
LISTING_OVERLAP = timedelta(minutes=10)
# A job someone stopped watching: its session is never checked, and its job is neither
# followed nor attached to an experiment session again.
UNWATCHED = "unwatched"

# The ports are declared in `monitoring.engine_ports`; these names stay importable here.
__all__ = [
    "RETRY_QUEUED",
    "UNWATCHED",
    "EngineConfig",
    "EngineJobSource",
    "MonitoringEngine",
    "PipelineQueue",
    "RunFinder",
    "TickReport",
    "event_payload",
    "manual_session_key",
    "session_key_for",
]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    backoff: BackoffPolicy
    max_retries: int
    attempt_timeout: timedelta
    reminder_interval: timedelta
    discovery_interval: timedelta
    training_pipeline: str
    # Set when Event Grid pushes the ends of runs (`RunCompleted`, `RunStatusChanged`):
    # running jobs are then listed only this often, as a safety net for lost pushes,
    # and so are workspaces with nothing to watch. None: polling alone finds every end.
    push_safety_net: timedelta | None = None
    # A `RunCompleted` push waits this long before its workspace is listed, so that the
    # pushes of one workspace close together share one listing; failures are looked at
    # once they are pushed.
    push_settle: timedelta = timedelta(seconds=25)

    @property
    def listing_interval(self) -> timedelta:
        """How often each workspace is listed at least (to find new jobs)."""
        if self.push_safety_net is None:
            return self.discovery_interval
        return max(self.discovery_interval, self.push_safety_net)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(
            backoff=BackoffPolicy.from_settings(settings),
            max_retries=settings.auto_retry_max_retries,
            attempt_timeout=timedelta(seconds=settings.auto_retry_timeout_seconds),
            reminder_interval=timedelta(
                hours=settings.long_running_job_notification_interval_hours
            ),
            # New jobs are looked for at the slowest polling pace.
            discovery_interval=timedelta(seconds=settings.monitoring_max_delay_seconds),
            training_pipeline=settings.training_pipeline,
            push_safety_net=(
                timedelta(seconds=settings.eventgrid_safety_net_seconds)
                if settings.eventgrid_safety_net_seconds > 0
                else None
            ),
        )


@dataclass
class TickReport:
    at: datetime
    listings: int = 0
    gets: int = 0
    cancels: int = 0
    runs_queued: int = 0
    events: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Sessions written by someone else during the pass: left as they are, planned again
    # from fresh rows at the next pass.
    replanned: list[int] = field(default_factory=list)

    @property
    def api_calls(self) -> int:
        return self.listings + self.gets + self.cancels + self.runs_queued


def retry_event_key(session_key: str, manual_circuits: str, attempt: int) -> str:
    """The key of a retry event: readable while it fits the events table (and, behind
    `retry:`, the pipeline intents table); a digest of the same text when a session retries
    so many circuits at once that it would not fit. The same retry always gets the same
    key, so it is recorded and queued once either way."""
    key = f"{session_key}/{RETRY_QUEUED}/{manual_circuits}/{attempt}"
    if len(key) <= RETRY_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{session_key[:300]}/{RETRY_QUEUED}/sha256:{digest}/{attempt}"


def session_key_for(job: TrainingJob) -> str:
    """Jobs of one experiment in one workspace are watched together (and their retries)."""
    return f"experiment:{job.workspace}:{job.experiment}"


def manual_session_key(workspace_key: str, job_name: str) -> str:
    """A job added by hand (`watch <job>`) is watched in a session of its own."""
    return f"manual:{workspace_key}:{job_name}"


def _previous(record: JobRecord | None) -> Observation | None:
    if record is None or record.observed_at is None:
        return None
    return Observation(
        state=record.job.state,
        status=record.job.status,
        seen_at=record.observed_at,
        running_since=record.running_since,
        announced_start=record.announced_start,
        timed_out=record.timed_out,
        reminders_sent=record.reminders_sent,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, TrainingJob):
        return {
            "name": value.name,
            "circuit": value.circuit,
            "status": value.status,
            "studio_url": value.studio_url,
        }
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def event_payload(event: JobEvent | MonitoringTimedOut) -> dict[str, Any]:
    """An event's fields as JSON-friendly values (stored with the event)."""
    return {f.name: _jsonable(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _new_event(event: JobEvent, session_id: int | None) -> NewEvent:
    return NewEvent(
        key=event.key,
        kind=event.kind.value,
        payload=event_payload(event),
        session_id=session_id,
        workspace=event.workspace,
        job_name=event.job_name,
        circuit=event.circuit,
    )


@dataclass
class _SessionWork:
    record: SessionRecord
    due: bool
    jobs: dict[str, TrainingJob] = field(default_factory=dict)  # latest view, by job name
    timed_out_jobs: set[str] = field(default_factory=set)
    looked_at: bool = False  # its workspace was listed in this pass: every job was seen


class MonitoringEngine:
    def __init__(
        self,
        *,
        store: EngineRepository,
        source: EngineJobSource,
        workspaces: list[Workspace],
        runs: PipelineRuns | None,
        config: Callable[[], EngineConfig],
        clock: Clock,
    ) -> None:
        self._store = store
        self._source = source
        self._workspaces = list(workspaces)
        self._runs = runs
        self._config = config
        self._clock = clock
        # When each workspace was last listed; a workspace not listed for a discovery
        # interval is listed again to find new jobs. Empty: discover at the first tick.
        self._last_listed: dict[str, datetime] = {}
        self._passes_done = 0
        # Workspaces a push asked to list, and by when (also those whose sessions the
        # store does not bring forward: unknown jobs, sessions past the max wait).
        self._push_due: dict[str, datetime] = {}
        # Pushes received per workspace: a listing begun after a push answers it.
        self._pushes_seen: dict[str, int] = {}

    @property
    def checked_once(self) -> bool:
        """Whether a monitoring pass has completed since this engine started."""
        return self._passes_done > 0

    @property
    def workspaces(self) -> list[Workspace]:
        return list(self._workspaces)

    async def next_wakeup(self) -> datetime:
        """When the engine next has something to do (a due session or discovery)."""
        now = self._clock()
        interval = self._config().listing_interval
        candidates = [
            self._last_listed[w.key] + interval if w.key in self._last_listed else now
            for w in self._workspaces
        ] or [now]
        candidates.extend(self._push_due.values())
        due = await self._store.next_due_at()
        if due is not None:
            candidates.append(due)
        return min(candidates)

    async def check_now(
        self,
        workspace_key: str | None = None,
        job_name: str | None = None,
        status: str | None = None,
    ) -> int:
        """A push event: the affected sessions (or all) are checked soon.

        The push is a hint: the job is read from Azure ML by the listing it causes.
        Without a push subscription the sessions check at the next tick and their delays
        start again; with one (`push_safety_net`), a completion waits `push_settle` so
        that close pushes share a listing, and the delays go on as they were.
        """
        now = self._clock()
        config = self._config()
        pushed = config.push_safety_net is not None
        at = now + config.push_settle if pushed and _settles(status) else now
        touched = await self._store.check_now_matching(
            now,
            workspace=workspace_key or None,
            job_name=job_name or None,
            due_at=at,
            restart=not pushed,
        )
        # The workspace is listed by then whatever the store matched: the job may be new,
        # or its session past the max wait (checked only at reminders).
        for workspace in self._workspaces:
            if workspace_key in (None, workspace.key):
                self._push_due[workspace.key] = min(self._push_due.get(workspace.key, at), at)
                self._pushes_seen[workspace.key] = self._pushes_seen.get(workspace.key, 0) + 1
        return touched

    async def watch_job(self, job_name: str, actor: str) -> TrainingJob:
        """Watch a job by hand: it gets its own session, checked at the next tick."""
        name = job_name.strip()
        for workspace in self._workspaces:
            try:
                job = await self._source.get(workspace, name)
            except AzureNotFoundError:
                continue
            break
        else:
            names = ", ".join(w.key for w in self._workspaces) or "no workspace configured"
            raise LookupError(f"No Azure ML job named '{name}' in {names}.")
        now = self._clock()
        session = await self._store.open_session(
            kind="manual",
            key=manual_session_key(workspace.key, job.name),
            title=job.display_name or job.name,
            workspace=workspace.key,
            now=now,
            created_by=actor,
        )
        if session.status == "active":
            await self._store.check_now(session.id, now)
        else:
            await self._store.reactivate(session.id, now)
        # A known job keeps its last stored state and what was announced about it, so
        # the next tick reports whatever changed since; only its session changes (a
        # pass planned before the move then writes neither session). A new one starts
        # from now.
        if not await self._store.move_job(workspace.key, job.name, to_session=session.id, now=now):
            await self._store.apply(StoreObservation(now, jobs=[_progress(job, None, session.id)]))
        log.info("monitoring: %s watches %s in %s", actor, job.name, workspace.key)
        return job

    async def unwatch_job(self, job_name: str) -> bool:
        """Stop announcing a job; False when it was not being watched."""
        name = job_name.strip()
        now = self._clock()
        for workspace in self._workspaces:
            record = (await self._store.job_records(workspace.key, [name])).get(name)
            if record is None:
                continue
            current = (
                await self._store.session(record.session_id)
                if record.session_id is not None
                else None
            )
            if current is not None and current.status == UNWATCHED:
                return False
            # A job of an experiment session moves to a session of its own, so the
            # experiment's other jobs are still watched and discovery does not re-attach it.
            session = await self._store.open_session(
                kind="manual",
                key=manual_session_key(workspace.key, name),
                title=record.job.display_name or name,
                workspace=workspace.key,
                now=now,
            )
            await self._store.move_job(
                workspace.key, name, to_session=session.id, now=now, stop_watching=True
            )
            log.info("monitoring: stopped watching %s in %s", name, workspace.key)
            return True
        return False

    async def tick(self) -> TickReport:
        now = self._clock()
        config = self._config()
        report = TickReport(at=now)
        work: dict[int, _SessionWork] = {
            s.id: _SessionWork(s, due=True) for s in await self._store.due_sessions(now)
        }
        due_workspaces = {w.record.workspace for w in work.values()}
        changes = StoreObservation(now)
        cancels: list[tuple[Workspace, str, int]] = []
        listed_workspaces: set[str] = set()

        for workspace in self._workspaces:
            last = self._last_listed.get(workspace.key)
            discover = last is None or now - last >= config.listing_interval
            pushed = self._push_due.get(workspace.key)
            if (
                not discover
                and workspace.key not in due_workspaces
                and (pushed is None or pushed > now)
            ):
                continue
            pushes_before = self._pushes_seen.get(workspace.key, 0)
            # The unfinished jobs (how far back to list); finished history is never read.
            records = await self._store.job_records(workspace.key, [], unfinished=True)
            since = await self._listing_window(last, records, work)
            try:
                listing = await self._source.list_active(workspace, created_since=since)
            except AzureCallError as exc:
                report.failures.append(str(exc))
                log.warning("monitoring: %s", exc)
                # Look for new jobs again after the poll interval, not at once: an outage
                # must not turn discovery into a request every few milliseconds.
                retry_in = timedelta(seconds=config.backoff.initial_s)
                self._last_listed[workspace.key] = now - config.listing_interval + retry_in
                if pushed is not None and pushed <= now:
                    self._push_due[workspace.key] = now + retry_in
                continue
            report.listings += 1
            self._last_listed[workspace.key] = now
            if self._pushes_seen.get(workspace.key, 0) == pushes_before:
                # Every push so far came before this listing, which shows those jobs: none
                # needs a listing of its own any more (a later one keeps its due time).
                self._push_due.pop(workspace.key, None)
            listed_workspaces.add(workspace.key)
            unknown = [job.name for job in listing if job.name not in records]
            if unknown:
                # The listed jobs not read yet: those that finished since, and new ones.
                records.update(await self._store.job_records(workspace.key, unknown))
            listed: set[str] = set()
            for job in listing:
                if not job.circuit:
                    continue  # not a circuit training job
                listed.add(job.name)
                record = records.get(job.name)
                item = await self._work_for(job, record, work, now)
                if item is None:
                    continue
                self._observe(job, record, item, config, now, changes, cancels)
            # The listing reaches back past every unfinished watched job, finished ones
            # included, so their ends come with it. A watched job missing from it was
            # archived or deleted: one get tells how it ended.
            for name, record in records.items():
                if name in listed or record.job.state.is_terminal or record.observed_at is None:
                    continue
                item = await self._work_item(record.session_id, work)
                if item is None:
                    continue
                try:
                    latest = await self._source.get(workspace, name)
                except AzureCallError as exc:
                    report.failures.append(str(exc))
                    continue
                report.gets += 1
                self._observe(latest, record, item, config, now, changes, cancels)

        for item in work.values():
            item.looked_at = item.record.workspace in listed_workspaces
            await self._schedule(item, config, now, changes)

        # Compare-and-set: what was planned from a session applies only if nobody wrote
        # the session (an unwatch, a push, another replica) since it was read.
        changes.planned_from = {item.record.id: item.record.version for item in work.values()}
        applied = await self._store.apply_pass(changes)
        self._passes_done += 1
        report.events = applied.created
        report.replanned = sorted(applied.stale_sessions)
        if applied.stale_sessions:
            log.info("monitoring: sessions %s changed meanwhile: planned again", report.replanned)
        kept = [(w, name) for w, name, owner in cancels if owner not in applied.stale_sessions]
        await self._cancel_timed_out(kept, now, report)
        await self._drive_retries(report)
        return report

    async def _listing_window(
        self,
        last_listed: datetime | None,
        records: dict[str, JobRecord],
        work: dict[int, _SessionWork],
    ) -> datetime | None:
        """The oldest creation time the listing must reach (None: the whole history).

        Azure ML lists a workspace's jobs newest first, finished ones included, so a
        listing that stops at the previous listing (less an overlap) finds every new
        job, one that started and failed in between too; reaching back to the oldest
        unfinished watched job brings the end of every job being followed, without a
        `get` per finished job.
        """
        if last_listed is None:
            return None
        since = last_listed - LISTING_OVERLAP
        statuses: dict[int, str | None] = {
            item.record.id: item.record.status for item in work.values()
        }
        for record in records.values():
            if record.job.state.is_terminal or record.observed_at is None:
                continue
            if record.session_id is None:
                continue
            if record.session_id not in statuses:
                session = await self._store.session(record.session_id)
                statuses[record.session_id] = session.status if session else None
            if statuses[record.session_id] in (None, UNWATCHED):
                continue
            created = record.job.created_at or record.first_seen_at or record.observed_at
            since = min(since, created)
        return since

    async def _work_item(
        self, session_id: int | None, work: dict[int, _SessionWork]
    ) -> _SessionWork | None:
        if session_id is None:
            return None
        item = work.get(session_id)
        if item is None:
            session = await self._store.session(session_id)
            if session is None or session.status == UNWATCHED:
                return None
            item = _SessionWork(session, due=False)
            work[session_id] = item
        return item

    async def _work_for(
        self,
        job: TrainingJob,
        record: JobRecord | None,
        work: dict[int, _SessionWork],
        now: datetime,
    ) -> _SessionWork | None:
        if record is not None and record.session_id is not None:
            item = work.get(record.session_id)
            if item is not None:
                return item
            # Not due, but the listing shows it anyway: use the news if it changed.
            if job.state is record.job.state or job.state is JobState.UNKNOWN:
                return None
            session = await self._store.session(record.session_id)
            if session is None or session.status == UNWATCHED:
                return None
            item = _SessionWork(session, due=False)
            work[session.id] = item
            return item
        if (
            job.state.is_terminal
            and record is None
            and job.ended_at
            and job.ended_at < now - (self._config().backoff.deadline(now) - now)
        ):
            # Long-finished history found at start-up is not news.
            return None
        session = await self._store.open_session(
            kind="experiment",
            key=session_key_for(job),
            title=job.experiment or job.display_name,
            workspace=job.workspace,
            now=now,
        )
        if session.status not in ("active", "timed_out") and not job.state.is_terminal:
            await self._store.reactivate(session.id, now)
            session = await self._store.session(session.id) or session
            known = work.get(session.id)
            if known is not None:
                # This pass's own write: plan from it, or the pass would refuse itself.
                known.record = session
        item = work.get(session.id)
        if item is None:
            item = _SessionWork(session, due=True)
            work[session.id] = item
        return item

    def _observe(
        self,
        job: TrainingJob,
        record: JobRecord | None,
        item: _SessionWork,
        config: EngineConfig,
        now: datetime,
        changes: StoreObservation,
        cancels: list[tuple[Workspace, str, int]],
    ) -> None:
        attempt = Attempt(max(job.attempt, 1), max(max_attempts(config.max_retries), job.attempt))
        previous = _previous(record)
        transition = observe(
            previous,
            job,
            now,
            attempt,
            # The per-attempt timeout belongs to automatic retries: a first training may
            # run for hours (people get reminders), a retry must finish within it.
            attempt_timeout=config.attempt_timeout if attempt.number > 1 else None,
            reminder_interval=config.reminder_interval,
        )
        state = transition.observation
        stored = TrainingJob(
            workspace=job.workspace,
            name=job.name,
            display_name=job.display_name,
            experiment=job.experiment,
            circuit=job.circuit,
            status=job.status,
            state=state.state,  # the last known state: Unknown is "no news"
            created_at=job.created_at,
            started_at=job.started_at or state.running_since,
            ended_at=job.ended_at,
            studio_url=job.studio_url,
            error_summary=job.error_summary,
            attempt=job.attempt,
            failure=job.failure,
            created_by=job.created_by,
        )
        cancel_requested_at = record.cancel_requested_at if record else None
        progress = JobProgress(
            job=stored,
            session_id=item.record.id,
            running_since=state.running_since,
            announced_start=state.announced_start,
            timed_out=state.timed_out,
            reminders_sent=state.reminders_sent,
            cancel_requested_at=cancel_requested_at,
        )
        # Unchanged jobs are not written again: at thousands of jobs per listing the
        # writes, not the listing, would dominate each pass.
        if record is None or record.observed_at is None or _changed(record, progress):
            changes.jobs.append(progress)
        item.jobs[job.name] = stored
        if state.timed_out:
            item.timed_out_jobs.add(job.name)
        changes.events.extend(_new_event(event, item.record.id) for event in transition.events)
        if transition.cancel_job and (
            cancel_requested_at is None or now - cancel_requested_at >= CANCEL_REPEAT
        ):
            workspace = next((w for w in self._workspaces if w.key == job.workspace), None)
            if workspace is not None:
                cancels.append((workspace, job.name, item.record.id))

    async def _schedule(
        self,
        item: _SessionWork,
        config: EngineConfig,
        now: datetime,
        changes: StoreObservation,
    ) -> None:
        session = item.record
        stored = {r.job.name: r for r in await self._store.session_jobs(session.id)}
        jobs = {name: record.job for name, record in stored.items()}
        jobs.update(item.jobs)
        timed_out = {name for name, r in stored.items() if r.timed_out} | item.timed_out_jobs
        poll = PollState(
            started_at=session.started_at,
            checks_done=session.checks_done,
            last_check_at=session.last_check_at,
            next_check_at=session.next_check_at,
        )
        backoff = config.backoff
        # A session with many jobs sees changes at almost every check; letting each one
        # reset the delays would poll at 30 s for hours. Changes are reported as they are
        # seen; only a push (check_now) restarts the delays.
        if item.due:
            poll = backoff.checked(poll, now) if poll.next_check_at is not None else poll

        plan = plan_retries(
            await self._retry_candidates(session, jobs, timed_out), config.max_retries
        )
        if plan.retry:
            next_attempts = {
                circuit: 1 + max(j.attempt for j in jobs.values() if j.circuit == circuit)
                for circuit in plan.retry
            }
            attempt = max(next_attempts.values())
            changes.events.append(
                NewEvent(
                    key=retry_event_key(session.key, plan.manual_circuits, attempt),
                    kind=RETRY_QUEUED,
                    payload={
                        "circuits": list(plan.retry),
                        "manualCircuits": plan.manual_circuits,
                        "attempt": attempt,
                        "next_attempts": next_attempts,
                        "max_attempts": max_attempts(config.max_retries),
                        "pipeline": config.training_pipeline,
                        "run_id": None,
                        "session": session.title,
                    },
                    session_id=session.id,
                    workspace=session.workspace,
                )
            )

        unfinished = [j for name, j in jobs.items() if not _finished(j, name in timed_out)]
        status = session.status
        next_check = poll.next_check_at
        if not unfinished and not plan.retry:
            status, next_check = "done", None
        elif status == "active" and not poll.finished and item.looked_at:
            # The session's own backoff, tightened so that no job in it waits longer than
            # its own backoff would make it wait (young jobs joining an older session).
            own = (
                poll.next_check_at
                if item.due
                else backoff.next_check(poll.started_at, poll.last_check_at, poll.checks_done)
            )
            if own is not None:
                # With pushes, the end of a running job is pushed: only jobs that have
                # not started yet need looks of their own, and a session of running
                # jobs waits for the safety net.
                safety_net = config.push_safety_net
                looked_for = [
                    job
                    for job in unfinished
                    if safety_net is None or job.state is not JobState.RUNNING
                ]
                looks = (
                    next_look_due(backoff, _submitted(job, stored.get(job.name), now), now)
                    for job in looked_for
                )
                next_check = min([own, *(t for t in looks if t is not None)])
                if safety_net is not None and not looked_for:
                    next_check = max(next_check, now + safety_net)
        elif poll.finished:
            event = monitoring_timed_out(session.key, poll, now, unfinished)
            if event is not None and session.status == "active":
                changes.events.append(
                    NewEvent(
                        key=event.key,
                        kind=event.kind.value,
                        payload=event_payload(event) | {"title": session.title},
                        session_id=session.id,
                        workspace=session.workspace,
                    )
                )
            status = "timed_out"
            # Past the max wait, jobs are still checked at each reminder.
            reminders = [
                next_reminder_at(
                    stored[n].running_since or j.started_at or now,
                    stored[n].reminders_sent if n in stored else 0,
                    config.reminder_interval,
                )
                for n, j in ((j.name, j) for j in unfinished)
                if j.state is JobState.RUNNING
            ]
            next_check = min(reminders) if reminders else None
            if next_check is None:
                status = "done"
        changes.schedules.append(
            SessionSchedule(
                session_id=session.id,
                status=status,
                checks_done=poll.checks_done,
                last_check_at=poll.last_check_at,
                next_check_at=next_check,
            )
        )

    async def _retry_candidates(
        self, session: SessionRecord, jobs: dict[str, TrainingJob], timed_out: set[str]
    ) -> list[CircuitAttempts]:
        """The latest attempt of each circuit that may need a retry now.

        Circuits fail and are retried independently: those failing in the same check go
        out in one pipeline run, without waiting for the session's other circuits
        (which may train for hours). A circuit whose next attempt was already requested
        waits for that attempt to appear.
        """
        latest: dict[str, tuple[TrainingJob, bool]] = {}
        for name, job in jobs.items():
            if not job.circuit:
                continue
            known = latest.get(job.circuit)
            if known is None or job.attempt >= known[0].attempt:
                latest[job.circuit] = (job, name in timed_out)
        requested: set[tuple[str, int]] = set()
        for event in await self._store.events_of_kind(RETRY_QUEUED, session_id=session.id):
            per_circuit = event.payload.get("next_attempts") or {}
            for circuit in event.payload.get("circuits", []):
                number = per_circuit.get(circuit, event.payload.get("attempt", 0))
                requested.add((str(circuit), int(number)))
        candidates = []
        for circuit, (job, was_timed_out) in latest.items():
            attempts = CircuitAttempts(circuit, max(job.attempt, 1), job.state, was_timed_out)
            if attempts.in_flight or (circuit, attempts.attempts + 1) in requested:
                continue
            candidates.append(attempts)
        return candidates

    async def _cancel_timed_out(
        self, cancels: list[tuple[Workspace, str]], now: datetime, report: TickReport
    ) -> None:
        for workspace, name in cancels:
            try:
                await self._source.cancel(workspace, name)
            except AzureCallError as exc:
                report.failures.append(str(exc))
                continue
            report.cancels += 1
            await self._store.mark_cancel_requested(workspace.key, name, now)

    async def _drive_retries(self, report: TickReport) -> None:
        """Queue every recorded retry that has no pipeline run yet (also after a restart).

        New retry events become pipeline intents (keyed by the event); then each intent
        without a run is carried on by `queue_once`'s rules: a POST whose outcome was
        unknown is looked for in Azure DevOps before anything is posted again, so a retry
        is queued once. Both reads are bounded: the events past a cursor, and the intents
        not yet queued.
        """
        if self._runs is None:
            return
        await self._adopt_retry_events()
        for intent in await self._runs.intents.unresolved(RETRY_INTENT_PREFIX, RETRIES_PER_TICK):
            try:
                outcome = await self._runs.resolve(intent)
            except AzureCallError as exc:
                report.failures.append(str(exc))
                log.warning("monitoring: queuing the retry run failed: %s", exc)
                continue
            if isinstance(outcome, OutcomeUnknown):
                report.failures.append(f"retry {intent.key}: outcome unknown: {outcome.reason}")
                continue
            if isinstance(outcome, Queued):
                report.runs_queued += 1
            await self._record_retry_run(intent.event_id, outcome.run)
            log.info(
                "monitoring: queued %s with %s (run %s)",
                intent.pipeline,
                intent.parameters,
                outcome.run.run_id,
            )

    async def _adopt_retry_events(self) -> None:
        """Turn retry events recorded since the last pass into pipeline intents."""
        assert self._runs is not None
        intents = self._runs.intents
        now = self._clock()
        while True:
            found, position = await intents.new_events(
                RETRY_EVENTS_CURSOR, RETRY_QUEUED, RETRIES_PER_TICK
            )
            for event in found:
                payload = dict(event.payload)
                run_id = payload.get("run_id")
                requested = payload.get("queue_requested_at")
                if run_id is None and requested is None:
                    # The intent's time, kept on the event as well (status and cards read it).
                    payload["queue_requested_at"] = now.isoformat()
                    await self._store.update_payload(event.id, payload)
                await intents.open(
                    f"{RETRY_INTENT_PREFIX}{event.key}",
                    str(payload["pipeline"]),
                    {"manualCircuits": str(payload["manualCircuits"])},
                    now,
                    event_id=event.id,
                    # Noted by an earlier version before the POST: it may have been sent.
                    posted_at=_parsed_time(requested) if run_id is None else None,
                    run_id=int(run_id) if run_id is not None else None,
                    run_url=payload.get("run_url"),
                )
            await intents.move_cursor(RETRY_EVENTS_CURSOR, position, now)
            if len(found) < RETRIES_PER_TICK:
                return

    async def _record_retry_run(self, event_id: int | None, run: RunRef) -> None:
        if event_id is None:
            return
        assert self._runs is not None
        stored = await self._runs.intents.event_payload(event_id)
        if stored is None or stored.get("run_id") == run.run_id:
            return
        payload = stored | {"run_id": run.run_id, "run_url": run.web_url}
        await self._store.update_payload(event_id, payload)


def _parsed_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _progress(job: TrainingJob, record: JobRecord | None, session_id: int) -> JobProgress:
    """The job under `session_id`, keeping what was already announced about it."""
    return JobProgress(
        job=job,
        session_id=session_id,
        running_since=record.running_since if record else None,
        announced_start=record.announced_start if record else False,
        timed_out=record.timed_out if record else False,
        reminders_sent=record.reminders_sent if record else 0,
        cancel_requested_at=record.cancel_requested_at if record else None,
    )


def _settles(status: str | None) -> bool:
    """A pushed completion can wait a little; a failure (or an unknown status) cannot."""
    return status is not None and job_state(status) is JobState.COMPLETED


def _submitted(job: TrainingJob, record: JobRecord | None, now: datetime) -> datetime:
    """When the job's own wait began: its submission, else when it was first seen."""
    return job.created_at or (record.first_seen_at if record else None) or now


def _finished(job: TrainingJob, timed_out: bool) -> bool:
    return job.state.is_terminal or (timed_out and job.status.lower() == "cancelrequested")


def _changed(record: JobRecord, progress: JobProgress) -> bool:
    before = record.job
    after = progress.job
    return (
        before.status != after.status
        or before.state is not after.state
        or before.started_at != after.started_at
        or before.ended_at != after.ended_at
        or before.error_summary != after.error_summary
        or before.studio_url != after.studio_url
        or before.attempt != after.attempt
        or record.session_id != progress.session_id
        or record.running_since != progress.running_since
        or record.announced_start != progress.announced_start
        or record.timed_out != progress.timed_out
        or record.reminders_sent != progress.reminders_sent
    )
