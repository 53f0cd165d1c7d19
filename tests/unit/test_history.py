"""`history`: parsing what was typed, what each attempt shows, and the card's layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cards.history import render_history_card
from domain.history import (
    HistoryRequest,
    HistoryRequestError,
    RetryRequest,
    build_history,
    parse_history_request,
)
from domain.jobs import JobState, TrainingJob

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _job(attempt: int, state: JobState, start_min: int, minutes: float | None) -> TrainingJob:
    started = T0 + timedelta(minutes=start_min)
    ended = started + timedelta(minutes=minutes) if minutes is not None else None
    return TrainingJob(
        workspace="ws",
        name=f"job-{attempt}-{start_min}",
        display_name="train",
        experiment="circuit-training",
        circuit="PLANT001/CIRCUIT01",
        status=state.value,
        state=state,
        created_at=started - timedelta(minutes=1),
        started_at=started,
        ended_at=ended,
        attempt=attempt,
    )


def test_parse_takes_a_circuit_and_an_optional_count() -> None:
    assert parse_history_request(" plant001/circuit01 ") == HistoryRequest("PLANT001/CIRCUIT01", 10)
    assert parse_history_request("PLANT001/CIRCUIT01 25").limit == 25
    for bad, says in [
        ("", "Which circuit"),
        ("A B C", "optional count"),
        ("A x", "optional count"),
        ("A 0", "1 to 30"),
        ("A 31", "1 to 30"),
        ("X" * 129, "too long"),
    ]:
        with pytest.raises(HistoryRequestError, match=says):
            parse_history_request(bad)


def test_each_attempt_says_why_it_ran() -> None:
    jobs = [  # newest first, as the store returns them
        _job(3, JobState.COMPLETED, 200, 40),
        _job(2, JobState.FAILED, 100, 30),
        _job(1, JobState.FAILED, 0, 20),
    ]
    retries = [
        RetryRequest(T0 + timedelta(minutes=150), "Grace"),  # between #2 and #3
        RetryRequest(T0 + timedelta(minutes=300), "Later"),  # after everything
    ]
    history = build_history("plant001/circuit01", jobs, retries, T0 + timedelta(hours=5))
    assert [a.trigger for a in history.attempts] == [
        "retried by Grace",
        "automatic retry",
        "first run",
    ]
    assert history.success_rate == pytest.approx(1 / 3)
    assert history.median_duration == timedelta(minutes=40)


def test_a_running_attempt_counts_its_time_so_far_but_not_as_finished() -> None:
    now = T0 + timedelta(minutes=75)
    history = build_history("C", [_job(1, JobState.RUNNING, 60, None)], [], now)
    assert history.attempts[0].duration == timedelta(minutes=15)
    assert history.finished == () and history.success_rate is None


def test_the_card_charts_oldest_left_with_a_fallback_and_a_table_for_every_client() -> None:
    jobs = [_job(2, JobState.COMPLETED, 100, 30), _job(1, JobState.FAILED, 0, 12.5)]
    card = render_history_card(build_history("PLANT001/CIRCUIT01", jobs, [], T0))
    assert card["version"] == "1.5"
    chart = next(e for e in card["body"] if e["type"] == "Chart.VerticalBar")
    assert [(bar["y"], bar["color"]) for bar in chart["data"]] == [
        (12.5, "attention"),
        (30.0, "good"),
    ]
    assert chart["fallback"]["type"] == "TextBlock"
    rows = [e for e in card["body"] if e["type"] == "ColumnSet"]
    assert len(rows) == 3  # header + one per attempt, never a Table (blank on mobile)
    for row in rows:
        assert all(column["items"][0]["wrap"] is False for column in row["columns"])
    assert "PLANT001/CIRCUIT01" in card["body"][0]["text"]


def test_one_attempt_gets_no_chart_and_nothing_gets_a_helpful_card() -> None:
    one = render_history_card(build_history("C", [_job(1, JobState.COMPLETED, 0, 5)], [], T0))
    assert all(e["type"] != "Chart.VerticalBar" for e in one["body"])
    empty = render_history_card(build_history("PLANT9/X_1", [], [], T0))
    assert "No training of this circuit" in str(empty["body"])
    assert "PLANT9/X\\_1" in empty["body"][0]["text"]  # markdown kept literal
