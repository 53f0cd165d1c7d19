"""Proactive messages: the one way mlbot posts to a conversation nobody just wrote in."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import ConversationReference

from store.conversations import ConversationStore

log = logging.getLogger(__name__)


class UnknownConversationError(LookupError):
    """The bot has no reference for this conversation (never installed, or removed)."""


class ProactiveMessenger:
    def __init__(
        self, adapter: CloudAdapter, app_id: str, conversations: ConversationStore
    ) -> None:
        self._adapter = adapter
        self._app_id = app_id
        self._conversations = conversations

    async def send_card(
        self, conversation_id: str, card: dict[str, Any], summary: str = ""
    ) -> str | None:
        """Post a card; returns the new activity id (to update the card in place later)."""
        message = MessageFactory.attachment(CardFactory.adaptive_card(card))
        if summary:
            message.summary = summary
        return await self._send(conversation_id, message)

    async def send_text(self, conversation_id: str, text: str) -> str | None:
        return await self._send(conversation_id, MessageFactory.text(text))

    async def update_card(
        self, conversation_id: str, activity_id: str, card: dict[str, Any]
    ) -> None:
        """Replace a card the bot posted earlier, for everyone in the conversation."""
        message = MessageFactory.attachment(CardFactory.adaptive_card(card))
        message.id = activity_id
        reference = await self._reference(conversation_id)

        async def update(turn_context: TurnContext) -> None:
            await turn_context.update_activity(message)

        await self._adapter.continue_conversation(reference, update, self._app_id)

    async def _send(self, conversation_id: str, message: Any) -> str | None:
        reference = await self._reference(conversation_id)
        sent: list[str | None] = []

        async def send(turn_context: TurnContext) -> None:
            response = await turn_context.send_activity(message)
            sent.append(response.id if response else None)

        await self._adapter.continue_conversation(reference, send, self._app_id)
        return sent[0] if sent else None

    async def _reference(self, conversation_id: str) -> ConversationReference:
        record = await self._conversations.get(conversation_id)
        if record is None:
            raise UnknownConversationError(conversation_id)
        return ConversationReference().deserialize(record.reference)
