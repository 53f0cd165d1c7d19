"""What the delivery worker needs from a notifier: route an event, send it, say when.

A notifier serves one kind of destination (`domain.destinations`): it names the
destinations an event goes to (routing) and sends to them. Grouping notifiers can say
several events in one message; paced notifiers (Teams) say when a destination may take
its next request, so the worker sets a busy conversation aside instead of waiting on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from domain.destinations import Destination
from store.monitoring import EventRecord


class DeliveryFailed(Exception):
    """A destination did not take the event; `permanent` means retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Notifier(Protocol):
    async def destinations(self, event: EventRecord) -> Sequence[Destination]: ...

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None: ...


@runtime_checkable
class GroupingNotifier(Notifier, Protocol):
    """A notifier that can say several events in one message."""

    def group_of(self, event: EventRecord) -> str | None: ...

    async def deliver_group(
        self, events: Sequence[EventRecord], destination: Destination
    ) -> str | None: ...


@runtime_checkable
class PacedNotifier(Notifier, Protocol):
    """A notifier whose destinations have rate limits of their own (Teams)."""

    def turn_at(self, destination: Destination) -> datetime | None:
        """When a request to `destination` may start; None: one is under way and takes
        what is left of its window."""
        ...
