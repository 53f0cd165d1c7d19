"""A Bot Connector stand-in: accepts what the Bot Framework REST API accepts, records it.

Beyond recording calls it keeps what users would see: every message created (POST) and
its latest content (PUT replaces it), per conversation, with its thread root when it was
posted into a channel thread (`<conversation>;messageid=<root activity id>`, as Teams
addresses replies). Optionally it checks Teams' rate limits per conversation and per
tenant (a request beyond a limit is answered 429 and recorded as a violation) and
injects faults: a share of requests answered 429 with Retry-After or 5xx, refused before
anything is created.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Teams' documented limits for a bot: (count, seconds) per conversation and per tenant.
TEAMS_CONVERSATION_WINDOWS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0))
TEAMS_TENANT_WINDOWS: tuple[tuple[int, float], ...] = ((50, 1.0),)


@dataclass
class Message:
    """A message as users see it: created once, its content replaced by updates."""

    activity_id: str
    conversation: str  # without any `;messageid=` suffix
    thread_root: str | None
    body: Any
    updates: int = 0

    @property
    def client_key(self) -> str | None:
        data = (self.body or {}).get("channelData") or {}
        return data.get("clientActivityID") if isinstance(data, dict) else None


@dataclass
class Faults:
    """Answer this share of requests with an error instead of acting on them."""

    rate: float = 0.0
    retry_after_s: str = "1"
    seed: int = 5
    _rng: random.Random | None = None

    def pick(self) -> int | None:
        if self._rng is None:
            self._rng = random.Random(self.seed)
        if self._rng.random() >= self.rate:
            return None
        return self._rng.choice((429, 500, 502, 503))


@dataclass
class ConnectorCall:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class ConnectorStandIn:
    calls: list[ConnectorCall] = field(default_factory=list)
    # Team members the stand-in knows (GET …/members/{id}), e.g. with a userPrincipalName.
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    # What users see, by activity id, in creation order.
    messages: dict[str, Message] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    # Rate limits to check, as (count, seconds); `time_scale` > 1 when the bot runs a
    # clock that many times faster than real time (its windows shrink as much).
    conversation_windows: tuple[tuple[int, float], ...] = ()
    tenant_windows: tuple[tuple[int, float], ...] = ()
    time_scale: float = 1.0
    violations: list[str] = field(default_factory=list)
    refused: int = 0
    clock: Callable[[], float] = time.monotonic
    _arrivals: dict[str, deque[float]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Condition | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._post_activity)
        app.router.add_post(
            "/v3/conversations/{conversation}/activities/{activity}", self._post_activity
        )
        app.router.add_put(
            "/v3/conversations/{conversation}/activities/{activity}", self._put_activity
        )
        app.router.add_get("/v3/conversations/{conversation}/members/{member}", self._member)
        return app

    async def start(self) -> str:
        self._arrived = asyncio.Condition()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> None:
        body = await request.json()
        self.calls.append(
            ConnectorCall(request.method, request.path, request.headers.get("Authorization"), body)
        )
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()

    async def _create_conversation(self, request: web.Request) -> web.Response:
        await self._record(request)
        n = next(self._ids)
        return web.json_response({"id": f"conv-{n}", "activityId": f"activity-{n}"})

    def _admit(self, conversation: str) -> web.Response | None:
        """Check the windows and the fault plan; an error answer, or None to go ahead."""
        now = self.clock()
        for key, windows in ((conversation, self.conversation_windows), ("", self.tenant_windows)):
            if not windows:
                continue
            arrivals = self._arrivals.setdefault(key, deque())
            arrivals.append(now)
            longest = max(per for _, per in windows) / self.time_scale
            while arrivals and arrivals[0] <= now - longest:
                arrivals.popleft()
            for count, per in windows:
                window = per / self.time_scale
                inside = sum(1 for t in arrivals if t > now - window)
                if inside > count:
                    where = key or "the tenant"
                    self.violations.append(f"{inside} requests within {per}s to {where}")
                    self.refused += 1
                    return web.json_response(
                        {"error": {"code": "Throttled"}}, status=429, headers={"Retry-After": "1"}
                    )
        status = self.faults.pick() if self.faults.rate else None
        if status is None:
            return None
        self.refused += 1
        headers = {"Retry-After": self.faults.retry_after_s} if status == 429 else {}
        return web.json_response({"error": {"code": "Injected"}}, status=status, headers=headers)

    async def _post_activity(self, request: web.Request) -> web.Response:
        conversation, _, root = request.match_info["conversation"].partition(";messageid=")
        refusal = self._admit(conversation)
        if refusal is not None:
            return refusal
        await self._record(request)
        if root and root not in self.messages:
            return web.json_response({"error": {"code": "ActivityNotFound"}}, status=404)
        activity_id = f"activity-{next(self._ids)}"
        self.messages[activity_id] = Message(
            activity_id, conversation, root or None, self.calls[-1].body
        )
        return web.json_response({"id": activity_id})

    async def _put_activity(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation"].partition(";messageid=")[0]
        refusal = self._admit(conversation)
        if refusal is not None:
            return refusal
        await self._record(request)
        activity_id = request.match_info["activity"]
        message = self.messages.get(activity_id)
        if message is not None:
            message.body = self.calls[-1].body
            message.updates += 1
        return web.json_response({"id": activity_id})

    def conversation_messages(self, conversation: str) -> list[Message]:
        """Messages in one conversation (threads included), oldest first."""
        return [m for m in self.messages.values() if m.conversation == conversation]

    async def _member(self, request: web.Request) -> web.Response:
        member = request.match_info["member"]
        if member not in self.members:
            return web.json_response(
                {"error": {"code": "MemberNotFoundInConversation"}}, status=404
            )
        return web.json_response({"id": member, **self.members[member]})

    async def wait_for(self, count: int, limit_s: float = 5.0) -> list[ConnectorCall]:
        """Wait until at least `count` calls arrived; the timeout only guards a hang."""
        assert self._arrived is not None
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.calls) >= count), limit_s
            )
        return self.calls

    def cards(self) -> list[dict[str, Any]]:
        """Every Adaptive Card content the bot sent, in order."""
        found = []
        for call in self.calls:
            for attachment in (call.body or {}).get("attachments") or []:
                if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                    found.append(attachment["content"])
        return found
