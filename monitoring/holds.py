"""Holding events back: silences, snoozed and acknowledged reminders.

`HoldingNotifier` wraps each notifier (Teams, webhook, email) so that a held event has no
destinations: it is recorded, counted against its silence and listed in `held_events`,
and the dispatcher marks it done, so nothing is posted later when the silence ends. The
decision is made once per event and stored, so every notifier, every replica and every
later pass sees the same answer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from domain.attention import Hold, hold_for, job_key
from domain.events import subscription_of
from domain.monitoring import EventRecord
from domain.subscriptions import event_facts
from monitoring.notifier import GroupingNotifier, Notifier, PacedNotifier
from store.attention import AttentionStore, EventLookup

log = logging.getLogger(__name__)

_ALWAYS = datetime.min.replace(tzinfo=UTC)
_REMEMBERED = 5000  # decisions kept in memory (the store keeps all of them)


class EventHolds:
    def __init__(
        self, store: AttentionStore, lookup: EventLookup, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._lookup = lookup
        self._clock = clock
        self._decided: OrderedDict[int, bool] = OrderedDict()

    async def held(self, event: EventRecord) -> bool:
        known = self._decided.get(event.id)
        if known is not None:
            return known
        held = await self._lookup.was_held(event.id)
        if not held:
            hold = await self._decide(event)
            if hold is not None:
                await self._store.record_hold(event.id, hold, self._clock())
                log.info("event %s (%s) held: %s", event.id, event.kind, hold.reason)
                held = True
        self._decided[event.id] = held
        while len(self._decided) > _REMEMBERED:
            self._decided.popitem(last=False)
        return held

    async def _decide(self, event: EventRecord) -> Hold | None:
        now = self._clock()
        silences = await self._store.active_silences(now)
        key = job_key(event.workspace, event.job_name)
        ack, snooze = await self._store.attention(key) if key else (None, None)
        if not silences and ack is None and snooze is None:
            return None
        wanted = subscription_of(event.kind)
        facts = None
        if wanted is not None:
            experiment = await self._lookup.experiment_of(event.workspace, event.job_name)
            facts = event_facts(
                wanted.value, event.payload, circuit=event.circuit, experiment=experiment
            )
        return hold_for(
            event.kind,
            facts,
            key,
            silences=silences,
            acknowledged=ack,
            snoozed=snooze,
            now=now,
        )


class HoldingNotifier:
    """A notifier whose held events go nowhere; everything else passes through."""

    def __init__(self, inner: Notifier, holds: EventHolds) -> None:
        self._inner = inner
        self._holds = holds

    async def destinations(self, event: EventRecord) -> list[Any]:
        if await self._holds.held(event):
            return []
        return list(await self._inner.destinations(event))

    async def deliver(self, event: EventRecord, destination: Any) -> str | None:
        return await self._inner.deliver(event, destination)

    def group_of(self, event: EventRecord) -> str | None:
        if isinstance(self._inner, GroupingNotifier):
            return self._inner.group_of(event)
        return None

    async def deliver_group(self, events: Sequence[EventRecord], destination: Any) -> str | None:
        if isinstance(self._inner, GroupingNotifier):
            return await self._inner.deliver_group(events, destination)
        return await self._inner.deliver(events[0], destination)

    def turn_at(self, destination: Any) -> datetime | None:
        # A notifier without rate limits of its own is always free to send.
        if isinstance(self._inner, PacedNotifier):
            return self._inner.turn_at(destination)
        return _ALWAYS
