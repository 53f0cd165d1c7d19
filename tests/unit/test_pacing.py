"""Send pacing to Teams' limits: bursts are smoothed, never over a window, never reordered."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.pacing import (
    TEAMS_CONVERSATION_LIMITS,
    TEAMS_TENANT_LIMITS,
    SendPacer,
    SlidingWindowLimit,
)

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TENANT = "tenant-a"


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def worst_window(times: list[datetime], per: timedelta) -> int:
    """Most sends in any interval [t, t + per) of the timeline (checked independently)."""
    ordered = sorted(times)
    return max(
        (bisect_left(ordered, first + per) - i for i, first in enumerate(ordered)), default=0
    )


def assert_within(times: list[datetime], limits: tuple[SlidingWindowLimit, ...]) -> None:
    for limit in limits:
        assert worst_window(times, limit.per) <= limit.count, limit


def send_burst(
    pacer: SendPacer, conversation: str, count: int, now: datetime, tenant: str | None = TENANT
) -> list[datetime]:
    """Book `count` sends that all arrived at `now`, in event order."""
    slots = []
    for _ in range(count):
        slot = pacer.next_slot(conversation, tenant, now)
        pacer.record(conversation, tenant, slot)
        slots.append(slot)
    return slots


def test_teams_documented_limits() -> None:
    assert [(lim.count, lim.per.total_seconds()) for lim in TEAMS_CONVERSATION_LIMITS] == [
        (7, 1),
        (8, 2),
        (60, 30),
        (1800, 3600),
    ]
    assert [(lim.count, lim.per.total_seconds()) for lim in TEAMS_TENANT_LIMITS] == [(50, 1)]


@pytest.mark.parametrize(
    ("count", "per"), [(0, timedelta(seconds=1)), (1, timedelta(0)), (3, timedelta(-1))]
)
def test_a_limit_must_allow_something(count: int, per: timedelta) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimit(count, per)


def test_a_quiet_conversation_sends_at_once() -> None:
    pacer = SendPacer()
    assert pacer.next_slot("c1", TENANT, START) == START


def test_burst_of_40_is_smoothed_within_every_window() -> None:
    slots = send_burst(SendPacer(), "c1", 40, START)

    assert slots == sorted(slots)  # event order kept
    assert_within(slots, TEAMS_CONVERSATION_LIMITS)
    # Smoothed, not held back: the first 7 go at once, and the rest as soon as 8/2 s allows.
    assert slots[:7] == [START] * 7
    assert slots[7] == at(1)
    assert slots[-1] <= at(10)


def test_burst_sent_by_a_waiting_sender_gives_the_same_timeline() -> None:
    # The real sender sleeps until each slot and then asks for the next one.
    booked = send_burst(SendPacer(), "c1", 40, START)
    pacer, now, sent = SendPacer(), START, []
    for _ in range(40):
        now = pacer.next_slot("c1", TENANT, now)
        pacer.record("c1", TENANT, now)
        sent.append(now)
    assert sent == booked


def test_60_per_30_seconds_holds_a_long_burst_back() -> None:
    slots = send_burst(SendPacer(), "c1", 61, START)
    assert_within(slots, TEAMS_CONVERSATION_LIMITS)
    assert slots[60] == slots[0] + timedelta(seconds=30)


def test_1800_per_hour_holds_over_a_long_run() -> None:
    pacer = SendPacer()
    slots = send_burst(pacer, "c1", 4000, START)

    assert slots == sorted(slots)
    assert_within(slots, TEAMS_CONVERSATION_LIMITS)
    # 4,000 sends need at least three hourly windows.
    assert slots[1800] >= slots[0] + timedelta(hours=1)
    assert slots[3600] >= slots[1800] + timedelta(hours=1)
    assert pacer.remembered_sends("c1") <= 1800


def test_sends_spread_over_time_are_not_delayed() -> None:
    pacer = SendPacer()
    for i in range(500):
        now = at(i * 5)
        assert pacer.next_slot("c1", TENANT, now) == now
        pacer.record("c1", TENANT, now)


@pytest.mark.parametrize("interleaved", [False, True])
def test_60_conversations_of_one_tenant_stay_under_50_per_second(interleaved: bool) -> None:
    pacer = SendPacer()
    per_conversation: dict[str, list[datetime]] = defaultdict(list)
    alerts = [(f"c{c}", i) for c in range(60) for i in range(5)]
    if interleaved:
        alerts.sort(key=lambda alert: alert[1])
    for conversation, _ in alerts:
        slot = pacer.next_slot(conversation, TENANT, START)
        pacer.record(conversation, TENANT, slot)
        per_conversation[conversation].append(slot)

    everything = [slot for slots in per_conversation.values() for slot in slots]
    assert_within(everything, TEAMS_TENANT_LIMITS)
    for slots in per_conversation.values():
        assert slots == sorted(slots)
        assert_within(slots, TEAMS_CONVERSATION_LIMITS)
    # 300 sends at 50/s: the tenant limit, not the booking order, sets the pace.
    assert max(everything) <= at(6)


def test_a_conversation_booked_ahead_does_not_hold_up_the_others() -> None:
    pacer = SendPacer()
    busy = send_burst(pacer, "busy", 60, START)
    assert busy[-1] > at(10)
    assert pacer.next_slot("quiet", TENANT, START) == START


def test_tenants_are_paced_separately() -> None:
    pacer = SendPacer()
    for c in range(50):
        send_burst(pacer, f"a{c}", 1, START, tenant="a")
    assert pacer.next_slot("a-late", "a", START) == at(1)
    assert pacer.next_slot("b1", "b", START) == START
    assert pacer.next_slot("no-tenant", None, START) == START


def test_retry_after_pushes_only_that_conversation_back() -> None:
    pacer = SendPacer()
    send_burst(pacer, "c1", 1, START)
    pacer.throttled("c1", timedelta(seconds=30), at(0.5))

    assert pacer.next_slot("c1", TENANT, at(1)) == at(30.5)
    assert pacer.next_slot("c2", TENANT, at(1)) == at(1)
    # A shorter Retry-After does not cut an earlier, longer one short.
    pacer.throttled("c1", timedelta(seconds=2), at(1))
    assert pacer.next_slot("c1", TENANT, at(1)) == at(30.5)
    # Once it has passed, the conversation is paced normally again.
    assert pacer.next_slot("c1", TENANT, at(31)) == at(31)


def test_retry_after_for_an_unknown_conversation_is_honoured() -> None:
    pacer = SendPacer()
    pacer.throttled("c1", timedelta(seconds=5), START)
    assert pacer.next_slot("c1", TENANT, START) == at(5)


def test_retry_after_keeps_a_conversation_remembered_while_it_lasts() -> None:
    pacer = SendPacer()
    pacer.throttled("c1", timedelta(hours=3), START)
    assert pacer.forget_idle(at(7200)) == 0
    assert pacer.next_slot("c1", TENANT, at(7200)) == at(3 * 3600)


def test_old_sends_are_dropped() -> None:
    pacer = SendPacer()
    now = START
    for _ in range(10_000):
        now = pacer.next_slot("c1", TENANT, now)
        pacer.record("c1", TENANT, now)
        assert pacer.remembered_sends("c1") <= 1800
        assert pacer.remembered_tenant_sends(TENANT) <= 51
    # Quiet for a while: tenant sends leave after 1 s, conversation sends after an hour.
    pacer.next_slot("c1", TENANT, now + timedelta(minutes=30))
    assert pacer.remembered_tenant_sends(TENANT) == 0
    pacer.forget_idle(now + timedelta(minutes=59))
    assert 0 < pacer.remembered_sends("c1") <= 1800


def test_idle_conversations_are_forgotten() -> None:
    pacer = SendPacer()
    for c in range(1000):
        send_burst(pacer, f"c{c}", 3, START)
    assert pacer.tracked_conversations == 1000

    # Still inside the hourly window: they must be remembered.
    pacer.next_slot("new", TENANT, at(1800))
    assert pacer.tracked_conversations == 1000
    # Past every window: forgotten without anyone calling forget_idle.
    pacer.next_slot("new", TENANT, at(3600 + 120))
    assert pacer.tracked_conversations == 0
    assert pacer.remembered_tenant_sends(TENANT) == 0


SMALL_CONVERSATION = (
    SlidingWindowLimit(2, timedelta(seconds=1)),
    SlidingWindowLimit(3, timedelta(seconds=4)),
)
SMALL_TENANT = (SlidingWindowLimit(4, timedelta(seconds=1)),)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # conversation
            st.integers(0, 1),  # tenant
            st.integers(0, 1500),  # milliseconds the clock moves before this alert
        ),
        max_size=80,
    )
)
def test_any_schedule_keeps_every_window_and_slots_are_earliest(
    alerts: list[tuple[int, int, int]],
) -> None:
    pacer = SendPacer(SMALL_CONVERSATION, SMALL_TENANT)
    now = START
    by_conversation: dict[int, list[datetime]] = defaultdict(list)
    by_tenant: dict[int, list[datetime]] = defaultdict(list)
    tenant_of: dict[int, int] = {}
    for conversation, tenant, step_ms in alerts:
        tenant = tenant_of.setdefault(conversation, tenant)
        now += timedelta(milliseconds=step_ms)
        slot = pacer.next_slot(str(conversation), str(tenant), now)
        history = by_conversation[conversation]
        earliest = max([now, *history[-1:]])
        assert slot >= earliest
        if slot > earliest:
            # One microsecond earlier would have broken some window.
            before = slot - timedelta(microseconds=1)
            conversation_ok = all(
                worst_window([*history, before], lim.per) <= lim.count for lim in SMALL_CONVERSATION
            )
            tenant_ok = all(
                worst_window([*by_tenant[tenant], before], lim.per) <= lim.count
                for lim in SMALL_TENANT
            )
            assert not (conversation_ok and tenant_ok)
        pacer.record(str(conversation), str(tenant), slot)
        history.append(slot)
        by_tenant[tenant].append(slot)

    for slots in by_conversation.values():
        assert_within(slots, SMALL_CONVERSATION)
    for slots in by_tenant.values():
        assert_within(slots, SMALL_TENANT)
