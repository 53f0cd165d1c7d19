"""The monitoring engine on in-memory fakes of every port: no database, no HTTP.

A manual clock plays hours of schedule at once; a job source that can hold a call open
lets a chat command land in the middle of a tick, deterministically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.backoff import BackoffPolicy
from monitoring.engine import (
    LISTING_OVERLAP,
    UNWATCHED,
    EngineConfig,
    MonitoringEngine,
    TickReport,
)
from monitoring.pipeline_runs import PipelineRuns
from sandbox.clock import ManualClock
from tests.engine_fakes import MemoryIntents, MemoryRepository, RecordingPipelines
from tests.gated_job_source import GatedJobSource

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WS = Workspace("sub-1", "rg-1", "mlw-1")
CIRCUIT = "PLANT001/CIRCUIT01"
CONFIG = EngineConfig(
    backoff=BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600),
    max_retries=2,
    attempt_timeout=timedelta(seconds=3600),
    reminder_interval=timedelta(hours=4),
    discovery_interval=timedelta(seconds=300),
    training_pipeline="training-pipeline",
)
STATUS = {
    JobState.WAITING: "Queued",
    JobState.RUNNING: "Running",
    JobState.COMPLETED: "Completed",
    JobState.FAILED: "Failed",
}


def job(
    name: str,
    state: JobState,
    *,
    attempt: int = 1,
    circuit: str = CIRCUIT,
    created_at: datetime = START,
    started_at: datetime | None = None,
) -> TrainingJob:
    return TrainingJob(
        workspace=WS.key,
        name=name,
        display_name=f"train {circuit}",
        experiment="circuit-training",
        circuit=circuit,
        status=STATUS[state],
        state=state,
        created_at=created_at,
        started_at=started_at,
        attempt=attempt,
    )


# With an Event Grid subscription: running jobs are listed every 20 minutes at least.
PUSHED = dataclasses.replace(CONFIG, push_safety_net=timedelta(seconds=1200))


class Rig:
    def __init__(self, config: EngineConfig = CONFIG, *, lists_finished: bool = False) -> None:
        self.clock = ManualClock(START)
        self.repo = MemoryRepository()
        self.source = GatedJobSource(lists_finished=lists_finished)
        self.pipelines = RecordingPipelines()
        self.intents = MemoryIntents(self.repo)
        self.engine = MonitoringEngine(
            store=self.repo,
            source=self.source,
            workspaces=[WS],
            runs=PipelineRuns(self.pipelines, self.intents, self.clock.now),
            config=lambda: config,
            clock=self.clock.now,
        )

    def at(self, seconds: float) -> datetime:
        return START + timedelta(seconds=seconds)

    async def play_until(self, seconds: float) -> list[TickReport]:
        """Tick whenever the engine asks to, up to `seconds` after the start."""
        until = self.at(seconds)
        reports = []
        for _ in range(10_000):
            wake = max(await self.engine.next_wakeup(), self.clock.now())
            if wake > until:
                break
            self.clock.advance((wake - self.clock.now()).total_seconds())
            reports.append(await self.engine.tick())
        self.clock.advance(max((until - self.clock.now()).total_seconds(), 0.0))
        return reports

    def only_session(self) -> int:
        (session_id,) = self.repo.sessions
        return session_id


async def test_a_new_job_is_watched_and_its_changes_become_events() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.WAITING))
    report = await rig.engine.tick()
    assert report.listings == 1 and report.events == []
    session = rig.repo.sessions[rig.only_session()]
    assert session.key == f"experiment:{WS.key}:circuit-training"
    assert rig.repo.job(WS.key, "job-1").session_id == session.id

    rig.source.put(job("job-1", JobState.RUNNING, started_at=rig.at(20)))
    await rig.play_until(60)
    assert rig.repo.kinds() == ["training_started"]

    # A finished job leaves the listing: one `get` tells how it ended.
    rig.source.put(job("job-1", JobState.COMPLETED, started_at=rig.at(20)))
    reports = await rig.play_until(600)
    assert sum(r.gets for r in reports) == 1
    assert rig.repo.kinds() == ["training_started", "training_completed"]
    assert rig.repo.sessions[session.id].status == "done"


async def test_checks_back_off_from_30_s_doubling_to_300_s() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.WAITING))
    checks: list[datetime] = []
    for _ in range(200):  # 50 minutes, 15 s at a time
        await rig.play_until((rig.clock.now() - START).total_seconds() + 15)
        last = rig.repo.sessions[rig.only_session()].last_check_at
        if last is not None and (not checks or checks[-1] != last):
            checks.append(last)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(checks)]
    assert checks[0] == START
    assert gaps[:7] == [30, 60, 120, 240, 300, 300, 300]


async def test_monitoring_gives_up_after_the_max_wait_of_3_hours() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.WAITING))
    await rig.play_until(4 * 3600)
    session = rig.repo.sessions[rig.only_session()]
    assert session.last_check_at == rig.at(3 * 3600)  # one last check exactly at the max wait
    assert session.status == "done" and await rig.repo.next_due_at() is None
    assert rig.repo.kinds() == ["monitoring_timed_out"]


async def test_failed_circuits_are_retried_twice_then_exhausted() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.play_until(60)
    rig.source.put(job("job-1", JobState.FAILED, started_at=START))
    await rig.play_until(900)
    assert rig.pipelines.queued == [("training-pipeline", {"manualCircuits": CIRCUIT})]
    (retry,) = await rig.repo.events_of_kind("retry_queued")
    assert retry.payload["run_id"] == 1 and retry.payload["next_attempts"] == {CIRCUIT: 2}

    for attempt, begins in ((2, 1000), (3, 2000)):
        await rig.play_until(begins)
        name = f"job-{attempt}"
        rig.source.put(job(name, JobState.RUNNING, attempt=attempt, started_at=rig.at(begins)))
        await rig.play_until(begins + 400)
        rig.source.put(job(name, JobState.FAILED, attempt=attempt, started_at=rig.at(begins)))
        await rig.play_until(begins + 900)

    failed = await rig.repo.events_of_kind("training_failed")
    assert [e.payload["attempt"] for e in failed] == [1, 2, 3]
    assert [e.payload["retries_exhausted"] for e in failed] == [False, False, True]
    assert len(rig.pipelines.queued) == 2  # max 2 retries: none after the third failure
    assert rig.repo.sessions[rig.only_session()].status == "done"


async def test_a_retry_running_past_its_timeout_is_reported_and_cancelled() -> None:
    rig = Rig()
    # A retry (attempt 2): the per-attempt timeout of 3600 s applies.
    rig.source.put(job("job-2", JobState.RUNNING, attempt=2, started_at=START))
    await rig.play_until(3500)
    assert "attempt_timed_out" not in rig.repo.kinds()
    await rig.play_until(3900)
    assert "attempt_timed_out" in rig.repo.kinds()
    assert rig.source.cancelled == ["job-2"]
    assert rig.repo.job(WS.key, "job-2").cancel_requested_at is not None


async def test_an_unwatch_during_a_tick_stays_unwatched() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.engine.tick()
    experiment = rig.repo.job(WS.key, "job-1").session_id
    assert rig.repo.kinds() == ["training_started"]

    # The job finishes; the next due tick asks Azure how it ended, and the answer is slow.
    rig.source.put(job("job-1", JobState.COMPLETED, started_at=START))
    rig.clock.advance(30)
    hold = rig.source.hold_next("get")
    tick = asyncio.create_task(rig.engine.tick())
    await hold.reached.wait()
    assert await rig.engine.unwatch_job("job-1")
    hold.release.set()
    report = await tick

    assert report.replanned == [experiment]
    record = rig.repo.job(WS.key, "job-1")
    assert record.session_id != experiment
    assert record.session_id is not None
    assert rig.repo.sessions[record.session_id].status == UNWATCHED
    await rig.play_until(900)
    assert rig.repo.kinds() == ["training_started"]  # its completion is not announced
    assert rig.repo.job(WS.key, "job-1").session_id == record.session_id


async def test_a_watch_during_a_tick_keeps_the_job_in_its_own_session() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.engine.tick()
    experiment = rig.repo.job(WS.key, "job-1").session_id

    rig.source.put(job("job-1", JobState.COMPLETED, started_at=START))
    rig.clock.advance(30)
    hold = rig.source.hold_next("get")
    tick = asyncio.create_task(rig.engine.tick())
    await hold.reached.wait()
    await rig.engine.watch_job("job-1", actor="operator")
    hold.release.set()
    assert (await tick).replanned == [experiment]

    manual = rig.repo.job(WS.key, "job-1").session_id
    assert manual != experiment
    assert manual is not None and rig.repo.sessions[manual].kind == "manual"
    await rig.play_until(600)
    completed = await rig.repo.events_of_kind("training_completed")
    assert [e.session_id for e in completed] == [manual]  # announced once, in its session


async def test_a_push_during_a_tick_keeps_its_check_now() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.play_until(400)  # several checks: the delay has grown
    session_id = rig.only_session()
    before = rig.repo.sessions[session_id]
    assert before.checks_done > 1 and before.next_check_at is not None

    rig.clock.advance((before.next_check_at - rig.clock.now()).total_seconds())
    pushed_at = rig.clock.now()
    hold = rig.source.hold_next("list_active")
    tick = asyncio.create_task(rig.engine.tick())
    await hold.reached.wait()
    assert await rig.engine.check_now(WS.key, "job-1") == 1
    hold.release.set()
    report = await tick

    assert report.replanned == [session_id]
    after = rig.repo.sessions[session_id]
    assert (after.next_check_at, after.checks_done) == (pushed_at, 0)
    # The next pass plans from the push: the delays start again from the poll interval.
    await rig.engine.tick()
    replanned = rig.repo.sessions[session_id]
    assert replanned.next_check_at == pushed_at + timedelta(seconds=30)


async def test_a_session_the_tick_reactivates_itself_is_not_stale() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.WAITING))
    await rig.play_until(4 * 3600)  # monitoring gave up: the session is done
    session_id = rig.only_session()
    assert rig.repo.sessions[session_id].status == "done"

    # Both in one listing: the old job moves, a new one of the experiment joins.
    later = rig.clock.advance(300)  # a discovery interval: the workspace is listed
    rig.source.put(job("job-1", JobState.RUNNING, started_at=later))
    rig.source.put(job("job-2", JobState.WAITING, circuit="PLANT002/CIRCUIT02", created_at=later))
    report = await rig.engine.tick()
    assert report.listings == 1 and report.replanned == []
    assert rig.repo.kinds()[-1] == "training_started"
    assert rig.repo.job(WS.key, "job-2").session_id == session_id
    assert rig.repo.sessions[session_id].status == "active"


async def test_check_now_touches_only_the_sessions_holding_the_job() -> None:
    rig = Rig()
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    other = dataclasses.replace(
        job("job-9", JobState.RUNNING, circuit="PLANT009/CIRCUIT09", started_at=START),
        experiment="other-experiment",
    )
    rig.source.put(other)
    await rig.play_until(200)
    assert await rig.engine.check_now(WS.key, "job-9") == 1
    due = await rig.repo.due_sessions(rig.clock.now())
    assert [s.key for s in due] == [f"experiment:{WS.key}:other-experiment"]
    assert await rig.engine.check_now(WS.key) == 2
    assert await rig.engine.check_now("sub-x/rg-x/none") == 0


def finished(name: str, state: JobState, *, created: float, started: float) -> TrainingJob:
    return dataclasses.replace(
        job(name, state, created_at=START + timedelta(seconds=created)),
        started_at=START + timedelta(seconds=started),
        ended_at=START + timedelta(seconds=started + 10),
    )


async def test_a_listing_reaches_back_to_the_oldest_unfinished_job_and_brings_the_ends() -> None:
    rig = Rig(lists_finished=True)
    rig.source.put(job("job-1", JobState.WAITING))
    await rig.engine.tick()
    assert rig.source.listed_since == [None]  # the first listing reads the whole history

    # Between two listings: job-1 completes; job-2 is created, starts and fails.
    rig.source.put(finished("job-1", JobState.COMPLETED, created=0, started=5))
    rig.source.put(finished("job-2", JobState.FAILED, created=10, started=15))
    reports = await rig.play_until(30)
    # Back to job-1's creation (older than the previous listing less the overlap): both
    # ends come with the listing, without a get per finished job.
    assert rig.source.listed_since[1] == START - LISTING_OVERLAP
    assert sum(r.gets for r in reports) == 0
    told = sorted(k for k in rig.repo.kinds() if k.startswith("training_"))
    assert told == ["training_completed", "training_failed"]


async def test_with_nothing_unfinished_a_listing_reaches_back_only_past_the_last_one() -> None:
    rig = Rig(lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.engine.tick()
    rig.clock.advance(3600)
    await rig.engine.tick()
    assert rig.source.listed_since[-1] == START - LISTING_OVERLAP
    # job-1 was created at START and is still running: it keeps the window open.
    rig.source.put(finished("job-1", JobState.COMPLETED, created=0, started=0))
    rig.clock.advance(3600)
    await rig.engine.tick()
    rig.clock.advance(3600)
    await rig.engine.tick()
    # Finished: the window is the previous listing (at 2 h) less the overlap.
    assert rig.source.listed_since[-1] == rig.at(7200) - LISTING_OVERLAP


async def test_with_event_grid_running_jobs_wait_for_the_safety_net() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.engine.tick()
    session = rig.repo.sessions[rig.only_session()]
    # Without pushes it would be checked 30 s later; its end will be pushed.
    assert session.next_check_at == START + timedelta(seconds=1200)
    assert await rig.engine.next_wakeup() == START + timedelta(seconds=1200)


async def test_with_event_grid_waiting_jobs_are_still_looked_for_soon() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.WAITING))
    await rig.engine.tick()
    # A start is never pushed: the job's own backoff still applies.
    assert rig.repo.sessions[rig.only_session()].next_check_at == rig.at(30)


async def test_a_pushed_completion_is_listed_after_the_settle_time_and_keeps_the_delays() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.play_until(100)
    before = rig.repo.sessions[rig.only_session()]
    rig.source.put(finished("job-1", JobState.COMPLETED, created=0, started=0))

    assert await rig.engine.check_now(WS.key, "job-1", "Completed") == 1
    settled = rig.at(100) + PUSHED.push_settle
    after = rig.repo.sessions[before.id]
    assert after.next_check_at == settled and after.checks_done == before.checks_done
    assert await rig.engine.next_wakeup() == settled
    await rig.play_until(100 + PUSHED.push_settle.total_seconds() - 1)
    assert "training_completed" not in rig.repo.kinds()
    await rig.play_until(100 + PUSHED.push_settle.total_seconds())
    (completed,) = await rig.repo.events_of_kind("training_completed")
    assert completed.created_at == settled


async def test_a_pushed_failure_is_looked_at_at_once() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.play_until(100)
    rig.source.put(finished("job-1", JobState.FAILED, created=0, started=0))
    await rig.engine.check_now(WS.key, "job-1", "Failed")
    assert await rig.engine.next_wakeup() == rig.at(100)
    await rig.engine.tick()
    assert "training_failed" in rig.repo.kinds()


async def test_a_listing_during_the_settle_time_answers_the_pushed_completion() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    # Not started yet: looked at 0, 30, 90 and 210 s after its creation.
    rig.source.put(job("job-3", JobState.WAITING, circuit="PLANT003/CIRCUIT03"))
    await rig.play_until(200)
    rig.source.put(finished("job-1", JobState.COMPLETED, created=0, started=0))
    await rig.engine.check_now(WS.key, "job-1", "Completed")  # to be listed at 225 s
    reports = await rig.play_until(300)
    # The look at 210 s shows the end: the completion needs no listing of its own.
    assert [r.at for r in reports if r.listings] == [rig.at(210)]
    (completed,) = await rig.repo.events_of_kind("training_completed")
    assert completed.created_at == rig.at(210)


async def test_a_push_for_a_job_past_the_max_wait_still_lists_its_workspace() -> None:
    rig = Rig(PUSHED, lists_finished=True)
    rig.source.put(job("job-1", JobState.RUNNING, started_at=START))
    await rig.play_until(3 * 3600 + 60)
    assert rig.repo.sessions[rig.only_session()].status == "timed_out"
    rig.source.put(finished("job-1", JobState.COMPLETED, created=0, started=0))
    await rig.engine.check_now(WS.key, "job-1", "Completed")
    await rig.play_until(3 * 3600 + 60 + PUSHED.push_settle.total_seconds())
    assert rig.repo.kinds()[-1] == "training_completed"


def test_the_engine_imports_no_store_bot_cards_or_botbuilder() -> None:
    # A fresh interpreter: what importing the engine pulls in, and nothing else.
    probe = (
        "import sys, monitoring.engine; "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
        "('store', 'bot', 'cards', 'botbuilder', 'sqlalchemy')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
