"""The pure parts of `mlbot watch`: targets, verdicts, exit codes and the progress text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import settings_from_mapping
from domain.jobs import JobState, TrainingJob
from monitoring.watch import (
    ProgressRow,
    Verdict,
    WatchExit,
    WatchOptions,
    WatchOutcome,
    WatchTarget,
    concerns,
    judge_circuits,
    matches,
    progress_rows,
    render_progress,
    select_watched,
    watch_outcome,
)
from store.monitoring import EventRecord, JobRecord, SessionRecord

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WS = "sub/rg/mlw"
STATUS = {
    JobState.WAITING: "Queued",
    JobState.RUNNING: "Running",
    JobState.COMPLETED: "Completed",
    JobState.FAILED: "Failed",
    JobState.CANCELED: "Canceled",
    JobState.UNKNOWN: "NotResponding",
}


def record(
    circuit: str,
    state: JobState,
    attempt: int = 1,
    *,
    name: str | None = None,
    experiment: str = "circuit-training",
    session_id: int = 1,
    created_at: datetime = T0,
    timed_out: bool = False,
    error: str | None = None,
) -> JobRecord:
    job = TrainingJob(
        workspace=WS,
        name=name or f"train-{circuit.lower().replace('/', '-')}-{attempt}",
        display_name=circuit,
        experiment=experiment,
        circuit=circuit,
        status=STATUS[state],
        state=state,
        created_at=created_at,
        started_at=created_at + timedelta(minutes=1),
        ended_at=created_at + timedelta(minutes=11) if state.is_terminal else None,
        error_summary=error,
        attempt=attempt,
    )
    return JobRecord(
        job=job,
        session_id=session_id,
        first_seen_at=created_at,
        observed_at=created_at,
        running_since=job.started_at,
        announced_start=True,
        timed_out=timed_out,
        reminders_sent=0,
        cancel_requested_at=None,
    )


def event(
    event_id: int,
    kind: str,
    *,
    job: JobRecord | None = None,
    session_id: int = 1,
    **payload: Any,
) -> EventRecord:
    return EventRecord(
        id=event_id,
        key=f"key-{event_id}",
        kind=kind,
        payload=payload,
        session_id=session_id,
        workspace=WS,
        job_name=job.job.name if job else None,
        circuit=job.job.circuit if job else None,
        created_at=T0,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


OPTIONS = WatchOptions(max_wait=timedelta(hours=3), grace=timedelta(minutes=10), max_attempts=3)
TARGET = WatchTarget(experiment="circuit-training")


def outcome(
    jobs: list[JobRecord],
    events: list[EventRecord] | None = None,
    sessions: dict[int, str] | None = None,
    *,
    now: datetime = T0 + timedelta(hours=1),
    **kwargs: Any,
) -> WatchOutcome | None:
    return watch_outcome(
        jobs,
        events or [],
        sessions if sessions is not None else {1: "active"},
        target=TARGET,
        options=OPTIONS,
        started_at=T0,
        now=now,
        **kwargs,
    )


# --- targets -------------------------------------------------------------------------------


def test_a_target_needs_a_criterion_and_is_normalised() -> None:
    with pytest.raises(ValueError, match="at least one"):
        WatchTarget()
    with pytest.raises(ValueError):
        WatchTarget(job_names=(" ",), experiment=" ")
    target = WatchTarget(job_names=("a", " a ", "b"), circuit_prefix=" PLANT001/ ")
    assert target.job_names == ("a", "b")
    assert target.circuit_prefix == "PLANT001/"
    assert target.describe() == "job a, b; circuit prefix PLANT001/"


def test_matches_requires_every_criterion_given() -> None:
    job = record("PLANT001/CIRCUIT01", JobState.RUNNING, name="job-1").job
    assert matches(job, WatchTarget(job_names=("job-1",)))
    assert not matches(job, WatchTarget(job_names=("job-2",)))
    assert matches(job, WatchTarget(experiment="circuit-training", circuit_prefix="PLANT001"))
    assert not matches(job, WatchTarget(experiment="other", circuit_prefix="PLANT001"))
    assert not matches(job, WatchTarget(job_names=("job-1",), circuit_prefix="PLANT002"))


def test_select_watched_follows_a_named_job_to_its_retries_and_skips_history() -> None:
    first = record("PLANT001/CIRCUIT01", JobState.FAILED, 1)
    retry = record("PLANT001/CIRCUIT01", JobState.RUNNING, 2, created_at=T0 + timedelta(hours=1))
    other = record("PLANT002/CIRCUIT02", JobState.RUNNING, 2)
    old = record(
        "PLANT001/CIRCUIT01", JobState.FAILED, 3, name="old", created_at=T0 - timedelta(days=1)
    )
    watched = select_watched(
        [retry, other, first, old],
        WatchTarget(job_names=(first.job.name,)),
        since=T0 - timedelta(hours=3),
    )
    assert [r.job.name for r in watched] == [first.job.name, retry.job.name]


def test_concerns_only_news_about_watched_jobs() -> None:
    watched = [record("PLANT001/CIRCUIT01", JobState.FAILED)]
    stranger = record("PLANT002/CIRCUIT02", JobState.FAILED)
    assert concerns(event(1, "training_failed", job=watched[0]), watched)
    assert not concerns(event(2, "training_failed", job=stranger), watched)
    assert concerns(event(3, "retry_queued", circuits=["PLANT001/CIRCUIT01"]), watched)
    assert not concerns(event(4, "retry_queued", circuits=["PLANT002/CIRCUIT02"]), watched)
    assert not concerns(
        event(5, "retry_queued", session_id=2, circuits=["PLANT001/CIRCUIT01"]), watched
    )
    timed_out = event(6, "monitoring_timed_out", unfinished=[{"name": watched[0].job.name}])
    assert concerns(timed_out, watched)
    assert not concerns(event(7, "monitoring_timed_out", unfinished=[{"name": "x"}]), watched)


# --- verdicts and exit codes -----------------------------------------------------------------


def test_exit_0_when_every_circuit_completed() -> None:
    result = outcome(
        [
            record("PLANT001/CIRCUIT01", JobState.COMPLETED),
            record("PLANT002/CIRCUIT02", JobState.FAILED, 1),
            record("PLANT002/CIRCUIT02", JobState.COMPLETED, 2),
        ]
    )
    assert result is not None
    assert result.exit_code is WatchExit.COMPLETED and result.succeeded
    assert result.summary.startswith("All 2 circuits completed:")
    assert "PLANT002/CIRCUIT02  train-plant002-circuit02-2  attempt 2/3" in result.summary


def test_still_watching_while_a_job_runs_or_a_retry_is_on_its_way() -> None:
    assert outcome([record("PLANT001/CIRCUIT01", JobState.RUNNING)]) is None
    failed = record("PLANT001/CIRCUIT01", JobState.FAILED, 1)
    # Failed with retries left: the engine queues the retry at its next check.
    assert outcome([failed]) is None
    # The retry is recorded but its job has not appeared yet.
    queued = event(1, "retry_queued", circuits=["PLANT001/CIRCUIT01"], attempt=2)
    assert outcome([failed], [queued], {1: "active"}) is None
    # A recorded retry wins over a session the engine has closed meanwhile.
    assert outcome([failed], [queued], {1: "done"}) is None


def test_exit_1_when_retries_are_exhausted_or_disabled() -> None:
    jobs = [
        record("PLANT001/CIRCUIT01", JobState.FAILED, n, error="UserError: NaN") for n in (1, 2, 3)
    ]
    result = outcome([*jobs, record("PLANT002/CIRCUIT02", JobState.COMPLETED)])
    assert result is not None and result.exit_code is WatchExit.FAILED
    assert "FAILED: 1 of 2 circuits did not complete:" in result.summary
    assert "UserError: NaN" in result.summary

    disabled = watch_outcome(
        [jobs[0]],
        [],
        {1: "done"},
        target=TARGET,
        options=WatchOptions(max_attempts=1),
        started_at=T0,
        now=T0 + timedelta(hours=1),
    )
    assert disabled is not None and disabled.exit_code is WatchExit.FAILED
    # The engine's own word that no retry follows is final too.
    said = event(1, "training_failed", job=jobs[0], retries_exhausted=True)
    result = outcome([jobs[0]], [said])
    assert result is not None and result.exit_code is WatchExit.FAILED


def test_a_timed_out_attempt_counts_as_failed_and_a_cancel_fails_the_stage() -> None:
    stuck = record("PLANT001/CIRCUIT01", JobState.RUNNING, 3, timed_out=True)
    result = outcome([stuck])
    assert result is not None and result.exit_code is WatchExit.FAILED
    canceled = outcome([record("PLANT001/CIRCUIT01", JobState.CANCELED)])
    assert canceled is not None and canceled.exit_code is WatchExit.FAILED
    assert canceled.circuits[0].verdict is Verdict.CANCELED


def test_exit_2_when_the_max_wait_passes_with_jobs_unfinished() -> None:
    running = record("PLANT001/CIRCUIT01", JobState.RUNNING)
    result = outcome([running], [], {1: "timed_out"})
    assert result is not None and result.exit_code is WatchExit.MAX_WAIT_EXCEEDED
    assert result.summary.startswith("Max wait of 3h 00m exceeded with 1 circuit unfinished:")
    timed_out = event(1, "monitoring_timed_out", unfinished=[{"name": running.job.name}])
    result = outcome([running], [timed_out], {1: "done"})
    assert result is not None and result.exit_code is WatchExit.MAX_WAIT_EXCEEDED
    # The watch's own deadline: max wait plus the grace period.
    late = T0 + timedelta(hours=3, minutes=10)
    assert outcome([running], now=late - timedelta(seconds=1)) is None
    result = outcome([running], now=late)
    assert result is not None and result.exit_code is WatchExit.MAX_WAIT_EXCEEDED


def test_a_final_failure_wins_over_the_max_wait() -> None:
    jobs = [
        record("PLANT001/CIRCUIT01", JobState.FAILED, 3),
        record("PLANT002/CIRCUIT02", JobState.RUNNING),
    ]
    result = outcome(jobs, [], {1: "timed_out"})
    assert result is not None and result.exit_code is WatchExit.FAILED
    assert "max wait of 3h 00m passed with 1 still unfinished" in result.summary


def test_exit_3_for_configuration_errors_and_nothing_to_watch() -> None:
    result = outcome(
        [record("PLANT001/CIRCUIT01", JobState.COMPLETED)], error="bad token (check X)"
    )
    assert result is not None and result.exit_code is WatchExit.CONFIGURATION_ERROR
    assert result.summary == "Configuration error: bad token (check X)"
    assert outcome([], now=T0 + timedelta(minutes=9)) is None
    result = outcome([], now=T0 + timedelta(minutes=10))
    assert result is not None and result.exit_code is WatchExit.CONFIGURATION_ERROR
    assert result.summary.startswith("No job matches experiment circuit-training after 10m 00s")


def test_without_stop_when_idle_the_watch_lasts_until_the_deadline() -> None:
    done = [record("PLANT001/CIRCUIT01", JobState.COMPLETED)]
    assert outcome(done, stop_when_idle=False) is None
    result = outcome(done, now=T0 + timedelta(hours=4), stop_when_idle=False)
    assert result is not None and result.exit_code is WatchExit.COMPLETED


def test_judge_uses_the_latest_attempt() -> None:
    results = judge_circuits(
        [
            record("PLANT001/CIRCUIT01", JobState.COMPLETED, 2),
            record("PLANT001/CIRCUIT01", JobState.FAILED, 1),
        ],
        [],
        {1: "done"},
        max_attempts=3,
        now=T0,
    )
    assert [(r.attempt, r.verdict) for r in results] == [(2, Verdict.COMPLETED)]
    assert results[0].duration == timedelta(minutes=10)


def test_options_from_settings() -> None:
    settings = settings_from_mapping(
        {"MLBOT_MONITORING_MAX_WAIT_HOURS": 0.5, "MLBOT_AUTO_RETRY_MAX_RETRIES": 1}
    )
    options = WatchOptions.from_settings(settings)
    assert options.max_wait == timedelta(minutes=30)
    assert options.max_attempts == 2
    assert WatchOptions.from_settings(settings, retries_possible=False).max_attempts == 1
    with pytest.raises(ValueError):
        WatchOptions(max_attempts=0)


# --- progress ------------------------------------------------------------------------------


def test_render_progress_one_plain_line_per_job() -> None:
    now = T0 + timedelta(minutes=5)
    rows = progress_rows(
        [
            record("PLANT001/CIRCUIT01", JobState.RUNNING),
            record("PLANT002/CIRCUIT02", JobState.COMPLETED, 2),
        ],
        {
            1: SessionRecord(
                id=1,
                kind="experiment",
                key="k",
                title="t",
                workspace=WS,
                pipeline_run_id=None,
                status="active",
                started_at=T0,
                checks_done=3,
                last_check_at=now,
                next_check_at=now + timedelta(minutes=2),
                created_by=None,
            )
        },
        max_attempts=3,
    )
    text = render_progress(rows, now)
    lines = text.splitlines()
    assert lines[0] == "[2026-11-29 06:05:00Z] watching 2 jobs: 1 completed, 1 running"
    assert len(lines) == 3
    assert "PLANT001/CIRCUIT01" in lines[1] and "running (Running)" in lines[1]
    assert "elapsed  4m 00s" in lines[1] and "attempt 1/3" in lines[1]
    assert lines[1].endswith("next check in 2m 00s")
    assert "completed (Completed)" in lines[2] and lines[2].endswith("attempt 2/3  done")
    assert "\x1b" not in text


def test_render_progress_edge_cases() -> None:
    assert render_progress([], T0) == "[2026-11-29 06:00:00Z] watching 0 jobs"
    row = ProgressRow(
        circuit="P/C",
        job_name="j",
        state="waiting",
        status="NotStarted",
        attempt=1,
        max_attempts=1,
        running_since=None,
        ended_at=None,
        next_check_at=T0,
        finished=False,
    )
    assert render_progress([row], T0).splitlines()[1].endswith("next check now")
