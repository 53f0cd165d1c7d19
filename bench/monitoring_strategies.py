"""Benchmark: ways to monitor Azure ML training jobs, on a simulated clock.

A seeded world of N training jobs (one per circuit, attempt 1) over 10 workspaces is
played by each strategy, asking the same in-memory job source:

  (a) naive      - every job polled with a `get` every 30 s from submission until terminal;
  (b) backoff    - the documented loop run per job: `get` at submission, then after 30 s,
                   doubling to 300 s, giving up 3 h after submission (BackoffPolicy);
  (c) engine     - mlbot's real `MonitoringEngine` with a real `MonitoringStore` on SQLite,
                   ticked whenever `next_wakeup()` is due, polling only;
  (c) + push     - the same engine with an Event Grid subscription
                   (`MLBOT_EVENTGRID_SAFETY_NET_SECONDS`): every end of a job is pushed
                   (`RunCompleted`, `RunStatusChanged` Failed) with Event Grid's delivery
                   behaviour (latency, failed attempts retried on its schedule, duplicates,
                   deliveries refused once older than the replay window), parsed by the
                   hook's own `parse_eventgrid` and handed to `engine.check_now` as the
                   hook does;
  (c) + push 20% lost - the same, with a fifth of the pushes never delivered.

All see the same world (same submissions, durations and failures) through the same
source. (a) and (b) are handed each job at its submission; (c) has to find it.

The source answers from the world at the current simulated time and counts the calls it
gets: the benchmark measures strategies, not the Azure SDK nor the network. It lists as
Azure ML does: every job of the workspace, finished ones too, newest first, 100 a page;
a caller that stops at `created_since` asks only for the pages up to the first older
job. An API call is one HTTP request: a `get`, or one page of a listing. Detection delay
is the time a strategy reported a transition (started running, completed, failed) minus
the world's true time; for the engine, the `created_at` of its stored
`training_started` / `training_completed` / `training_failed` events. A job first seen
already finished gets one terminal event and no "started" (monitoring.lifecycle): its
start counts as *folded* into that event, not as missed. Automatic retries are off
(`MLBOT_AUTO_RETRY_MAX_RETRIES=0`, and `pipelines=None`) so every strategy watches the
same jobs.

Every (strategy, seed, size) cell runs in its own subprocess so its peak RSS is its own.

The run fails (exit 1) if anything is logged at WARNING or above during a cell, the
engine reports a transition twice or before it happened, or an engine cell (with or
without pushes, lost ones included) never reports a transition. Timings never fail it:
targets are printed as MET / NOT MET. (b) gives up after 3 h by design: its misses are a
figure. An engine cell stopped by `--engine-budget` is partial and says so.

    .venv/bin/python bench/monitoring_strategies.py [--jobs 1000] [--seeds 1,2,7]
    .venv/bin/python bench/monitoring_strategies.py --only push --jobs 1000 --seeds 7
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import heapq
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run_checks import RunChecks
from config.settings import settings_from_mapping
from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.backoff import BackoffPolicy
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.job_status import job_state
from service.eventgrid import parse_eventgrid, resolve_workspace_key
from store.database import Database
from store.monitoring import MonitoringStore

START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
WORKSPACES = 10
NAIVE_INTERVAL_S = 30.0
STRATEGIES = ("naive", "backoff", "engine", "push", "push-lossy")
ENGINE_STRATEGIES = ("engine", "push", "push-lossy")
LABELS = {
    "naive": "(a) naive 30 s",
    "backoff": "(b) backoff/job",
    "engine": "(c) engine, polls",
    "push": "(c) + push",
    "push-lossy": "(c) + push 20%lost",
}
LOST_PUSHES = 0.20
# Auto-retry off: retry runs would add jobs only the engine knows about.
SETTINGS = {"MLBOT_AUTO_RETRY_MAX_RETRIES": "0"}
TERMINAL_EVENTS = ("training_completed", "training_failed")
TRANSITION_EVENTS = ("training_started", *TERMINAL_EVENTS)
# Event keys end in `/<kind>/<attempt>`; every job here is attempt 1.
TERMINAL_EVENTS_KEYS = tuple(f"/{kind}/1" for kind in TERMINAL_EVENTS)


# --- the simulated world ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimJob:
    """One training job and the true times (seconds after START) of its transitions."""

    name: str
    workspace: int
    circuit: str
    submitted: float  # NotStarted from here
    queued: float  # Queued
    running: float  # Running (the "started" transition)
    finalizing: float  # Finalizing: still running as far as people are concerned
    ended: float  # Completed or Failed (the terminal transition)
    outcome: str  # "Completed" | "Failed"

    def status_at(self, t: float) -> str:
        if t < self.queued:
            return "NotStarted"
        if t < self.running:
            return "Queued"
        if t < self.finalizing:
            return "Running"
        if t < self.ended:
            return "Finalizing"
        return self.outcome


def build_world(jobs: int, seed: int) -> list[SimJob]:
    """Jobs submitted over the first 30 min; lognormal runs (median 45 min, ~1 % over 3 h)."""
    rng = random.Random(seed)
    world = []
    for i in range(jobs):
        submitted = rng.uniform(0, 1800)
        queued = submitted + rng.uniform(5, 60)
        running = queued + min(rng.expovariate(1 / 240), 3600)  # queue wait, mean 4 min
        duration = max(120.0, rng.lognormvariate(math.log(45 * 60), 0.6))
        if rng.random() < 0.10:
            # Failures tend to come early (bad data, OOM) but can happen any time.
            ended = running + max(30.0, duration * rng.uniform(0.02, 1.0))
            world.append(
                SimJob(
                    f"job-{i:05d}",
                    i % WORKSPACES,
                    f"PLANT{i // 100 + 1:03d}/CIRCUIT{i % 100 + 1:02d}",
                    submitted,
                    queued,
                    running,
                    ended,  # no Finalizing: a failed job ends at once
                    ended,
                    "Failed",
                )
            )
            continue
        ended = running + duration
        world.append(
            SimJob(
                f"job-{i:05d}",
                i % WORKSPACES,
                f"PLANT{i // 100 + 1:03d}/CIRCUIT{i % 100 + 1:02d}",
                submitted,
                queued,
                running,
                ended - rng.uniform(30, 120),  # outputs uploading
                ended,
                "Completed",
            )
        )
    return world


def workspaces() -> list[Workspace]:
    return [
        Workspace("00000000-0000-0000-0000-0000000be7c0", "rg-bench", f"mlw-bench-{i:02d}")
        for i in range(WORKSPACES)
    ]


class SimulatedAzureML:
    """An in-memory `EngineJobSource` over the world at the simulated `now`; counts calls."""

    def __init__(
        self, world: list[SimJob], spaces: list[Workspace], now: Callable[[], float], page: int
    ) -> None:
        self._now = now
        self._page = page
        self._spaces = spaces
        self._index = {space.key: i for i, space in enumerate(spaces)}
        self._by_name = {job.name: job for job in world}
        self._sorted: list[list[SimJob]] = [[] for _ in spaces]
        for job in sorted(world, key=lambda job: job.submitted):
            self._sorted[job.workspace].append(job)
        # Creation times as the job source shows them (microseconds), to compare with
        # the `created_since` the engine derives from them.
        self._created = [
            [timedelta(seconds=job.submitted).total_seconds() for job in jobs]
            for jobs in self._sorted
        ]
        self.listings = 0
        self.list_pages = 0
        self.gets = 0
        self.cancels = 0

    @property
    def api_calls(self) -> int:
        return self.list_pages + self.gets + self.cancels

    def _training_job(self, job: SimJob, t: float) -> TrainingJob:
        status = job.status_at(t)
        state = job_state(status)
        return TrainingJob(
            workspace=self._spaces[job.workspace].key,
            name=job.name,
            display_name=f"train {job.circuit}",
            experiment="circuit-training",  # one experiment per workspace, as the pipeline does
            circuit=job.circuit,
            status=status,
            state=state,
            created_at=START + timedelta(seconds=job.submitted),  # whole microseconds
            started_at=START + timedelta(seconds=job.running) if t >= job.running else None,
            ended_at=START + timedelta(seconds=job.ended) if state.is_terminal else None,
            studio_url=f"https://ml.azure.com/runs/{job.name}",
            error_summary="UserError: loss became NaN" if status == "Failed" else None,
            attempt=1,
        )

    async def list_active(
        self, workspace: Workspace, *, created_since: datetime | None = None
    ) -> list[TrainingJob]:
        """As Azure ML lists: every job created so far, finished ones too, newest first.

        The SDK asks for one page at a time; a caller that stops at `created_since`
        stops asking, so only the pages up to the first older job are requests.
        """
        t = self._now()
        since = None if created_since is None else (created_since - START).total_seconds()
        created = self._created[self._index[workspace.key]]
        # Jobs are kept sorted by submission: those submitted by now, newest first.
        upto = bisect.bisect_right(created, t)
        start = 0 if since is None else bisect.bisect_left(created, since, hi=upto)
        jobs = self._sorted[self._index[workspace.key]]
        shown = [self._training_job(job, t) for job in reversed(jobs[start:upto])]
        total = upto
        if start == 0:
            pages = max(1, math.ceil(total / self._page))
        else:
            pages = len(shown) // self._page + 1  # the page that holds the first older job
        self.listings += 1
        self.list_pages += pages
        return shown

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        self.gets += 1
        return self._training_job(self._by_name[name], self._now())

    async def cancel(self, workspace: Workspace, name: str) -> None:
        self.cancels += 1  # never expected here: no retries, so no per-attempt timeout


# --- Event Grid pushes ----------------------------------------------------------------------
# What Azure ML raises (Event Grid schema for Azure Machine Learning): `RunCompleted` when
# a run completed successfully, `RunStatusChanged` (data.runStatus) when a run's status
# changes, which the service raises for failures; the subscription asks for both types,
# RunStatusChanged filtered on data.runStatus to the ends (Failed, Canceled). No push
# says that a job was created or started: those are found by listing.
RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
PUSHED_STATUSES = ("Failed", "Canceled")
# Event Grid's retry schedule after a failed delivery (then hourly, up to 24 h).
RETRY_SCHEDULE_S = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)
# mlbot refuses (400, not retried by Event Grid) a delivery whose eventTime is older.
REPLAY_WINDOW_S = 900.0


@dataclass(frozen=True, slots=True)
class PushModel:
    """How Event Grid delivers: latency, failed attempts and their retries, duplicates."""

    lost: float = 0.0  # never delivered (dead-lettered, subscription down, …)
    attempt_fails: float = 0.03  # a delivery attempt that gets no 2xx (endpoint busy)
    duplicated: float = 0.01  # delivered a second time (at least once)
    median_latency_s: float = 1.0  # publication + first attempt
    latency_sigma: float = 0.8  # log-normal: p99 about 6 s


@dataclass(order=True)
class Push:
    arrives: float
    seq: int
    body: list[dict[str, object]] = field(compare=False)
    job: str = field(compare=False)


def plan_pushes(
    world: list[SimJob], spaces: list[Workspace], model: PushModel, seed: int
) -> tuple[list[Push], dict[str, int]]:
    """Every delivery Event Grid makes for the world's ends, and what became of the rest."""
    rng = random.Random(seed * 7919 + int(model.lost * 1000))
    pushes: list[Push] = []
    counts = {"raised": 0, "lost": 0, "refused_late": 0, "duplicates": 0}
    for job in world:
        if job.outcome != "Completed" and job.outcome not in PUSHED_STATUSES:
            continue
        counts["raised"] += 1
        if rng.random() < model.lost:
            counts["lost"] += 1
            continue
        event_time = job.ended + rng.uniform(0.1, 0.5)
        arrives = event_time + rng.lognormvariate(
            math.log(model.median_latency_s), model.latency_sigma
        )
        retries = iter(RETRY_SCHEDULE_S)
        while rng.random() < model.attempt_fails:
            arrives += next(retries, 3600.0)
        if arrives - event_time > REPLAY_WINDOW_S:
            counts["refused_late"] += 1  # answered 400: Event Grid does not retry
            continue
        body = [_event(job, spaces[job.workspace], event_time)]
        pushes.append(Push(arrives, len(pushes), body, job.name))
        if rng.random() < model.duplicated:
            counts["duplicates"] += 1
            pushes.append(Push(arrives + rng.uniform(5, 60), len(pushes), body, job.name))
    heapq.heapify(pushes)
    return pushes, counts


def _event(job: SimJob, space: Workspace, event_time: float) -> dict[str, object]:
    data: dict[str, object] = {
        "experimentId": f"exp-{job.workspace:02d}",
        "experimentName": "circuit-training",
        "runId": job.name,
        "runType": "azureml.scriptrun",
        "runTags": {"circuit": job.circuit, "attempt": "1"},
        "runProperties": {},
    }
    completed = job.outcome == "Completed"
    if not completed:
        data["runStatus"] = job.outcome
    return {
        "id": f"{job.name}-end",
        "topic": (
            f"/subscriptions/{space.subscription_id}/resourceGroups/{space.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{space.name}"
        ),
        "subject": f"experiments/exp-{job.workspace:02d}/runs/{job.name}",
        "eventType": RUN_COMPLETED if completed else RUN_STATUS_CHANGED,
        "eventTime": (START + timedelta(seconds=event_time)).isoformat(),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


async def deliver(body: list[dict[str, object]], engine: MonitoringEngine) -> None:
    """What the Event Grid hook does with a delivery it accepts, on the engine's push port."""
    batch = parse_eventgrid(body)
    known = [workspace.key for workspace in engine.workspaces]
    for run in batch.runs:
        await engine.check_now(
            resolve_workspace_key(run.workspace_key, known), run.job_name, run.status
        )


# --- measurements -------------------------------------------------------------------------
@dataclass
class CellResult:
    """One strategy at one size: calls, detection delays (s) and costs."""

    strategy: str
    jobs: int
    api_calls: int = 0
    listings: int = 0
    list_pages: int = 0
    gets: int = 0
    transitions: int = 0  # true transitions that should be reported (started + terminal)
    missed: int = 0  # of those, never reported
    delays: list[float] = field(default_factory=list)
    terminal_delays: list[float] = field(default_factory=list)
    started_delays: list[float] = field(default_factory=list)
    completed_delays: list[float] = field(default_factory=list)
    failed_delays: list[float] = field(default_factory=list)
    # Starts told by the job's first report, its end (the job was never seen running).
    folded: int = 0
    seed: int = 7
    pushes: dict[str, int] = field(default_factory=dict)
    simulated_h: float = 0.0
    wall_s: float = 0.0
    peak_rss_mib: float = 0.0
    ticks: int = 0
    note: str = ""
    # What makes this cell's figures wrong (lost, duplicated, logged warnings).
    problems: list[str] = field(default_factory=list)


def _record(
    result: CellResult, job: SimJob, started_at: float | None, ended_at: float | None
) -> None:
    result.transitions += 2
    if started_at is not None:
        result.delays.append(started_at - job.running)
        result.started_delays.append(started_at - job.running)
    elif ended_at is not None:
        # First seen finished: one terminal event says it all (monitoring.lifecycle).
        result.folded += 1
    else:
        result.missed += 1
    if ended_at is None:
        result.missed += 1
    else:
        delay = ended_at - job.ended
        result.delays.append(delay)
        result.terminal_delays.append(delay)
        (result.completed_delays if job.outcome == "Completed" else result.failed_delays).append(
            delay
        )


async def _poll_per_job(
    world: list[SimJob],
    result: CellResult,
    first_delay: Callable[[SimJob], float | None],
    next_poll: Callable[[SimJob, int, float], float | None],
) -> None:
    """Each job polled on its own schedule with `get`, an event-driven loop over all jobs."""
    clock = [0.0]
    spaces = workspaces()
    source = SimulatedAzureML(world, spaces, lambda: clock[0], page=100)
    heap: list[tuple[float, int, int]] = []  # (due, job index, polls done)
    for index, job in enumerate(world):
        delay = first_delay(job)
        if delay is not None:
            heap.append((job.submitted + delay, index, 0))
    heapq.heapify(heap)
    started: dict[int, float] = {}
    ended: dict[int, float] = {}
    while heap:
        due, index, polls = heapq.heappop(heap)
        clock[0] = due  # jump the clock: nothing sleeps
        job = world[index]
        seen = await source.get(spaces[job.workspace], job.name)
        if seen.state is JobState.RUNNING and index not in started:
            started[index] = due
        if seen.state.is_terminal:
            ended[index] = due
            continue
        following = next_poll(job, polls + 1, due)
        if following is not None:
            heapq.heappush(heap, (following, index, polls + 1))
    for index, job in enumerate(world):
        _record(result, job, started.get(index), ended.get(index))
    result.gets = source.gets
    result.api_calls = source.api_calls
    result.simulated_h = clock[0] / 3600


async def run_naive(world: list[SimJob], result: CellResult) -> None:
    await _poll_per_job(
        world,
        result,
        lambda job: 0.0,
        lambda job, polls, at: at + NAIVE_INTERVAL_S,
    )


async def run_backoff(world: list[SimJob], result: CellResult) -> None:
    policy = BackoffPolicy.from_settings(settings_from_mapping(SETTINGS))

    def following(job: SimJob, polls: int, at: float) -> float | None:
        # The documented loop: no reset on a state change, the clock of 3 h starts at submit.
        submitted = START + timedelta(seconds=job.submitted)
        when = policy.next_check(submitted, START + timedelta(seconds=at), polls)
        return None if when is None else (when - START).total_seconds()

    await _poll_per_job(world, result, lambda job: 0.0, following)


async def run_engine(
    world: list[SimJob],
    result: CellResult,
    budget_s: float | None,
    pushes: PushModel | None = None,
    safety_net_s: int = 0,
) -> None:
    clock = [START]
    spaces = workspaces()
    source = SimulatedAzureML(world, spaces, lambda: (clock[0] - START).total_seconds(), 100)
    values = dict(SETTINGS)
    if pushes is not None:
        values["MLBOT_EVENTGRID_SAFETY_NET_SECONDS"] = str(safety_net_s)
    settings = settings_from_mapping(values)
    config = EngineConfig.from_settings(settings)
    queue: list[Push] = []
    if pushes is not None:
        queue, result.pushes = plan_pushes(world, spaces, pushes, result.seed)
        result.pushes["delivered"] = len(queue)
    last_end = START + timedelta(seconds=max(job.ended for job in world))
    # Past every true end, the engine gets this long to notice (reminders run every 4 h).
    horizon = last_end + timedelta(hours=12)
    wall_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await db.migrate()
        store = MonitoringStore(db)
        engine = MonitoringEngine(
            store=store,
            source=source,
            workspaces=spaces,
            runs=None,
            config=lambda: config,
            clock=lambda: clock[0],
        )
        terminal_seen = 0
        while terminal_seen < len(world):
            wakeup = await engine.next_wakeup()
            if queue and START + timedelta(seconds=queue[0].arrives) <= max(clock[0], wakeup):
                # A delivery comes first: the hook hands it to the engine, as in serve.
                push = heapq.heappop(queue)
                clock[0] = max(clock[0], START + timedelta(seconds=push.arrives))
                await deliver(push.body, engine)
                continue
            clock[0] = max(clock[0], wakeup)  # jump to the next due time
            if clock[0] > horizon:
                result.note = "horizon reached"
                break
            if clock[0] > last_end and not queue and await store.next_due_at() is None:
                # Every job has ended and no session waits for news: only the idle
                # discovery listings (10 every 5 min) would follow.
                break
            if budget_s is not None and time.perf_counter() - wall_start > budget_s:
                result.note = f"stopped by the {budget_s:.0f} s wall budget"
                break
            report = await engine.tick()
            result.ticks += 1
            terminal_seen += sum(1 for key in report.events if key.endswith(TERMINAL_EVENTS_KEYS))
            if await engine.next_wakeup() <= clock[0]:
                # Everything due has just been handled; guard against a busy loop.
                clock[0] += timedelta(seconds=1)
        events = await store.events(limit=100 * len(world) + 1000)
        await db.dispose()
    reported: dict[str, dict[str, float]] = {}
    for event in events:
        # Reminders repeat (every 4 h of running); a transition is told once.
        if event.job_name is not None and event.kind in TRANSITION_EVENTS:
            if event.kind in reported.get(event.job_name, {}):
                result.problems.append(f"{event.kind} of {event.job_name} reported twice")
            reported.setdefault(event.job_name, {})[event.kind] = (
                event.created_at - START
            ).total_seconds()
    for job in world:
        kinds = reported.get(job.name, {})
        end = kinds.get("training_completed", kinds.get("training_failed"))
        _record(result, job, kinds.get("training_started"), end)
    result.listings = source.listings
    result.list_pages = source.list_pages
    result.gets = source.gets
    result.api_calls = source.api_calls
    result.simulated_h = (clock[0] - START).total_seconds() / 3600


async def run_cell(
    strategy: str, jobs: int, seed: int, budget_s: float | None, safety_net_s: int = 1200
) -> CellResult:
    world = build_world(jobs, seed)
    result = CellResult(strategy, jobs, seed=seed)
    checks = RunChecks(f"{strategy} x {jobs}")
    started = time.perf_counter()
    with checks.timed():
        if strategy == "naive":
            await run_naive(world, result)
        elif strategy == "backoff":
            await run_backoff(world, result)
        elif strategy == "engine":
            await run_engine(world, result, budget_s)
        else:
            model = PushModel(lost=LOST_PUSHES if strategy == "push-lossy" else 0.0)
            await run_engine(world, result, budget_s, model, safety_net_s)
    result.wall_s = time.perf_counter() - started
    early = [delay for delay in result.delays if delay < 0]
    checks.require(not early, f"{len(early)} transitions reported before they happened")
    if strategy in ENGINE_STRATEGIES and not result.note:
        # The engine follows every job to its end (the safety net under lost pushes).
        checks.require(result.missed == 0, f"{result.missed} transitions never reported")
    result.problems += checks.problems()
    # ru_maxrss is KiB on Linux; the peak of this whole process (imports included).
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# --- the report -----------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else math.nan


def _run_in_subprocess(strategy: str, jobs: int, seed: int, args: argparse.Namespace) -> CellResult:
    command = [sys.executable, str(Path(__file__).resolve()), "--only", strategy]
    command += ["--jobs", str(jobs), "--seeds", str(seed), "--json"]
    if args.engine_budget is not None:
        command += ["--engine-budget", str(args.engine_budget)]
    command += ["--safety-net", str(args.safety_net)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{strategy} x {jobs} (seed {seed}) failed:\n{done.stderr}")
    return CellResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def print_table(results: list[CellResult]) -> None:
    naive = {(r.seed, r.jobs): r for r in results if r.strategy == "naive"}
    header = (
        f"{'strategy':<19} {'seed':>4} {'jobs':>6} {'API calls':>10} {'vs (a)':>7} "
        f"{'lists':>6} {'pages':>6} {'gets':>7} {'p50 s':>6} {'start p50':>9} "
        f"{'start p95':>9} {'done p50':>8} {'done p95':>8} {'fail p50':>8} {'fail p99':>8} "
        f"{'missed':>6} {'folded':>6} {'sim h':>5} {'wall s':>6} {'RSS MiB':>7}"
    )
    print(header)
    print("-" * len(header))
    order = sorted(results, key=lambda r: (r.jobs, r.seed, STRATEGIES.index(r.strategy)))
    for r in order:
        base = naive.get((r.seed, r.jobs))
        ratio = f"{base.api_calls / r.api_calls:6.1f}x" if base and r.api_calls else "    n/a"
        print(
            f"{LABELS[r.strategy]:<19} {r.seed:>4} {r.jobs:>6} {r.api_calls:>10,} {ratio:>7} "
            f"{r.listings:>6,} {r.list_pages:>6,} {r.gets:>7,} {_pct(r.delays, 0.5):>6.0f} "
            f"{_pct(r.started_delays, 0.5):>9.0f} {_pct(r.started_delays, 0.95):>9.0f} "
            f"{_pct(r.completed_delays, 0.5):>8.0f} {_pct(r.completed_delays, 0.95):>8.0f} "
            f"{_pct(r.failed_delays, 0.5):>8.0f} {_pct(r.failed_delays, 0.99):>8.0f} "
            f"{r.missed:>6} {r.folded:>6} {r.simulated_h:>5.1f} {r.wall_s:>6.1f} "
            f"{r.peak_rss_mib:>7.0f}" + (f"  ({r.note})" if r.note else "")
        )
    pushed = [r for r in order if r.pushes]
    if pushed:
        print("\nEvent Grid deliveries (RunCompleted + RunStatusChanged Failed):")
        for r in pushed:
            p = r.pushes
            print(
                f"  {LABELS[r.strategy]:<19} seed {r.seed}: {p['raised']} raised, "
                f"{p['lost']} lost, {p['refused_late']} refused as late, "
                f"{p['duplicates']} delivered twice, {p['delivered']} deliveries"
            )


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_targets(results: list[CellResult]) -> None:
    cells = {(r.strategy, r.seed, r.jobs): r for r in results}
    print("\ntargets at 1,000 jobs:")
    for seed in sorted({r.seed for r in results if r.jobs == 1000}):
        naive, backoff, engine, push, lossy = (cells.get((s, seed, 1000)) for s in STRATEGIES)
        if naive and engine:
            ratio = naive.api_calls / max(engine.api_calls, 1)
            print(
                f"  seed {seed}: (c) polling only: {ratio:.1f}x fewer calls than (a) "
                f"(>= 50x: {_verdict(ratio >= 50)}), {engine.missed} missed"
            )
        if backoff and engine:
            p50_b, p50_c = _pct(backoff.delays, 0.5), _pct(engine.delays, 0.5)
            print(
                f"  seed {seed}: (c) polling only: detection p50 {p50_c:.0f} s vs (b) "
                f"{p50_b:.0f} s ((c) <= (b): {_verdict(p50_c <= p50_b)})"
            )
        if push:
            fail50, fail99 = _pct(push.failed_delays, 0.5), _pct(push.failed_delays, 0.99)
            done50 = _pct(push.completed_delays, 0.5)
            print(
                f"  seed {seed}: (c) + push: failures p50 {fail50:.0f} s (<= 5 s: "
                f"{_verdict(fail50 <= 5)}), p99 {fail99:.0f} s (<= 60 s: "
                f"{_verdict(fail99 <= 60)}); completed p50 {done50:.0f} s (<= 30 s: "
                f"{_verdict(done50 <= 30)})"
            )
            if naive:
                ratio = naive.api_calls / max(push.api_calls, 1)
                print(
                    f"  seed {seed}: (c) + push: {ratio:.1f}x fewer calls than (a) "
                    f"(>= 100x: {_verdict(ratio >= 100)})"
                )
        for cell in (push, lossy):
            if cell:
                print(
                    f"  seed {seed}: {LABELS[cell.strategy]}: {cell.missed} transitions missed "
                    f"(0: {_verdict(cell.missed == 0)})"
                )
    big = [r for r in results if r.strategy == "engine" and r.jobs == 10000]
    for cell in big:
        limit_mib = 200e6 / 2**20  # 200 MB
        print(
            f"  10,000 jobs, seed {cell.seed}: engine peak RSS {cell.peak_rss_mib:.0f} MiB, "
            f"target <= 200 MB ({limit_mib:.0f} MiB): {_verdict(cell.peak_rss_mib <= limit_mib)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1000", help="comma-separated sizes")
    parser.add_argument("--seeds", default="1,2,7", help="comma-separated world seeds")
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated, of " + ", ".join(STRATEGIES),
    )
    parser.add_argument("--only", choices=STRATEGIES, help="run one strategy in this process")
    parser.add_argument("--json", action="store_true", help="print the cell as JSON (--only)")
    parser.add_argument(
        "--engine-budget", type=float, default=None, help="stop an engine run after this many s"
    )
    parser.add_argument(
        "--safety-net",
        type=int,
        default=1200,
        help="MLBOT_EVENTGRID_SAFETY_NET_SECONDS of the push cells",
    )
    parser.add_argument("--parallel", type=int, default=2, help="cells run at once")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="JSON lines from earlier `--only ... --json` runs: those cells are not run again",
    )
    args = parser.parse_args()
    sizes = [int(part.replace("_", "")) for part in args.jobs.split(",") if part.strip()]
    seeds = [int(part) for part in args.seeds.split(",") if part.strip()]
    strategies = [part.strip() for part in args.strategies.split(",") if part.strip()]
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies: {', '.join(sorted(unknown))}")

    if args.only:
        # In-process cells: the orchestrating run below uses these, one per subprocess
        # (it reads the problems from the JSON and fails the whole run on them).
        failed = False
        for seed in seeds:
            for jobs in sizes:
                result = asyncio.run(
                    run_cell(args.only, jobs, seed, args.engine_budget, args.safety_net)
                )
                if args.json:
                    print(json.dumps(asdict(result)))
                else:
                    print_table([result])
                    for problem in result.problems:
                        print(f"  FAILED: {problem}", file=sys.stderr)
                    failed = failed or bool(result.problems)
        sys.exit(1 if failed else 0)

    print(
        f"monitoring strategies on a simulated clock: {WORKSPACES} workspaces, seeds "
        f"{', '.join(map(str, seeds))}, in-memory job source (strategies measured, not the "
        f"SDK); auto-retry off; push cells: safety net {args.safety_net} s",
        flush=True,
    )
    reused: dict[tuple[str, int, int], CellResult] = {}
    if args.reuse:
        for line in args.reuse.read_text().splitlines():
            if line.startswith("{"):
                cell = CellResult(**json.loads(line))
                reused[(cell.strategy, cell.seed, cell.jobs)] = cell
    wanted = [(st, seed, jobs) for jobs in sizes for seed in seeds for st in strategies]

    def measure(key: tuple[str, int, int]) -> CellResult:
        # A long engine cell can be measured once on its own and reused here.
        cell = reused.get(key) or _run_in_subprocess(key[0], key[2], key[1], args)
        print(
            f"  done {key[0]} x {key[2]} (seed {key[1]}): {cell.wall_s:.1f} s wall",
            file=sys.stderr,
            flush=True,
        )
        return cell

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        results = list(pool.map(measure, wanted))
    print()
    print_table(results)
    print(
        "\nAPI calls = HTTP requests: gets + listing pages (100 jobs a page); lists = listings."
        " Detection delay = reported minus true time (s); p50 over started + completed/failed;"
        " 'done' = completed, 'fail' = failed; 'missed' = transitions never reported;"
        " 'folded' = starts of jobs first seen finished, told by their one terminal event."
        " RSS = peak of the cell's own process (imports included)."
    )
    print_targets(results)
    checks = RunChecks("monitoring strategies")
    for r in results:
        for problem in r.problems:
            checks.require(False, f"{r.strategy} x {r.jobs} (seed {r.seed}): {problem}")
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
