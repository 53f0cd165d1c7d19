"""Proactive messages: the one way mlbot posts to a conversation nobody just wrote in.

Every message can carry a client key (`channelData.clientActivityID`, the name Bot
Framework Web Chat uses for the same purpose). Teams ignores it and assigns its own
activity id; mlbot's logs and the connector stand-in use it to tell which message a
request is about.

Messages are addressed exactly as a proactive turn (`continue_conversation`) addresses
them, and sent with a connector client kept per service URL instead of a new one per
message. Errors reach the caller as the connector answered them (no turn error handler
in between), so the delivery worker can tell a throttled send from a gone conversation.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.conversation_reference_extension import get_continuation_activity
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes, ConversationReference, InputHints
from botframework.connector.aio import ConnectorClient

from bot.service_urls import RefusedServiceUrlError
from store.conversations import ConversationRecord, ConversationStore

log = logging.getLogger(__name__)

# Conversation types whose messages have threads: a reply to a channel post is
# addressed to the conversation `<channel id>;messageid=<root activity id>`.
_THREADED = frozenset({"channel"})

# How long a conversation's stored reference is reused without asking the store again.
# Changes made through this process's ConversationStore take effect at once; this bounds
# how long another process's change (another replica recorded a new service URL, or the
# bot's removal) can go unseen, and a send to a conversation the bot has left is refused
# by Teams meanwhile, which fails the delivery for good just the same.
REFERENCE_TTL_S = 60.0
_REFERENCES_KEPT = 10_000


class UnknownConversationError(LookupError):
    """The bot has no reference for this conversation (never installed, or removed)."""


def thread_conversation_id(conversation_id: str, root_activity_id: str) -> str:
    """The conversation id of a channel post's reply thread."""
    base = conversation_id.split(";", 1)[0]
    return f"{base};messageid={root_activity_id}"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message addressed and ready to post (`ProactiveMessenger.prepare_card`)."""

    client: ConnectorClient
    activity: Activity


class ProactiveMessenger:
    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        conversations: ConversationStore,
        *,
        reference_ttl_s: float = REFERENCE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adapter = adapter
        self._app_id = app_id
        self._conversations = conversations
        # Conversation id -> (store revision, when read, record): a burst of
        # notifications to one conversation reads its reference once.
        self._records: OrderedDict[str, tuple[int, float, ConversationRecord]] = OrderedDict()
        self._reference_ttl_s = reference_ttl_s
        self._monotonic = monotonic
        # One connector client per service URL, made by the adapter's own connector
        # factory and kept: a proactive turn would build a new client (and open a new
        # connection) for every message, which costs more than the message.
        self._clients: dict[str, ConnectorClient] = {}

    async def send_card(
        self,
        conversation_id: str,
        card: dict[str, Any],
        summary: str = "",
        *,
        client_key: str | None = None,
        reply_to: str | None = None,
    ) -> str | None:
        """Post a card; returns the new activity id (to update the card in place later).

        With `reply_to`, the card goes into that message's thread where the conversation
        has threads (team channels); elsewhere it is posted as a normal message.
        """
        return await self.post(
            await self.prepare_card(
                conversation_id, card, summary, client_key=client_key, reply_to=reply_to
            )
        )

    async def prepare_card(
        self,
        conversation_id: str,
        card: dict[str, Any],
        summary: str = "",
        *,
        client_key: str | None = None,
        reply_to: str | None = None,
    ) -> OutgoingMessage:
        """Everything `send_card` does before the request: look the conversation up,
        address the message. Raises UnknownConversationError."""
        message = _card_message(card, client_key)
        if summary:
            message.summary = summary
        return await self._prepare(conversation_id, message, reply_to)

    async def post(self, message: OutgoingMessage) -> str | None:
        """Send a prepared message; returns the new activity id."""
        activity = message.activity
        # The same calls a proactive turn's send_activity makes.
        if activity.reply_to_id:
            response = await message.client.conversations.reply_to_activity(
                activity.conversation.id, activity.reply_to_id, activity
            )
        else:
            response = await message.client.conversations.send_to_conversation(
                activity.conversation.id, activity
            )
        return response.id if response is not None else None

    async def send_text(self, conversation_id: str, text: str) -> str | None:
        return await self.post(
            await self._prepare(conversation_id, MessageFactory.text(text), None)
        )

    async def update_card(
        self,
        conversation_id: str,
        activity_id: str,
        card: dict[str, Any],
        *,
        client_key: str | None = None,
    ) -> None:
        """Replace a card the bot posted earlier, for everyone in the conversation."""
        reference = await self._reference(conversation_id)
        message = _outgoing(_card_message(card, client_key), reference)
        message.id = activity_id
        client = await self._client(reference.service_url)
        await client.conversations.update_activity(message.conversation.id, activity_id, message)

    async def _prepare(
        self, conversation_id: str, message: Activity, reply_to: str | None
    ) -> OutgoingMessage:
        reference = await self._reference(conversation_id, reply_to)
        activity = _outgoing(message, reference)
        return OutgoingMessage(await self._client(reference.service_url), activity)

    async def _reference(
        self, conversation_id: str, reply_to: str | None = None
    ) -> ConversationReference:
        """The conversation's stored reference, addressed to `reply_to`'s thread where the
        conversation has threads."""
        record = await self._record(conversation_id)
        if record is None:
            raise UnknownConversationError(conversation_id)
        reference = ConversationReference().deserialize(record.reference)
        if reply_to and record.conversation_type in _THREADED:
            reference.conversation.id = thread_conversation_id(conversation_id, reply_to)
            reference.activity_id = reply_to
        return reference

    async def _record(self, conversation_id: str) -> ConversationRecord | None:
        """The conversation's stored record, read again once this process changed a
        conversation or `reference_ttl_s` has passed. An unknown one is never kept."""
        revision, now = self._conversations.revision, self._monotonic()
        kept = self._records.get(conversation_id)
        if kept is not None and kept[0] == revision and now - kept[1] < self._reference_ttl_s:
            self._records.move_to_end(conversation_id)
            return kept[2]
        record = await self._conversations.get(conversation_id)
        if record is None:
            self._records.pop(conversation_id, None)
            return None
        # The revision read before the query: a change committed meanwhile reads again.
        self._records[conversation_id] = (revision, now, record)
        self._records.move_to_end(conversation_id)
        while len(self._records) > _REFERENCES_KEPT:
            self._records.popitem(last=False)
        return record

    async def _client(self, service_url: str) -> ConnectorClient:
        client = self._clients.get(service_url)
        if client is None:
            factory = self._adapter.bot_framework_authentication.create_connector_factory(
                self._adapter.create_claims_identity(self._app_id)
            )
            try:
                client = await factory.create(service_url, None)
            except RefusedServiceUrlError:
                # A stored reference outside the allow-list never gets the bot's token.
                log.warning("refused to send to a conversation at a service URL not allowed")
                raise UnknownConversationError(service_url) from None
            # Retrying is the delivery worker's job: it paces every request under Teams'
            # limits and backs off. A retry hidden in the HTTP layer would be a request
            # the pacing never saw; an error answer is reported as it came.
            retries = client.config.retry_policy
            retries.retries = 0
            retries.policy.raise_on_status = False
            self._clients[service_url] = client
        return client


def _outgoing(message: Activity, reference: ConversationReference) -> Activity:
    """Address a message as a proactive turn does (a continuation of `reference`)."""
    continuation = get_continuation_activity(reference)
    TurnContext.apply_conversation_reference(
        message, TurnContext.get_conversation_reference(continuation)
    )
    message.type = message.type or ActivityTypes.message
    message.input_hint = message.input_hint or InputHints.accepting_input
    message.id = None
    return message


def _card_message(card: dict[str, Any], client_key: str | None) -> Activity:
    message = MessageFactory.attachment(CardFactory.adaptive_card(card))
    if client_key:
        message.channel_data = {"clientActivityID": client_key}
    return message
