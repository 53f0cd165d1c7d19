"""POST /api/messages: authenticate, validate, authorize the tenant, then run the bot.

botbuilder's own `CloudAdapter.process` answers 500 for most bad tokens and for any
invoke whose handler returns a body; this endpoint does those steps itself so that
every authentication failure is a 401 and invoke bodies are serialized once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from botbuilder.core import Bot, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ChannelAccount
from botframework.connector.auth import BotFrameworkAuthentication

from bot.activity_validation import activity_problems
from bot.service_urls import ServiceUrlPolicy
from bot.turns import facts_of
from store.audit import AuditEntry, AuditTrail

log = logging.getLogger(__name__)

# Teams activities are a few KB; their cards' answers well under this.
DEFAULT_MAX_ACTIVITY_BYTES = 64 * 1024


def _problem(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _text(body: Any, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _addressing_of(body: Any) -> Activity:
    """What token validation reads of an activity (channel, service URL, recipient role)."""
    recipient = body.get("recipient") if isinstance(body, dict) else None
    role = _text(recipient, "role")
    return Activity(
        channel_id=_text(body, "channelId"),
        service_url=_text(body, "serviceUrl"),
        recipient=ChannelAccount(role=role),
    )


def _invoke_body(body: Any) -> Any:
    # Handlers may return msrest models or plain dicts; serialize exactly once.
    serialize = getattr(body, "serialize", None)
    return serialize() if callable(serialize) else body


class MessagesEndpoint:
    def __init__(
        self,
        *,
        adapter: CloudAdapter,
        bot: Bot,
        authentication: BotFrameworkAuthentication,
        allowed_tenants: tuple[str, ...],
        service_urls: ServiceUrlPolicy,
        audit: AuditTrail,
        clock: Callable[[], Any],
        max_bytes: int = DEFAULT_MAX_ACTIVITY_BYTES,
    ) -> None:
        self._adapter = adapter
        self._bot = bot
        self._auth = authentication
        self._allowed_tenants = frozenset(allowed_tenants)
        self._service_urls = service_urls
        self._max_bytes = max_bytes
        self._audit = audit
        self._clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _problem(415, "send the activity as application/json")
        if request.content_length is not None and request.content_length > self._max_bytes:
            return _problem(413, f"an activity is at most {self._max_bytes} bytes")
        raw = await request.read()  # aiohttp enforces client_max_size (413) here
        if len(raw) > self._max_bytes:
            return _problem(413, f"an activity is at most {self._max_bytes} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nesting deeper than the parser can follow.
            return _problem(400, "the body is not valid JSON (or nests too deeply)")

        # Authenticate from the few fields the token is checked against, before any
        # validation or deserialization work is spent on an unauthenticated body.
        auth_header = request.headers.get("Authorization", "")
        try:
            auth_result = await self._auth.authenticate_request(_addressing_of(body), auth_header)
        except Exception as exc:
            # Forged, expired, unknown-key or garbage tokens surface as many exception
            # types inside botbuilder; all of them mean "not authenticated".
            log.warning("refused an activity: authentication failed (%s)", type(exc).__name__)
            return _problem(401, "authentication failed")

        problems = activity_problems(body)
        if problems:
            return _problem(400, "; ".join(problems))
        try:
            activity = Activity().deserialize(body)
        except Exception as exc:
            return _problem(400, f"the activity could not be read: {type(exc).__name__}")

        if activity.channel_id != "msteams":
            return _problem(403, "mlbot serves Microsoft Teams only (channelId msteams)")
        if not self._service_urls.allows(activity.service_url):
            # Replies would carry the bot's token to this address.
            log.warning("refused an activity: its serviceUrl is not an allowed Teams address")
            return _problem(403, "the serviceUrl is not an allowed Teams address")

        tenant = facts_of(activity).tenant_id
        if self._allowed_tenants and tenant not in self._allowed_tenants:
            await self._audit.record(
                AuditEntry(
                    at=self._clock(),
                    action=f"activity:{activity.type}",
                    outcome="refused",
                    tenant_id=tenant,
                    conversation_id=activity.conversation.id if activity.conversation else None,
                    detail="tenant not allowed",
                )
            )
            return _problem(403, "this tenant is not allowed to use this bot")

        logic: Callable[[TurnContext], Awaitable[None]] = self._bot.on_turn
        try:
            invoke_response = await self._adapter.process_activity(auth_result, activity, logic)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("processing a %s activity failed (ref %s)", activity.type, ref)
            return _problem(500, f"internal error (ref {ref})")
        if invoke_response is not None:
            return web.json_response(
                _invoke_body(invoke_response.body), status=invoke_response.status or 200
            )
        return web.Response(status=201)
