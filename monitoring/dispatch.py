"""Delivering recorded events to every destination, at least once, never twice on success.

Events are written by the engine in the same transaction as the state change that
caused them; this worker sends each one to each destination its notifiers name (Teams
conversations, the Workflows webhook, email) and records every attempt. A pass runs the
stages Alertmanager keeps apart:

1. route — each notifier names the destinations of each event (asked once per event);
2. plan — per destination, in event order, what may go now: held behind a retry that
   is not due, a group still collecting, or another pass's claim
   (`monitoring.delivery_plan`, pure);
3. claim — as a destination's turn comes, the rows the plan would send to it are
   claimed in the store (owner and expiry), so two passes — two replicas, or an old
   and a new leader — never send one row twice and share the destinations between
   them, and an expired claim of a process that died is taken over
   (`monitoring.delivery_claims`);
4. send — with retries on transient failures and records of permanent ones
   (`monitoring.delivery_send`); events delivered everywhere are marked at the end.

The in-process lock only saves a second pass of this dispatcher the work of finding
everything claimed; the claims are what keep sends apart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from domain.destinations import Destination
from monitoring.delivery_claims import ClaimHold
from monitoring.delivery_plan import plan_sends
from monitoring.delivery_send import DispatchPolicy, DispatchReport, SendStage
from monitoring.notifier import Notifier
from store.deliveries import DeliveryStore, Pair
from store.monitoring import EventRecord, MonitoringStore

__all__ = ["DEFAULT_CLAIM_TTL", "DispatchPolicy", "DispatchReport", "EventDispatcher"]

log = logging.getLogger(__name__)

# How long a pass's claim lasts (renewed while it works): far longer than one send.
DEFAULT_CLAIM_TTL = timedelta(seconds=60)


class EventDispatcher:
    def __init__(
        self,
        *,
        events: MonitoringStore,
        deliveries: DeliveryStore,
        notifiers: Sequence[Notifier],
        clock: Callable[[], datetime],
        policy: DispatchPolicy | None = None,
        rng: random.Random | None = None,
        group_wait: Callable[[], timedelta] | None = None,
        short_wait: timedelta = timedelta(milliseconds=100),
        concurrency: int = 8,
        owner: str | None = None,
        claim_ttl: timedelta = DEFAULT_CLAIM_TTL,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._events = events
        self._deliveries = deliveries
        self._notifiers = list(notifiers)
        self._clock = clock
        self._group_wait = group_wait or (lambda: timedelta(0))
        self._send = SendStage(
            deliveries=deliveries,
            clock=clock,
            policy=policy or DispatchPolicy(),
            rng=rng or random.Random(),
            short_wait=short_wait,
            concurrency=concurrency,
        )
        # Who claims this dispatcher's rows. Given: a replica id that stays the same
        # across restarts and that no other running dispatcher uses, so a restarted
        # replica resumes its own claims at once. Otherwise host and process plus a
        # random part: unique, and claims left by a crash wait for their expiry.
        self.owner = (
            owner[:128]
            if owner
            else f"{socket.gethostname()[:64]}/{os.getpid()}:{uuid.uuid4().hex[:12]}"
        )
        self._claim_ttl = claim_ttl
        # One pass of this dispatcher at a time (an optimisation: a second one would
        # find every row claimed by the first); the claims are the guarantee.
        self._lock = asyncio.Lock()
        self._routes: dict[tuple[int, int], Sequence[Destination]] = {}  # per pending event

    async def dispatch_pending(self, limit: int = 200) -> DispatchReport:
        async with self._lock:
            report = DispatchReport()
            batch = await self._events.events(undelivered_only=True, limit=limit)
            if not batch:
                return report
            await self._route(batch)
            records = await self._deliveries.for_events([event.id for event in batch])
            now = self._clock()
            plan = plan_sends(
                batch,
                self._notifiers,
                self._routes,
                records,
                now=now,
                group_wait=self._group_wait(),
                owner=self.owner,
            )
            if plan.due is not None:
                report.due(plan.due)
            report.claimed_elsewhere += plan.held_by_others
            hold = ClaimHold(self._deliveries, self.owner, self._clock, self._claim_ttl)
            finished: set[Pair] = set()
            try:
                if plan.lanes:
                    await self._send.run(plan.lanes, hold, report, finished)
            finally:
                await hold.release()
            done = [
                event.id
                for event in batch
                if all((event.id, d) in finished for d in plan.outstanding[event.id])
            ]
            await self._deliveries.complete_events(done, self._clock())
            report.completed_events.extend(done)
            report.pending_events = len(batch) - len(done)
            for event_id in done:
                for index in range(len(self._notifiers)):
                    self._routes.pop((event_id, index), None)
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

    async def _route(self, batch: Sequence[EventRecord]) -> None:
        """Where each event goes, asked once per pending event: a conversation set aside
        for pacing is passed over without a query at every pass."""
        for event in batch:
            for index, notifier in enumerate(self._notifiers):
                key = (event.id, index)
                if key not in self._routes:
                    self._routes[key] = list(await notifier.destinations(event))


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
