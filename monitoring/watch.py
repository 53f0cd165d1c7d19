"""`mlbot watch`: the monitoring engine in the foreground, for a pipeline stage.

A pipeline stage that has submitted training jobs wants three things: a log that shows
how every circuit is doing, the same Teams notifications the bot would send, and an exit
code that fails the stage when training failed. The watch runs the very engine the bot
runs (same backoff, retries, reminders, max wait), so a stage and the bot never disagree.

Which jobs: a `WatchTarget` names jobs and/or an experiment and/or a circuit prefix. A
named job's later attempts (the automatic retries of its circuit) are watched with it,
because a retry decides whether the circuit finally trained.

Exit codes (`WatchExit`):
- 0: every watched circuit completed (after retries, if any were needed);
- 1: a circuit failed with its retries exhausted (or retries disabled), or was canceled;
- 2: the max wait (`monitoringMaxWaitHours`) passed with jobs still unfinished;
- 3: configuration or authentication error, or no job matched within the grace period.

Everything here except `run_watch` is pure: the loop reads the store, the rest decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, TextIO

from domain.durations import format_duration
from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.azure_calls import AzureAuthError, AzureCallError, AzureNotFoundError
from monitoring.engine import (
    RETRY_QUEUED,
    EngineConfig,
    EngineJobSource,
    MonitoringEngine,
)
from monitoring.pipeline_runs import PipelineRuns, QueuedRun, RunPipelines
from monitoring.retries import CircuitAttempts, max_attempts
from store.monitoring import EventRecord, JobRecord, MonitoringStore, SessionRecord
from store.pipeline_intents import PipelineIntentStore

log = logging.getLogger(__name__)

# A stage usually starts watching right after submitting its jobs; Azure ML may take a
# moment to list them, and the engine looks for new jobs at its slowest polling pace.
DEFAULT_GRACE = timedelta(minutes=10)
# The shortest pause between two passes, so a clock that stands still cannot spin the loop.
MIN_PAUSE_S = 1.0
# Events are read in one query; a watch's own store never comes near this many.
_EVENT_LIMIT = 1_000_000
_TIMED_OUT = "monitoring_timed_out"
_FAILURE_EVENTS = ("training_failed", "attempt_timed_out")


class WatchExit(IntEnum):
    """The process exit code of `mlbot watch`."""

    COMPLETED = 0
    FAILED = 1
    MAX_WAIT_EXCEEDED = 2
    CONFIGURATION_ERROR = 3


class Verdict(StrEnum):
    """Where a circuit stands, judged by its latest attempt and any retry on its way."""

    COMPLETED = "completed"
    FAILED = "failed"  # failed with no retry left: final
    CANCELED = "canceled"  # a person stopped it: final, and not a trained model
    RETRY_PENDING = "retry pending"  # failed, a retry is queued or about to be
    RUNNING = "running"
    WAITING = "waiting"

    @property
    def final(self) -> bool:
        return self in (Verdict.COMPLETED, Verdict.FAILED, Verdict.CANCELED)


# --- what to watch -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """Which training jobs a stage waits for; every criterion given must hold.

    At least one criterion is required: a stage must never wait for (and fail on) jobs
    that other teams run in the same workspace.
    """

    job_names: tuple[str, ...] = ()
    experiment: str | None = None
    circuit_prefix: str | None = None

    def __post_init__(self) -> None:
        names = tuple(dict.fromkeys(n.strip() for n in self.job_names if n.strip()))
        object.__setattr__(self, "job_names", names)
        object.__setattr__(self, "experiment", (self.experiment or "").strip() or None)
        object.__setattr__(self, "circuit_prefix", (self.circuit_prefix or "").strip() or None)
        if not (self.job_names or self.experiment or self.circuit_prefix):
            raise ValueError("give at least one job name, an experiment or a circuit prefix")

    def describe(self) -> str:
        """The target as people typed it, for messages: `job a, b; experiment x`."""
        parts = []
        if self.job_names:
            parts.append(f"job {', '.join(self.job_names)}")
        if self.experiment:
            parts.append(f"experiment {self.experiment}")
        if self.circuit_prefix:
            parts.append(f"circuit prefix {self.circuit_prefix}")
        return "; ".join(parts)


def matches(job: TrainingJob, target: WatchTarget) -> bool:
    """Does `job` itself answer the target (retries are followed by `select_watched`)?"""
    if target.job_names and job.name not in target.job_names:
        return False
    if target.experiment and job.experiment != target.experiment:
        return False
    return not target.circuit_prefix or (job.circuit or "").startswith(target.circuit_prefix)


def _circuit_key(job: TrainingJob) -> tuple[str, str, str]:
    return (job.workspace, job.experiment, job.circuit or "")


def select_watched(
    records: Iterable[JobRecord], target: WatchTarget, since: datetime | None = None
) -> list[JobRecord]:
    """The jobs the watch follows: those matching the target, and their circuits' retries.

    Jobs that Azure ML created before `since` are history from an earlier run (the same
    experiment is trained again and again) and are left out.
    """
    recent = [
        r
        for r in records
        if r.job.circuit
        and (since is None or r.job.created_at is None or r.job.created_at >= since)
    ]
    direct = [r for r in recent if matches(r.job, target)]
    # A retry is a new job of the same circuit, a later attempt: it has another name.
    first_attempt: dict[tuple[str, str, str], int] = {}
    for record in direct:
        key = _circuit_key(record.job)
        first_attempt[key] = min(first_attempt.get(key, record.job.attempt), record.job.attempt)
    chosen = {(r.job.workspace, r.job.name): r for r in direct}
    for record in recent:
        start = first_attempt.get(_circuit_key(record.job))
        if start is not None and record.job.attempt > start:
            chosen.setdefault((record.job.workspace, record.job.name), record)
    return sorted(chosen.values(), key=lambda r: (r.job.circuit or "", r.job.attempt, r.job.name))


def concerns(event: EventRecord, watched: Sequence[JobRecord]) -> bool:
    """Is `event` news about the watched jobs (and so worth a notification)?"""
    if event.job_name is not None:
        return any(
            r.job.name == event.job_name and r.job.workspace == event.workspace for r in watched
        )
    sessions = {r.session_id for r in watched}
    if event.session_id not in sessions:
        return False
    if event.kind == RETRY_QUEUED:
        circuits = {r.job.circuit for r in watched if r.session_id == event.session_id}
        return bool(circuits & set(event.payload.get("circuits") or ()))
    if event.kind == _TIMED_OUT:
        names = {r.job.name for r in watched}
        unfinished = event.payload.get("unfinished") or ()
        return any(isinstance(j, dict) and j.get("name") in names for j in unfinished)
    return False


# --- options -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """How long a watch waits, and how many attempts a circuit gets."""

    max_wait: timedelta = timedelta(hours=3)
    grace: timedelta = DEFAULT_GRACE  # to find a matching job; also slack past max_wait
    max_attempts: int = 3  # the first run plus automatic retries
    # Jobs created this long before the watch began still count (None: the max wait).
    lookback: timedelta | None = None

    def __post_init__(self) -> None:
        if self.max_wait <= timedelta(0):
            raise ValueError("max_wait must be positive")
        if self.grace <= timedelta(0):
            raise ValueError("grace must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_settings(
        cls, settings: Any, *, retries_possible: bool = True, grace: timedelta = DEFAULT_GRACE
    ) -> WatchOptions:
        """From `Settings`; without a training pipeline to queue, no retry can happen."""
        retries = settings.auto_retry_max_retries if retries_possible else 0
        return cls(
            max_wait=timedelta(hours=float(settings.monitoring_max_wait_hours)),
            grace=grace,
            max_attempts=max_attempts(retries),
        )

    def since(self, started_at: datetime) -> datetime:
        return started_at - (self.lookback if self.lookback is not None else self.max_wait)


# --- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CircuitResult:
    """A circuit's standing, judged by its latest attempt."""

    circuit: str
    job_name: str
    attempt: int
    max_attempts: int
    verdict: Verdict
    status: str  # the raw Azure ML status of the latest attempt
    duration: timedelta | None
    error_summary: str | None = None

    def line(self) -> str:
        text = (
            f"{self.verdict.value:<13} {self.circuit}  {self.job_name}  "
            f"attempt {self.attempt}/{self.max_attempts}  {format_duration(self.duration)}"
        )
        return f"{text}  {self.error_summary}" if self.error_summary else text


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    """How the watch ended: the exit code and a summary for the log."""

    exit_code: WatchExit
    summary: str
    circuits: tuple[CircuitResult, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.exit_code is WatchExit.COMPLETED


def _duration(record: JobRecord, now: datetime) -> timedelta | None:
    start = record.running_since or record.job.started_at
    if start is None:
        return None
    end = record.job.ended_at if record.job.state.is_terminal and record.job.ended_at else now
    return max(end - start, timedelta(0))


def _retry_pending(latest: JobRecord, events: Sequence[EventRecord]) -> bool:
    """A retry of the circuit is recorded whose attempt has not shown up yet."""
    for event in events:
        if event.kind != RETRY_QUEUED or event.session_id != latest.session_id:
            continue
        if latest.job.circuit not in (event.payload.get("circuits") or ()):
            continue
        try:
            attempt = int(event.payload.get("attempt") or 0)
        except (TypeError, ValueError):
            continue
        if attempt > latest.job.attempt:
            return True
    return False


def _said_exhausted(latest: JobRecord, events: Sequence[EventRecord]) -> bool:
    return any(
        e.kind in _FAILURE_EVENTS
        and e.job_name == latest.job.name
        and e.workspace == latest.job.workspace
        and e.payload.get("retries_exhausted") is True
        for e in events
    )


def judge_circuits(
    jobs: Sequence[JobRecord],
    events: Sequence[EventRecord],
    session_status: Mapping[int, str],
    *,
    max_attempts: int,
    now: datetime,
) -> list[CircuitResult]:
    """One result per watched circuit, from its latest attempt and the recorded retries."""
    latest: dict[tuple[str, str, str], JobRecord] = {}
    for record in jobs:
        key = _circuit_key(record.job)
        known = latest.get(key)
        if known is None or record.job.attempt >= known.job.attempt:
            latest[key] = record
    results = []
    for record in sorted(latest.values(), key=lambda r: (r.job.circuit or "", r.job.workspace)):
        job = record.job
        failed = CircuitAttempts(
            job.circuit or "", max(job.attempt, 1), job.state, record.timed_out
        ).failed
        if _retry_pending(record, events):
            verdict = Verdict.RETRY_PENDING
        elif job.state is JobState.COMPLETED:
            verdict = Verdict.COMPLETED
        elif failed:
            # The engine decides retries; past the last attempt, or once it has closed the
            # session without queuing one, the failure is final.
            final = (
                job.attempt >= max_attempts
                or _said_exhausted(record, events)
                or session_status.get(record.session_id or -1) == "done"
            )
            verdict = Verdict.FAILED if final else Verdict.RETRY_PENDING
        elif job.state is JobState.CANCELED:
            verdict = Verdict.CANCELED
        elif job.state is JobState.RUNNING:
            verdict = Verdict.RUNNING
        else:
            verdict = Verdict.WAITING
        results.append(
            CircuitResult(
                circuit=job.circuit or "",
                job_name=job.name,
                attempt=max(job.attempt, 1),
                max_attempts=max(max_attempts, job.attempt),
                verdict=verdict,
                status=job.status,
                duration=_duration(record, now),
                error_summary=job.error_summary if verdict is Verdict.FAILED else None,
            )
        )
    return results


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _lines(headline: str, results: Iterable[CircuitResult]) -> str:
    return "\n".join([headline, *(f"  {r.line()}" for r in results)])


def watch_outcome(
    jobs: Sequence[JobRecord],
    events: Sequence[EventRecord],
    session_status: Mapping[int, str],
    *,
    target: WatchTarget,
    options: WatchOptions,
    started_at: datetime,
    now: datetime,
    error: str | None = None,
    stop_when_idle: bool = True,
) -> WatchOutcome | None:
    """How the watch ends now, or None to keep watching.

    `jobs` are the watched jobs (see `select_watched`), `events` every recorded event,
    `session_status` each session's status by id. `error` is a configuration or
    authentication problem, which ends the watch with 3 whatever the jobs do.
    """
    if error is not None:
        return WatchOutcome(WatchExit.CONFIGURATION_ERROR, f"Configuration error: {error}")
    if not jobs:
        if now - started_at < options.grace:
            return None
        return WatchOutcome(
            WatchExit.CONFIGURATION_ERROR,
            f"No job matches {target.describe()} after {format_duration(options.grace)} "
            "of looking (check the job names, the experiment, the circuit prefix and "
            "MLBOT_AZUREML_WORKSPACES).",
        )
    results = judge_circuits(
        jobs, events, session_status, max_attempts=options.max_attempts, now=now
    )
    final_failures = [r for r in results if r.verdict in (Verdict.FAILED, Verdict.CANCELED)]
    unfinished = [r for r in results if not r.verdict.final]
    # The engine ends a session at the max wait; the watch's own deadline, a little
    # later, guards against a session that was started long before the watch.
    hard_deadline = started_at + options.max_wait + options.grace
    if unfinished:
        open_sessions = {
            r.session_id for r in jobs if r.job.name in {u.job_name for u in unfinished}
        }
        timed_out = now >= hard_deadline or any(
            session_status.get(s or -1) == "timed_out" for s in open_sessions
        )
        timed_out = timed_out or any(
            e.kind == _TIMED_OUT and e.session_id in open_sessions for e in events
        )
        if not timed_out:
            return None
        waited = format_duration(options.max_wait)
        headline = (
            f"Max wait of {waited} exceeded with {_plural(len(unfinished), 'circuit')} unfinished"
        )
        if final_failures:
            headline = (
                f"FAILED: {_plural(len(final_failures), 'circuit')} did not complete, and "
                f"the max wait of {waited} passed with {len(unfinished)} still unfinished"
            )
            return WatchOutcome(WatchExit.FAILED, _lines(headline, results), tuple(results))
        return WatchOutcome(
            WatchExit.MAX_WAIT_EXCEEDED, _lines(headline + ":", results), tuple(results)
        )
    if not stop_when_idle and now < hard_deadline:
        return None
    if final_failures:
        headline = (
            f"FAILED: {len(final_failures)} of {_plural(len(results), 'circuit')} did not complete:"
        )
        return WatchOutcome(WatchExit.FAILED, _lines(headline, results), tuple(results))
    headline = f"All {_plural(len(results), 'circuit')} completed:"
    return WatchOutcome(WatchExit.COMPLETED, _lines(headline, results), tuple(results))


# --- progress ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """One line of the progress display: a watched job (one attempt of a circuit)."""

    circuit: str
    job_name: str
    state: str  # JobState value, or "timed out"
    status: str  # raw Azure ML status
    attempt: int
    max_attempts: int
    running_since: datetime | None
    ended_at: datetime | None
    next_check_at: datetime | None  # None when finished or no check is scheduled
    finished: bool


def progress_rows(
    jobs: Sequence[JobRecord],
    sessions: Mapping[int, SessionRecord],
    *,
    max_attempts: int,
) -> list[ProgressRow]:
    rows = []
    for record in jobs:
        job = record.job
        session = sessions.get(record.session_id or -1)
        finished = job.state.is_terminal
        state = "timed out" if record.timed_out and not finished else job.state.value
        rows.append(
            ProgressRow(
                circuit=job.circuit or "",
                job_name=job.name,
                state=state,
                status=job.status,
                attempt=max(job.attempt, 1),
                max_attempts=max(max_attempts, job.attempt),
                running_since=record.running_since or job.started_at,
                ended_at=job.ended_at if finished else None,
                next_check_at=None if finished or session is None else session.next_check_at,
                finished=finished,
            )
        )
    return rows


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def render_progress(rows: Sequence[ProgressRow], now: datetime) -> str:
    """A plain-text block for a CI log: a headline, then one aligned line per job."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    head = f"[{_utc(now)}] watching {_plural(len(rows), 'job')}" + (f": {tally}" if tally else "")
    if not rows:
        return head
    circuit_w = max(len(r.circuit) for r in rows)
    name_w = max(len(r.job_name) for r in rows)
    state_w = max(len(f"{r.state} ({r.status})") for r in rows)
    lines = [head]
    for row in rows:
        elapsed = None
        if row.running_since is not None:
            elapsed = (row.ended_at or now) - row.running_since
        if row.finished:
            check = "done"
        elif row.next_check_at is None:
            check = "no check scheduled"
        elif row.next_check_at <= now:
            check = "next check now"
        else:
            check = f"next check in {format_duration(row.next_check_at - now)}"
        lines.append(
            f"  {row.circuit:<{circuit_w}}  {row.job_name:<{name_w}}  "
            f"{f'{row.state} ({row.status})':<{state_w}}  "
            f"elapsed {format_duration(elapsed):>7}  "
            f"attempt {row.attempt}/{row.max_attempts}  {check}"
        )
    return "\n".join(lines)


# --- configuration and authentication errors --------------------------------------------


@dataclass
class AuthProbe:
    """Remembers the first refusal Azure gave the engine.

    The engine logs failed calls and carries on (the bot must survive a bad minute),
    but a pipeline stage whose identity is refused must stop at once with exit code 3,
    naming the setting to fix. A workspace or pipeline that does not exist is a
    configuration error too.
    """

    error: AzureCallError | None = None
    failures: list[str] = field(default_factory=list)

    def record(self, exc: AzureCallError, *, missing_is_config: bool) -> None:
        self.failures.append(str(exc))
        if self.error is not None:
            return
        if isinstance(exc, AzureAuthError) or (
            missing_is_config and isinstance(exc, AzureNotFoundError)
        ):
            self.error = exc

    @property
    def message(self) -> str | None:
        return None if self.error is None else str(self.error)

    def source(self, inner: EngineJobSource) -> EngineJobSource:
        return _ProbedSource(inner, self)

    def pipelines(self, inner: RunPipelines) -> RunPipelines:
        return _ProbedPipelines(inner, self)


class _ProbedSource:
    def __init__(self, inner: EngineJobSource, probe: AuthProbe) -> None:
        self._inner = inner
        self._probe = probe

    async def list_active(
        self, workspace: Workspace, *, created_since: datetime | None = None
    ) -> list[TrainingJob]:
        try:
            return await self._inner.list_active(workspace, created_since=created_since)
        except AzureCallError as exc:
            # The listing names only the workspace: "not found" means a wrong setting.
            self._probe.record(exc, missing_is_config=True)
            raise

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        try:
            return await self._inner.get(workspace, name)
        except AzureCallError as exc:
            self._probe.record(exc, missing_is_config=False)  # a job may be deleted
            raise

    async def cancel(self, workspace: Workspace, name: str) -> None:
        try:
            await self._inner.cancel(workspace, name)
        except AzureCallError as exc:
            self._probe.record(exc, missing_is_config=False)
            raise


class _ProbedPipelines:
    def __init__(self, inner: RunPipelines, probe: AuthProbe) -> None:
        self._inner = inner
        self._probe = probe

    async def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str]
    ) -> QueuedRun:
        try:
            return await self._inner.queue_run(pipeline_name, template_parameters)
        except AzureCallError as exc:
            # A training pipeline that does not exist: MLBOT_TRAINING_PIPELINE is wrong.
            self._probe.record(exc, missing_is_config=True)
            raise

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> QueuedRun | None:
        try:
            return await self._inner.find_run(pipeline_name, template_parameters, since)
        except AzureCallError as exc:
            self._probe.record(exc, missing_is_config=True)
            raise


def watch_engine(
    *,
    store: MonitoringStore,
    source: EngineJobSource,
    workspaces: list[Workspace],
    pipelines: RunPipelines | None,
    intents: PipelineIntentStore,
    config: Callable[[], EngineConfig],
    clock: Callable[[], datetime],
) -> tuple[MonitoringEngine, AuthProbe]:
    """The engine for a watch, its Azure calls observed by an `AuthProbe`."""
    probe = AuthProbe()
    runs = (
        PipelineRuns(probe.pipelines(pipelines), intents, clock) if pipelines is not None else None
    )
    engine = MonitoringEngine(
        store=store,
        source=probe.source(source),
        workspaces=workspaces,
        runs=runs,
        config=config,
        clock=clock,
    )
    return engine, probe


# --- the loop ------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    watched: list[JobRecord]
    events: list[EventRecord]
    sessions: dict[int, SessionRecord]


async def _snapshot(
    engine: MonitoringEngine, store: MonitoringStore, target: WatchTarget, since: datetime
) -> _Snapshot:
    records: list[JobRecord] = []
    for workspace in engine.workspaces:
        records.extend((await store.job_records(workspace.key)).values())
    sessions = {s.id: s for s in await store.sessions()}
    events = await store.events(limit=_EVENT_LIMIT)
    return _Snapshot(select_watched(records, target, since), events, sessions)


class _Display:
    """Writes progress blocks; on a terminal the previous block is redrawn in place."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        isatty = getattr(out, "isatty", None)
        self._tty = bool(isatty()) if callable(isatty) else False
        self._drawn = 0

    def progress(self, block: str) -> None:
        if self._tty and self._drawn:
            # Cursor up to the start of the last block, then clear to the end of screen.
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
        self._out.write(block + "\n")
        self._out.flush()
        self._drawn = block.count("\n") + 1 if self._tty else 0

    def line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()
        self._drawn = 0  # never redraw over a message


async def run_watch(
    engine: MonitoringEngine,
    store: MonitoringStore,
    target: WatchTarget,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]],
    out: TextIO,
    notify: Callable[[EventRecord], Awaitable[None]] | None,
    stop_when_idle: bool = True,
    options: WatchOptions | None = None,
    probe: AuthProbe | None = None,
) -> WatchOutcome:
    """Run the engine until the watched jobs are finished or the max wait has passed.

    The engine ticks whenever it asks to; between ticks the watch sleeps with `sleep`.
    After each tick the progress is written to `out` and each new event about a watched
    job is handed to `notify`, once. With `stop_when_idle` False the watch keeps going
    (new jobs may still match an experiment) until the max wait.
    """
    opts = options or WatchOptions()
    started_at = clock()
    since = opts.since(started_at)
    display = _Display(out)
    # Events recorded before the watch began were someone else's news.
    baseline = max((e.id for e in await store.events(limit=_EVENT_LIMIT)), default=0)
    delivered: set[int] = set()
    display.line(f"mlbot watch: {target.describe()} (max wait {format_duration(opts.max_wait)})")

    while True:
        error: str | None = None
        ticked = False
        # Asked before reading the clock: on a moving clock the engine's answer for
        # "now" is never later than ours, so a due tick is never skipped.
        due = await engine.next_wakeup()
        if clock() >= due:
            try:
                # The engine logs failed calls itself; the probe tells which are fatal.
                await engine.tick()
            except AzureAuthError as exc:  # the engine usually absorbs it; the probe sees it
                error = str(exc)
            else:
                ticked = True
        if error is None and probe is not None:
            error = probe.message
        now = clock()  # after the tick: decisions see what the tick just learned
        snapshot = await _snapshot(engine, store, target, since)
        if ticked and error is None:
            if snapshot.watched:
                rows = progress_rows(
                    snapshot.watched, snapshot.sessions, max_attempts=opts.max_attempts
                )
                display.progress(render_progress(rows, now))
            else:
                display.progress(f"[{_utc(now)}] no job matches {target.describe()} yet")
            await _notify_new(snapshot, baseline, delivered, notify, display)
        outcome = watch_outcome(
            snapshot.watched,
            snapshot.events,
            {s.id: s.status for s in snapshot.sessions.values()},
            target=target,
            options=opts,
            started_at=started_at,
            now=now,
            error=error,
            stop_when_idle=stop_when_idle,
        )
        if outcome is not None:
            display.line(outcome.summary)
            return outcome
        wake = await engine.next_wakeup()
        # Wake for the watch's own decisions too: the grace period and the hard deadline.
        decisions = [started_at + opts.grace, started_at + opts.max_wait + opts.grace]
        wake = min([wake, *(d for d in decisions if d > now)])
        await sleep(max((wake - clock()).total_seconds(), MIN_PAUSE_S))


async def _notify_new(
    snapshot: _Snapshot,
    baseline: int,
    delivered: set[int],
    notify: Callable[[EventRecord], Awaitable[None]] | None,
    display: _Display,
) -> None:
    for event in snapshot.events:
        if event.id <= baseline or event.id in delivered:
            continue
        if not concerns(event, snapshot.watched):
            continue
        # Marked first: one try per event, so a flaky webhook never sends a card twice.
        delivered.add(event.id)
        subject = event.circuit or ", ".join(event.payload.get("circuits") or ()) or "session"
        display.line(f"event: {event.kind.replace('_', ' ')} - {subject}")
        if notify is None:
            continue
        try:
            await notify(event)
        except Exception as exc:  # a notification must never stop the stage's verdict
            log.warning("watch: notifying %s failed: %s", event.key, type(exc).__name__)
            display.line(f"warning: notification for {event.kind} failed ({type(exc).__name__})")
