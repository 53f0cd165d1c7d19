"""A job's lifecycle: exactly one event per meaningful change, whatever the status feed does."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from domain.events import REGISTRY, Source
from domain.jobs import JobState, TrainingJob
from monitoring.backoff import BackoffPolicy
from monitoring.job_status import AZUREML_STATUSES, job_state
from monitoring.lifecycle import (
    Attempt,
    AttemptTimedOut,
    EventKind,
    JobEvent,
    MonitoringTimedOut,
    Observation,
    TrainingCanceled,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
    Transition,
    monitoring_timed_out,
    observe,
)

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
FIRST = Attempt(1, 3)
HOUR = timedelta(hours=1)

S = EventKind.TRAINING_STARTED
C = EventKind.TRAINING_COMPLETED
F = EventKind.TRAINING_FAILED
X = EventKind.TRAINING_CANCELED
T = EventKind.ATTEMPT_TIMED_OUT
R = EventKind.LONG_RUNNING


def minutes(value: float) -> datetime:
    return START + timedelta(minutes=value)


def job(status: str, name: str = "job-1", **kw: object) -> TrainingJob:
    return TrainingJob(
        workspace="sub/rg/ws",
        name=name,
        display_name=f"{name} display",
        experiment="circuit-training",
        circuit=kw.pop("circuit", "PLANT001/CIRCUIT01"),  # type: ignore[arg-type]
        status=status,
        state=job_state(status),
        studio_url=f"https://ml.azure.com/runs/{name}",
        **kw,  # type: ignore[arg-type]
    )


def replay(
    statuses: list[str],
    attempt: Attempt = FIRST,
    *,
    attempt_timeout: timedelta | None = None,
    reminder_interval: timedelta | None = None,
) -> tuple[list[JobEvent], list[Transition]]:
    """Observe a job once a minute with the given statuses; return all events and steps."""
    observation: Observation | None = None
    events: list[JobEvent] = []
    steps: list[Transition] = []
    for minute, status in enumerate(statuses):
        step = observe(
            observation,
            job(status),
            minutes(minute),
            attempt,
            attempt_timeout=attempt_timeout,
            reminder_interval=reminder_interval,
        )
        events += step.events
        steps.append(step)
        observation = step.observation
    return events, steps


def kinds(statuses: list[str], attempt_timeout: timedelta | None = None) -> list[EventKind]:
    return [event.kind for event in replay(statuses, attempt_timeout=attempt_timeout)[0]]


# --- Every pair of the 14 Azure ML statuses ----------------------------------------------

# What a first observation says, by state.
FIRST_SEEN: dict[JobState, list[EventKind]] = {
    JobState.WAITING: [],
    JobState.RUNNING: [S],
    JobState.COMPLETED: [C],
    JobState.FAILED: [F],
    JobState.CANCELED: [X],
    JobState.UNKNOWN: [],
}

# What the second observation adds, by (first state, second state).
W, RU, CO, FA, CA, UN = (
    JobState.WAITING,
    JobState.RUNNING,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.CANCELED,
    JobState.UNKNOWN,
)
THEN: dict[tuple[JobState, JobState], list[EventKind]] = {
    (W, W): [], (W, RU): [S], (W, CO): [C], (W, FA): [F], (W, CA): [X], (W, UN): [],
    (RU, W): [], (RU, RU): [], (RU, CO): [C], (RU, FA): [F], (RU, CA): [X], (RU, UN): [],
    (UN, W): [], (UN, RU): [S], (UN, CO): [C], (UN, FA): [F], (UN, CA): [X], (UN, UN): [],
    **{(done, any_state): [] for done in (CO, FA, CA) for any_state in JobState},
}  # fmt: skip


def test_the_expectation_tables_cover_every_state() -> None:
    assert set(FIRST_SEEN) == set(JobState)
    assert set(THEN) == set(itertools.product(JobState, JobState))


@pytest.mark.parametrize("status", AZUREML_STATUSES)
def test_first_observation_of_each_status(status: str) -> None:
    assert kinds([status]) == FIRST_SEEN[job_state(status)]


@pytest.mark.parametrize(("before", "after"), list(itertools.product(AZUREML_STATUSES, repeat=2)))
def test_every_transition_between_the_14_statuses(before: str, after: str) -> None:
    expected = FIRST_SEEN[job_state(before)] + THEN[(job_state(before), job_state(after))]
    assert kinds([before, after]) == expected


def test_no_kind_of_event_ever_happens_twice_over_any_three_statuses() -> None:
    # All 2 744 sequences of three statuses, each followed by two terminal reports.
    for statuses in itertools.product(AZUREML_STATUSES, repeat=3):
        found = kinds([*statuses, "Completed", "Failed"])
        assert len(found) == len(set(found)), statuses
        assert sum(kind in (C, F, X) for kind in found) == 1, statuses


# --- Flapping and the usual paths ----------------------------------------------------------


def test_waiting_running_completed_gives_started_then_completed() -> None:
    events, _ = replay(["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"])
    assert [e.kind for e in events] == [S, C]
    started, completed = events
    assert isinstance(started, TrainingStarted) and started.started_at == minutes(3)
    assert isinstance(completed, TrainingCompleted) and completed.duration == timedelta(minutes=2)


def test_not_responding_and_unknown_flapping_says_nothing() -> None:
    statuses = ["Running", "NotResponding", "Running", "Unknown", "Running", "NotResponding"]
    statuses += ["Running", "Unknown", "Completed"]
    assert kinds(statuses) == [S, C]


def test_unknown_keeps_the_last_known_state() -> None:
    _, steps = replay(["Running", "NotResponding", "Unknown"])
    last = steps[-1].observation
    assert last.state is JobState.RUNNING and last.status == "Unknown"


def test_waiting_then_unknown_then_running_announces_the_start_once() -> None:
    assert kinds(["Queued", "NotResponding", "Unknown", "Running", "NotResponding"]) == [S]


def test_unknown_from_the_start_announces_nothing_until_known() -> None:
    _, steps = replay(["Unknown", "NotResponding"])
    assert all(step.events == () for step in steps)
    assert steps[-1].observation.state is JobState.UNKNOWN
    assert kinds(["Unknown", "Running"]) == [S]


def test_preempted_or_paused_job_is_not_announced_twice() -> None:
    assert kinds(["Running", "Queued", "Running", "Paused", "Running", "Completed"]) == [S, C]


def test_cancel_requested_is_still_running_until_canceled() -> None:
    assert kinds(["Running", "CancelRequested", "CancelRequested", "Canceled"]) == [S, X]


def test_terminal_states_are_final() -> None:
    _, steps = replay(["Running", "Completed", "Running", "Failed", "Unknown"])
    assert [len(step.events) for step in steps] == [1, 1, 0, 0, 0]
    assert steps[-1].observation.state is JobState.COMPLETED


@pytest.mark.parametrize(("status", "kind"), [("Completed", C), ("Failed", F), ("Canceled", X)])
def test_first_seen_terminal_gives_exactly_one_event(status: str, kind: EventKind) -> None:
    found = job(status, started_at=START - 2 * HOUR, ended_at=START - HOUR)
    step = observe(None, found, START, FIRST)
    assert [e.kind for e in step.events] == [kind]
    assert not step.cancel_job
    event = step.events[0]
    assert isinstance(event, TrainingCompleted | TrainingFailed | TrainingCanceled)
    assert event.duration == HOUR


def test_completed_without_a_known_start_has_no_duration() -> None:
    step = observe(None, job("Completed"), START, FIRST)
    event = step.events[0]
    assert isinstance(event, TrainingCompleted) and event.duration is None


def test_a_job_discovered_running_uses_azure_mls_start_time() -> None:
    step = observe(None, job("Running", started_at=START - HOUR / 2), START, FIRST)
    event = step.events[0]
    assert isinstance(event, TrainingStarted) and event.started_at == START - HOUR / 2
    assert step.observation.running_since == START - HOUR / 2


def test_failure_carries_summary_link_and_attempt() -> None:
    step = observe(None, job("Failed", error_summary="CUDA out of memory"), START, Attempt(2, 3))
    (event,) = step.events
    assert isinstance(event, TrainingFailed)
    assert event.error_summary == "CUDA out of memory"
    assert event.studio_url == "https://ml.azure.com/runs/job-1"
    assert (event.attempt, event.max_attempts) == (2, 3)
    assert event.retries_exhausted is False
    assert event.circuit == "PLANT001/CIRCUIT01" and event.status == "Failed"
    assert step.observation.attempt_failed


def test_failure_of_the_last_attempt_exhausts_retries() -> None:
    (event,) = observe(None, job("Failed"), START, Attempt(3, 3)).events
    assert isinstance(event, TrainingFailed) and event.retries_exhausted is True


# --- Per-attempt timeout ------------------------------------------------------------------


def test_attempt_timeout_reports_once_and_asks_to_cancel() -> None:
    observation = observe(None, job("Running"), START, FIRST).observation
    before = observe(
        observation,
        job("Running"),
        START + HOUR - timedelta(seconds=1),
        FIRST,
        attempt_timeout=HOUR,
    )
    assert before.events == () and not before.cancel_job

    step = observe(before.observation, job("Running"), START + HOUR, FIRST, attempt_timeout=HOUR)
    (event,) = step.events
    assert isinstance(event, AttemptTimedOut)
    assert event.running_for == HOUR and event.timeout == HOUR
    assert event.retries_exhausted is False
    assert step.cancel_job and step.observation.timed_out and step.observation.attempt_failed

    # Azure ML has not acknowledged the cancel yet: ask again, but say nothing new.
    again = observe(
        step.observation,
        job("Running"),
        START + 61 * timedelta(minutes=1),
        FIRST,
        attempt_timeout=HOUR,
    )
    assert again.events == () and again.cancel_job
    # Acknowledged: stop asking.
    requested = observe(
        again.observation,
        job("CancelRequested"),
        START + 62 * timedelta(minutes=1),
        FIRST,
        attempt_timeout=HOUR,
    )
    assert requested.events == () and not requested.cancel_job
    # The Canceled that follows is the expected end of a timed-out attempt.
    done = observe(
        requested.observation,
        job("Canceled"),
        START + 63 * timedelta(minutes=1),
        FIRST,
        attempt_timeout=HOUR,
    )
    assert done.events == () and not done.cancel_job
    assert done.observation.attempt_failed


def test_timed_out_attempt_that_fails_is_not_reported_again() -> None:
    statuses = ["Running"] + ["Running"] * 60 + ["Failed"]
    assert kinds(statuses, attempt_timeout=HOUR) == [S, T]


def test_timed_out_attempt_that_completes_anyway_is_announced() -> None:
    events, steps = replay(["Running"] * 61 + ["Completed"], attempt_timeout=HOUR)
    assert [e.kind for e in events] == [S, T, C]
    assert not steps[-1].observation.attempt_failed


def test_timeout_runs_while_the_status_is_unknown() -> None:
    statuses = ["Running"] + ["NotResponding"] * 61
    events, steps = replay(statuses, attempt_timeout=HOUR)
    assert [e.kind for e in events] == [S, T]
    assert steps[-1].cancel_job


def test_timeout_is_measured_from_the_start_of_running_not_from_queueing() -> None:
    statuses = ["Queued"] * 30 + ["Running"] * 40
    assert kinds(statuses, attempt_timeout=HOUR) == [S]


def test_job_discovered_running_past_the_timeout() -> None:
    step = observe(
        None,
        job("Running", started_at=START - 2 * HOUR),
        START,
        Attempt(3, 3),
        attempt_timeout=HOUR,
    )
    assert [e.kind for e in step.events] == [S, T]
    timed_out = step.events[1]
    assert isinstance(timed_out, AttemptTimedOut) and timed_out.retries_exhausted
    assert timed_out.running_for == 2 * HOUR
    assert step.cancel_job


def test_no_timeout_when_none_is_set() -> None:
    assert kinds(["Running"] * 200) == [S]


# --- Idempotency keys ---------------------------------------------------------------------


def full_life() -> list[JobEvent]:
    statuses = ["Queued", "Running"] + ["NotResponding", "Running"] * 300 + ["Running"] * 100
    statuses += ["Completed"]
    events, _ = replay(statuses, reminder_interval=timedelta(hours=4))
    return events


def test_keys_have_the_documented_shape() -> None:
    events = full_life()
    assert [e.key for e in events] == [
        "sub/rg/ws/job-1/training_started/1",
        "sub/rg/ws/job-1/long_running/1/1",
        "sub/rg/ws/job-1/long_running/1/2",
        "sub/rg/ws/job-1/training_completed/1",
    ]


def test_keys_are_unique_and_stable_across_replays() -> None:
    first = [e.key for e in full_life()]
    assert len(first) == len(set(first))
    assert [e.key for e in full_life()] == first


def test_a_restarted_engine_that_lost_its_observation_repeats_the_same_keys() -> None:
    # The outbox drops an event whose key it already holds.
    once = observe(None, job("Running"), START, FIRST).events
    again = observe(None, job("Running"), START + HOUR, FIRST).events
    assert [e.key for e in once] == [e.key for e in again]


def test_keys_differ_by_attempt_and_job() -> None:
    keys = {
        observe(None, job("Failed", name=name), START, Attempt(number, 3)).events[0].key
        for name in ("job-1", "job-2")
        for number in (1, 2, 3)
    }
    assert len(keys) == 6


def test_keys_do_not_depend_on_time() -> None:
    early = observe(None, job("Completed"), START, FIRST).events[0]
    late = observe(None, job("Completed"), START + 5 * HOUR, FIRST).events[0]
    assert early.key == late.key and early != late


# --- Monitoring timeout (the session gave up waiting) -------------------------------------


POLICY = BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600)


def test_monitoring_timed_out_only_once_the_max_wait_is_reached() -> None:
    jobs = [job("Running", name="a"), job("Completed", name="b"), job("NotResponding", name="c")]
    polling = POLICY.checked(POLICY.start(START), START)
    assert monitoring_timed_out("session-1", polling, START, jobs) is None

    over = POLICY.checked(polling, START + 3 * HOUR)
    assert over.finished
    event = monitoring_timed_out("session-1", over, START + 3 * HOUR, jobs)
    assert isinstance(event, MonitoringTimedOut)
    assert event.kind is EventKind.MONITORING_TIMED_OUT
    assert [j.name for j in event.unfinished] == ["a", "c"]
    assert event.waited == 3 * HOUR and event.started_at == START
    assert event.key == "session-1/monitoring_timed_out"


def test_no_monitoring_timeout_when_everything_finished() -> None:
    over = POLICY.checked(POLICY.start(START), START + 3 * HOUR)
    done = [job("Completed", name="a"), job("Failed", name="b"), job("Canceled", name="c")]
    assert monitoring_timed_out("session-1", over, START + 3 * HOUR, done) is None


# --- The events themselves ----------------------------------------------------------------


def test_event_kinds_are_the_documented_names() -> None:
    training = [s.kind.value for s in REGISTRY.values() if s.source is Source.TRAINING]
    assert training == [
        "training_started",
        "training_completed",
        "training_failed",
        "training_canceled",
        "attempt_timed_out",
        "monitoring_timed_out",
        "long_running",
        "retry_queued",
    ]


def test_events_are_frozen_and_carry_their_kind_as_a_field() -> None:
    (event,) = observe(None, job("Completed"), START, FIRST).events
    assert dataclasses.asdict(event)["kind"] == "training_completed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = "Failed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TrainingStarted(kind=EventKind.TRAINING_FAILED)  # type: ignore[call-arg]


@pytest.mark.parametrize(("number", "of"), [(0, 3), (1, 0)])
def test_attempts_are_counted_from_one(number: int, of: int) -> None:
    with pytest.raises(ValueError):
        Attempt(number, of)
