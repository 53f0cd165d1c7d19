"""Token validation on its own thread, so a slow key download never stalls the bot.

botbuilder downloads the channel's OpenID metadata and signing keys with a blocking
`requests.get` and no timeout, inside its async token validation: at the first token,
once a day, and whenever a token names an unknown key id. On the bot's event loop that
freezes every request (health checks included) for as long as the download takes.
Here validation runs on one event loop of its own, in a worker thread; the caller waits
at most `timeout_s` and then treats the request as not authenticated.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)

T = TypeVar("T")


class ValidationTimeoutError(PermissionError):
    """Token validation did not finish in time (the key download hangs)."""


class ThreadedAuthentication(BotFrameworkAuthentication):
    """`inner`'s request authentication run on a private loop in a daemon thread."""

    def __init__(self, inner: BotFrameworkAuthentication, timeout_s: float = 10.0) -> None:
        self._inner = inner
        self._timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _worker_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="mlbot-token-validation", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def _off_loop(self, work: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self._worker_loop())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except TimeoutError:
            raise ValidationTimeoutError("token validation timed out") from None

    def close(self) -> None:
        """Stop the worker thread (idempotent)."""
        with self._lock:
            loop, self._loop, self._thread = self._loop, None, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        return await self._off_loop(self._inner.authenticate_request(activity, auth_header))

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        return await self._off_loop(
            self._inner.authenticate_streaming_request(auth_header, channel_id_header)
        )

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._off_loop(self._inner.authenticate_channel_request(auth_header))

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self._inner.create_connector_factory(claims_identity)

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        return await self._inner.create_user_token_client(claims_identity)

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return str(self._inner.get_originating_audience())
