"""Every request to Teams waits for its turn under the rate limits.

`SendPacer` (pure) knows when the next send to a conversation may go; this gate applies
it to real requests. One delivery may take several requests (update the living card,
then reply in its thread), so the turn is taken per request, not per event.

Requests to different conversations go concurrently. A request counts in every window
from the moment it is let go until it completes, and is then recorded at its completion
time: the connector saw it somewhere in between, so whatever the network does, no window
at the connector can hold more requests than the limits allow. (If n + 1 arrivals fell
in one window, the last one to be let go would have seen the other n either under way or
completed inside that window, and been kept waiting.)

All Teams conversations share one tenant budget here (50/s): an installation normally
lives in one tenant, and sharing is the safe side when it does not.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from monitoring.pacing import SendPacer

TENANT = "teams"


class SendGate:
    def __init__(
        self,
        pacer: SendPacer,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pacer = pacer
        self._clock = clock
        self._sleep = sleep
        # Waiters are served in the order they came (asyncio's lock is fair), so one
        # conversation cannot starve another of the tenant's budget.
        self._queue = asyncio.Lock()
        # Requests under way: booked in every window until they complete.
        self._in_flight: Counter[str] = Counter()
        self._tenant_in_flight = 0
        self._completed = asyncio.Event()

    def conversation_slot(self, conversation: str) -> datetime | None:
        """When this conversation's own limits let a request start, whatever the tenant's
        budget (shared by all, so waiting for it is the same for every conversation).
        None: a request to it is under way and takes what is left of a window."""
        return self._pacer.earliest(
            conversation, None, self._clock(), in_flight=self._in_flight[conversation]
        )

    @asynccontextmanager
    async def turn(self, conversation: str) -> AsyncIterator[None]:
        """Wait until a request may go, let it go, and record it when it is done.

        Requests to different conversations may be under way together; each is booked
        from the moment it is let go until it completes, so the budget of every window
        is shared correctly however long a request takes.
        """
        async with self._queue:
            slept_until: datetime | None = None
            while True:
                # Having slept until a slot, it has come, whatever the clock says: a
                # clock read a hair early, or one that only moves when told to, must
                # not keep a request waiting for ever.
                now = self._clock() if slept_until is None else max(self._clock(), slept_until)
                slot = self._pacer.earliest(
                    conversation,
                    TENANT,
                    now,
                    in_flight=self._in_flight[conversation],
                    tenant_in_flight=self._tenant_in_flight,
                )
                if slot is None:
                    # Requests under way take the whole budget: wait for one to finish.
                    self._completed.clear()
                    await self._completed.wait()
                    continue
                if slot <= now:
                    break
                await self._sleep((slot - now).total_seconds())
                slept_until = slot
            self._in_flight[conversation] += 1
            self._tenant_in_flight += 1
        try:
            yield
        finally:
            self._in_flight[conversation] -= 1
            if not self._in_flight[conversation]:
                del self._in_flight[conversation]
            self._tenant_in_flight -= 1
            # Counted even when it failed: a refused request still counts at Teams.
            self._pacer.record(conversation, TENANT, self._clock())
            self._completed.set()

    def throttled(self, conversation: str, retry_after_s: float) -> None:
        """Teams answered 429: nothing more to this conversation before Retry-After."""
        self._pacer.throttled(conversation, timedelta(seconds=retry_after_s), self._clock())
