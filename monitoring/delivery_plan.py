"""The planning stage of delivery: which messages go to which destination now (pure).

Given a batch of undelivered events, where each is routed (per notifier) and what the
delivery rows say, the plan holds, per destination and in event order, the messages
that may be sent in this pass, like Alertmanager's route → group → wait stages:

- a destination whose oldest waiting event cannot go yet (a retry not due, a group still
  collecting, a row another pass has claimed) is held: later events to it wait too, so
  order per destination holds;
- events of one group (a grouping notifier's `group_of`) bound for one destination
  within `group_wait` of the first go as one message; the first waits that long so the
  others can join it (Alertmanager's group_wait).

Sending, retrying and recording are the send stage's (`monitoring.delivery_send`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.destinations import Destination
from monitoring.notifier import GroupingNotifier, Notifier
from store.deliveries import DeliveryRecord, Pair
from store.monitoring import EventRecord

# Where each event goes: (event id, notifier index) -> the destinations it names.
Routes = Mapping[tuple[int, int], Sequence[Destination]]
Records = Mapping[int, Mapping[Destination, DeliveryRecord]]


@dataclass(slots=True)
class Send:
    """One message to send: an event (and the events grouped with it) to one destination."""

    notifier: Notifier
    members: list[EventRecord]
    destination: Destination
    attempts: int  # made before this one

    @property
    def event(self) -> EventRecord:
        return self.members[0]

    @property
    def pairs(self) -> list[Pair]:
        return [(member.id, self.destination) for member in self.members]

    async def deliver(self) -> str | None:
        if len(self.members) > 1:
            # Only a grouping notifier ever gets more than one member (`plan_sends`).
            assert isinstance(self.notifier, GroupingNotifier)
            return await self.notifier.deliver_group(self.members, self.destination)
        return await self.notifier.deliver(self.event, self.destination)


@dataclass
class Plan:
    # Per destination, the messages to send in this pass, oldest first.
    lanes: dict[Destination, list[Send]] = field(default_factory=dict)
    # Per event, the destinations it still needs (sent or failed for good: not listed).
    outstanding: dict[int, set[Destination]] = field(default_factory=dict)
    # When held work may go next (a retry, a group's wait, another pass's claim).
    due: datetime | None = None
    held_by_others: int = 0  # destinations waiting for another pass's claim

    def wake(self, when: datetime) -> None:
        if self.due is None or when < self.due:
            self.due = when


def plan_sends(
    batch: Sequence[EventRecord],
    notifiers: Sequence[Notifier],
    routes: Routes,
    records: Records,
    *,
    now: datetime,
    group_wait: timedelta,
    owner: str,
) -> Plan:
    """What to send to each destination in this pass, in event order, and which
    destinations each event still needs. `owner` is the planning pass's claim owner."""
    plan = Plan()
    held: set[Destination] = set()  # destinations waiting: later events to them wait too
    taken: set[Pair] = set()  # grouped into an earlier event's message
    for event in batch:
        needed = plan.outstanding.setdefault(event.id, set())
        existing = records.get(event.id, {})
        for index, notifier in enumerate(notifiers):
            for destination in routes.get((event.id, index), ()):
                record = existing.get(destination)
                if record is not None and record.status in ("sent", "failed"):
                    continue
                needed.add(destination)
                if destination in held or (event.id, destination) in taken:
                    continue
                if record is not None and record.claimed_by_other(owner, now):
                    held.add(destination)
                    plan.held_by_others += 1
                    assert record.claim_expires_at is not None
                    plan.wake(record.claim_expires_at)
                    continue
                if record is not None and record.next_attempt_at and record.next_attempt_at > now:
                    held.add(destination)
                    plan.wake(record.next_attempt_at)
                    continue
                members = [event]
                grouping = notifier if isinstance(notifier, GroupingNotifier) else None
                if grouping is not None and grouping.group_of(event) is not None:
                    closes = event.created_at + group_wait
                    if closes > now:
                        held.add(destination)
                        plan.wake(closes)
                        continue
                    members += _joining(
                        grouping,
                        index,
                        event,
                        batch,
                        destination,
                        routes,
                        records,
                        taken,
                        closes=closes,
                        owner=owner,
                        now=now,
                    )
                taken.update((member.id, destination) for member in members)
                plan.lanes.setdefault(destination, []).append(
                    Send(
                        notifier=notifier,
                        members=members,
                        destination=destination,
                        attempts=record.attempts if record is not None else 0,
                    )
                )
    return plan


def _joining(
    notifier: GroupingNotifier,
    index: int,
    lead: EventRecord,
    batch: Sequence[EventRecord],
    destination: Destination,
    routes: Routes,
    records: Records,
    taken: set[Pair],
    *,
    closes: datetime,
    owner: str,
    now: datetime,
) -> list[EventRecord]:
    """Later events of the lead's group, bound for `destination`, inside its window."""
    group = notifier.group_of(lead)
    joining = []
    for other in batch:
        if other.id <= lead.id or other.created_at > closes:
            continue
        if notifier.group_of(other) != group or (other.id, destination) in taken:
            continue
        if destination not in routes.get((other.id, index), ()):
            continue
        record = records.get(other.id, {}).get(destination)
        # Not a row another pass is sending: that one is its to send.
        if record is None or (
            record.status == "pending" and not record.claimed_by_other(owner, now)
        ):
            joining.append(other)
    return joining


def claimed_prefix(sends: Sequence[Send], claimed: set[Pair]) -> list[Send]:
    """The sends of one destination before the first one not wholly claimed: what
    follows an unclaimed send waits with it, so order per destination holds."""
    kept: list[Send] = []
    for send in sends:
        if not all(pair in claimed for pair in send.pairs):
            break
        kept.append(send)
    return kept
