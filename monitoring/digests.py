"""The digest pass: once a minute, record the daily digest of each conversation whose
local digest time has come (one per conversation and local day: the event key says so,
across restarts and replicas). The dispatcher then delivers it like any event."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.digest import build_digest, due_on
from domain.monitoring import NewEvent, Observation
from domain.status import PendingApproval
from monitoring.engine_ports import EventWriter
from store.digests import DigestStore, DigestSubscription

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)
_DEPLOYMENT_KINDS = ("deployment_completed", "deployment_failed")
_ROLLBACK_KINDS = ("rollback_queued", "rollback_dry_run")


def _line(payload: dict[str, object], fallback: str) -> str:
    environment = payload.get("environment") or "?"
    pipeline = payload.get("pipeline") or ""
    result = payload.get("result") or payload.get("reason") or fallback
    return f"{environment}: {pipeline} {result}".strip()


class DigestPass:
    def __init__(
        self,
        store: DigestStore,
        writer: EventWriter,
        clock: Callable[[], datetime],
        open_approvals: Callable[[], Awaitable[Sequence[PendingApproval]]],
    ) -> None:
        self._store = store
        self._writer = writer
        self._clock = clock
        self._open_approvals = open_approvals
        self._next: datetime | None = None

    async def next_due_at(self) -> datetime | None:
        return self._next

    async def tick(self) -> int:
        now = self._clock()
        if self._next is not None and now < self._next:
            return 0
        self._next = now + CHECK_EVERY
        sent = 0
        for subscription in await self._store.all():
            day = due_on(now, subscription.at, subscription.zone, subscription.last_sent_on)
            if day is None:
                continue
            await self._record(subscription, now)
            sent += 1
        return sent

    async def _record(self, subscription: DigestSubscription, now: datetime) -> None:
        zone = ZoneInfo(subscription.zone)
        local_now = now.astimezone(zone)
        # The 24 hours before the digest's time today, in the conversation's zone.
        end = local_now.replace(
            hour=subscription.at.hour, minute=subscription.at.minute, second=0, microsecond=0
        ).astimezone(UTC)
        start = end - timedelta(days=1)
        finished = await self._store.finished_between(start, end)
        circuits = [j.circuit for j in finished if j.circuit]
        history = await self._store.completed_history(circuits)
        deployments = await self._store.events_between(_DEPLOYMENT_KINDS, start, end)
        rollbacks = await self._store.events_between(_ROLLBACK_KINDS, start, end)
        approvals = await self._open_approvals()
        facts = build_digest(
            local_now.date(),
            subscription.zone,
            finished,
            history,
            deployments=[_line(p, k.removeprefix("deployment_")) for k, p in deployments],
            rollbacks=[_line(p, "queued") for _, p in rollbacks],
            open_approvals=_approval_lines(approvals),
        )
        rows = []
        for row in facts.circuits:
            data = asdict(row)
            data["last_duration"] = row.last_duration.total_seconds() if row.last_duration else None
            data["median"] = row.median.total_seconds() if row.median else None
            rows.append(data)
        payload = {
            "conversation_id": subscription.conversation_id,
            "day": facts.day.isoformat(),
            "zone": facts.zone,
            "circuits": rows,
            "hidden_circuits": facts.hidden_circuits,
            "deployments": list(facts.deployments),
            "rollbacks": list(facts.rollbacks),
            "open_approvals": list(facts.open_approvals),
            "at": now.isoformat(),
        }
        key = f"digest:{subscription.conversation_id}:{facts.day.isoformat()}"
        await self._writer.apply(Observation(now, events=[NewEvent(key, "daily_digest", payload)]))
        await self._store.mark_sent(subscription.conversation_id, facts.day)
        log.info("digest of %s recorded for %s", facts.day, subscription.conversation_id[:40])


def _approval_lines(approvals: Sequence[PendingApproval]) -> list[str]:
    return [f"{a.environment or '?'}: {a.pipeline} {a.stage}".strip() for a in approvals]
