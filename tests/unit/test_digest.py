"""The daily digest: what people type, when it is due, and the day's figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.digest import DigestInputError, DigestRequest, build_digest, due_on, parse_digest
from domain.jobs import JobState, TrainingJob

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def _job(circuit: str, state: JobState, minutes: float, attempt: int = 1) -> TrainingJob:
    return TrainingJob(
        workspace="ws",
        name=f"{circuit}-{attempt}-{minutes}",
        display_name="train",
        experiment="e",
        circuit=circuit,
        status=state.value,
        state=state,
        started_at=T0,
        ended_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
    )


def test_parse() -> None:
    assert parse_digest("") is None
    assert parse_digest("daily at 09:30 Europe/Berlin") == DigestRequest(
        True, time(9, 30), "Europe/Berlin"
    )
    assert parse_digest("7:05") == DigestRequest(True, time(7, 5), "UTC")
    assert parse_digest("off") == DigestRequest(False)
    for bad, says in [("at 25:00", "time of day"), ("at 09:00 Mars/Base", "time zone")]:
        with pytest.raises(DigestInputError, match=says):
            parse_digest(bad)


def test_due_once_a_local_day_after_its_time() -> None:
    at, zone = time(9, 0), "Europe/Berlin"  # 08:00 UTC in December
    assert due_on(datetime(2026, 12, 7, 7, 59, tzinfo=UTC), at, zone, None) is None
    assert due_on(datetime(2026, 12, 7, 8, 0, tzinfo=UTC), at, zone, None) == date(2026, 12, 7)
    sent = date(2026, 12, 7)
    assert due_on(datetime(2026, 12, 7, 20, 0, tzinfo=UTC), at, zone, sent) is None
    assert due_on(datetime(2026, 12, 8, 8, 1, tzinfo=UTC), at, zone, sent) == date(2026, 12, 8)


def test_figures_per_circuit_failures_first_with_the_median() -> None:
    finished = [
        _job("P/C1", JobState.COMPLETED, 30),
        _job("P/C2", JobState.FAILED, 5),
        _job("P/C2", JobState.COMPLETED, 90, attempt=2),
    ]
    history = [_job("P/C2", JobState.COMPLETED, m) for m in (40, 50, 60)]
    facts = build_digest(date(2026, 12, 7), "UTC", finished, history, open_approvals=["prod"])
    first, second = facts.circuits
    assert (first.circuit, first.completed, first.failed, first.retried) == ("P/C2", 1, 1, 1)
    assert first.last_duration == timedelta(minutes=90)
    assert first.median == timedelta(minutes=50)
    assert second.circuit == "P/C1" and second.median is None
    assert facts.totals == (2, 1, 1) and facts.open_approvals == ("prod",)
