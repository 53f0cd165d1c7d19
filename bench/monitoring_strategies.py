"""Benchmark: three ways to monitor Azure ML training jobs, on a simulated clock.

A seeded world of N training jobs (one per circuit, attempt 1) over 10 workspaces is
played three times, each strategy asking the same in-memory job source:

  (a) naive   - every job polled with a `get` every 30 s from submission until terminal;
  (b) backoff - the documented loop run per job: `get` at submission, then after 30 s,
                doubling to 300 s, giving up 3 h after submission (BackoffPolicy defaults);
  (c) engine  - mlbot's real `MonitoringEngine` with a real `MonitoringStore` on SQLite,
                ticked whenever `next_wakeup()` is due: one listing per workspace serves
                every session due; a session follows the same backoff, tightened so that
                no job waits longer than its own backoff (b) would allow
                (`monitoring.job_deadlines`), and new jobs are discovered by listing.

All three see the same world (same submissions, durations and failures) through the same
source. (a) and (b) are handed each job at its submission; (c) has to find it.

The source answers from the world at the current simulated time and counts the calls it
gets: the benchmark measures strategies, not the Azure SDK nor the network. An API call is
one HTTP request: a `get`, or one page of a listing (Azure ML pages `jobs.list`, 100 jobs
per page by default). Detection delay is the time a strategy reported a transition (job
started running, job completed or failed) minus the world's true transition time; for the
engine, the `created_at` of its stored `training_started` / `training_completed` /
`training_failed` events. Automatic retries are off (`MLBOT_AUTO_RETRY_MAX_RETRIES=0`, and
`pipelines=None`) so every strategy watches the same jobs. Push events (Event Grid) are not
simulated: all three strategies rely on polling alone.

Every (strategy, size) cell runs in its own subprocess so its peak RSS is its own.

The run fails (exit 1) if anything is logged at WARNING or above during a cell, the
engine reports a transition twice, or a transition is reported before it happened.
Missed transitions are a figure, not a failure: (b) and (c) give up after 3 h by design
(the engine then reports a timeout), and a poll can land after a short run has ended.
An engine cell stopped by `--engine-budget` is partial and says so.

    .venv/bin/python bench/monitoring_strategies.py [--jobs 100,1000,10000] [--seed 7]
    .venv/bin/python bench/monitoring_strategies.py --only engine --jobs 10000   # one cell
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run_checks import RunChecks
from config.settings import settings_from_mapping
from monitoring.backoff import BackoffPolicy
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.job_status import job_state
from monitoring.jobs import JobState, TrainingJob, Workspace
from store.database import Database
from store.monitoring import MonitoringStore

START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
WORKSPACES = 10
NAIVE_INTERVAL_S = 30.0
STRATEGIES = ("naive", "backoff", "engine")
LABELS = {"naive": "(a) naive 30 s", "backoff": "(b) backoff/job", "engine": "(c) engine"}
# Auto-retry off: retry runs would add jobs only the engine knows about.
SETTINGS = {"MLBOT_AUTO_RETRY_MAX_RETRIES": "0"}
TERMINAL_EVENTS = ("training_completed", "training_failed")
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
        self._by_workspace: list[list[SimJob]] = [[] for _ in spaces]
        for job in world:
            self._by_workspace[job.workspace].append(job)
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
            created_at=START + timedelta(seconds=job.submitted),
            started_at=START + timedelta(seconds=job.running) if t >= job.running else None,
            ended_at=START + timedelta(seconds=job.ended) if state.is_terminal else None,
            studio_url=f"https://ml.azure.com/runs/{job.name}",
            error_summary="UserError: loss became NaN" if status == "Failed" else None,
            attempt=1,
        )

    async def list_active(self, workspace: Workspace) -> list[TrainingJob]:
        t = self._now()
        active = [
            self._training_job(job, t)
            for job in self._by_workspace[self._index[workspace.key]]
            if job.submitted <= t < job.ended
        ]
        self.listings += 1
        self.list_pages += max(1, math.ceil(len(active) / self._page))
        return active

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        self.gets += 1
        return self._training_job(self._by_name[name], self._now())

    async def cancel(self, workspace: Workspace, name: str) -> None:
        self.cancels += 1  # never expected here: no retries, so no per-attempt timeout


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
    if started_at is None:
        result.missed += 1
    else:
        result.delays.append(started_at - job.running)
    if ended_at is None:
        result.missed += 1
    else:
        result.delays.append(ended_at - job.ended)
        result.terminal_delays.append(ended_at - job.ended)


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


async def run_engine(world: list[SimJob], result: CellResult, budget_s: float | None) -> None:
    clock = [START]
    spaces = workspaces()
    source = SimulatedAzureML(world, spaces, lambda: (clock[0] - START).total_seconds(), 100)
    settings = settings_from_mapping(SETTINGS)
    config = EngineConfig.from_settings(settings)
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
            clock[0] = max(clock[0], wakeup)  # jump to the next due time
            if clock[0] > horizon:
                result.note = "horizon reached"
                break
            if clock[0] > last_end and await store.next_due_at() is None:
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
        if event.job_name is not None:
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


async def run_cell(strategy: str, jobs: int, seed: int, budget_s: float | None) -> CellResult:
    world = build_world(jobs, seed)
    result = CellResult(strategy, jobs)
    checks = RunChecks(f"{strategy} x {jobs}")
    started = time.perf_counter()
    with checks.timed():
        if strategy == "naive":
            await run_naive(world, result)
        elif strategy == "backoff":
            await run_backoff(world, result)
        else:
            await run_engine(world, result, budget_s)
    result.wall_s = time.perf_counter() - started
    early = [delay for delay in result.delays if delay < 0]
    checks.require(not early, f"{len(early)} transitions reported before they happened")
    result.problems += checks.problems()
    # ru_maxrss is KiB on Linux; the peak of this whole process (imports included).
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# --- the report -----------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else math.nan


def _run_in_subprocess(strategy: str, jobs: int, args: argparse.Namespace) -> CellResult:
    command = [sys.executable, str(Path(__file__).resolve()), "--only", strategy]
    command += ["--jobs", str(jobs), "--seed", str(args.seed), "--json"]
    if args.engine_budget is not None:
        command += ["--engine-budget", str(args.engine_budget)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{strategy} x {jobs} failed:\n{done.stderr}")
    return CellResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def print_table(results: list[CellResult]) -> None:
    naive = {r.jobs: r for r in results if r.strategy == "naive"}
    header = (
        f"{'strategy':<16} {'jobs':>6} {'API calls':>10} {'vs (a)':>7} {'lists':>6} {'pages':>7} "
        f"{'gets':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>8} {'missed':>7} "
        f"{'term p50':>8} {'term p95':>8} {'sim h':>6} {'wall s':>7} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in sorted(results, key=lambda r: (r.jobs, STRATEGIES.index(r.strategy))):
        base = naive.get(r.jobs)
        ratio = f"{base.api_calls / r.api_calls:6.1f}x" if base and r.api_calls else "    n/a"
        print(
            f"{LABELS[r.strategy]:<16} {r.jobs:>6} {r.api_calls:>10,} {ratio:>7} "
            f"{r.listings:>6,} {r.list_pages:>7,} {r.gets:>7,} {_pct(r.delays, 0.5):>7.0f} "
            f"{_pct(r.delays, 0.95):>7.0f} {max(r.delays, default=math.nan):>8.0f} "
            f"{r.missed:>7} {_pct(r.terminal_delays, 0.5):>8.0f} "
            f"{_pct(r.terminal_delays, 0.95):>8.0f} {r.simulated_h:>6.1f} {r.wall_s:>7.1f} "
            f"{r.peak_rss_mib:>8.0f}" + (f"  ({r.note})" if r.note else "")
        )


def print_targets(results: list[CellResult]) -> None:
    cells = {(r.strategy, r.jobs): r for r in results}
    print("\ntargets:")
    naive, backoff, engine = (cells.get((s, 1000)) for s in STRATEGIES)
    if naive and engine:
        ratio = naive.api_calls / max(engine.api_calls, 1)
        verdict = "MET" if ratio >= 50 else "NOT MET"
        print(f"  1,000 jobs: (a)/(c) calls = {ratio:.1f}x, target >= 50x: {verdict}")
        # The engine's own TickReport counts a listing once, whatever its pages.
        engine_calls = engine.listings + engine.gets
        print(
            f"              (listings counted once, as TickReport does: "
            f"{naive.api_calls / max(engine_calls, 1):.1f}x)"
        )
    if backoff and engine:
        p50_b, p50_c = _pct(backoff.delays, 0.5), _pct(engine.delays, 0.5)
        verdict = "MET" if p50_c <= p50_b else "NOT MET"
        print(
            f"  1,000 jobs: detection p50 (c) {p50_c:.0f} s vs (b) {p50_b:.0f} s, "
            f"target (c) <= (b): {verdict}"
        )
    big = cells.get(("engine", 10000))
    if big:
        limit_mib = 200e6 / 2**20  # 200 MB
        verdict = "MET" if big.peak_rss_mib <= limit_mib else "NOT MET"
        print(
            f"  10,000 jobs: engine peak RSS {big.peak_rss_mib:.0f} MiB, "
            f"target <= 200 MB ({limit_mib:.0f} MiB): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="100,1000,10000", help="comma-separated sizes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=STRATEGIES, help="run one strategy in this process")
    parser.add_argument("--json", action="store_true", help="print the cell as JSON (--only)")
    parser.add_argument(
        "--engine-budget", type=float, default=None, help="stop an engine run after this many s"
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="JSON lines from earlier `--only ... --json` runs: those cells are not run again",
    )
    args = parser.parse_args()
    sizes = [int(part.replace("_", "")) for part in args.jobs.split(",") if part.strip()]

    if args.only:
        # In-process cells: the orchestrating run below uses these, one per subprocess
        # (it reads the problems from the JSON and fails the whole run on them).
        failed = False
        for jobs in sizes:
            result = asyncio.run(run_cell(args.only, jobs, args.seed, args.engine_budget))
            if args.json:
                print(json.dumps(asdict(result)))
            else:
                print_table([result])
                for problem in result.problems:
                    print(f"  FAILED: {problem}", file=sys.stderr)
                failed = failed or bool(result.problems)
        sys.exit(1 if failed else 0)

    print(
        f"monitoring strategies on a simulated clock: {WORKSPACES} workspaces, seed {args.seed}, "
        "in-memory job source (strategies measured, not the SDK); auto-retry off",
        flush=True,
    )
    reused: dict[tuple[str, int], CellResult] = {}
    if args.reuse:
        for line in args.reuse.read_text().splitlines():
            if line.startswith("{"):
                cell = CellResult(**json.loads(line))
                reused[(cell.strategy, cell.jobs)] = cell
    results = []
    for jobs in sizes:
        for strategy in STRATEGIES:
            # A long engine cell can be measured once on its own and reused here.
            earlier = reused.get((strategy, jobs))
            results.append(earlier or _run_in_subprocess(strategy, jobs, args))
            print(
                f"  done {strategy} x {jobs}: {results[-1].wall_s:.1f} s wall",
                file=sys.stderr,
                flush=True,
            )
    print()
    print_table(results)
    print(
        "\nAPI calls = HTTP requests: gets + listing pages (100 jobs a page); lists = listings."
        " Detection delay ="
        " reported minus true time, over started + completed/failed transitions; 'term' ="
        " completed/failed only; 'missed' = transitions never reported. RSS = peak of the"
        " cell's own process (imports included)."
    )
    print_targets(results)
    checks = RunChecks("monitoring strategies")
    for r in results:
        for problem in r.problems:
            checks.require(False, f"{r.strategy} x {r.jobs}: {problem}")
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
