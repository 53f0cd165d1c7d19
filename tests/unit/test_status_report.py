"""The status report and its card: ordering, elapsed time, filters, limits (pure)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from cards.status import render_status_card
from domain.jobs import JobState, TrainingJob
from monitoring.status_report import MAX_JOBS_SHOWN, JobPage, build_status_report, elapsed_of
from tests.unit.card_rows import job_rows

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


def page(jobs: list[TrainingJob], total: int | None = None) -> JobPage:
    counts: dict[JobState, int] = {}
    for item in jobs:
        counts[item.state] = counts.get(item.state, 0) + 1
    if total is not None:
        counts[JobState.RUNNING] = counts.get(JobState.RUNNING, 0) + total - len(jobs)
    return JobPage(jobs, counts)


def test_report_counts_what_matched_not_only_what_is_shown() -> None:
    shown = [job(f"job-{i:04d}", JobState.RUNNING, f"PLANT{i:03d}/CIRCUIT01") for i in range(25)]
    report = build_status_report(page(shown, total=1000), NOW)
    assert len(report.lines) == MAX_JOBS_SHOWN and report.total == 1000
    assert report.hidden == 975
    card = render_status_card(report)
    size = len(json.dumps(card).encode())
    assert size < 28 * 1024, size  # Teams' card size limit
    assert "975 more" in json.dumps(card)


def test_card_shape_and_escaping() -> None:
    jobs = [job("train_*x*", JobState.FAILED, "P/C_1", studio_url="https://ml.azure.com/r/1")]
    card = render_status_card(build_status_report(page(jobs), NOW))
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    blob = json.dumps(card)
    assert "train\\\\_\\\\*x\\\\*" in blob  # markdown characters are escaped
    assert "(https://ml.azure.com/r/1)" in blob
    [row] = job_rows(card)
    assert (row.circuit, row.state, row.elapsed) == ("P/C\\_1", "❌ Failed", "—")
    assert row.detail.startswith("attempt 1 · [train")


def test_empty_and_filtered_empty_states() -> None:
    empty = json.dumps(render_status_card(build_status_report(page([]), NOW)))
    assert "Nothing is being watched" in empty
    none_match = json.dumps(render_status_card(build_status_report(page([]), NOW, "zz")))
    assert "No watched job matches" in none_match


def test_undelivered_notifications_are_shown() -> None:
    report = build_status_report(page([job("a", JobState.RUNNING)]), NOW)
    stuck = dataclasses.replace(
        report, stuck=(("training_failed", "teams:19:gone", "Teams answered 403"),)
    )
    blob = json.dumps(render_status_card(stuck))
    assert "Not delivered" in blob and "Teams answered 403" in blob
    assert "Not delivered" not in json.dumps(render_status_card(report))


def test_approvals_and_deployments_sections() -> None:
    from monitoring.status_report import LastDeployment, PendingApproval

    report = dataclasses.replace(
        build_status_report(page([]), NOW),
        approvals=(PendingApproval("deploy", "Deploy_Prod", "prod", NOW),),
        deployments=(LastDeployment("prod", "deploy", "20261129.2", False, NOW),),
    )
    blob = json.dumps(render_status_card(report))
    assert "1 pending approval(s)" in blob and "Deploy\\\\_Prod" in blob
    assert "Last deployments" in blob and "20261129.2" in blob
