"""Long-running reminders: every 4 h after the start, one at a time, until the job ends (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from config.settings import settings_from_mapping
from domain.jobs import TrainingJob
from monitoring.job_status import job_state
from monitoring.lifecycle import Attempt, EventKind, LongRunning, Observation, observe
from monitoring.reminders import next_reminder_at, reminder_due, reminder_interval

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
EVERY = timedelta(hours=4)


def hours(value: float) -> datetime:
    return START + timedelta(hours=value)


def test_interval_comes_from_settings() -> None:
    assert reminder_interval(settings_from_mapping({})) == EVERY
    settings = settings_from_mapping({"MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS": 0.5})
    assert reminder_interval(settings) == timedelta(minutes=30)


def test_nothing_before_the_first_interval() -> None:
    assert reminder_due(START, 0, hours(0), EVERY) is None
    assert reminder_due(START, 0, hours(4) - timedelta(microseconds=1), EVERY) is None
    assert reminder_due(START, 0, hours(-1), EVERY) is None


def test_first_reminder_at_4_hours_second_at_8() -> None:
    assert reminder_due(START, 0, hours(4), EVERY) == 1
    assert reminder_due(START, 1, hours(4), EVERY) is None
    assert reminder_due(START, 1, hours(7.99), EVERY) is None
    assert reminder_due(START, 1, hours(8), EVERY) == 2
    assert reminder_due(START, 2, hours(12), EVERY) == 3


def test_next_reminder_times() -> None:
    assert next_reminder_at(START, 0, EVERY) == hours(4)
    assert next_reminder_at(START, 1, EVERY) == hours(8)
    assert next_reminder_at(START, 2, EVERY) == hours(12)


def test_catch_up_after_downtime_is_one_reminder() -> None:
    # Sent reminder 1 at 4 h, then the engine was down from 5 h to 13 h.
    assert reminder_due(START, 1, hours(13), EVERY) == 3
    # Only the latest is sent; numbering stays aligned with the elapsed time.
    assert reminder_due(START, 3, hours(13), EVERY) is None
    assert next_reminder_at(START, 3, EVERY) == hours(16)


def test_a_job_checked_every_minute_for_13_hours_gets_three_reminders() -> None:
    sent = 0
    due_at: list[tuple[int, datetime]] = []
    for minute in range(13 * 60 + 1):
        now = START + timedelta(minutes=minute)
        due = reminder_due(START, sent, now, EVERY)
        if due is not None:
            due_at.append((due, now))
            sent = due
    assert due_at == [(1, hours(4)), (2, hours(8)), (3, hours(12))]


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(hours=-1)])
def test_interval_must_be_positive(interval: timedelta) -> None:
    with pytest.raises(ValueError):
        reminder_due(START, 0, hours(5), interval)
    with pytest.raises(ValueError):
        next_reminder_at(START, 0, interval)


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        reminder_due(START, -1, hours(5), EVERY)


# --- Reminders as the job's lifecycle emits them ------------------------------------------


def job(status: str, **kw: object) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name="job-1",
        display_name="PLANT001/CIRCUIT01 training",
        experiment="circuit-training",
        circuit="PLANT001/CIRCUIT01",
        status=status,
        state=job_state(status),
        started_at=START,
        **kw,  # type: ignore[arg-type]
    )


def reminders_over(
    checks: Sequence[tuple[float, str]], previous: Observation | None = None
) -> list[LongRunning]:
    found: list[LongRunning] = []
    obs = previous
    for hour, status in checks:
        step = observe(obs, job(status), hours(hour), Attempt(1, 3), reminder_interval=EVERY)
        found += [event for event in step.events if isinstance(event, LongRunning)]
        obs = step.observation
    return found


def test_lifecycle_reminds_at_4_and_8_hours() -> None:
    checks = [(0.1, "Running"), (3.9, "Running"), (4.0, "Running"), (6, "Running")]
    checks += [(8.5, "Running"), (9, "Running")]
    sent = reminders_over(checks)
    assert [(r.reminder, r.at, r.running_for) for r in sent] == [
        (1, hours(4), timedelta(hours=4)),
        (2, hours(8.5), timedelta(hours=8.5)),
    ]
    assert all(r.kind is EventKind.LONG_RUNNING for r in sent)


def test_reminders_stop_once_the_job_has_completed() -> None:
    checks = [(1, "Running"), (4, "Running"), (5, "Completed"), (8, "Completed")]
    checks += [(12, "Running")]  # a stale report after the end changes nothing
    assert [r.reminder for r in reminders_over(checks)] == [1]


@pytest.mark.parametrize("status", ["Failed", "Canceled"])
def test_reminders_stop_on_any_terminal_state(status: str) -> None:
    assert reminders_over([(1, "Running"), (5, status), (9, status)]) == []


def test_reminders_continue_past_the_monitoring_max_wait() -> None:
    # The session gave up after 3 h; reminders are about the job, not the session.
    checks = [(0.5, "Running"), (3, "Running"), (4, "Running"), (8, "Running"), (12, "Running")]
    assert [r.reminder for r in reminders_over(checks)] == [1, 2, 3]


def test_reminders_continue_while_the_status_is_unknown_or_paused() -> None:
    checks = [(0.5, "Running"), (4, "NotResponding"), (8, "Paused"), (12, "Unknown")]
    assert [r.reminder for r in reminders_over(checks)] == [1, 2, 3]


def test_lifecycle_catch_up_after_downtime_is_one_reminder() -> None:
    sent = reminders_over([(1, "Running"), (4.2, "Running"), (13, "Running"), (15, "Running")])
    assert [r.reminder for r in sent] == [1, 3]
    assert sent[1].running_for == timedelta(hours=13)


def test_no_reminder_right_with_the_started_announcement() -> None:
    # First seen 5 h into the run: "started" already says it is running; the next reminder
    # is the 8 h one.
    first = observe(None, job("Running"), hours(5), Attempt(1, 3), reminder_interval=EVERY)
    assert [e.kind for e in first.events] == [EventKind.TRAINING_STARTED]
    assert first.observation.reminders_sent == 1
    assert [
        r.reminder for r in reminders_over([(7, "Running"), (8, "Running")], first.observation)
    ] == [2]


def test_waiting_job_that_never_started_gets_no_reminder() -> None:
    step = observe(
        None,
        TrainingJob("s/r/w", "j", "j", "e", None, "Queued", job_state("Queued")),
        hours(9),
        Attempt(1, 3),
        reminder_interval=EVERY,
    )
    assert step.events == ()


def test_reminder_keys_differ_by_index_and_are_stable() -> None:
    checks = [(0.5, "Running"), (4, "Running"), (8, "Running")]
    sent = reminders_over(checks)
    again = reminders_over(checks)
    assert [r.key for r in sent] == [r.key for r in again]
    assert [r.key for r in sent] == [
        "s/r/w/job-1/long_running/1/1",
        "s/r/w/job-1/long_running/1/2",
    ]
