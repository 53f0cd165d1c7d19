"""One chat turn as command handlers see it: who, where, when, and how to answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext

from bot.turns import TurnFacts


@dataclass
class ChatTurn:
    context: TurnContext
    facts: TurnFacts
    now: datetime

    async def reply_text(self, text: str) -> None:
        await self.context.send_activity(MessageFactory.text(text))

    async def reply_card(self, card: dict[str, Any], summary: str = "") -> None:
        # The summary is what notifications and screen readers show for the card.
        message = MessageFactory.attachment(CardFactory.adaptive_card(card))
        if summary:
            message.summary = summary
        await self.context.send_activity(message)
