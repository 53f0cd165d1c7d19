"""A job is looked at at least once in every wait of its own backoff schedule (pure)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.backoff import BackoffPolicy
from monitoring.job_deadlines import next_look_due

SUBMITTED = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
POLICY = BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600)


def due(policy: BackoffPolicy, looked_after_s: float) -> float | None:
    when = next_look_due(policy, SUBMITTED, SUBMITTED + timedelta(seconds=looked_after_s))
    return None if when is None else (when - SUBMITTED).total_seconds()


@pytest.mark.parametrize(
    ("looked", "needed"),
    [
        (0, 30),  # seen at submission: the next look by its first check
        (1, 90),  # seen during the wait (0, 30]: by the end of (30, 90]
        (30, 90),
        (31, 210),
        (90, 210),
        (200, 450),
        (450, 750),
        (451, 1050),
        (10_000, 10_350),  # in the 300 s steps: (9750, 10050] -> by 10 350
        (10_650, 10_800),  # the last wait is cut at the max wait
    ],
)
def test_the_next_look_closes_the_following_wait(looked: float, needed: float) -> None:
    assert due(POLICY, looked) == needed


def test_a_clock_behind_the_submission_time_asks_for_the_first_check() -> None:
    assert due(POLICY, -20) == 30


@pytest.mark.parametrize("looked", [10_651, 10_800, 20_000])
def test_nothing_is_asked_past_the_max_wait(looked: float) -> None:
    assert due(POLICY, looked) is None


def test_other_policies_follow_their_own_schedule() -> None:
    steady = BackoffPolicy(initial_s=30, multiplier=1, max_delay_s=300, max_wait_s=3600)
    assert due(steady, 45) == 90  # checks every 30 s: (30, 60] -> by 90
    capped = BackoffPolicy(initial_s=400, multiplier=2, max_delay_s=300, max_wait_s=3600)
    assert due(capped, 45) == 600  # the cap wins over the poll interval


def test_looking_when_asked_covers_every_wait_of_the_undisturbed_schedule() -> None:
    """Any sequence of looks, each no later than asked, puts one look in every wait."""
    checks = [(t - SUBMITTED).total_seconds() for t in POLICY.check_times(SUBMITTED)]
    rng = random.Random(3)
    for _ in range(50):
        looks = [0.0]
        while (following := due(POLICY, looks[-1])) is not None:
            # Anywhere after the previous look, up to the deadline: other sessions' listings.
            looks.append(rng.uniform(looks[-1] + 1, following))
        for start, end in itertools.pairwise(checks):
            assert any(start < look <= end for look in looks), (start, end)
