"""Silences, acknowledgements and snoozes: parsing what is typed and what is held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.attention import (
    Acknowledgement,
    Silence,
    SilenceInputError,
    Snooze,
    hold_for,
    parse_duration,
    parse_silence,
    silence_selects,
)
from domain.subscriptions import EventFacts, SubscriptionFilters

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _silence(**changes: object) -> Silence:
    values: dict[str, object] = {
        "id": 7,
        "kinds": ("training_failed",),
        "filters": SubscriptionFilters(circuit_prefixes=("PLANT002/",)),
        "starts_at": NOW - timedelta(minutes=5),
        "ends_at": NOW + timedelta(hours=2),
        "created_by": "Dana",
        "reason": "maintenance",
    }
    values.update(changes)
    return Silence(**values)  # type: ignore[arg-type]


def test_a_silence_is_matchers_a_duration_and_a_reason() -> None:
    request = parse_silence("circuit=PLANT002/ kinds=failed for 2h disk maintenance on P2")
    assert request.kinds == ("training_failed",)
    assert request.filters.circuit_prefixes == ("PLANT002/",)
    assert request.duration == timedelta(hours=2)
    assert request.reason == "disk maintenance on P2"
    both = parse_silence("env=prod experiment=nightly kinds=approvals,reminders for 30m")
    assert both.filters.environments == ("prod",) and both.filters.experiments == ("nightly",)
    assert set(both.kinds) == {"approval_required", "long_running"} and both.reason == ""


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("circuit=PLANT002/", "how long"),
        ("circuit=PLANT002/ for", "how long"),
        ("for 2h", "at least one matcher"),
        ("circuit=PLANT002/ for 20y", "not a duration"),
        ("circuit=PLANT002/ for 15d", "14 days"),
        ("owner=ada for 2h", "not 'owner'"),
        ("PLANT002 for 2h", "not a matcher"),
        ("kinds=nonsense for 2h", "nonsense"),
    ],
)
def test_what_is_not_a_silence_gets_a_helpful_answer(typed: str, says: str) -> None:
    with pytest.raises(SilenceInputError, match=says):
        parse_silence(typed)


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(SilenceInputError):
        parse_duration("0m")


def test_a_silence_selects_only_events_that_say_what_it_matches() -> None:
    silence = _silence()
    failed_p2 = EventFacts("training_failed", circuits=("plant002/circuit03",))
    assert silence_selects(silence, failed_p2)
    assert not silence_selects(silence, EventFacts("training_failed", circuits=("PLANT001/C1",)))
    assert not silence_selects(silence, EventFacts("long_running", circuits=("PLANT002/C1",)))
    # An approval names no circuit: a circuit silence never holds it.
    every_kind = _silence(kinds=())
    assert not silence_selects(every_kind, EventFacts("approval_required", environment="prod"))
    env = _silence(kinds=(), filters=SubscriptionFilters(environments=("Prod",)))
    assert silence_selects(env, EventFacts("approval_required", environment="prod"))
    assert not silence_selects(env, EventFacts("training_failed", circuits=("PLANT002/C",)))


def test_holds_come_from_active_silences_acks_and_snoozes() -> None:
    facts = EventFacts("training_failed", circuits=("PLANT002/C1",))
    held = hold_for(
        "training_failed",
        facts,
        "ws/job",
        silences=[_silence()],
        acknowledged=None,
        snoozed=None,
        now=NOW,
    )
    assert held is not None and held.silence_id == 7
    ended = _silence(ended_early_at=NOW - timedelta(minutes=1))
    expired = _silence(ends_at=NOW)
    for silence in (ended, expired):
        assert (
            hold_for(
                "training_failed",
                facts,
                "ws/job",
                silences=[silence],
                acknowledged=None,
                snoozed=None,
                now=NOW,
            )
            is None
        )
    reminder = EventFacts("long_running", circuits=("PLANT001/C1",))
    ack = Acknowledgement("ws/job", "Ada", NOW)
    by_ack = hold_for(
        "long_running", reminder, "ws/job", silences=[], acknowledged=ack, snoozed=None, now=NOW
    )
    assert by_ack is not None and by_ack.reason == "acknowledged by Ada"
    # An acknowledged job's failure still goes out: only its reminders are held.
    assert (
        hold_for(
            "training_failed", facts, "ws/job", silences=[], acknowledged=ack, snoozed=None, now=NOW
        )
        is None
    )
    short = Snooze("ws/job", "Bo", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    to_end = Snooze("ws/job", "Bo", NOW, None)
    assert (
        hold_for(
            "long_running",
            reminder,
            "ws/job",
            silences=[],
            acknowledged=None,
            snoozed=short,
            now=NOW,
        )
        is None
    )
    assert (
        hold_for(
            "long_running",
            reminder,
            "ws/job",
            silences=[],
            acknowledged=None,
            snoozed=to_end,
            now=NOW,
        )
        is not None
    )
