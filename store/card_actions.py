"""Card actions run once: the first click acts, every repeat gets the first answer.

People double-click, Teams retries an invoke it thinks timed out, and a signed card can be
replayed until it expires. Each signed button carries a nonce; the first request to claim
it inserts a row and does the work, later ones find the row and answer with its outcome
(or "still working" while the first is running). The primary key on the nonce is what
makes this hold across requests, processes and replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from store.database import Database
from store.tables import card_actions

CLAIMED = "claimed"
DONE = "done"
# The outcome of an action that sent a request whose result is not known yet: the next
# press claims the action again and finds out (it never counts as "nothing changed").
UNKNOWN = "unknown"
_NONCE_MAX = 64  # the column's length; PostgreSQL refuses longer values


@dataclass(frozen=True, slots=True)
class ActionClaim:
    first: bool  # this caller owns the action and must do it, then call `complete`
    status: str  # claimed | done
    outcome: str | None  # set once done, e.g. ok | refused | failed
    result: dict[str, Any] | None  # what the first caller answered with, once done


class CardActionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, nonce: str, verb: str, actor_id: str | None, now: datetime
    ) -> ActionClaim:
        """Claim the action `nonce`; exactly one caller ever gets `first=True`."""
        if not nonce or len(nonce) > _NONCE_MAX:
            raise ValueError(f"a card action nonce has 1 to {_NONCE_MAX} characters")
        # Twice at most: a row can only vanish in between if its claim was released.
        for _ in range(2):
            try:
                async with self._db.sessions.begin() as session:
                    await session.execute(
                        card_actions.insert().values(
                            nonce=nonce,
                            verb=verb,
                            actor_id=actor_id,
                            status=CLAIMED,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                return ActionClaim(first=True, status=CLAIMED, outcome=None, result=None)
            except IntegrityError:
                # Someone claimed it before us (on any connection or replica).
                existing = await self.get(nonce)
                if existing is not None:
                    return existing
        raise RuntimeError(f"card action {nonce} could be neither claimed nor read")

    async def get(self, nonce: str) -> ActionClaim | None:
        """The action's state as a repeat would see it, or None if never claimed."""
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(
                        card_actions.c.status, card_actions.c.outcome, card_actions.c.result
                    ).where(card_actions.c.nonce == nonce)
                )
            ).first()
        if row is None:
            return None
        return ActionClaim(first=False, status=row.status, outcome=row.outcome, result=row.result)

    async def complete(
        self, nonce: str, outcome: str, result: dict[str, Any], now: datetime
    ) -> None:
        """Record the first caller's answer, for every repeat of the same action."""
        async with self._db.sessions.begin() as session:
            updated = await session.execute(
                card_actions.update()
                .where(card_actions.c.nonce == nonce)
                .values(status=DONE, outcome=outcome, result=result, updated_at=now)
            )
        if not getattr(updated, "rowcount", 0):
            raise LookupError(f"card action {nonce} was never claimed")

    async def reclaim(self, nonce: str, now: datetime) -> bool:
        """Claim again an action whose outcome was unknown; True for exactly one caller."""
        async with self._db.sessions.begin() as session:
            updated = await session.execute(
                card_actions.update()
                .where(
                    and_(
                        card_actions.c.nonce == nonce,
                        card_actions.c.status == DONE,
                        card_actions.c.outcome == UNKNOWN,
                    )
                )
                .values(status=CLAIMED, updated_at=now)
            )
        return bool(getattr(updated, "rowcount", 0))

    async def release(self, nonce: str) -> bool:
        """Forget a claim that did nothing, so the same card can be used again.

        For when the first caller stopped before acting (refused, or a failure before
        anything changed). A finished action is never released, nor one whose outcome is
        unknown (see `reclaim`).
        """
        async with self._db.sessions.begin() as session:
            deleted = await session.execute(
                card_actions.delete().where(
                    and_(card_actions.c.nonce == nonce, card_actions.c.status == CLAIMED)
                )
            )
        return bool(getattr(deleted, "rowcount", 0))
