"""The benchmarks' run checker: a run whose figures come from a wrong path must fail."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

from bench.pacing import broken_limits
from bench.run_checks import RunChecks
from monitoring.pacing import SlidingWindowLimit


def _verdict(checks: RunChecks) -> tuple[int, str]:
    out = io.StringIO()
    return checks.exit_code(out), out.getvalue()


def test_a_clean_run_passes_and_says_nothing() -> None:
    checks = RunChecks("bench")
    with checks.timed():
        logging.getLogger("mlbot.bench").info("an ordinary line")
    checks.reply(201, "bot")
    checks.items(["a", "b"], ["b", "a"], "item")
    checks.distinct(2, ["k1", "k2"], "notifications")
    assert _verdict(checks) == (0, "")


def test_a_warning_logged_while_timing_fails_the_run() -> None:
    checks = RunChecks("bench")
    logging.getLogger("mlbot.bench").warning("before timing: not counted")
    with checks.timed():
        logging.getLogger("bot.chat").error("command status failed (ref 1234)")
    logging.getLogger("mlbot.bench").warning("after timing: not counted")
    code, message = _verdict(checks)
    assert code == 1
    assert "1 log records at WARNING or above" in message
    assert "command status failed (ref 1234)" in message
    assert "not counted" not in message


def test_a_reply_that_is_not_2xx_fails_the_run() -> None:
    checks = RunChecks("bench")
    checks.reply(200, "bot")
    checks.reply(404, "connector answered POST /v3/conversations/x/activities/1")
    code, message = _verdict(checks)
    assert code == 1
    assert "1 non-2xx replies" in message and "HTTP 404" in message


def test_a_duplicated_or_lost_item_fails_the_run() -> None:
    checks = RunChecks("bench")
    checks.items(["a", "b", "c"], ["a", "b", "b"], "job")
    code, message = _verdict(checks)
    assert code == 1
    assert "1 lost: job c" in message
    assert "1 duplicated: job b (2 times)" in message


def test_notifications_known_only_by_number_are_checked_for_losses_and_repeats() -> None:
    checks = RunChecks("bench")
    checks.distinct(3, ["k1", "k1", "k2"], "notifications")
    code, message = _verdict(checks)
    assert code == 1
    assert "1 of 3 notifications" in message and "notifications k1 (2 times)" in message


def test_only_a_few_examples_of_each_problem_are_printed() -> None:
    checks = RunChecks("bench")
    for n in range(12):
        checks.reply(500, f"reply {n}")
    _, message = _verdict(checks)
    assert "12 non-2xx replies" in message
    assert "reply 4" in message and "reply 5" not in message and "7 more" in message


def test_booked_slots_that_break_a_window_are_found() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    limit = (SlidingWindowLimit(2, timedelta(seconds=1)),)
    spaced = [start, start + timedelta(milliseconds=500), start + timedelta(seconds=1)]
    assert broken_limits(spaced, limit, "c") == []
    crowded = [start, start + timedelta(milliseconds=500), start + timedelta(milliseconds=900)]
    assert broken_limits(crowded, limit, "c") == [
        f"3 sends to c within 1 s at {crowded[2].isoformat()}"
    ]
