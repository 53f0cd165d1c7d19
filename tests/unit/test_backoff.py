"""The monitoring backoff: 30, 60, 120, 240, 300, ... seconds, ending at the max wait (pure)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from config.settings import settings_from_mapping
from monitoring.backoff import BackoffPolicy, PollState

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
POLICY = BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def offsets(times: list[datetime]) -> list[float]:
    return [(time - START).total_seconds() for time in times]


def test_documented_defaults_come_from_settings() -> None:
    assert BackoffPolicy.from_settings(settings_from_mapping({})) == POLICY


def test_settings_values_are_used() -> None:
    settings = settings_from_mapping(
        {
            "MLBOT_MONITORING_POLL_INTERVAL_SECONDS": 10,
            "MLBOT_MONITORING_MAX_DELAY_SECONDS": 90,
            "MLBOT_MONITORING_BACKOFF_MULTIPLIER": 1.5,
            "MLBOT_MONITORING_MAX_WAIT_HOURS": 0.5,
        }
    )
    assert BackoffPolicy.from_settings(settings) == BackoffPolicy(10, 1.5, 90, 1800)


def test_delay_sequence_is_pinned() -> None:
    delays = [POLICY.delay_after(checks) for checks in range(1, 10)]
    assert delays == [30, 60, 120, 240, 300, 300, 300, 300, 300]


def test_first_check_is_due_immediately() -> None:
    assert POLICY.delay_after(0) == 0
    assert POLICY.next_check(START, None, 0) == START
    state = POLICY.start(START)
    assert state == PollState(START, 0, None, START)
    assert not state.finished


def test_cumulative_schedule_of_an_undisturbed_session() -> None:
    times = offsets(list(POLICY.check_times(START)))
    assert times[:7] == [0, 30, 90, 210, 450, 750, 1050]
    # From 450 s on every gap is the 300 s cap, up to the last full step at 10 650 s...
    assert times[4:-1] == [450 + 300 * i for i in range(35)]
    # ...and the max wait (10 800 s) lies between two checks: the final check is exactly there.
    assert times[-2:] == [10650, 10800]
    assert len(times) == 40
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert max(gaps) == 300 and gaps[-1] == 150


def test_final_check_is_at_the_max_wait_instant_not_later() -> None:
    assert POLICY.next_check(START, at(10650), 39) == at(10800)
    assert POLICY.next_check(START, at(10799), 39) == at(10800)
    assert POLICY.next_check(START, at(10800), 40) is None


def test_max_wait_reached_exactly_by_a_normal_delay() -> None:
    policy = dataclasses.replace(POLICY, max_wait_s=450)
    assert offsets(list(policy.check_times(START))) == [0, 30, 90, 210, 450]


def test_a_late_check_past_the_max_wait_ends_the_session() -> None:
    # The engine was down and checked only after the max wait: no further check.
    state = POLICY.checked(POLICY.start(START), at(20000))
    assert state.finished and state.next_check_at is None
    assert state.checks_done == 1 and state.last_check_at == at(20000)


def test_next_check_follows_the_actual_check_time() -> None:
    # A check that ran late shifts the next one; the schedule never "catches up" in a burst.
    assert POLICY.next_check(START, at(100), 2) == at(160)


def test_checked_advances_the_state() -> None:
    state = POLICY.start(START)
    for expected in [30, 90, 210, 450, 750]:
        state = POLICY.checked(state, state.next_check_at or START)
        assert state.next_check_at == at(expected)
    assert state.checks_done == 5 and state.started_at == START


def test_settings_changed_mid_way_apply_from_the_next_delay() -> None:
    state = POLICY.start(START)
    for _ in range(3):  # checks at 0, 30, 90; next due at 210 under the old policy
        state = POLICY.checked(state, state.next_check_at or START)
    assert state.next_check_at == at(210)
    faster = BackoffPolicy(initial_s=10, multiplier=3, max_delay_s=100, max_wait_s=3 * 3600)
    # The stored due time stands; the next computed delay (after check 4) uses the new policy.
    state = faster.checked(state, at(210))
    assert state.checks_done == 4
    assert state.next_check_at == at(210 + 100)  # min(10 * 3**3, 100)
    state = faster.checked(state, at(310))
    assert state.next_check_at == at(410)


def test_a_shorter_max_wait_mid_way_ends_the_session_at_the_next_check() -> None:
    state = POLICY.checked(POLICY.start(START), at(0))
    state = POLICY.checked(state, at(30))
    shorter = dataclasses.replace(POLICY, max_wait_s=60)
    state = shorter.checked(state, at(90))
    assert state.finished


def test_a_longer_max_wait_mid_way_extends_polling() -> None:
    longer = dataclasses.replace(POLICY, max_wait_s=4 * 3600)
    assert longer.next_check(START, at(10800), 40) == at(11100)


def test_activity_checks_now_and_restarts_the_delays() -> None:
    state = POLICY.start(START)
    for _ in range(6):
        state = POLICY.checked(state, state.next_check_at or START)
    assert state.next_check_at == at(1050)
    state = POLICY.after_activity(state, at(800))
    assert state.next_check_at == at(800) and state.checks_done == 0
    assert state.started_at == START  # the max wait still counts from the session start
    for expected in [830, 890, 1010, 1250, 1550, 1850]:
        state = POLICY.checked(state, state.next_check_at or START)
        assert state.next_check_at == at(expected)


def test_activity_before_any_check_keeps_the_immediate_check() -> None:
    state = POLICY.after_activity(POLICY.start(START), at(5))
    assert state.next_check_at == at(5) and state.checks_done == 0


def test_activity_does_not_extend_the_max_wait() -> None:
    state = POLICY.checked(POLICY.start(START), at(0))
    state = POLICY.after_activity(state, at(10790))
    assert state.next_check_at == at(10790)
    state = POLICY.checked(state, at(10790))
    assert state.next_check_at == at(10800)  # not 10 820
    state = POLICY.checked(state, at(10800))
    assert state.finished


def test_activity_after_the_max_wait_schedules_nothing() -> None:
    state = POLICY.checked(POLICY.start(START), at(0))
    assert POLICY.after_activity(state, at(10800)).finished
    finished = POLICY.checked(state, at(11000))
    assert POLICY.after_activity(finished, at(5)).finished


def test_cap_always_wins() -> None:
    assert BackoffPolicy(600, 2, 300, 3600).delay_after(1) == 300
    assert BackoffPolicy(30, 1, 300, 3600).delay_after(50) == 30
    assert BackoffPolicy(30, 2.5, 300, 3600).delay_after(3) == 187.5


@pytest.mark.parametrize("multiplier", [1.0001, 2.0, 10.0])
def test_very_many_checks_do_not_overflow(multiplier: float) -> None:
    policy = BackoffPolicy(1, multiplier, 300, 3600)
    assert policy.delay_after(10**9) == 300


@pytest.mark.parametrize(
    "values",
    [(0, 2, 300, 3600), (30, 0.5, 300, 3600), (30, 2, 0, 3600), (30, 2, 300, 0), (-1, 2, 1, 1)],
)
def test_nonsense_policies_are_refused(values: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(*values)


def test_negative_check_count_is_refused() -> None:
    with pytest.raises(ValueError):
        POLICY.delay_after(-1)


def test_policy_and_state_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.initial_s = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.start(START).checks_done = 3  # type: ignore[misc]
