"""When the next message to a Teams conversation may go out without being throttled.

Teams lets a bot send into one conversation at most 7 messages per second, 8 per 2 s,
60 per 30 s and 1,800 per hour, and a tenant at most 50 requests per second. A burst of
alerts (a whole session failing at once) must be smoothed out, not refused: the sender
asks `SendPacer.next_slot` when a message may go, waits until then, sends, and tells the
pacer with `record`. A 429 answer pushes the conversation back by its Retry-After.

Everything here is pure: time is passed in and nothing sleeps. Limits are sliding windows:
in every interval of length `per`, at most `count` sends. Only the sends the windows can
still see are remembered, and conversations that went quiet are forgotten, so memory stays
bounded however long the bot runs. Order within a conversation is the caller's job (it sends
in event order); the pacer never gives a conversation a slot before its last recorded send,
so following the slots in order never reorders messages.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class SlidingWindowLimit:
    """At most `count` sends in any interval of length `per`."""

    count: int
    per: timedelta

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a limit must allow at least one send, got {self.count}")
        if self.per <= timedelta(0):
            raise ValueError(f"a limit's window must be positive, got {self.per}")


# Documented by Microsoft for bots ("Rate limiting for bots"): per bot, per conversation.
TEAMS_CONVERSATION_LIMITS: tuple[SlidingWindowLimit, ...] = (
    SlidingWindowLimit(7, timedelta(seconds=1)),
    SlidingWindowLimit(8, timedelta(seconds=2)),
    SlidingWindowLimit(60, timedelta(seconds=30)),
    SlidingWindowLimit(1800, timedelta(hours=1)),
)
# Per bot, per tenant, across all its conversations.
TEAMS_TENANT_LIMITS: tuple[SlidingWindowLimit, ...] = (
    SlidingWindowLimit(50, timedelta(seconds=1)),
)

# How often idle conversations and tenants are looked for; bounds how long a quiet
# conversation lingers after its windows have emptied.
_SWEEP_EVERY = timedelta(minutes=1)


@dataclass(slots=True)
class _Conversation:
    sends: list[datetime] = field(default_factory=list)  # sorted, oldest first
    blocked_until: datetime | None = None  # set by a 429's Retry-After


class SendPacer:
    """Schedules sends so no conversation or tenant limit is ever exceeded."""

    def __init__(
        self,
        conversation_limits: Sequence[SlidingWindowLimit] = TEAMS_CONVERSATION_LIMITS,
        tenant_limits: Sequence[SlidingWindowLimit] = TEAMS_TENANT_LIMITS,
    ) -> None:
        self._conversation_limits = tuple(conversation_limits)
        self._tenant_limits = tuple(tenant_limits)
        # A conversation's sends are in time order, so its `count` latest sends decide
        # every window; older ones, or ones older than the longest window, cannot matter.
        self._keep_sends = max((lim.count for lim in self._conversation_limits), default=0)
        self._conversation_horizon = max(
            (lim.per for lim in self._conversation_limits), default=timedelta(0)
        )
        self._tenant_horizon = max((lim.per for lim in self._tenant_limits), default=timedelta(0))
        self._conversations: dict[str, _Conversation] = {}
        # Tenant sends come from many conversations whose slots may be reserved out of
        # order (a busy conversation books seconds ahead, a quiet one goes now), so these
        # lists are kept sorted and a slot may fall in a gap between booked sends.
        self._tenants: dict[str, list[datetime]] = {}
        self._next_sweep: datetime | None = None

    def next_slot(self, conversation_id: str, tenant_id: str | None, now: datetime) -> datetime:
        """The earliest time, not before `now`, a send to this conversation breaks no limit."""
        slot = self.earliest(conversation_id, tenant_id, now)
        assert slot is not None  # nothing in flight: every limit allows one send eventually
        return slot

    def earliest(
        self,
        conversation_id: str,
        tenant_id: str | None,
        now: datetime,
        *,
        in_flight: int = 0,
        tenant_in_flight: int = 0,
    ) -> datetime | None:
        """Like `next_slot`, with requests still under way to this conversation and tenant.

        A request under way has no known arrival time yet: it may reach Teams at any
        moment until it completes, so it is counted in every window. None: those
        requests take the whole budget of some window, and only a completion can help.
        """
        conversation_limits = _less(self._conversation_limits, in_flight)
        tenant_limits = _less(self._tenant_limits, tenant_in_flight if tenant_id else 0)
        if conversation_limits is None or tenant_limits is None:
            return None
        self._maybe_sweep(now)
        conversation = self._conversations.get(conversation_id)
        tenant_sends = self._tenants.get(tenant_id) if tenant_id is not None else None
        if tenant_sends is not None:
            _drop_older_than(tenant_sends, now - self._tenant_horizon)

        slot = now
        if conversation is not None:
            if conversation.sends:
                # Never before the last send: messages leave in the order they were booked.
                slot = max(slot, conversation.sends[-1])
            if conversation.blocked_until is not None:
                slot = max(slot, conversation.blocked_until)

        # Each limit can only push the slot later; repeat until every limit accepts it.
        while True:
            moved = slot
            if conversation is not None:
                for limit in conversation_limits:
                    moved = _after_latest_sends(conversation.sends, limit, moved)
            if tenant_sends and tenant_id is not None:
                for limit in tenant_limits:
                    moved = _first_fit(tenant_sends, limit, moved)
            if moved == slot:
                return slot
            slot = moved

    def record(self, conversation_id: str, tenant_id: str | None, at: datetime) -> None:
        """Remember a send to this conversation at `at` (the slot it was given, or when it went)."""
        conversation = self._conversations.setdefault(conversation_id, _Conversation())
        sends = conversation.sends
        insort(sends, at)
        if len(sends) > self._keep_sends:
            del sends[: len(sends) - self._keep_sends]
        if sends:
            _drop_older_than(sends, sends[-1] - self._conversation_horizon)
        if tenant_id is not None and self._tenant_limits:
            insort(self._tenants.setdefault(tenant_id, []), at)

    def throttled(self, conversation_id: str, retry_after: timedelta, now: datetime) -> None:
        """Teams answered 429: nothing more goes to this conversation before Retry-After."""
        conversation = self._conversations.setdefault(conversation_id, _Conversation())
        until = now + max(retry_after, timedelta(0))
        if conversation.blocked_until is None or until > conversation.blocked_until:
            conversation.blocked_until = until

    def forget_idle(self, now: datetime) -> int:
        """Drop conversations and tenants no window can see any more; returns how many."""
        forgotten = 0
        for conversation_id, conversation in list(self._conversations.items()):
            _drop_older_than(conversation.sends, now - self._conversation_horizon)
            blocked = conversation.blocked_until is not None and conversation.blocked_until > now
            if not conversation.sends and not blocked:
                del self._conversations[conversation_id]
                forgotten += 1
        for tenant_id, sends in list(self._tenants.items()):
            _drop_older_than(sends, now - self._tenant_horizon)
            if not sends:
                del self._tenants[tenant_id]
                forgotten += 1
        return forgotten

    def remembered_sends(self, conversation_id: str) -> int:
        """How many past sends are kept for this conversation (for tests and metrics)."""
        conversation = self._conversations.get(conversation_id)
        return len(conversation.sends) if conversation is not None else 0

    def remembered_tenant_sends(self, tenant_id: str) -> int:
        return len(self._tenants.get(tenant_id, ()))

    @property
    def tracked_conversations(self) -> int:
        return len(self._conversations)

    def _maybe_sweep(self, now: datetime) -> None:
        if self._next_sweep is None or now >= self._next_sweep:
            self.forget_idle(now)
            self._next_sweep = now + _SWEEP_EVERY


def _less(
    limits: tuple[SlidingWindowLimit, ...], taken: int
) -> tuple[SlidingWindowLimit, ...] | None:
    """The limits left for one more send when `taken` sends already count in every window."""
    if taken <= 0:
        return limits
    if any(limit.count <= taken for limit in limits):
        return None
    return tuple(SlidingWindowLimit(limit.count - taken, limit.per) for limit in limits)


def _drop_older_than(sends: list[datetime], cutoff: datetime) -> None:
    """Remove sends at or before `cutoff`; they have left every window."""
    stale = bisect_right(sends, cutoff)
    if stale:
        del sends[:stale]


def _after_latest_sends(sends: list[datetime], limit: SlidingWindowLimit, at: datetime) -> datetime:
    """Earliest time >= `at` (itself >= every send) at which the window has room again."""
    if len(sends) < limit.count:
        return at
    # The send `count` back must have left the window (t - per, t].
    return max(at, sends[-limit.count] + limit.per)


def _first_fit(sends: list[datetime], limit: SlidingWindowLimit, at: datetime) -> datetime:
    """Earliest time >= `at` where one more send keeps every window containing it within
    the limit, given sends that may lie before and after it."""
    slot = at
    while not _fits(sends, limit, slot):
        # Room can only appear when some send leaves the windows that contain the slot.
        slot = sends[bisect_right(sends, slot - limit.per)] + limit.per
    return slot


def _fits(sends: list[datetime], limit: SlidingWindowLimit, at: datetime) -> bool:
    per = limit.per
    lo = bisect_right(sends, at - per)
    if lo == len(sends) or sends[-1] <= at:
        # Nothing booked after `at`: only the window ending at `at` matters.
        return len(sends) - lo < limit.count
    hi = bisect_left(sends, at + per)
    near = sends[lo:hi]
    insort(near, at)
    # A densest window containing `at` starts at one of these points, no later than `at`.
    end = 0
    for start, first in enumerate(near):
        if first > at:
            break
        while end < len(near) and near[end] < first + per:
            end += 1
        if end - start > limit.count:
            return False
    return True
