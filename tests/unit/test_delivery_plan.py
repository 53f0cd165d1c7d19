"""The planning stage of delivery, without a store: order, holds, groups, claims."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from domain.destinations import WEBHOOK, Destination, TeamsConversation, parse_destination
from monitoring.delivery_plan import Records, Send, claimed_prefix, plan_sends
from store.deliveries import DeliveryRecord
from store.monitoring import EventRecord

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CHANNEL = TeamsConversation("19:channel@thread.tacv2")


def event(n: int, *, kind: str = "training_failed", at: datetime = NOW) -> EventRecord:
    return EventRecord(
        id=n,
        key=f"e{n}",
        kind=kind,
        payload={},
        session_id=1,
        workspace="ws",
        job_name=f"job-{n}",
        circuit=None,
        created_at=at,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


def row(n: int, destination: Destination, **values: object) -> DeliveryRecord:
    fields: dict[str, object] = {
        "status": "pending",
        "attempts": 0,
        "activity_id": None,
        "last_error": None,
        "next_attempt_at": None,
    }
    fields.update(values)
    return DeliveryRecord(event_id=n, destination=destination, **fields)  # type: ignore[arg-type]


class Everywhere:
    """Routes every event to the channel and the webhook; groups failures by session."""

    def __init__(self, grouping: bool = False) -> None:
        self.grouping = grouping

    async def destinations(self, event: EventRecord) -> Sequence[Destination]:
        return [CHANNEL, WEBHOOK]

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None:
        raise AssertionError("planning never sends")


class Grouping(Everywhere):
    def group_of(self, event: EventRecord) -> str | None:
        return f"failures:{event.session_id}" if event.kind == "training_failed" else None

    async def deliver_group(
        self, events: Sequence[EventRecord], destination: Destination
    ) -> str | None:
        raise AssertionError("planning never sends")


def routes(events: Sequence[EventRecord]) -> dict[tuple[int, int], list[Destination]]:
    return {(e.id, 0): [CHANNEL, WEBHOOK] for e in events}


def keys(sends: Sequence[Send]) -> list[list[str]]:
    return [[m.key for m in send.members] for send in sends]


def test_another_pass_s_live_claim_holds_the_destination_and_what_follows() -> None:
    batch = [event(1), event(2)]
    claim = {"claimed_by": "replica-b", "claim_expires_at": NOW + timedelta(seconds=40)}
    records: Records = {1: {CHANNEL: row(1, CHANNEL, **claim)}}
    plan = plan_sends(
        batch,
        [Everywhere()],
        routes(batch),
        records,
        now=NOW,
        group_wait=timedelta(0),
        owner="replica-a",
    )
    assert CHANNEL not in plan.lanes  # event 2 must not overtake event 1 there
    assert keys(plan.lanes[WEBHOOK]) == [["e1"], ["e2"]]
    assert plan.held_by_others == 1 and plan.due == NOW + timedelta(seconds=40)
    assert plan.outstanding == {1: {CHANNEL, WEBHOOK}, 2: {CHANNEL, WEBHOOK}}
    # The owner's own claim, or one that has expired, holds nothing.
    for owner, now in (("replica-b", NOW), ("replica-a", NOW + timedelta(seconds=41))):
        plan = plan_sends(
            batch,
            [Everywhere()],
            routes(batch),
            records,
            now=now,
            group_wait=timedelta(0),
            owner=owner,
        )
        assert keys(plan.lanes[CHANNEL]) == [["e1"], ["e2"]] and plan.held_by_others == 0


def test_done_rows_are_skipped_and_a_retry_not_due_holds_its_destination() -> None:
    batch = [event(1), event(2)]
    records: Records = {
        1: {
            WEBHOOK: row(1, WEBHOOK, status="sent"),
            CHANNEL: row(1, CHANNEL, attempts=2, next_attempt_at=NOW + timedelta(seconds=9)),
        }
    }
    plan = plan_sends(
        batch,
        [Everywhere()],
        routes(batch),
        records,
        now=NOW,
        group_wait=timedelta(0),
        owner="a",
    )
    assert list(plan.lanes) == [WEBHOOK] and keys(plan.lanes[WEBHOOK]) == [["e2"]]
    assert plan.due == NOW + timedelta(seconds=9) and plan.held_by_others == 0
    assert plan.outstanding[1] == {CHANNEL}


def test_a_group_waits_for_its_window_then_takes_what_nobody_else_is_sending() -> None:
    late = NOW + timedelta(seconds=31)
    batch = [event(1), event(2, at=NOW + timedelta(seconds=5)), event(3), event(4, at=late)]
    others = {"claimed_by": "b", "claim_expires_at": NOW + timedelta(minutes=5)}
    records: Records = {3: {CHANNEL: row(3, CHANNEL, **others)}}
    wait = timedelta(seconds=30)
    early = plan_sends(
        batch, [Grouping()], routes(batch), records, now=NOW, group_wait=wait, owner="a"
    )
    assert early.lanes == {} and early.due == NOW + wait
    plan = plan_sends(
        batch, [Grouping()], routes(batch), records, now=late + wait, group_wait=wait, owner="a"
    )
    # Event 3 is another pass's to send: it joins no group of this one, and the channel
    # waits for it after the group it could not join.
    assert keys(plan.lanes[CHANNEL]) == [["e1", "e2"]]
    assert keys(plan.lanes[WEBHOOK]) == [["e1", "e2", "e3"], ["e4"]]


def test_a_destination_s_sends_stop_at_the_first_not_wholly_claimed() -> None:
    batch = [event(1), event(2), event(3)]
    plan = plan_sends(
        batch, [Everywhere()], routes(batch), {}, now=NOW, group_wait=timedelta(0), owner="a"
    )
    sends = plan.lanes[CHANNEL]
    assert keys(claimed_prefix(sends, {(1, CHANNEL), (3, CHANNEL)})) == [["e1"]]
    assert claimed_prefix(sends, {(2, CHANNEL)}) == []
    assert len(claimed_prefix(sends, {(n, CHANNEL) for n in (1, 2, 3)})) == 3


def test_destinations_are_kept_as_the_text_stored_before() -> None:
    for text in ("teams:19:abc@thread.tacv2", "teams:a:personal;x", "webhook", "email"):
        assert parse_destination(text).key == text
    assert parse_destination("teams:a:1") == TeamsConversation("a:1")
    for bad in ("teams:", "slack:x", ""):
        try:
            parse_destination(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was read as a destination")
