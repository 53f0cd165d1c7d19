"""Keeping (or taking) the leader lease while the process runs.

`LeaderElection` asks the lease store every renewal interval: the leader renews, the
others try to take an expired lease. Whether this replica may act is read from the
state machine (`domain.leadership`) at each use, on the monotonic clock, so a leader cut
off from its database stops by itself when its acting window closes, whether or not
its renewals fail promptly. `SoleReplica` is the same interface for SQLite, which holds
one replica that always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from domain.leadership import (
    FenceToken,
    Leadership,
    LeaderView,
    LeaseRecord,
    Role,
    sole_replica_view,
)

log = logging.getLogger(__name__)


class LeaseBackend(Protocol):
    async def claim(self, owner: str, epoch: int | None, duration_s: float) -> LeaseRecord: ...

    async def release(self, owner: str, epoch: int) -> None: ...


class Leader(Protocol):
    """What the scheduler, the probes and `status` ask about leadership."""

    def may_act(self) -> bool: ...

    def view(self) -> LeaderView: ...


class SoleReplica:
    """SQLite: this process is the only replica and always leads."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id

    def may_act(self) -> bool:
        return True

    def view(self) -> LeaderView:
        return sole_replica_view(self.replica_id)


class LeaderElection:
    def __init__(
        self,
        backend: LeaseBackend,
        leadership: Leadership,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._state = leadership
        self._monotonic = monotonic
        self._gained: list[Callable[[], None]] = []
        self._role = Role.FOLLOWER
        self._task: asyncio.Task[None] | None = None

    @property
    def replica_id(self) -> str:
        return self._state.replica_id

    def on_gained(self, listener: Callable[[], None]) -> None:
        """Called each time this replica becomes the leader (the scheduler starts a pass)."""
        self._gained.append(listener)

    def may_act(self) -> bool:
        return self._state.may_act(self._monotonic())

    def fence(self) -> FenceToken | None:
        return self._state.fence(self._monotonic())

    def view(self) -> LeaderView:
        return self._state.view(self._monotonic())

    async def attempt(self) -> Role:
        """One renewal (or takeover attempt); never raises for an unreachable database."""
        terms = self._state.terms
        sent_at = self._monotonic()
        try:
            record = await asyncio.wait_for(
                self._backend.claim(self.replica_id, self._state.epoch, terms.duration_s),
                timeout=terms.renew_every_s,
            )
        except Exception as exc:
            role = self._state.failed(self._monotonic())
            log.warning(
                "leader lease: could not reach the database (%s); %s",
                type(exc).__name__,
                "acting until the lease window closes" if role is Role.LEADER else "not leading",
            )
        else:
            role = self._state.answered(sent_at, record)
        self._note(role)
        return role

    def _note(self, role: Role) -> None:
        # The window may also close between attempts: read the role as of now.
        role = Role.LEADER if self.may_act() else Role.FOLLOWER
        if role is self._role:
            return
        self._role = role
        view = self.view()
        if role is Role.LEADER:
            log.warning("leader lease: %s now leads (epoch %s)", self.replica_id, view.epoch)
            for listener in self._gained:
                listener()
        else:
            log.warning(
                "leader lease: %s stopped leading; leader now %s",
                self.replica_id,
                view.leader or "unknown",
            )

    async def run(self) -> None:
        while True:
            await self.attempt()
            await asyncio.sleep(self._state.terms.renew_every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        epoch = self._state.epoch
        if epoch is not None and self.may_act():
            self._state.released()
            try:
                await self._backend.release(self.replica_id, epoch)
                log.info("leader lease: released by %s", self.replica_id)
            except Exception as exc:
                log.warning("leader lease: could not release (%s)", type(exc).__name__)
