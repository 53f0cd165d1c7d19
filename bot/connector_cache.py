"""Reusing Bot Connector clients across turns.

botbuilder builds a new ConnectorClient (and a user-token client) for every turn and
every proactive send; each one builds an msrest retry policy whose construction alone
costs several milliseconds of CPU. Clients are stateless HTTP wrappers bound to a
service URL, audience and app identity, so one per such key is enough. This wraps the
SDK's public BotFrameworkAuthentication and ConnectorFactory interfaces.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)

from bot.service_urls import ServiceUrlPolicy


class ClientCache:
    """A small LRU of clients; old entries fall out rather than grow without bound."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, ...], Any] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, ...], value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _app_id_of(identity: ClaimsIdentity | None) -> str:
    if identity is None:
        return ""
    for claim in (AuthenticationConstants.AUDIENCE_CLAIM, AuthenticationConstants.APP_ID_CLAIM):
        value = identity.get_claim_value(claim)
        if value:
            return str(value)
    return ""


class CachingConnectorFactory(ConnectorFactory):
    def __init__(
        self,
        inner: ConnectorFactory,
        cache: ClientCache,
        app_id: str,
        service_urls: ServiceUrlPolicy | None,
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._app_id = app_id
        self._service_urls = service_urls

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        # Every client, for a reply or a proactive send, carries the bot's token to
        # `service_url`: refuse before one is made for an address outside the list.
        if self._service_urls is not None:
            self._service_urls.check(service_url)
        key = ("connector", self._app_id, service_url or "", audience or "")
        client = self._cache.get(key)
        if client is None:
            client = await self._inner.create(service_url, audience)
            self._cache.put(key, client)
        return client


class CachingBotFrameworkAuthentication(BotFrameworkAuthentication):
    """Caches connector clients; with `service_urls`, makes them only for allowed URLs."""

    def __init__(
        self,
        inner: BotFrameworkAuthentication,
        cache: ClientCache | None = None,
        service_urls: ServiceUrlPolicy | None = None,
    ) -> None:
        self._inner = inner
        self.cache = cache or ClientCache()
        self.service_urls = service_urls

    def _wrap(self, result: AuthenticateRequestResult) -> AuthenticateRequestResult:
        if result.connector_factory is not None:
            result.connector_factory = CachingConnectorFactory(
                result.connector_factory,
                self.cache,
                _app_id_of(result.claims_identity),
                self.service_urls,
            )
        return result

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        return self._wrap(await self._inner.authenticate_request(activity, auth_header))

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        return self._wrap(
            await self._inner.authenticate_streaming_request(auth_header, channel_id_header)
        )

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return CachingConnectorFactory(
            self._inner.create_connector_factory(claims_identity),
            self.cache,
            _app_id_of(claims_identity),
            self.service_urls,
        )

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        key = ("user-token", _app_id_of(claims_identity))
        client = self.cache.get(key)
        if client is None:
            client = await self._inner.create_user_token_client(claims_identity)
            self.cache.put(key, client)
        return client

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return str(self._inner.get_originating_audience())

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._inner.authenticate_channel_request(auth_header)

    def close(self) -> None:
        """Release what the wrapped authentication holds (its worker thread, if any)."""
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
