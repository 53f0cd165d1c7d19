"""Who is on it, what is snoozed and what is silenced: the rules that hold an event back.

- An **acknowledgement** says a person took a job's failure or reminder ("Ada is on it");
  later long-running reminders of that job are held.
- A **snooze** holds a job's long-running reminders for a while (1 h, 4 h) or until the
  job ends.
- A **silence** (as Alertmanager has them) holds every event its matchers select until it
  expires: `silence circuit=PLANT002/ kinds=failed for 2h disk maintenance`. A matcher
  selects only events that say what it matches (a circuit silence never holds an
  approval). Held events are recorded, counted and listed, never posted later: when a
  silence ends, nothing that happened meanwhile arrives as if new.

Everything here is pure: parsing what people type and deciding whether one event is held.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.subscriptions import (
    CIRCUIT,
    ENVIRONMENT,
    EXPERIMENT,
    EventFacts,
    SubscriptionFilters,
    SubscriptionInputError,
    environment_key,
    parse_filter_values,
    parse_kinds,
)

REMINDER_KIND = "long_running"
ACKNOWLEDGE_VERB = "alert.ack"
SNOOZE_VERB = "alert.snooze"
# The kinds an Acknowledge button goes on: a training that needs a person.
ACKNOWLEDGEABLE_KINDS = frozenset(
    {"training_failed", "attempt_timed_out", "long_running", "failure_escalated"}
)
SNOOZE_CHOICES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "end": None,  # until the job ends
}
MAX_SILENCE = timedelta(days=14)
MAX_REASON = 200
_DURATION = re.compile(r"^(\d{1,4})(m|min|h|d)$", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400}
_KIND_KEYS = {"kind", "kinds"}


class SilenceInputError(ValueError):
    """What someone typed is not a silence; the text says what is wrong and how to write it."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    kinds: tuple[str, ...]  # subscription kinds; empty: every kind
    filters: SubscriptionFilters
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    ended_early_at: datetime | None = None  # `unsilence`
    held: int = 0  # events held so far

    def active(self, now: datetime) -> bool:
        end = self.ended_early_at or self.ends_at
        return self.starts_at <= now < end


@dataclass(frozen=True, slots=True)
class SilenceRequest:
    kinds: tuple[str, ...]
    filters: SubscriptionFilters
    duration: timedelta
    reason: str


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    job_key: str  # `workspace/job name`
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Snooze:
    job_key: str
    by: str
    at: datetime
    until: datetime | None  # None: until the job ends


def job_key(workspace: str | None, job_name: str | None) -> str | None:
    return f"{workspace}/{job_name}" if workspace and job_name else None


def parse_duration(word: str) -> timedelta:
    match = _DURATION.match(word.strip())
    if not match:
        raise SilenceInputError(
            f"'{word[:20]}' is not a duration: write it as 30m, 2h or 1d (at most 14d)."
        )
    value = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])
    if not timedelta(minutes=1) <= value <= MAX_SILENCE:
        raise SilenceInputError("A silence lasts from 1 minute to 14 days.")
    return value


_USAGE = "e.g. silence circuit=PLANT002/ kinds=failed for 2h disk maintenance"


def parse_silence(args: str) -> SilenceRequest:
    """`[kinds=K,…] [circuit=P] [experiment=E] [env=N] for <duration> [reason …]`."""
    words = args.split()
    kinds: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = {}
    duration: timedelta | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if word.casefold() == "for":
            if index + 1 >= len(words):
                raise SilenceInputError(f"For how long? {_USAGE}.")
            duration = parse_duration(words[index + 1])
            index += 2
            break
        key, sep, raw = word.partition("=")
        if not sep:
            raise SilenceInputError(f"'{word[:40]}' is not a matcher (key=value); {_USAGE}.")
        key = key.casefold()
        try:
            if key in _KIND_KEYS:
                kinds = parse_kinds(raw.split(","))
            else:
                field = {
                    "circuit": CIRCUIT,
                    "prefix": CIRCUIT,
                    "experiment": EXPERIMENT,
                    "exp": EXPERIMENT,
                    "env": ENVIRONMENT,
                    "environment": ENVIRONMENT,
                }.get(key)
                if field is None:
                    raise SilenceInputError(
                        f"Silences match on circuit, experiment, env and kinds, not '{key[:20]}'."
                    )
                values[field] = parse_filter_values(field, raw)
        except SubscriptionInputError as exc:
            raise SilenceInputError(str(exc)) from None
        index += 1
    if duration is None:
        raise SilenceInputError(f"Say for how long: {_USAGE}.")
    if not kinds and not values:
        raise SilenceInputError(
            f"A silence needs at least one matcher, or it would hold everything; {_USAGE}."
        )
    reason = " ".join(words[index:])[:MAX_REASON]
    filters = SubscriptionFilters(
        values.get(EXPERIMENT, ()), values.get(CIRCUIT, ()), values.get(ENVIRONMENT, ())
    )
    return SilenceRequest(kinds, filters, duration, reason)


def silence_selects(silence: Silence, facts: EventFacts) -> bool:
    """Strict matching: every matcher must be answered by the event, and match."""
    if silence.kinds and facts.kind not in silence.kinds:
        return False
    f = silence.filters
    if f.experiments:
        wanted = {e.casefold() for e in f.experiments}
        if not any(e.casefold() in wanted for e in facts.experiments):
            return False
    if f.circuit_prefixes:
        prefixes = tuple(p.casefold() for p in f.circuit_prefixes)
        if not any(c.casefold().startswith(prefixes) for c in facts.circuits):
            return False
    if f.environments:
        if facts.environment is None:
            return False
        if environment_key(facts.environment) not in {environment_key(e) for e in f.environments}:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str  # shown in `silences` and logs
    silence_id: int | None = None


def hold_for(
    kind: str,
    facts: EventFacts | None,
    job: str | None,
    *,
    silences: Sequence[Silence],
    acknowledged: Acknowledgement | None,
    snoozed: Snooze | None,
    now: datetime,
) -> Hold | None:
    """Why this event is held back, or None when it goes out as usual."""
    if kind == REMINDER_KIND and job is not None:
        if acknowledged is not None:
            return Hold(f"acknowledged by {acknowledged.by}")
        if snoozed is not None and (snoozed.until is None or now < snoozed.until):
            return Hold(f"snoozed by {snoozed.by}")
    if facts is not None:
        for silence in silences:
            if silence.active(now) and silence_selects(silence, facts):
                return Hold(f"silence #{silence.id}", silence.id)
    return None
