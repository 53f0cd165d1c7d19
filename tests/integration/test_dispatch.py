"""Event delivery: retries with backoff, permanent failures, no resend after success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitoring.dispatch import DeliveryFailed, DispatchPolicy, EventDispatcher
from store.database import Database
from store.deliveries import DeliveryStore
from store.monitoring import EventRecord, MonitoringStore, NewEvent, Observation

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Destination:
    """A notifier double: scripted outcomes per destination, and what it received."""

    def __init__(self, outcomes: dict[str, list[DeliveryFailed | None]]) -> None:
        self.outcomes = outcomes
        self.received: list[tuple[str, str]] = []

    async def destinations(self, event: EventRecord) -> list[str]:
        return list(self.outcomes)

    async def deliver(self, event: EventRecord, destination: str) -> str | None:
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
        {"teams:a": [None], "teams:b": [DeliveryFailed("503", permanent=False, retry_after_s=30)]}
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
        ("ws/job/training_failed/1", "teams:a"),
        ("ws/job/training_failed/1", "teams:b"),
    ]
    assert await events.events(undelivered_only=True) == []
    # Once delivered, nothing is ever sent again.
    assert (await worker.dispatch_pending()).sent == 0


async def test_permanent_failure_is_recorded_and_not_retried(database: Database) -> None:
    clock = Clock()
    gone = DeliveryFailed("Teams answered 403", permanent=True)
    notifier = Destination({"teams:gone": [gone, gone]})
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
    notifier = Destination({"webhook": flaky})
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
    assert (await deliveries.for_event(1))["webhook"].attempts == 3


async def test_a_burst_to_one_conversation_is_paced_in_order(database: Database) -> None:
    from monitoring.pacing import SendPacer

    clock = Clock()
    notifier = Destination({"teams:busy": []})
    events, deliveries = MonitoringStore(database), DeliveryStore(database)
    worker = EventDispatcher(
        events=events,
        deliveries=deliveries,
        notifiers=[notifier],
        clock=clock,
        pacer=SendPacer(),
    )
    for n in range(12):
        await record_event(events, key=f"ws/job-{n:02d}/training_failed/1")
    first = await worker.dispatch_pending()
    assert first.sent == 7 and first.paced == 1  # 7 per second, the rest wait
    clock.now += timedelta(seconds=1)
    second = await worker.dispatch_pending()
    assert second.sent == 1  # 8 per 2 seconds
    for _ in range(20):
        clock.now += timedelta(seconds=1)
        await worker.dispatch_pending()
    received = [key for key, _ in notifier.received]
    assert received == sorted(received) and len(received) == 12  # all, in order
