"""How long the store keeps what it no longer needs: the retention policy.

Pure rules, no database: `store/retention.py` runs the deletes these cutoffs allow, and
adds the conditions that keep whatever is still in use (an undelivered event, a watched
session, an unresolved pipeline intent) whatever the horizon says.

A horizon of 0 days keeps the rows forever. The audit trail is kept longest: no other
horizon may outlast it, so every action on record can be traced to who did it for at least
as long as the things it acted on are remembered.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

# The longest a signed card stays pressable (approval cards: 7 days). A nonce forgotten
# earlier would let a captured card act twice; an intent forgotten earlier would let a card
# whose outcome was unknown queue its run again.
LONGEST_CARD_LIFETIME = timedelta(days=7)
MIN_NONCE_DAYS = 8  # the card lifetime and a day of clock skew and slow presses
MIN_HISTORY_DAYS = 1
DEFAULT_HISTORY_DAYS = 30
DEFAULT_NONCE_DAYS = 8
DEFAULT_INTENT_DAYS = 30
DEFAULT_AUDIT_DAYS = 400
DEFAULT_BATCH_SIZE = 500

# Events `status` shows as "last deployment per environment": few (one per deployment),
# so they are kept as long as the audit trail rather than vanish from an environment that
# has not deployed for a month.
LONG_KEPT_EVENT_KINDS = ("deployment_completed", "deployment_failed")


class RetentionPolicyError(ValueError):
    """Horizons that would forget something too early; the message names the setting."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of row is kept once it is no longer needed (0: forever)."""

    history_days: int = DEFAULT_HISTORY_DAYS  # events, deliveries, sessions, jobs, cards, watches
    nonce_days: int = DEFAULT_NONCE_DAYS  # card action nonces
    intent_days: int = DEFAULT_INTENT_DAYS  # pipeline intents whose run is known
    audit_days: int = DEFAULT_AUDIT_DAYS  # the audit trail (and deployment events)
    batch_size: int = DEFAULT_BATCH_SIZE  # rows per delete statement

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise RetentionPolicyError(f"{_SETTING[f.name]} must not be negative")
        if self.batch_size < 1:
            raise RetentionPolicyError(f"{_SETTING['batch_size']} must be at least 1")
        if 0 < self.history_days < MIN_HISTORY_DAYS:
            raise RetentionPolicyError(f"{_SETTING['history_days']} must be 0 or at least 1")
        for name in ("nonce_days", "intent_days"):
            value = getattr(self, name)
            if 0 < value < MIN_NONCE_DAYS:
                raise RetentionPolicyError(
                    f"{_SETTING[name]} must be 0 or at least {MIN_NONCE_DAYS}: a signed card "
                    f"can be pressed for {LONGEST_CARD_LIFETIME.days} days"
                )
        longest = max(
            (self.history_days, self.nonce_days, self.intent_days),
            key=lambda days: float("inf") if days == 0 else days,
        )
        if _shorter(self.audit_days, longest):
            shown = "forever (0)" if longest == 0 else f"{longest} days"
            raise RetentionPolicyError(
                f"{_SETTING['audit_days']} must be at least the longest other horizon "
                f"({shown}): the audit trail is kept longest"
            )

    def cutoffs(self, now: datetime) -> RetentionCutoffs:
        """The moments before which rows may go, as of `now` (None: nothing goes)."""
        return RetentionCutoffs(
            now=now,
            history=_before(now, self.history_days),
            nonces=_before(now, self.nonce_days),
            intents=_before(now, self.intent_days),
            audit=_before(now, self.audit_days),
        )


@dataclass(frozen=True, slots=True)
class RetentionCutoffs:
    now: datetime
    history: datetime | None
    nonces: datetime | None
    intents: datetime | None
    audit: datetime | None


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """Rows one prune pass deleted, per table."""

    events: int = 0
    deliveries: int = 0
    watched_jobs: int = 0
    monitoring_sessions: int = 0
    posted_activities: int = 0
    deployment_watches: int = 0
    card_actions: int = 0
    pipeline_intents: int = 0
    audit_log: int = 0
    silences: int = 0
    held_events: int = 0
    job_attention: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def summary(self) -> str:
        """`events=120 deliveries=240 …`, naming only the tables something left."""
        return " ".join(
            f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)
        )

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


_SETTING = {
    "history_days": "MLBOT_RETENTION_HISTORY_DAYS",
    "nonce_days": "MLBOT_RETENTION_NONCE_DAYS",
    "intent_days": "MLBOT_RETENTION_INTENT_DAYS",
    "audit_days": "MLBOT_RETENTION_AUDIT_DAYS",
    "batch_size": "MLBOT_RETENTION_BATCH_SIZE",
}


def _before(now: datetime, days: int) -> datetime | None:
    return None if days == 0 else now - timedelta(days=days)


def _shorter(days: int, than: int) -> bool:
    """Whether a horizon of `days` ends before one of `than` (0 never ends)."""
    if days == 0:
        return False
    return than == 0 or days < than
