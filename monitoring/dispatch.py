"""Delivering recorded events to every destination, at least once, never twice on success.

Events are written by the engine in the same transaction as the state change that
caused them; this worker sends each one to each destination its notifiers name
(Teams conversations, the Workflows webhook, email) and records every attempt. A
transient failure is retried later with backoff (honouring Retry-After); a permanent
one — bot removed, conversation gone, webhook revoked — is recorded and shown by
`status`, never retried forever. After `max_attempts` a delivery is dead-lettered.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from monitoring.pacing import SendPacer
from store.deliveries import DeliveryStore
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
    completed_events: list[int] = field(default_factory=list)


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
        pacer: SendPacer | None = None,
    ) -> None:
        self._events = events
        self._deliveries = deliveries
        self._notifiers = list(notifiers)
        self._clock = clock
        self._policy = policy or DispatchPolicy()
        self._rng = rng or random.Random()
        # Teams limits sends per conversation (7/1 s, 8/2 s, 60/30 s, 1800/h): a burst is
        # spread out instead of being refused with 429s.
        self._pacer = pacer

    async def dispatch_pending(self, limit: int = 200) -> DispatchReport:
        report = DispatchReport()
        held: set[str] = set()  # conversations waiting for a slot: later events wait too
        for event in await self._events.events(undelivered_only=True, limit=limit):
            if await self._dispatch(event, report, held):
                await self._events.mark_delivered(event.id, self._clock())
                report.completed_events.append(event.id)
        return report

    async def _dispatch(self, event: EventRecord, report: DispatchReport, held: set[str]) -> bool:
        """True once every destination has either received the event or failed for good."""
        done = True
        existing = await self._deliveries.for_event(event.id)
        for notifier in self._notifiers:
            for destination in await notifier.destinations(event):
                record = existing.get(destination)
                if record is not None and record.status in ("sent", "failed"):
                    continue
                now = self._clock()
                if record is not None and record.next_attempt_at and record.next_attempt_at > now:
                    done = False
                    continue
                if destination in held:
                    done = False
                    continue
                paced = self._pacer is not None and destination.startswith("teams:")
                if paced:
                    assert self._pacer is not None
                    slot = self._pacer.next_slot(destination, None, now)
                    if slot > now:
                        held.add(destination)
                        report.paced += 1
                        done = False
                        continue
                    self._pacer.record(destination, None, now)
                attempts = (record.attempts if record else 0) + 1
                try:
                    activity_id = await notifier.deliver(event, destination)
                except DeliveryFailed as exc:
                    if paced and exc.retry_after_s is not None:
                        assert self._pacer is not None
                        self._pacer.throttled(
                            destination, timedelta(seconds=exc.retry_after_s), self._clock()
                        )
                    if not exc.permanent:
                        held.add(destination)  # keep this conversation's order
                    done &= await self._failed(event, destination, attempts, exc, report)
                    continue
                except Exception as exc:  # an unexpected failure is retried, not lost
                    log.exception("delivering %s to %s failed", event.kind, destination)
                    failure = DeliveryFailed(type(exc).__name__, permanent=False)
                    done &= await self._failed(event, destination, attempts, failure, report)
                    continue
                await self._deliveries.record(
                    event.id, destination, status="sent", now=now, activity_id=activity_id
                )
                report.sent += 1
        return done

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
        return False
