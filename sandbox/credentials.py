"""A fixed bearer token for talking to local emulators (never to Azure)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from azure.core.credentials import AccessToken

SANDBOX_TENANT_ID = "00000000-0000-0000-0000-000000000000"


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token without a signature: SDKs read claims (e.g. `tid`) from it."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


class StaticTokenCredential:
    """Implements azure-core's `TokenCredential` protocol with a constant fake token."""

    def __init__(self, tenant_id: str = SANDBOX_TENANT_ID, lifetime_s: int = 3600) -> None:
        self._tenant_id = tenant_id
        self._lifetime_s = lifetime_s
        self.requests = 0  # how many tokens were handed out

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requests += 1
        expires_on = int(time.time()) + self._lifetime_s
        # azure-ai-ml reads the tenant from the token to add it to Studio links.
        token = unsigned_jwt(
            {"tid": tenant_id or self._tenant_id, "sub": "mlbot-sandbox", "exp": expires_on}
        )
        return AccessToken(token, expires_on)
