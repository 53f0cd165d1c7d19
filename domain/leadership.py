"""Who leads the engine: the lease one replica holds, as a state machine without I/O.

Replicas share one lease row in PostgreSQL (store/leader_lease.py). Whoever holds it
runs the monitoring engine, the deployment health watch and the delivery passes; the
others serve hooks and chat commands only. The row's expiry is set by the database's
clock (`now + duration`), so replicas never compare their own clocks with each other.

Safety rests on one inequality: a holder stops acting `renew_every_s` before the
database lets anyone else take the lease. Its acting window is measured from the moment
it *sent* the renewal, which is no later than the moment the database stamped the new
expiry, so the window always ends first. The fencing check in each of the engine's
transactions (store/leader_lease.py) covers what this cannot: a pass that was already
running when the window closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """How long a lease lasts and how often its holder renews it (seconds)."""

    duration_s: float = 20.0
    renew_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.renew_every_s <= 0 or self.duration_s < 2 * self.renew_every_s:
            raise ValueError(
                "the lease must last at least two renewal intervals "
                f"(lease {self.duration_s:g} s, renewal every {self.renew_every_s:g} s)"
            )

    @property
    def acting_window_s(self) -> float:
        """How long after sending a renewal the holder may act: one renewal less than the
        lease, so a missed renewal still leaves a margin before anyone else may start."""
        return self.duration_s - self.renew_every_s

    @property
    def takeover_bound_s(self) -> float:
        """The longest a dead leader's work waits for a successor: its lease runs out,
        then a follower's next attempt (every renewal interval) takes it."""
        return self.duration_s + self.renew_every_s


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease row as the database answered an attempt to take or renew it."""

    owner: str
    epoch: int
    # True when the row is this replica's after the attempt (renewed or taken over).
    held: bool
    # False when the row's expiry has passed: nobody leads until someone takes it.
    valid: bool = True


@dataclass(frozen=True, slots=True)
class FenceToken:
    """What every fenced write checks in its own transaction: still this owner's epoch."""

    owner: str
    epoch: int


@dataclass(frozen=True, slots=True)
class LeaderView:
    """Who leads, as this replica knows it (for /readyz, /metrics, `status`)."""

    replica_id: str
    role: Role
    leader: str | None
    epoch: int | None


class Leadership:
    """One replica's view of the lease; every time is a monotonic reading in seconds."""

    def __init__(self, replica_id: str, terms: LeaseTerms) -> None:
        self.replica_id = replica_id
        self.terms = terms
        self._epoch: int | None = None
        self._acting_until = -math.inf
        self._leader: str | None = None
        self._leader_epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch this replica last held (asked for again at renewal), or None."""
        return self._epoch

    def may_act(self, now: float) -> bool:
        return self._epoch is not None and now < self._acting_until

    def fence(self, now: float) -> FenceToken | None:
        """The token to write under, or None when this replica must not write."""
        if not self.may_act(now) or self._epoch is None:
            return None
        return FenceToken(self.replica_id, self._epoch)

    def answered(self, sent_at: float, record: LeaseRecord) -> Role:
        """An attempt sent at `sent_at` came back with the row as it now stands."""
        if record.held and record.owner == self.replica_id:
            if self._epoch != record.epoch:
                # A new tenure: nothing from an older one may act under it.
                self._acting_until = -math.inf
            self._epoch = record.epoch
            self._acting_until = max(self._acting_until, sent_at + self.terms.acting_window_s)
            self._leader, self._leader_epoch = self.replica_id, record.epoch
            return Role.LEADER
        self._epoch = None
        self._acting_until = -math.inf
        if record.valid and record.owner:
            self._leader, self._leader_epoch = record.owner, record.epoch
        else:
            self._leader, self._leader_epoch = None, None
        return Role.FOLLOWER

    def failed(self, now: float) -> Role:
        """An attempt could not reach the database: act on until the window closes."""
        if self.may_act(now):
            return Role.LEADER
        if self._leader == self.replica_id:
            # Our own lease may have run out or been taken: we no longer know who leads.
            self._leader, self._leader_epoch = None, None
        return Role.FOLLOWER

    def released(self) -> None:
        """This replica gave the lease up (shutting down)."""
        self._epoch = None
        self._acting_until = -math.inf
        if self._leader == self.replica_id:
            self._leader, self._leader_epoch = None, None

    def view(self, now: float) -> LeaderView:
        role = Role.LEADER if self.may_act(now) else Role.FOLLOWER
        leader = self._leader
        if leader == self.replica_id and role is Role.FOLLOWER:
            leader = None
        return LeaderView(
            self.replica_id, role, leader, self._leader_epoch if leader is not None else None
        )


def sole_replica_view(replica_id: str) -> LeaderView:
    """SQLite holds one replica, which always leads."""
    return LeaderView(replica_id, Role.LEADER, replica_id, None)
