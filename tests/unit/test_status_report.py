"""The status report and its card: ordering, elapsed time, filters, limits (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cards.status import render_status_card
from monitoring.jobs import JobState, TrainingJob
from monitoring.status_report import MAX_JOBS_SHOWN, build_status_report, elapsed_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def job(
    name: str, state: JobState, circuit: str = "PLANT001/CIRCUIT01", **kw: object
) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name=name,
        display_name=name,
        experiment=kw.pop("experiment", "circuit-training"),  # type: ignore[arg-type]
        circuit=circuit,
        status=state.value.title(),
        state=state,
        **kw,  # type: ignore[arg-type]
    )


def test_elapsed_running_completed_and_waiting() -> None:
    running = job("a", JobState.RUNNING, started_at=NOW - timedelta(minutes=90))
    done = job(
        "b",
        JobState.COMPLETED,
        started_at=NOW - timedelta(hours=3),
        ended_at=NOW - timedelta(hours=1),
    )
    waiting = job("c", JobState.WAITING, created_at=NOW - timedelta(minutes=5))
    assert elapsed_of(running, NOW) == timedelta(minutes=90)
    assert elapsed_of(done, NOW) == timedelta(hours=2)
    assert elapsed_of(waiting, NOW) is None


def test_running_first_then_waiting_then_failed_then_completed() -> None:
    jobs = [
        job("done", JobState.COMPLETED, "P/C4"),
        job("failed", JobState.FAILED, "P/C3"),
        job("queued", JobState.WAITING, "P/C2"),
        job("run", JobState.RUNNING, "P/C1"),
    ]
    report = build_status_report(jobs, NOW)
    assert [line.job.name for line in report.lines] == ["run", "queued", "failed", "done"]
    assert report.counts[JobState.RUNNING] == 1 and report.total == 4


def test_filter_matches_circuit_experiment_or_name() -> None:
    jobs = [
        job("j1", JobState.RUNNING, "PLANT001/CIRCUIT01"),
        job("j2", JobState.RUNNING, "PLANT002/CIRCUIT01", experiment="nightly"),
    ]
    assert [line.job.name for line in build_status_report(jobs, NOW, "plant002").lines] == ["j2"]
    assert [line.job.name for line in build_status_report(jobs, NOW, "NIGHTLY").lines] == ["j2"]
    assert [line.job.name for line in build_status_report(jobs, NOW, "j1").lines] == ["j1"]
    assert build_status_report(jobs, NOW, "zzz").total == 0


def test_large_store_is_capped_and_card_stays_under_teams_limit() -> None:
    jobs = [job(f"job-{i:04d}", JobState.RUNNING, f"PLANT{i:03d}/CIRCUIT01") for i in range(1000)]
    report = build_status_report(jobs, NOW)
    assert len(report.lines) == MAX_JOBS_SHOWN and report.hidden == 1000 - MAX_JOBS_SHOWN
    card = render_status_card(report)
    size = len(json.dumps(card).encode())
    assert size < 28 * 1024, size
    assert "975 more" in json.dumps(card)


def test_card_shape_and_escaping() -> None:
    jobs = [job("train_*x*", JobState.FAILED, "P/C_1", studio_url="https://ml.azure.com/r/1")]
    card = render_status_card(build_status_report(jobs, NOW))
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    blob = json.dumps(card)
    assert "train\\\\_\\\\*x\\\\*" in blob  # markdown characters are escaped
    assert "(https://ml.azure.com/r/1)" in blob
    table = next(el for el in card["body"] if el["type"] == "Table")
    assert len(table["rows"]) == 2 and table["firstRowAsHeaders"] is True


def test_empty_and_filtered_empty_states() -> None:
    empty = json.dumps(render_status_card(build_status_report([], NOW)))
    assert "Nothing is being watched" in empty
    none_match = json.dumps(
        render_status_card(build_status_report([job("a", JobState.RUNNING)], NOW, "zz"))
    )
    assert "No watched job matches" in none_match
