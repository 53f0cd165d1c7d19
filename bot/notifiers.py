"""Where events go in Teams: subscribed conversations (proactive) and the Workflows webhook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.card_signing import CardSigner
from bot.proactive import ProactiveMessenger, UnknownConversationError
from cards.actions import execute
from cards.common import Card
from cards.events import event_summary, render_event_card
from cards.webhook import webhook_payload
from monitoring.dispatch import DeliveryFailed
from store.conversations import ConversationStore
from store.monitoring import EventRecord

# Engine event kinds -> the subscription kinds people choose from.
SUBSCRIPTION_KIND = {
    "training_started": "training_started",
    "training_completed": "training_completed",
    "training_failed": "training_failed",
    "training_canceled": "training_failed",
    "attempt_timed_out": "training_failed",
    "retry_queued": "training_failed",
    "monitoring_timed_out": "training_timed_out",
    "long_running": "long_running",
    "deployment_completed": "deployment_completed",
    "deployment_failed": "deployment_failed",
    "approval_required": "approval_required",
    "approval_decided": "approval_required",
    "rollback_pending": "rollback",
    "rollback_queued": "rollback",
    "rollback_dry_run": "rollback",
    "rollback_cancelled": "rollback",
    "rollback_skipped": "rollback",
    "rollback_failed": "rollback",
    "health_inconclusive": "deployment_failed",
    "deployment_healthy": "deployment_completed",
}

WEBHOOK_DESTINATION = "webhook"
# "Started" is chatty; the webhook gets what the default subscription gets.
WEBHOOK_KINDS = frozenset(SUBSCRIPTION_KIND) - {"training_started"}

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
    if event.kind != "approval_required" or not isinstance(approval_id, str) or not approval_id:
        return card
    shared = {
        "approval_id": approval_id,
        "environment": str(payload.get("environment") or ""),
        "pipeline": str(payload.get("pipeline") or ""),
    }
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


class TeamsNotifier:
    def __init__(
        self,
        conversations: ConversationStore,
        messenger: ProactiveMessenger,
        signer: CardSigner | None = None,
    ) -> None:
        self._conversations = conversations
        self._messenger = messenger
        self._signer = signer

    async def destinations(self, event: EventRecord) -> list[str]:
        wanted = SUBSCRIPTION_KIND.get(event.kind)
        if wanted is None:
            return []
        return [f"teams:{r.conversation_id}" for r in await self._conversations.subscribed(wanted)]

    async def deliver(self, event: EventRecord, destination: str) -> str | None:
        conversation_id = destination.removeprefix("teams:")
        card = render_event_card(event)
        if self._signer is not None:
            card = with_approval_buttons(card, event, self._signer)
        try:
            return await self._messenger.send_card(conversation_id, card, event_summary(event))
        except UnknownConversationError:
            raise DeliveryFailed(
                "the bot is no longer in this conversation", permanent=True
            ) from None
        except HttpOperationError as exc:
            response = getattr(exc, "response", None)
            status = int(getattr(response, "status_code", 0) or 0)
            raise classify_http(status, getattr(response, "headers", None), "Teams") from None
        except ClientRequestError as exc:
            raise DeliveryFailed(
                f"Teams unreachable: {type(exc).__name__}", permanent=False
            ) from None


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

    async def destinations(self, event: EventRecord) -> list[str]:
        return [WEBHOOK_DESTINATION] if self._url() and event.kind in WEBHOOK_KINDS else []

    async def deliver(self, event: EventRecord, destination: str) -> str | None:
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
