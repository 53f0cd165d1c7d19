"""The retention pass: what the store may forget, deleted on a timer.

The policy (`domain.retention`) says how long; the store (`store.retention`) deletes in
batches and keeps whatever is still needed. This pass ties them to the clock and says in
one log line what went, so an operator sees the database stay its size.
"""

from __future__ import annotations

import logging
from typing import Protocol

from domain.retention import PruneCounts, RetentionCutoffs, RetentionPolicy
from monitoring.engine_ports import Clock

log = logging.getLogger(__name__)


class Pruner(Protocol):
    async def prune(self, cutoffs: RetentionCutoffs, batch_size: int) -> PruneCounts: ...


class RetentionPass:
    def __init__(self, store: Pruner, policy: RetentionPolicy, clock: Clock) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock

    async def run(self) -> PruneCounts:
        counts = await self._store.prune(
            self._policy.cutoffs(self._clock()), self._policy.batch_size
        )
        if counts.total:
            log.info("retention: deleted %s", counts.summary())
        return counts
