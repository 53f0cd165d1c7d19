"""One chat turn as command handlers see it: who, where, when, and how to answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext

from bot.access import Actor
from bot.turns import TurnFacts


def actor_of(facts: TurnFacts) -> Actor:
    return Actor(
        aad_object_id=facts.user_aad_id,
        upn=None,
        name=facts.user_name,
        tenant_id=facts.tenant_id,
    )


@dataclass
class ChatTurn:
    context: TurnContext
    facts: TurnFacts
    now: datetime
    actor: Actor

    async def reply_text(self, text: str) -> None:
        await self.context.send_activity(MessageFactory.text(text))

    async def reply_card(self, card: dict[str, Any], summary: str = "") -> None:
        # The summary is what notifications and screen readers show for the card.
        message = MessageFactory.attachment(CardFactory.adaptive_card(card))
        if summary:
            message.summary = summary
        await self.context.send_activity(message)
