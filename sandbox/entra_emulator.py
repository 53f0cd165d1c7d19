"""A stand-in for Microsoft Entra ID's token endpoint (client credentials only).

Real mode signs in with azure-identity, which asks MSAL for a token: MSAL reads the
tenant's OpenID configuration under the authority, then posts the service principal's
client id and secret to its token endpoint. This stand-in answers both, for one tenant
and one service principal, in the documented shapes (an AADSTS error body for a wrong
secret), and remembers the tokens it issued so the Resource Manager stand-in can refuse
any other bearer token.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.credentials import unsigned_jwt

_TOKEN_LIFETIME_S = 3600


@dataclass(slots=True)
class ServicePrincipal:
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def _oauth_error(status: int, error: str, code: int, description: str) -> web.Response:
    return web.json_response(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status=status,
    )


class EntraEmulator:
    """Token endpoint routes for one tenant; mount them with `add_routes` on an HTTPS app."""

    def __init__(self, principal: ServicePrincipal | None = None) -> None:
        self.principal = principal or ServicePrincipal()
        self.base_url = ""  # set by whoever serves the routes
        self.issued: set[str] = set()
        self.refused = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(
            "/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration
        )
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)

    def knows(self, token: str) -> bool:
        return token in self.issued

    def _tenant_or_error(self, request: web.Request) -> web.Response | None:
        if request.match_info["tenant"] != self.principal.tenant_id:
            return _oauth_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{request.match_info['tenant']}' not found.",
            )
        return None

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        wrong = self._tenant_or_error(request)
        if wrong is not None:
            return wrong
        tenant = self.principal.tenant_id
        root = f"{self.base_url.rstrip('/')}/{tenant}"
        return web.json_response(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "tenant_region_scope": "EU",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        wrong = self._tenant_or_error(request)
        if wrong is not None:
            return wrong
        form = {key: str(value) for key, value in (await request.post()).items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.principal.client_id:
            self.refused += 1
            return _oauth_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{self.principal.tenant_id}'.",
            )
        if form.get("client_secret") != self.principal.client_secret:
            self.refused += 1
            return _oauth_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID.",
            )
        scope = form.get("scope", "")
        audience = scope.split()[0].removesuffix("/.default") if scope else ""
        now = int(time.time())
        token = unsigned_jwt(
            {
                "aud": audience,
                "iss": f"{self.base_url.rstrip('/')}/{self.principal.tenant_id}/v2.0",
                "tid": self.principal.tenant_id,
                "appid": self.principal.client_id,
                "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.principal.client_id)),
                "iat": now,
                "nbf": now,
                "exp": now + _TOKEN_LIFETIME_S,
                "jti": uuid.uuid4().hex,
            }
        )
        self.issued.add(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": _TOKEN_LIFETIME_S,
                "ext_expires_in": _TOKEN_LIFETIME_S,
                "access_token": token,
            }
        )
