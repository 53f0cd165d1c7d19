"""Event delivery: retries with backoff, permanent failures, no resend after success."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.destinations import WEBHOOK, TeamsConversation
from domain.destinations import Destination as Where
from monitoring.dispatch import DispatchPolicy, EventDispatcher
from monitoring.notifier import DeliveryFailed
from monitoring.pacing import SendPacer
from monitoring.send_gate import SendGate
from store.database import Database
from store.deliveries import DeliveryStore
from store.monitoring import EventRecord, MonitoringStore, NewEvent, Observation

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def teams(name: str) -> TeamsConversation:
    return TeamsConversation(name)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Destination:
    """A notifier double: scripted outcomes per destination, and what it received."""

    def __init__(self, outcomes: dict[Where, list[DeliveryFailed | None]]) -> None:
        self.outcomes = outcomes
        self.received: list[tuple[str, Where]] = []

    async def destinations(self, event: EventRecord) -> list[Where]:
        return list(self.outcomes)

    async def deliver(self, event: EventRecord, destination: Where) -> str | None:
        script = self.outcomes[destination]
        outcome = script.pop(0) if script else None
        if outcome is not None:
            raise outcome
        self.received.append((event.key, destination))
        return f"activity-{len(self.received)}"


async def record_event(store: MonitoringStore, key: str = "ws/job/training_failed/1") -> None:
    await store.apply(
        Observation(now=NOW, events=[NewEvent(key=key, kind="training_failed", payload={})])
    )


def dispatcher(
    database: Database, notifier: Any, clock: Clock, **policy: Any
) -> tuple[EventDispatcher, MonitoringStore, DeliveryStore]:
    events, deliveries = MonitoringStore(database), DeliveryStore(database)
    return (
        EventDispatcher(
            events=events,
            deliveries=deliveries,
            notifiers=[notifier],
            clock=clock,
            policy=DispatchPolicy(**policy),
        ),
        events,
        deliveries,
    )


async def test_partial_failure_resends_only_where_it_failed(database: Database) -> None:
    clock = Clock()
    notifier = Destination(
        {teams("a"): [None], teams("b"): [DeliveryFailed("503", permanent=False, retry_after_s=30)]}
    )
    worker, events, _ = dispatcher(database, notifier, clock)
    await record_event(events)

    first = await worker.dispatch_pending()
    assert (first.sent, first.retrying) == (1, 1) and first.completed_events == []
    # Not before Retry-After.
    clock.now += timedelta(seconds=10)
    assert (await worker.dispatch_pending()).sent == 0
    clock.now += timedelta(seconds=25)
    second = await worker.dispatch_pending()
    assert second.sent == 1 and len(second.completed_events) == 1
    assert notifier.received == [
        ("ws/job/training_failed/1", teams("a")),
        ("ws/job/training_failed/1", teams("b")),
    ]
    assert await events.events(undelivered_only=True) == []
    # Once delivered, nothing is ever sent again.
    assert (await worker.dispatch_pending()).sent == 0


async def test_permanent_failure_is_recorded_and_not_retried(database: Database) -> None:
    clock = Clock()
    gone = DeliveryFailed("Teams answered 403", permanent=True)
    notifier = Destination({teams("gone"): [gone, gone]})
    worker, events, deliveries = dispatcher(database, notifier, clock)
    await record_event(events)
    report = await worker.dispatch_pending()
    assert report.failed == 1 and len(report.completed_events) == 1
    assert await deliveries.stuck() == [("training_failed", "teams:gone", "Teams answered 403")]
    clock.now += timedelta(hours=1)
    assert (await worker.dispatch_pending()).failed == 0


async def test_dead_letter_after_max_attempts(database: Database) -> None:
    clock = Clock()
    flaky: list[DeliveryFailed | None] = [DeliveryFailed("502", permanent=False)] * 10
    notifier = Destination({WEBHOOK: flaky})
    worker, events, deliveries = dispatcher(
        database, notifier, clock, max_attempts=3, base_delay_s=1, max_delay_s=1
    )
    await record_event(events)
    outcomes = []
    for _ in range(5):
        outcomes.append(await worker.dispatch_pending())
        clock.now += timedelta(seconds=5)
    assert [o.retrying for o in outcomes[:2]] == [1, 1]
    assert outcomes[2].failed == 1
    assert sum(o.failed + o.retrying for o in outcomes[3:]) == 0
    assert (await deliveries.for_event(1))[WEBHOOK].attempts == 3


class PacedDestination(Destination):
    """A Teams-like double: it owns a send gate, as TeamsNotifier does, and every request
    takes its turn there."""

    def __init__(self, outcomes: dict[Where, list[DeliveryFailed | None]], gate: SendGate) -> None:
        super().__init__(outcomes)
        self.gate = gate

    def turn_at(self, destination: Where) -> datetime | None:
        return self.gate.conversation_slot(destination.key)

    async def deliver(self, event: EventRecord, destination: Where) -> str | None:
        async with self.gate.turn(destination.key):
            return await super().deliver(event, destination)


async def test_a_burst_to_one_conversation_is_paced_in_order(database: Database) -> None:
    clock = Clock()
    gate = SendGate(SendPacer(), clock)
    notifier = PacedDestination({teams("busy"): []}, gate)
    events, deliveries = MonitoringStore(database), DeliveryStore(database)
    worker = EventDispatcher(
        events=events,
        deliveries=deliveries,
        notifiers=[notifier],
        clock=clock,
    )
    for n in range(12):
        await record_event(events, key=f"ws/job-{n:02d}/training_failed/1")
    first = await worker.dispatch_pending()
    assert first.sent == 7 and first.paced == 1  # 7 per second, the rest wait
    assert first.next_due == NOW + timedelta(seconds=1)
    clock.now += timedelta(seconds=1)
    second = await worker.dispatch_pending()
    assert second.sent == 1  # 8 per 2 seconds
    for _ in range(20):
        clock.now += timedelta(seconds=1)
        await worker.dispatch_pending()
    received = [key for key, _ in notifier.received]
    assert received == sorted(received) and len(received) == 12  # all, in order


async def test_a_retry_that_is_not_due_holds_later_events_back(database: Database) -> None:
    clock = Clock()
    busy = DeliveryFailed("503", permanent=False, retry_after_s=30)
    notifier = Destination({teams("a"): [busy]})
    worker, events, _ = dispatcher(database, notifier, clock)
    await record_event(events, key="ws/job-1/training_failed/1")
    first = await worker.dispatch_pending()
    await record_event(events, key="ws/job-2/training_failed/1")
    clock.now += timedelta(seconds=10)
    # The second event must not overtake the first while the first waits for its retry.
    assert (await worker.dispatch_pending()).sent == 0
    clock.now += timedelta(seconds=25)
    await worker.dispatch_pending()
    assert first.next_due == NOW + timedelta(seconds=30)
    assert [key for key, _ in notifier.received] == [
        "ws/job-1/training_failed/1",
        "ws/job-2/training_failed/1",
    ]


class GroupingDestination(Destination):
    """Groups failures by session, like TeamsNotifier with living cards."""

    def __init__(self, outcomes: dict[Where, list[DeliveryFailed | None]]) -> None:
        super().__init__(outcomes)
        self.groups: list[list[str]] = []

    def group_of(self, event: EventRecord) -> str | None:
        return f"s{event.session_id}" if event.kind == "training_failed" else None

    async def deliver_group(self, events: Sequence[EventRecord], destination: Where) -> str | None:
        self.groups.append([e.key for e in events])
        return await self.deliver(events[0], destination)


async def record_failure(
    store: MonitoringStore,
    key: str,
    at: datetime,
    session_id: int = 1,
    kind: str = "training_failed",
) -> None:
    await store.apply(
        Observation(
            now=at, events=[NewEvent(key=key, kind=kind, payload={}, session_id=session_id)]
        )
    )


async def test_failures_of_a_session_within_the_wait_go_as_one(database: Database) -> None:
    clock = Clock()
    notifier = GroupingDestination({teams("a"): []})
    events, deliveries = MonitoringStore(database), DeliveryStore(database)
    worker = EventDispatcher(
        events=events,
        deliveries=deliveries,
        notifiers=[notifier],
        clock=clock,
        group_wait=lambda: timedelta(seconds=30),
    )
    await record_failure(events, "c1", NOW)
    await record_failure(events, "c2", NOW + timedelta(seconds=10))
    await record_failure(events, "other-session", NOW + timedelta(seconds=12), session_id=2)
    await record_failure(events, "c3", NOW + timedelta(seconds=29))
    await record_failure(events, "too-late", NOW + timedelta(seconds=31))
    clock.now = NOW + timedelta(seconds=29)
    waiting = await worker.dispatch_pending()
    assert waiting.sent == 0 and waiting.next_due == NOW + timedelta(seconds=30)
    clock.now = NOW + timedelta(seconds=30)
    report = await worker.dispatch_pending()
    assert notifier.groups == [["c1", "c2", "c3"]] and report.grouped == 2
    for _ in range(3):
        clock.now += timedelta(seconds=30)
        await worker.dispatch_pending()
    # Alone in their windows: each goes as a message of its own.
    assert notifier.groups == [["c1", "c2", "c3"]]
    assert [key for key, _ in notifier.received] == ["c1", "other-session", "too-late"]
    # Every grouped event is recorded as delivered, none is sent again.
    assert await events.events(undelivered_only=True) == []
    sent = await deliveries.for_event(3)
    assert sent[teams("a")].status == "sent"


class OverlappingDestination(Destination):
    """Deliveries to teams("slow") wait until teams("fast") has had all of its own."""

    def __init__(self, fast_events: int) -> None:
        super().__init__({teams("slow"): [], teams("fast"): []})
        self.fast_events = fast_events
        self.fast_done = asyncio.Event()
        self.under_way: dict[Where, int] = {teams("slow"): 0, teams("fast"): 0}
        self.most_under_way = dict(self.under_way)

    async def deliver(self, event: EventRecord, destination: Where) -> str | None:
        self.under_way[destination] += 1
        self.most_under_way[destination] = max(
            self.most_under_way[destination], self.under_way[destination]
        )
        try:
            if destination == teams("slow"):
                await self.fast_done.wait()
            else:
                await asyncio.sleep(0)
            return await super().deliver(event, destination)
        finally:
            self.under_way[destination] -= 1
            if sum(1 for _, d in self.received if d == teams("fast")) == self.fast_events:
                self.fast_done.set()


async def test_conversations_are_served_at_once_each_in_its_own_order(
    database: Database,
) -> None:
    clock = Clock()
    notifier = OverlappingDestination(fast_events=5)
    worker, events, _ = dispatcher(database, notifier, clock)
    for n in range(5):
        await record_event(events, key=f"ws/job-{n}/training_failed/1")
    # A slow conversation does not hold the others up (served one after the other,
    # this pass would never end).
    report = await asyncio.wait_for(worker.dispatch_pending(), 10)
    assert report.sent == 10 and len(report.completed_events) == 5
    for destination in (teams("slow"), teams("fast")):
        keys = [key for key, d in notifier.received if d == destination]
        assert keys == sorted(keys) and len(keys) == 5
        assert notifier.most_under_way[destination] == 1  # one send at a time each
    assert await events.events(undelivered_only=True) == []
