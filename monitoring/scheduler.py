"""Firing the engine's ticks, the event deliveries and the retention pass on time.

APScheduler is only the timer: the store says when the engine is next due, and the
timer is re-armed from it after every run, so a restart loses nothing. In the sandbox,
simulated time may run faster than real time (`speed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitoring.dispatch import EventDispatcher
from monitoring.engine import MonitoringEngine
from monitoring.leader_election import Leader
from monitoring.retention import RetentionPass

log = logging.getLogger(__name__)

JOB_ID = "mlbot-engine"
RETENTION_JOB_ID = "mlbot-retention"
# The first prune waits this long (real seconds) after start-up, so it never competes
# with the first monitoring pass.
RETENTION_FIRST_DELAY_S = 60.0


class TimedWork(Protocol):
    """Something else the timer drives: the deployment health watch."""

    async def tick(self) -> int: ...

    async def next_due_at(self) -> datetime | None: ...


class TimedGroup:
    """Several timed passes the timer drives as one (health watch, escalations, digests)."""

    def __init__(self, *members: TimedWork | None) -> None:
        self._members = [m for m in members if m is not None]

    async def tick(self) -> int:
        done = 0
        for member in self._members:
            try:
                done += await member.tick()
            except Exception:
                # One pass failing (the digest's store read) must not stop the others.
                log.exception("%s failed; trying again shortly", type(member).__name__)
        return done

    async def next_due_at(self) -> datetime | None:
        dues = [await member.next_due_at() for member in self._members]
        known = [due for due in dues if due is not None]
        return min(known) if known else None


class EngineScheduler:
    def __init__(
        self,
        engine: MonitoringEngine | None,
        dispatcher: EventDispatcher | None,
        *,
        clock: Callable[[], datetime],
        speed: float = 1.0,
        max_sleep_s: float = 15.0,
        min_sleep_s: float = 0.05,
        watcher: TimedWork | None = None,
        retention: RetentionPass | None = None,
        retention_interval_s: float = 3600.0,
        leader: Leader | None = None,
    ) -> None:
        self._engine = engine
        self._dispatcher = dispatcher
        self._watcher = watcher
        self._retention = retention
        self._retention_interval_s = retention_interval_s
        # With replicas only the leader runs passes; the others wait to be poked when
        # they become the leader (and look again now and then).
        self._leader = leader
        self._clock = clock
        self._speed = speed
        # Waking up at least this often lets delivery retries and settings changes apply.
        self._max_sleep_s = max_sleep_s
        self._min_sleep_s = min_sleep_s
        self._scheduler: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self._arm(0.0)
        if self._retention is not None:
            interval = self._retention_interval_s / self._speed
            self._scheduler.add_job(
                self.prune,
                "interval",
                seconds=interval,
                next_run_time=datetime.now(UTC)
                + timedelta(seconds=min(RETENTION_FIRST_DELAY_S, interval)),
                id=RETENTION_JOB_ID,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
            )

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        async with self._lock:  # let a running pass finish its transaction
            pass

    def poke(self) -> None:
        """Something happened (a push event): run now rather than at the next due time."""
        self._arm(0.0)

    async def prune(self) -> None:
        """One retention pass, between monitoring passes: its batches are short
        transactions, and holding the timer's lock keeps a pass from reusing a session
        the prune is deleting."""
        if self._retention is None or not self._leads():
            return  # with replicas, the leader prunes
        async with self._lock:
            try:
                await self._retention.run()
            except Exception:
                log.exception("retention pass failed; trying again at the next interval")

    def _arm(self, delay_s: float) -> None:
        if self._scheduler is None:
            return
        self._scheduler.add_job(
            self._fire,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=delay_s),
            id=JOB_ID,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _leads(self) -> bool:
        return self._leader is None or self._leader.may_act()

    async def _fire(self) -> None:
        async with self._lock:
            if not self._leads():
                self._arm(self._max_sleep_s)
                return
            try:
                if (
                    self._engine is not None
                    and self._leads()
                    and await self._engine.next_wakeup() <= self._clock()
                ):
                    report = await self._engine.tick()
                    if report.failures:
                        log.warning("monitoring pass: %s", "; ".join(report.failures[:3]))
            except Exception:
                log.exception("monitoring pass failed; trying again shortly")
            try:
                if self._watcher is not None and self._leads():
                    await self._watcher.tick()  # one query when nothing is due
            except Exception:
                log.exception("timed pass failed; trying again shortly")
            deliveries_due: datetime | None = None
            try:
                if self._dispatcher is not None and self._leads():
                    sent = await self._dispatcher.dispatch_pending()
                    # Progress may have left more behind the batch limit: go again now.
                    progressed = sent.sent or sent.completed_events
                    deliveries_due = self._clock() if progressed else sent.next_due
            except Exception:
                log.exception("delivery pass failed; trying again shortly")
            try:
                delay = await self._next_delay(deliveries_due)
            except Exception:
                delay = self._max_sleep_s
            self._arm(min(max(delay, self._min_sleep_s), self._max_sleep_s))

    async def _next_delay(self, deliveries_due: datetime | None = None) -> float:
        """Real seconds until the engine, the health watch or a waiting delivery (a retry,
        a pacing slot, a grouping window) is next due."""
        wakes: list[datetime] = [deliveries_due] if deliveries_due is not None else []
        if self._engine is not None:
            wakes.append(await self._engine.next_wakeup())
        if self._watcher is not None:
            due = await self._watcher.next_due_at()
            if due is not None:
                wakes.append(due)
        if not wakes:
            return self._max_sleep_s  # only deliveries to retry
        return (min(wakes) - self._clock()).total_seconds() / self._speed
