"""The shared secret that Azure DevOps, Event Grid and Azure Monitor hooks present.

Event Grid and Azure Monitor can only carry it in the URL (`?key=`); Azure DevOps
service hooks can also send it as the basic-auth password. Without a configured
secret the hook endpoints refuse everything: an open hook would let anyone trigger
checks (or, later, rollbacks).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from enum import StrEnum

from aiohttp import web


class HookAccess(StrEnum):
    ALLOWED = "allowed"
    NOT_CONFIGURED = "not configured"
    MISSING = "missing"
    WRONG = "wrong"


def presented_secret(query_key: str | None, authorization: str | None) -> str | None:
    if query_key:
        return query_key
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def check_hook_secret(
    configured: str, query_key: str | None, authorization: str | None
) -> HookAccess:
    if not configured:
        return HookAccess.NOT_CONFIGURED
    presented = presented_secret(query_key, authorization)
    if presented is None:
        return HookAccess.MISSING
    # Constant time: the comparison must not tell how much of a guess was right.
    if hmac.compare_digest(presented.encode(), configured.encode()):
        return HookAccess.ALLOWED
    return HookAccess.WRONG


def refusal(access: HookAccess, *, basic_auth: bool = False) -> web.Response | None:
    """The answer to a hook call without a valid secret; None when it may proceed."""
    if access is HookAccess.ALLOWED:
        return None
    if access is HookAccess.NOT_CONFIGURED:
        return web.json_response(
            {"error": "hooks are disabled until MLBOT_HOOK_SECRET is set"}, status=403
        )
    if basic_auth:
        # Azure DevOps' web hook form offers basic authentication: the challenge names it.
        return web.json_response(
            {"error": "a valid ?key= or basic-auth password is required"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="mlbot hooks"'},
        )
    return web.json_response({"error": "a valid ?key= is required"}, status=401)


def refuse_request(
    request: web.Request, secret: str, *, basic_auth: bool = False
) -> web.Response | None:
    """Check the secret a hook request presents; the refusal to answer, or None."""
    access = check_hook_secret(
        secret, request.query.get("key"), request.headers.get("Authorization")
    )
    return refusal(access, basic_auth=basic_auth)
