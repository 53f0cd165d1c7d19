"""The living session card and the grouped failure card: content, order, size, schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cards.session import (
    MAX_CARD_BYTES,
    MAX_ROWS,
    render_group_card,
    render_session_card,
    session_summary,
)
from domain.jobs import JobState, TrainingJob
from store.monitoring import EventRecord, JobRecord, SessionRecord
from tests.unit.card_rows import job_rows
from tests.unit.test_event_cards import assert_valid

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def session(title: str = "train-circuits run 42", status: str = "active") -> SessionRecord:
    return SessionRecord(
        id=1,
        kind="experiment",
        key="experiment:ws:train-circuits",
        title=title,
        workspace="ws",
        pipeline_run_id=None,
        status=status,
        started_at=NOW - timedelta(hours=1),
        checks_done=3,
        last_check_at=NOW,
        next_check_at=NOW,
        created_by=None,
    )


def job(
    circuit: str,
    state: JobState,
    attempt: int = 1,
    *,
    started: timedelta | None = timedelta(minutes=30),
    ended: timedelta | None = None,
    name: str | None = None,
) -> JobRecord:
    return JobRecord(
        job=TrainingJob(
            workspace="ws",
            name=name or f"job-{circuit}-{attempt}",
            display_name=f"train {circuit}",
            experiment="train-circuits",
            circuit=circuit,
            status=state.value,
            state=state,
            started_at=NOW - started if started is not None else None,
            ended_at=NOW - ended if ended is not None else None,
            studio_url="https://ml.azure.com/runs/x",
            attempt=attempt,
        ),
        session_id=1,
        first_seen_at=NOW,
        observed_at=NOW,
        running_since=None,
        announced_start=True,
        timed_out=False,
        reminders_sent=0,
        cancel_requested_at=None,
    )


def test_each_circuit_shows_once_by_its_latest_attempt_in_status_order() -> None:
    jobs = [
        job("PLANT001/CIRCUIT01", JobState.COMPLETED, ended=timedelta(minutes=5)),
        job("PLANT002/CIRCUIT01", JobState.FAILED, 1, ended=timedelta(minutes=20)),
        job("PLANT002/CIRCUIT01", JobState.RUNNING, 2, started=timedelta(minutes=4)),
        job("PLANT003/CIRCUIT01", JobState.FAILED, ended=timedelta(minutes=1)),
        job("PLANT004/CIRCUIT01", JobState.WAITING, started=None),
    ]
    card = render_session_card(session(), jobs, NOW)
    rows = job_rows(card)
    # The order of `status` (domain.status.status_order): running, waiting, …, failed, …
    assert [row.circuit for row in rows] == [
        "PLANT002/CIRCUIT01",
        "PLANT004/CIRCUIT01",
        "PLANT003/CIRCUIT01",
        "PLANT001/CIRCUIT01",
    ]
    assert (rows[0].state, rows[0].elapsed) == ("▶️ Running", "4m 00s")
    assert rows[0].detail.startswith("attempt 2 · [train PLANT002/CIRCUIT01]")
    assert (rows[2].state, rows[2].elapsed) == ("❌ Failed", "29m 00s")  # started 30 min ago
    assert (rows[1].state, rows[1].elapsed) == ("⏳ Waiting", "—")
    text = json.dumps(card, ensure_ascii=False)
    assert "4 circuit(s): 1 running, 1 waiting, 1 failed, 1 completed — watching" in text
    assert "Updated 2026-11-29 12:00 UTC" in text
    assert card["version"] == "1.5"
    assert_valid(card, "1.5")


def test_a_huge_session_is_capped_and_counted_under_the_size_limit() -> None:
    jobs = [
        job(f"PLANT{n:03d}/CIRCUIT01", JobState.RUNNING, name="x" * 180 + str(n))
        for n in range(500)
    ]
    card = render_session_card(session(title="t" * 1000), jobs, NOW)
    assert len(json.dumps(card).encode()) <= MAX_CARD_BYTES
    shown = len(job_rows(card))
    assert shown > 0
    assert shown <= MAX_ROWS
    assert f"…and {500 - shown} more." in json.dumps(card, ensure_ascii=False)
    assert_valid(card, "1.5")


def test_a_session_without_jobs_still_renders() -> None:
    card = render_session_card(session(status="done"), [], NOW)
    assert "No job seen yet — finished." in json.dumps(card, ensure_ascii=False)
    assert session_summary(session(), []) == "train-circuits run 42"


def event(n: int, kind: str = "training_failed", error: str = "CUDA out of memory") -> EventRecord:
    return EventRecord(
        id=n,
        key=f"ws/job-{n}/{kind}/1",
        kind=kind,
        payload={
            "circuit": f"PLANT00{n}/CIRCUIT01",
            "attempt": 1,
            "max_attempts": 3,
            "error_summary": error,
            "retries_exhausted": False,
        },
        session_id=1,
        workspace="ws",
        job_name=f"job-{n}",
        circuit=f"PLANT00{n}/CIRCUIT01",
        created_at=NOW,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


def test_several_failures_make_one_card_with_every_error() -> None:
    card = render_group_card([event(1), event(2), event(3, "attempt_timed_out")])
    text = json.dumps(card, ensure_ascii=False)
    assert "3 circuits failed or stopped" in text
    assert all(f"PLANT00{n}/CIRCUIT01" in text for n in (1, 2, 3))
    assert text.count("CUDA out of memory") >= 2
    assert_valid(card, "1.5")


def test_a_group_of_one_is_that_event_s_own_card() -> None:
    from cards.events import render_event_card

    assert render_group_card([event(1)]) == render_event_card(event(1))


def test_a_large_group_stays_under_the_size_limit() -> None:
    card = render_group_card([event(n, error="e" * 5000) for n in range(1, 60)])
    assert len(json.dumps(card).encode()) <= MAX_CARD_BYTES
    assert "59 circuits failed or stopped" in json.dumps(card, ensure_ascii=False)
    assert_valid(card, "1.5")
