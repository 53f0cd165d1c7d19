"""`notify me`: a person's failures come to their personal chat.

In their personal chat with the bot, someone types `notify me`; from then on a training
failure (a time-out, an escalation) of a job they submitted (Azure ML's `createdBy` equal
to their UPN or display name) or of a circuit they own (`MLBOT_CIRCUIT_OWNERS` naming
their UPN or object id) is posted there too. `notify me off` stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from domain.monitoring import EventRecord
from domain.owners import OwnerRule, owners_of
from store.personal_alerts import PersonalAlert, PersonalAlertStore

PERSONAL_KINDS: frozenset[str] = frozenset(
    {"training_failed", "attempt_timed_out", "failure_escalated"}
)


def matching_people(
    alerts: Sequence[PersonalAlert],
    owners: Sequence[OwnerRule],
    circuit: str | None,
    creator: str | None,
) -> list[str]:
    """The personal chats of those among `alerts` who own `circuit` or submitted the job."""
    owner_ids = {person.id.casefold() for person in owners_of(owners, circuit)}
    submitted = creator.casefold() if creator else None
    chats = []
    for alert in alerts:
        ids = {alert.user_id.casefold(), *([alert.upn.casefold()] if alert.upn else [])}
        names = {*(i for i in ids), *([alert.name.casefold()] if alert.name else [])}
        if ids & owner_ids or (submitted is not None and submitted in names):
            chats.append(alert.conversation_id)
    return list(dict.fromkeys(chats))


class PersonalRouting:
    """The extra destinations of an event: the personal chats that asked for it."""

    def __init__(
        self, store: PersonalAlertStore, owners: Callable[[], Sequence[OwnerRule]]
    ) -> None:
        self._store = store
        self._owners = owners

    async def chats_for(self, event: EventRecord) -> list[str]:
        if event.kind not in PERSONAL_KINDS:
            return []
        alerts = await self._store.everyone()
        if not alerts:
            return []
        creator = await self._store.job_creator(event.workspace, event.job_name)
        return matching_people(alerts, self._owners(), event.circuit, creator)
