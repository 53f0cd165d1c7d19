"""The Acknowledge and Snooze buttons on failure, time-out and reminder cards, signed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.card_signing import CardSigner
from cards.attention import attention_actions
from cards.common import Card
from domain.attention import Acknowledgement, job_key
from domain.monitoring import EventRecord

# A failure is acknowledged within days, not weeks.
ATTENTION_CARD_TTL = timedelta(days=7)


def attention_buttons(
    event: EventRecord, signer: CardSigner, ack: Acknowledgement | None = None
) -> list[dict[str, Any]]:
    """The buttons the event's card offers now (none once someone acknowledged it)."""

    def sign(verb: str, data: dict[str, Any]) -> dict[str, Any]:
        return signer.sign(verb, data, ttl=ATTENTION_CARD_TTL)

    key = job_key(event.workspace, event.job_name)
    return attention_actions(event.kind, event.id, key, sign, ack)


def with_attention_buttons(card: Card, event: EventRecord, signer: CardSigner) -> Card:
    buttons = attention_buttons(event, signer)
    if not buttons:
        return card
    return {**card, "actions": [*card.get("actions", []), *buttons]}
