"""Delivering recorded events to every destination, at least once, never twice on success.

Events are written by the engine in the same transaction as the state change that
caused them; this worker sends each one to each destination its notifiers name
(Teams conversations, the Workflows webhook, email) and records every attempt. A
transient failure is retried later with backoff (honouring Retry-After); a permanent
one — bot removed, conversation gone, webhook revoked — is recorded and shown by
`status`, never retried forever. After `max_attempts` a delivery is dead-lettered.

Order is kept per destination: while an event waits for a destination (a retry that is
not due, a pacing slot, a group still collecting), later events wait for it too.
Notifiers that group (`GroupingNotifier`) get events of one group bound for one
destination within `group_wait` of the first as one delivery, like Alertmanager's
group_wait: the first waits that long so the others can join it.

A pass plans, per destination, the messages it may send now (in event order), then
serves up to `concurrency` destinations at once: each destination has one send under
way at most, so its order holds, while a burst across many conversations overlaps the
commits and requests of different sends. The send gate shares Teams' tenant budget
between them; a conversation whose own limits make it wait is set aside for a later
pass. Events delivered everywhere are marked in one write at the end of the pass.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from monitoring.send_gate import SendGate
from store.deliveries import DeliveryRecord, DeliveryStore
from store.monitoring import EventRecord, MonitoringStore

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """A destination did not take the event; `permanent` means retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Notifier(Protocol):
    async def destinations(self, event: EventRecord) -> list[str]: ...

    async def deliver(self, event: EventRecord, destination: str) -> str | None: ...


@runtime_checkable
class GroupingNotifier(Notifier, Protocol):
    """A notifier that can say several events in one message."""

    def group_of(self, event: EventRecord) -> str | None: ...

    async def deliver_group(
        self, events: Sequence[EventRecord], destination: str
    ) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    max_attempts: int = 8
    base_delay_s: float = 5.0
    max_delay_s: float = 600.0

    def delay(self, attempts: int, retry_after_s: float | None, rng: random.Random) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        exponential = min(self.max_delay_s, self.base_delay_s * 2 ** (attempts - 1))
        # Jitter spreads retries of a burst so they do not arrive together again.
        return exponential * (0.5 + rng.random() / 2)


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0
    paced: int = 0  # sends postponed to respect Teams' per-conversation limits
    failed: int = 0
    grouped: int = 0  # events that went out inside another event's message
    completed_events: list[int] = field(default_factory=list)
    # When waiting work may go next (a retry, a pacing slot, a group's wait); None: nothing.
    next_due: datetime | None = None
    pending_events: int = 0  # events of this pass still not delivered everywhere

    def due(self, when: datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when


@dataclass(slots=True)
class _Send:
    """One message to send: an event (and the events grouped with it) to one destination."""

    notifier: Notifier
    members: list[EventRecord]
    destination: str
    attempts: int  # made before this one

    @property
    def event(self) -> EventRecord:
        return self.members[0]

    async def deliver(self) -> str | None:
        if len(self.members) > 1:
            # Only a grouping notifier ever gets more than one member (`_plan`).
            assert isinstance(self.notifier, GroupingNotifier)
            return await self.notifier.deliver_group(self.members, self.destination)
        return await self.notifier.deliver(self.event, self.destination)


class EventDispatcher:
    def __init__(
        self,
        *,
        events: MonitoringStore,
        deliveries: DeliveryStore,
        notifiers: list[Notifier],
        clock: Callable[[], datetime],
        policy: DispatchPolicy | None = None,
        rng: random.Random | None = None,
        gate: SendGate | None = None,
        group_wait: Callable[[], timedelta] | None = None,
        short_wait: timedelta = timedelta(milliseconds=100),
        concurrency: int = 8,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._events = events
        self._deliveries = deliveries
        self._notifiers = list(notifiers)
        self._clock = clock
        self._policy = policy or DispatchPolicy()
        self._rng = rng or random.Random()
        # Teams limits sends per conversation (7/1 s, 8/2 s, 60/30 s, 1800/h) and per
        # tenant (50/s): a burst is spread out instead of being refused with 429s. The
        # notifiers take a turn per request; here a conversation whose own next turn is
        # further away than `short_wait` is set aside so the others go meanwhile.
        self._gate = gate
        self._short_wait = short_wait
        self._group_wait = group_wait or (lambda: timedelta(0))
        # Destinations served at once. Each destination's messages go one at a time, in
        # order; different destinations overlap, which is what lets a burst use the
        # tenant's budget while each send waits on its own commits and requests.
        self._concurrency = concurrency
        self._lock = asyncio.Lock()  # one pass at a time: two would send the same event
        self._destinations: dict[tuple[int, int], list[str]] = {}  # per pending event

    async def dispatch_pending(self, limit: int = 200) -> DispatchReport:
        async with self._lock:
            report = DispatchReport()
            batch = await self._events.events(undelivered_only=True, limit=limit)
            if not batch:
                return report
            records = await self._deliveries.for_events([event.id for event in batch])
            lanes, outstanding = await self._plan(batch, records, report)
            finished: set[tuple[int, str]] = set()
            await self._run_lanes(lanes, report, finished)
            done = [
                event.id
                for event in batch
                if all((event.id, d) in finished for d in outstanding[event.id])
            ]
            await self._deliveries.complete_events(done, self._clock())
            report.completed_events.extend(done)
            report.pending_events = len(batch) - len(done)
            for event_id in done:
                for index in range(len(self._notifiers)):
                    self._destinations.pop((event_id, index), None)
            return report

    async def run(
        self,
        stop: asyncio.Event,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        idle_s: float = 1.0,
        speed: float = 1.0,
        until_drained: bool = False,
    ) -> None:
        """Deliver until `stop` is set (or, with `until_drained`, nothing is left to
        deliver), sleeping until the next thing is due."""
        while not stop.is_set():
            report = await self.dispatch_pending()
            if until_drained and not (report.completed_events or report.pending_events):
                return  # the pass found nothing undelivered
            if report.sent or report.completed_events:
                continue  # progress: there may be more right away
            wait = idle_s
            if report.next_due is not None:
                ahead = (report.next_due - self._clock()).total_seconds() / speed
                wait = min(max(ahead, 0.0), idle_s)
            await _sleep_unless_stopped(stop, sleep, wait)

    async def _targets(self, notifier: Notifier, index: int, event: EventRecord) -> list[str]:
        # Asked once per pending event: a conversation set aside for pacing is passed
        # over without a query at every pass.
        key = (event.id, index)
        if key not in self._destinations:
            self._destinations[key] = await notifier.destinations(event)
        return self._destinations[key]

    async def _plan(
        self,
        batch: Sequence[EventRecord],
        records: dict[int, dict[str, DeliveryRecord]],
        report: DispatchReport,
    ) -> tuple[dict[str, list[_Send]], dict[int, set[str]]]:
        """What to send to each destination in this pass, in event order, and which
        destinations each event still needs."""
        lanes: dict[str, list[_Send]] = {}
        outstanding: dict[int, set[str]] = {}
        held: set[str] = set()  # destinations waiting: later events to them wait too
        claimed: set[tuple[int, str]] = set()  # grouped into an earlier event's message
        now = self._clock()
        for event in batch:
            needed = outstanding.setdefault(event.id, set())
            existing = records.get(event.id, {})
            for index, notifier in enumerate(self._notifiers):
                for destination in await self._targets(notifier, index, event):
                    record = existing.get(destination)
                    if record is not None and record.status in ("sent", "failed"):
                        continue
                    needed.add(destination)
                    if destination in held or (event.id, destination) in claimed:
                        continue
                    if (
                        record is not None
                        and record.next_attempt_at
                        and record.next_attempt_at > now
                    ):
                        held.add(destination)
                        report.due(record.next_attempt_at)
                        continue
                    members = [event]
                    grouping = notifier if isinstance(notifier, GroupingNotifier) else None
                    if grouping is not None and grouping.group_of(event) is not None:
                        closes = event.created_at + self._group_wait()
                        if closes > now:
                            held.add(destination)
                            report.due(closes)
                            continue
                        members += await self._joining(
                            grouping, index, event, batch, destination, records, claimed
                        )
                    claimed.update((member.id, destination) for member in members)
                    lanes.setdefault(destination, []).append(
                        _Send(
                            notifier=notifier,
                            members=members,
                            destination=destination,
                            attempts=record.attempts if record is not None else 0,
                        )
                    )
        return lanes, outstanding

    async def _run_lanes(
        self,
        lanes: dict[str, list[_Send]],
        report: DispatchReport,
        finished: set[tuple[int, str]],
    ) -> None:
        """Serve the destinations with a bounded number of workers, oldest work first."""
        queue = iter(list(lanes.values()))

        async def worker() -> None:
            for sends in queue:  # shared: each destination is served by one worker
                await self._run_lane(sends, report, finished)

        workers = min(self._concurrency, len(lanes))
        outcomes = await asyncio.gather(*(worker() for _ in range(workers)), return_exceptions=True)
        # A store failure stops its worker; the others finish their sends first.
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _run_lane(
        self, sends: list[_Send], report: DispatchReport, finished: set[tuple[int, str]]
    ) -> None:
        """One destination's sends, in order; stops where one has to wait."""
        for send in sends:
            event, destination = send.event, send.destination
            if self._gate is not None and destination.startswith("teams:"):
                now = self._clock()
                slot = self._gate.conversation_slot(destination)
                if slot is None or slot > now + self._short_wait:
                    report.paced += 1
                    report.due(slot or now + self._short_wait)
                    return
            attempts = send.attempts + 1
            try:
                activity_id = await send.deliver()
            except DeliveryFailed as exc:
                throttled = exc.retry_after_s is not None and destination.startswith("teams:")
                if throttled and self._gate is not None:
                    assert exc.retry_after_s is not None
                    self._gate.throttled(destination, exc.retry_after_s)
                if await self._failed(event, destination, attempts, exc, report):
                    finished.add((event.id, destination))
                if not exc.permanent:
                    return  # keep this destination's order: the rest waits for the retry
                continue
            except Exception as exc:  # an unexpected failure is retried, not lost
                log.exception("delivering %s to %s failed", event.kind, destination)
                failure = DeliveryFailed(type(exc).__name__, permanent=False)
                if await self._failed(event, destination, attempts, failure, report):
                    finished.add((event.id, destination))
                return
            await self._deliveries.record_sent(
                [m.id for m in send.members],
                destination,
                now=self._clock(),
                activity_id=activity_id,
            )
            finished.update((m.id, destination) for m in send.members)
            report.sent += 1
            report.grouped += len(send.members) - 1

    async def _joining(
        self,
        notifier: GroupingNotifier,
        index: int,
        lead: EventRecord,
        batch: Sequence[EventRecord],
        destination: str,
        records: dict[int, dict[str, DeliveryRecord]],
        claimed: set[tuple[int, str]],
    ) -> list[EventRecord]:
        """Later events of the lead's group, bound for `destination`, inside its window."""
        group = notifier.group_of(lead)
        closes = lead.created_at + self._group_wait()
        joining = []
        for other in batch:
            if other.id <= lead.id or other.created_at > closes:
                continue
            if notifier.group_of(other) != group or (other.id, destination) in claimed:
                continue
            if destination not in await self._targets(notifier, index, other):
                continue
            record = records.get(other.id, {}).get(destination)
            if record is None or record.status == "pending":
                joining.append(other)
        return joining

    async def _failed(
        self,
        event: EventRecord,
        destination: str,
        attempts: int,
        exc: DeliveryFailed,
        report: DispatchReport,
    ) -> bool:
        now = self._clock()
        if exc.permanent or attempts >= self._policy.max_attempts:
            why = "permanently" if exc.permanent else f"after {attempts} attempts"
            log.warning("event %s to %s failed %s: %s", event.kind, destination, why, exc.reason)
            await self._deliveries.record(
                event.id, destination, status="failed", now=now, error=exc.reason
            )
            report.failed += 1
            return True
        delay = self._policy.delay(attempts, exc.retry_after_s, self._rng)
        await self._deliveries.record(
            event.id,
            destination,
            status="pending",
            now=now,
            error=exc.reason,
            next_attempt_at=now + timedelta(seconds=delay),
        )
        report.retrying += 1
        report.due(now + timedelta(seconds=delay))
        return False


async def _sleep_unless_stopped(
    stop: asyncio.Event, sleep: Callable[[float], Awaitable[None]], seconds: float
) -> None:
    """Sleep, but wake as soon as `stop` is set."""
    sleeper = asyncio.ensure_future(sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
