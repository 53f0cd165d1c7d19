"""The sending stage of delivery: send what the plan holds, retry the transient, record.

Each destination's messages go one at a time, in order; different destinations are
served at once (`concurrency`), which is what lets a burst across many conversations
use Teams' tenant budget while each send waits on its own commits and requests. A
destination whose own limits make it wait (a paced notifier's `turn_at`) is set aside
for a later pass.

Before a destination's sends start, its rows are claimed (`monitoring.delivery_claims`);
what another pass claimed first is left to it, with everything after it for that
destination. A transient failure is retried later with backoff (honouring Retry-After), and the
destination's later messages wait for it; a permanent one — bot removed, conversation
gone, webhook revoked — is recorded and shown by `status`, never retried forever; after
`max_attempts` a delivery is dead-lettered. Every outcome is written only while this
pass still holds the row's claim, and a send starts only while the claim has time left.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.destinations import Destination
from monitoring.delivery_claims import ClaimHold
from monitoring.delivery_plan import Send, claimed_prefix
from monitoring.notifier import DeliveryFailed, PacedNotifier
from store.deliveries import DeliveryStore, Pair
from store.monitoring import EventRecord

log = logging.getLogger(__name__)

# How soon to look again at a destination whose rows another pass claimed meanwhile.
CONTENDED_WAIT = timedelta(seconds=1)


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
    # Destinations left to another pass that holds their claim, or whose claim this
    # pass lost before it could send.
    claimed_elsewhere: int = 0
    completed_events: list[int] = field(default_factory=list)
    # When waiting work may go next (a retry, a pacing slot, a group's wait, another
    # pass's claim); None: nothing.
    next_due: datetime | None = None
    pending_events: int = 0  # events of this pass still not delivered everywhere

    def due(self, when: datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when


class SendStage:
    def __init__(
        self,
        *,
        deliveries: DeliveryStore,
        clock: Callable[[], datetime],
        policy: DispatchPolicy,
        rng: random.Random,
        short_wait: timedelta,
        concurrency: int,
    ) -> None:
        self._deliveries = deliveries
        self._clock = clock
        self._policy = policy
        self._rng = rng
        # A conversation whose own next turn is further away than this is set aside so
        # the others go meanwhile (waiting for the tenant's budget is the same for all).
        self._short_wait = short_wait
        self._concurrency = concurrency

    async def run(
        self,
        lanes: dict[Destination, list[Send]],
        hold: ClaimHold,
        report: DispatchReport,
        finished: set[Pair],
    ) -> None:
        """Serve the destinations with a bounded number of workers, oldest work first."""
        queue = iter(list(lanes.values()))

        async def worker() -> None:
            for sends in queue:  # shared: each destination is served by one worker
                await self._run_lane(sends, hold, report, finished)

        workers = min(self._concurrency, len(lanes))
        outcomes = await asyncio.gather(*(worker() for _ in range(workers)), return_exceptions=True)
        # A store failure stops its worker; the others finish their sends first.
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _run_lane(
        self, sends: list[Send], hold: ClaimHold, report: DispatchReport, finished: set[Pair]
    ) -> None:
        """One destination's sends, in order; stops where one has to wait."""
        claimed = await hold.take([pair for send in sends for pair in send.pairs])
        kept = claimed_prefix(sends, claimed)
        if len(kept) < len(sends):
            # Another pass claimed rows since they were read: look again in a moment
            # (its own claims then show how long it holds them).
            report.claimed_elsewhere += 1
            report.due(self._clock() + CONTENDED_WAIT)
        for send in kept:
            event, destination = send.event, send.destination
            if not await hold.keep():
                # Too late to start a send under this claim: another pass may take it.
                report.claimed_elsewhere += 1
                return
            if isinstance(send.notifier, PacedNotifier):
                now = self._clock()
                slot = send.notifier.turn_at(destination)
                if slot is None or slot > now + self._short_wait:
                    report.paced += 1
                    report.due(slot or now + self._short_wait)
                    return
            attempts = send.attempts + 1
            try:
                activity_id = await send.deliver()
            except DeliveryFailed as exc:
                if await self._failed(event, destination, attempts, exc, hold, report):
                    finished.add((event.id, destination))
                if not exc.permanent:
                    return  # keep this destination's order: the rest waits for the retry
                continue
            except Exception as exc:  # an unexpected failure is retried, not lost
                log.exception("delivering %s to %s failed", event.kind, destination.label)
                failure = DeliveryFailed(type(exc).__name__, permanent=False)
                if await self._failed(event, destination, attempts, failure, hold, report):
                    finished.add((event.id, destination))
                return
            recorded = await self._deliveries.record_sent(
                [m.id for m in send.members],
                destination,
                now=self._clock(),
                activity_id=activity_id,
                claim=hold.owner,
            )
            report.sent += 1
            report.grouped += len(send.members) - 1
            if not recorded:
                _claim_lost(event, destination)
                report.claimed_elsewhere += 1
                return
            finished.update(send.pairs)

    async def _failed(
        self,
        event: EventRecord,
        destination: Destination,
        attempts: int,
        exc: DeliveryFailed,
        hold: ClaimHold,
        report: DispatchReport,
    ) -> bool:
        """Record a failed attempt; True when the delivery is over (failed for good)."""
        now = self._clock()
        if exc.permanent or attempts >= self._policy.max_attempts:
            why = "permanently" if exc.permanent else f"after {attempts} attempts"
            log.warning(
                "event %s to %s failed %s: %s", event.kind, destination.label, why, exc.reason
            )
            recorded = await self._deliveries.record(
                event.id, destination, status="failed", now=now, error=exc.reason, claim=hold.owner
            )
            if not recorded:
                _claim_lost(event, destination)
                return False
            report.failed += 1
            return True
        delay = self._policy.delay(attempts, exc.retry_after_s, self._rng)
        recorded = await self._deliveries.record(
            event.id,
            destination,
            status="pending",
            now=now,
            error=exc.reason,
            next_attempt_at=now + timedelta(seconds=delay),
            claim=hold.owner,
        )
        if not recorded:
            _claim_lost(event, destination)
            return False
        report.retrying += 1
        report.due(now + timedelta(seconds=delay))
        return False


def _claim_lost(event: EventRecord, destination: Destination) -> None:
    log.warning(
        "the claim on event %s to %s expired during its send; another pass has it now",
        event.key,
        destination.label,
    )
