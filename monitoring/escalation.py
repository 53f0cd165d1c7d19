"""The escalation pass: once a minute (simulated time), post again what nobody took.

Driven by the scheduler beside the deployment health watch. The decision is pure
(`domain.escalation`); this pass reads the store, asks who acknowledged what, and records
the escalation events, whose keys make each one happen once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from domain.escalation import APPROVAL_KIND, FAILURE_KINDS, due_escalations, escalation_key
from domain.monitoring import EventRecord, NewEvent, Observation
from monitoring.engine_ports import EventWriter
from store.escalation import EscalationReader

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)
LOOK_BACK = timedelta(hours=24)  # originals older than this are not escalated any more


class AttentionReader(Protocol):
    async def acknowledged(self, job_keys: Collection[str]) -> set[str]: ...


class EscalationPass:
    def __init__(
        self,
        reader: EscalationReader,
        attention: AttentionReader,
        writer: EventWriter,
        clock: Callable[[], datetime],
        after: Callable[[], timedelta | None],
        summary: Callable[[EventRecord], str],
    ) -> None:
        self._reader = reader
        self._attention = attention
        self._writer = writer
        self._clock = clock
        self._after = after  # None: escalation is off
        self._summary = summary
        self._next: datetime | None = None

    async def next_due_at(self) -> datetime | None:
        return self._next if self._after() is not None else None

    async def tick(self) -> int:
        now = self._clock()
        after = self._after()
        if after is None or (self._next is not None and now < self._next):
            return 0
        self._next = now + CHECK_EVERY
        until = now - after
        since = now - LOOK_BACK
        failures = await self._reader.recent(FAILURE_KINDS, since, until)
        approvals = await self._reader.recent((APPROVAL_KIND,), since, until)
        originals: Sequence[EventRecord] = [*failures, *approvals]
        if not originals:
            return 0
        already = await self._reader.existing_keys([escalation_key(e) for e in originals])
        acknowledged = await self._attention.acknowledged(
            [f"{event.workspace}/{event.job_name}" for event in failures]
        )
        due = due_escalations(
            failures,
            approvals,
            decided_approvals=await self._reader.decided_approvals(since),
            acknowledged_jobs=acknowledged,
            retried=await self._reader.retried(failures),
            already=already,
            summaries={e.id: self._summary(e) for e in originals},
            now=now,
            after=after,
        )
        if not due:
            return 0
        await self._writer.apply(
            Observation(
                now,
                events=[
                    NewEvent(
                        e.key,
                        e.kind,
                        e.payload,
                        workspace=e.payload.get("workspace"),
                        job_name=e.payload.get("job_name"),
                        circuit=e.payload.get("circuit"),
                    )
                    for e in due
                ],
            )
        )
        log.info("escalated %d unhandled event(s)", len(due))
        return len(due)
