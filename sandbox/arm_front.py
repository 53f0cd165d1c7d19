"""One HTTPS origin for the sandbox's Azure: Resource Manager and Entra ID sign-in.

Real Azure has one Resource Manager endpoint for every resource provider, so a real-mode
`mlbot serve` has one setting for it (`MLBOT_AZURE_RESOURCE_MANAGER_URL`). The front
serves the Azure ML jobs and Azure Monitor metrics emulators' routes on one origin, and
the Entra ID stand-in's token endpoint beside them (`MLBOT_AZURE_AUTHORITY_HOST`), all
under one generated CA (`MLBOT_CA_BUNDLE`). Resource Manager calls must carry a bearer
token the Entra ID stand-in issued, as real ARM refuses any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.azureml_emulator import AzureMLEmulator
from sandbox.entra_emulator import EntraEmulator
from sandbox.faults import arm_error
from sandbox.https_site import HttpsSite
from sandbox.metrics_emulator import MetricsEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ArmFront:
    def __init__(
        self, azureml: AzureMLEmulator, metrics: MetricsEmulator, entra: EntraEmulator
    ) -> None:
        self.azureml = azureml
        self.metrics = metrics
        self.entra = entra
        self.unauthenticated = 0  # Resource Manager calls refused for their token
        self._site = HttpsSite(self.app, name="the Resource Manager front")

    @property
    def base_url(self) -> str:
        return self._site.base_url

    @property
    def ca_path(self) -> str:
        return self._site.ca_path

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._require_entra_token])
        self.azureml.add_routes(app)
        self.metrics.add_routes(app)
        self.entra.add_routes(app)
        return app

    async def start(self) -> str:
        url = await self._site.start()
        self.entra.base_url = url
        return url

    async def stop(self) -> None:
        await self._site.stop()

    @web.middleware
    async def _require_entra_token(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if request.path.startswith("/subscriptions/"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not self.entra.knows(token.strip()):
                self.unauthenticated += 1
                refused = arm_error(
                    401, "InvalidAuthenticationToken", "The access token is invalid."
                )
                refused.headers["WWW-Authenticate"] = (
                    'Bearer authorization_uri="'
                    f'{self.entra.base_url.rstrip("/")}/{self.entra.principal.tenant_id}", '
                    'error="invalid_token", error_description="The access token is invalid."'
                )
                return refused
        return await handler(request)
