"""The claim a delivery pass holds on the rows it sends.

A pass claims its rows (owner + expiry) before it sends anything, so another pass — in
this process or in another replica — leaves them alone, and takes them over only once
the claim has expired (its owner died or hung). The pass renews its claim while it
works, and starts a send only while at least half of the claim's time is left: as long
as one send takes less than that (the clients' own timeouts are well under it), a send
never overlaps with another pass's send of the same row.

Expiry is judged on the dispatcher's clock. Replicas' clocks need only agree within a
small part of the claim's time (NTP keeps them within milliseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from store.deliveries import DeliveryStore, Pair


class ClaimHold:
    """One pass's claim: taken once, renewed while sends go on, released at the end."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        owner: str,
        clock: Callable[[], datetime],
        ttl: timedelta,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"a claim must last a while, got {ttl}")
        self.owner = owner
        self._deliveries = deliveries
        self._clock = clock
        self._ttl = ttl
        # When the earliest of this pass's claims expires (each destination's rows are
        # claimed as its turn comes; a renewal extends them all).
        self._until: datetime | None = None
        self._renewing = asyncio.Lock()

    async def take(self, pairs: Sequence[Pair]) -> set[Pair]:
        """Claim what nobody else is sending among `pairs`; returns what was claimed."""
        now = self._clock()
        until = now + self._ttl
        claimed = await self._deliveries.claim(pairs, owner=self.owner, now=now, until=until)
        if claimed and self._until is None:
            self._until = until
        return claimed

    async def keep(self) -> bool:
        """True while a send may start under this claim (renewing it when half is gone)."""
        if self._until is None:
            return False  # nothing claimed
        if self._until - self._clock() > self._ttl / 2:
            return True
        async with self._renewing:  # one renewal for all the lanes that need it
            now = self._clock()
            if self._until - now > self._ttl / 2:
                return True  # another lane renewed it meanwhile
            if now >= self._until:
                return False  # expired: another pass may already have taken it over
            until = now + self._ttl
            await self._deliveries.renew(self.owner, now=now, until=until)
            self._until = until
            return True

    async def release(self) -> None:
        """Give back the rows this pass claimed and did not send."""
        if self._until is not None:  # a pass that claimed nothing writes nothing
            await self._deliveries.release(self.owner)
