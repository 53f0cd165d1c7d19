"""Where events go in Teams: subscribed conversations (proactive) and the Workflows webhook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.attention_buttons import with_attention_buttons
from bot.card_signing import CardSigner
from bot.event_mentions import Mentions
from bot.living_cards import LivingCards
from bot.proactive import UnknownConversationError
from cards.actions import execute
from cards.common import Card
from cards.events import render_event_card
from cards.mentions import with_mentions
from cards.webhook import webhook_payload
from domain.destinations import WEBHOOK, Destination, TeamsConversation
from domain.events import REGISTRY, EventKind, kinds_where
from domain.subscriptions import event_facts, selected
from monitoring.notifier import DeliveryFailed
from store.conversations import ConversationStore
from store.monitoring import EventRecord

# Event kinds -> the subscription kinds people choose from (`domain.events`).
SUBSCRIPTION_KIND: dict[str, str] = {
    spec.kind.value: spec.subscription.value
    for spec in REGISTRY.values()
    if spec.subscription is not None
}

WEBHOOK_KINDS = kinds_where(webhook=True)
ADDRESSED_KINDS = kinds_where(addressed=True)

# Statuses after which a retry cannot succeed: the conversation or the bot is gone.
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})
_TRANSIENT_STATUSES = frozenset({412, 429, 500, 502, 503, 504})


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify_http(status: int, headers: Any, where: str) -> DeliveryFailed:
    if status in _PERMANENT_STATUSES:
        return DeliveryFailed(f"{where} answered {status}", permanent=True)
    return DeliveryFailed(
        f"{where} answered {status}", permanent=False, retry_after_s=_retry_after(headers)
    )


# Approval cards stay actionable for as long as an approval usually waits.
APPROVAL_CARD_TTL = timedelta(days=7)


def with_approval_buttons(card: Card, event: EventRecord, signer: CardSigner) -> Card:
    """Add signed Approve / Reject buttons to an "approval required" card."""
    payload = event.payload
    approval_id = payload.get("approval_id")
    if (
        event.kind not in (EventKind.APPROVAL_REQUIRED, EventKind.APPROVAL_ESCALATED)
        or not isinstance(approval_id, str)
        or not approval_id
    ):
        return card
    shared: dict[str, Any] = {
        "approval_id": approval_id,
        "environment": str(payload.get("environment") or ""),
        "pipeline": str(payload.get("pipeline") or ""),
    }
    run_id = payload.get("run_id")
    if isinstance(run_id, int):
        # Where to look first for the approval's environment when a button is pressed.
        shared["run_id"] = run_id
    buttons = [
        execute(
            "Approve",
            "approval.approve",
            signer.sign("approval.approve", shared, ttl=APPROVAL_CARD_TTL),
            style="positive",
        ),
        execute(
            "Reject",
            "approval.reject",
            signer.sign("approval.reject", shared, ttl=APPROVAL_CARD_TTL),
            style="destructive",
        ),
    ]
    return {**card, "actions": [*buttons, *card.get("actions", [])]}


# A Cancel button outlives the grace period only by a little: pressing it later gets
# "too late" from the watcher, which is the truth.
CANCEL_CARD_TTL = timedelta(hours=1)


def with_cancel_button(card: Card, event: EventRecord, signer: CardSigner) -> Card:
    """Add a signed Cancel button to a "rollback pending" card that has a grace period."""
    payload = event.payload
    key = payload.get("watch_key")
    grace = payload.get("grace_seconds")
    if (
        event.kind != EventKind.ROLLBACK_PENDING
        or payload.get("dry_run")
        or not isinstance(key, str)
        or not key
        or not isinstance(grace, int | float)
        or grace <= 0
    ):
        return card
    data = {"watch_key": key, "environment": str(payload.get("environment") or "")}
    button = execute(
        "Cancel the rollback",
        "rollback.cancel",
        signer.sign("rollback.cancel", data, ttl=CANCEL_CARD_TTL),
        style="destructive",
    )
    return {**card, "actions": [button, *card.get("actions", [])]}


def with_action_buttons(card: Card, event: EventRecord, signer: CardSigner) -> Card:
    """The signed buttons an event's card carries in Teams (never on the webhook)."""
    with_buttons = with_cancel_button(with_approval_buttons(card, event, signer), event, signer)
    return with_attention_buttons(with_buttons, event, signer)


class TeamsNotifier:
    """Routes events to subscribed conversations and sends them as living cards.

    Every request to Teams takes its turn at the send gate that `living` holds; the
    delivery worker only asks `turn_at` to set a busy conversation aside.
    """

    def __init__(
        self,
        conversations: ConversationStore,
        living: LivingCards,
        signer: CardSigner | None = None,
        *,
        mentions: Callable[[Sequence[EventRecord]], Mentions | None] | None = None,
        personal: Callable[[EventRecord], Awaitable[list[str]]] | None = None,
    ) -> None:
        self._conversations = conversations
        # Living session cards, thread replies, send-once keys and the send gate.
        self._living = living
        self._signer = signer
        # Whom a card @mentions (owners, approvers); None mentions nobody.
        self._mentions = mentions
        # The personal chats of people who asked for their own failures (`notify me`).
        self._personal = personal

    async def destinations(self, event: EventRecord) -> list[Destination]:
        """Subscribed conversations whose filters let the event through: one query."""
        if event.kind in ADDRESSED_KINDS:
            # Asked for by one conversation (its digest): it goes there and nowhere else.
            conversation = event.payload.get("conversation_id")
            return [TeamsConversation(conversation)] if isinstance(conversation, str) else []
        wanted = SUBSCRIPTION_KIND.get(event.kind)
        if wanted is None:
            return []
        found = await self._conversations.subscribers(
            workspace=event.workspace, job_name=event.job_name, session_id=event.session_id
        )
        facts = event_facts(
            wanted, event.payload, circuit=event.circuit, experiment=found.experiment
        )
        chats = selected(found.subscriptions, facts)
        if self._personal is not None:
            chats = list(dict.fromkeys([*chats, *await self._personal(event)]))
        return [TeamsConversation(c) for c in chats]

    def group_of(self, event: EventRecord) -> str | None:
        """Events of one group bound for one conversation close together go as one."""
        return self._living.group_of(event)

    def turn_at(self, destination: Destination) -> datetime | None:
        return self._living.turn_at(_conversation(destination))

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None:
        return await self.deliver_group([event], destination)

    async def deliver_group(
        self, events: Sequence[EventRecord], destination: Destination
    ) -> str | None:
        conversation = _conversation(destination)
        try:
            return await self._living.deliver(
                events, conversation, self._decorate, mention=self._mention
            )
        except UnknownConversationError:
            raise DeliveryFailed(
                "the bot is no longer in this conversation", permanent=True
            ) from None
        except HttpOperationError as exc:
            response = getattr(exc, "response", None)
            status = int(getattr(response, "status_code", 0) or 0)
            failure = classify_http(status, getattr(response, "headers", None), "Teams")
            if failure.retry_after_s is not None:
                # Teams asked for a pause: no request to this conversation before it.
                self._living.throttled(conversation, failure.retry_after_s)
            raise failure from None
        except ClientRequestError as exc:
            raise DeliveryFailed(
                f"Teams unreachable: {type(exc).__name__}", permanent=False
            ) from None

    def _decorate(self, card: Card, event: EventRecord) -> Card:
        decorated = with_action_buttons(card, event, self._signer) if self._signer else card
        return self._mention(decorated, [event])

    def _mention(self, card: Card, events: Sequence[EventRecord]) -> Card:
        plan = self._mentions(events) if self._mentions is not None else None
        return with_mentions(card, plan.people, plan.label) if plan is not None else card


def _conversation(destination: Destination) -> TeamsConversation:
    if not isinstance(destination, TeamsConversation):
        raise DeliveryFailed(f"Teams cannot deliver to {destination.label}", permanent=True)
    return destination


class WebhookNotifier:
    """Posts cards to a Teams Workflows webhook (`teamsWebhookUrl`), card version 1.4."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        url: Callable[[], str],
        timeout_s: float = 15.0,
    ) -> None:
        self._session = session
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def destinations(self, event: EventRecord) -> list[Destination]:
        return [WEBHOOK] if self._url() and event.kind in WEBHOOK_KINDS else []

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None:
        body = webhook_payload(render_event_card(event, version="1.4"))
        try:
            async with self._session().post(
                self._url(), json=body, timeout=self._timeout
            ) as response:
                if response.status < 300:
                    return None
                raise classify_http(response.status, response.headers, "the webhook")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryFailed(
                f"webhook unreachable: {type(exc).__name__}", permanent=False
            ) from None
