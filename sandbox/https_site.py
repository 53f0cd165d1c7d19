"""An aiohttp application served over HTTPS on an ephemeral port of 127.0.0.1.

The local stand-ins of Azure services serve HTTPS because azure-core refuses to send
bearer tokens over plain http. Without given TLS material, a throwaway CA and server
certificate are generated at start and removed at stop.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sandbox.tls import TlsMaterial, generate_tls


class HttpsSite:
    """Starts and stops one HTTPS server for the application `app_factory` builds."""

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        tls: TlsMaterial | None = None,
        *,
        name: str = "the server",
    ) -> None:
        self._app_factory = app_factory
        self._tls = tls
        self._owns_tls = tls is None
        self._name = name
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{self._name} is not started")
        return self._base_url

    @property
    def ca_path(self) -> str:
        if self._tls is None:
            raise RuntimeError(f"{self._name} is not started")
        return str(self._tls.ca_path)

    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; return the base URL."""
        if self._tls is None:
            self._tls = generate_tls()
        self._runner = web.AppRunner(self._app_factory(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, host="127.0.0.1", port=0, ssl_context=self._tls.server_context()
        )
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"https://127.0.0.1:{port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._owns_tls and self._tls is not None:
            self._tls.cleanup()
            self._tls = None
        self._base_url = None
