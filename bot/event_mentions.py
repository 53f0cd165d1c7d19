"""Who an event's card @mentions: the circuit's owners when a training needs someone,
the environment's approvers when a deployment waits for them.

Owners come from `MLBOT_CIRCUIT_OWNERS` (or the variable group's `circuitOwners`), read
when each card is built, so a change reaches the next card without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from domain.monitoring import EventRecord
from domain.owners import OwnerRule, Person, owners_of, parse_owner_rules, person

log = logging.getLogger(__name__)

# A training that needs a person: failed (retries exhausted included), timed out, long.
OWNER_KINDS: frozenset[str] = frozenset({"training_failed", "attempt_timed_out", "long_running"})
APPROVER_KINDS: frozenset[str] = frozenset({"approval_required"})
# Nobody acted in time: the next people are told (on-call, then approvers).
ESCALATED_KINDS: frozenset[str] = frozenset({"failure_escalated", "approval_escalated"})


@dataclass(frozen=True)
class Mentions:
    label: str
    people: tuple[Person, ...]


class CircuitOwners:
    """The owner rules of the settings in effect, parsed once per distinct value."""

    def __init__(self, entries: Callable[[], Sequence[str]]) -> None:
        self._entries = entries
        self._parsed: tuple[tuple[str, ...], tuple[OwnerRule, ...]] = ((), ())

    def rules(self) -> tuple[OwnerRule, ...]:
        entries = tuple(self._entries())
        if entries != self._parsed[0]:
            try:
                self._parsed = (entries, parse_owner_rules(entries))
            except ValueError as exc:
                # Settings validate the value; a bad one arriving later keeps the last good.
                log.warning("circuit owners not changed: %s", exc)
                return self._parsed[1]
        return self._parsed[1]


def _people(identities: Collection[str]) -> tuple[Person, ...]:
    found: list[Person] = []
    for identity in sorted(identities):
        try:
            found.append(person(identity))
        except ValueError:
            continue  # an approver entry Teams cannot mention (e.g. a display name)
    return tuple(found)


def mentions_for(
    event: EventRecord,
    owners: Sequence[OwnerRule],
    approvers_for: Callable[[str | None], Collection[str]],
    on_call: Collection[str] = (),
) -> Mentions | None:
    """Whom `event`'s card should mention, or None."""
    if event.kind in ESCALATED_KINDS:
        environment = event.payload.get("environment")
        env = environment if isinstance(environment, str) and environment else None
        people = tuple(dict.fromkeys((*_people(on_call), *_people(approvers_for(env)))))
        return Mentions("Escalated to", people) if people else None
    if event.kind in OWNER_KINDS:
        people = owners_of(owners, event.circuit)
        return Mentions("Owners", people) if people else None
    if event.kind in APPROVER_KINDS:
        environment = event.payload.get("environment")
        env = environment if isinstance(environment, str) and environment else None
        people = _people(approvers_for(env))
        return Mentions("Approvers", people) if people else None
    return None


def mentions_of_group(
    events: Sequence[EventRecord],
    owners: Sequence[OwnerRule],
    approvers_for: Callable[[str | None], Collection[str]],
    on_call: Collection[str] = (),
) -> Mentions | None:
    """One mention line for a card that carries several events (grouped failures)."""
    plans = [plan for e in events if (plan := mentions_for(e, owners, approvers_for, on_call))]
    if not plans:
        return None
    people = tuple(dict.fromkeys(someone for plan in plans for someone in plan.people))
    return Mentions(plans[0].label, people)
