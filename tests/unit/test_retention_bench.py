"""The retention benchmark fails a run whose store keeps growing past the horizon."""

from __future__ import annotations

import io

from bench.retention import PRUNED, Day, check_level
from bench.run_checks import RunChecks


def day(number: int, rows: int, file_bytes: int) -> Day:
    return Day(number, file_bytes, dict.fromkeys([*PRUNED, "audit_log"], rows), 90, 1, 1.0, 0, 1.0)


def test_a_store_that_levels_off_passes() -> None:
    checks = RunChecks("retention")
    # Audit rows may grow (kept 400 days); the pruned tables and the file may not.
    days = [day(n, min(n, 12) * 1000, min(n, 12) * 10**6) for n in range(30)]
    check_level(days, 10, checks)
    assert checks.exit_code(io.StringIO()) == 0


def test_a_store_still_growing_fails() -> None:
    checks = RunChecks("retention")
    check_level([day(n, n * 1000, n * 10**6) for n in range(30)], 10, checks)
    assert checks.exit_code(io.StringIO()) == 1
    problems = " | ".join(checks.other)
    assert "events still grows after the horizon" in problems
    assert "the database file still grows" in problems


def test_a_run_too_short_to_judge_fails() -> None:
    checks = RunChecks("retention")
    check_level([day(n, 1, 1) for n in range(5)], 10, checks)
    assert checks.exit_code(io.StringIO()) == 1
