"""A Bot Connector stand-in: accepts what the Bot Framework REST API accepts, records it."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


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

    async def _post_activity(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"id": f"activity-{next(self._ids)}"})

    async def _put_activity(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"id": request.match_info["activity"]})

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
