"""The retention pass on the scheduler: its own timer job, cutoffs from the clock, and a
failing pass that never stops the timer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from domain.retention import PruneCounts, RetentionCutoffs, RetentionPolicy
from monitoring.retention import RetentionPass
from monitoring.scheduler import RETENTION_JOB_ID, EngineScheduler

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class RecordingPruner:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[RetentionCutoffs, int]] = []
        self.fail = fail

    async def prune(self, cutoffs: RetentionCutoffs, batch_size: int) -> PruneCounts:
        self.calls.append((cutoffs, batch_size))
        if self.fail:
            raise RuntimeError("database is locked")
        return PruneCounts(events=2)


async def test_a_pass_prunes_with_the_policy_cutoffs_as_of_the_clock() -> None:
    pruner = RecordingPruner()
    policy = RetentionPolicy(history_days=14, batch_size=50)
    counts = await RetentionPass(pruner, policy, lambda: NOW).run()
    assert counts.events == 2
    [(cutoffs, batch)] = pruner.calls
    assert cutoffs.history == NOW - timedelta(days=14) and batch == 50


async def test_the_scheduler_runs_it_as_its_own_job_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pruner = RecordingPruner(fail=True)
    scheduler = EngineScheduler(
        None,
        None,
        clock=lambda: NOW,
        retention=RetentionPass(pruner, RetentionPolicy(), lambda: NOW),
        retention_interval_s=1800,
        speed=2.0,
    )
    scheduler.start()
    try:
        assert scheduler._scheduler is not None
        job = scheduler._scheduler.get_job(RETENTION_JOB_ID)
        assert job is not None
        assert job.trigger.interval == timedelta(seconds=900)  # simulated time runs 2x
        with caplog.at_level(logging.ERROR, logger="monitoring.scheduler"):
            await scheduler.prune()
        assert len(pruner.calls) == 1
        assert "retention pass failed" in caplog.text
        # The timer job is still there for the next interval.
        assert scheduler._scheduler.get_job(RETENTION_JOB_ID) is not None
    finally:
        await scheduler.stop()
