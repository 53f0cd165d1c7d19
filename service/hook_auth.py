"""What a hook call must show before it may act: its hook's secret and a fresh timestamp.

Each hook has its own secret (`MLBOT_DEVOPS_HOOK_SECRET`, `MLBOT_EVENTGRID_HOOK_SECRET`,
`MLBOT_ALERTS_HOOK_SECRET`), so a leaked Event Grid URL cannot post deployments or
alerts. Event Grid and Azure Monitor can only carry it in the URL (`?key=`); Azure
DevOps service hooks can also send it as the basic-auth password. Without a configured
secret a hook refuses everything: an open hook would let anyone trigger checks.

A notification whose own timestamp is older than the replay window (or too far ahead)
is refused, so a captured call cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aiohttp import web

# Senders' clocks run a little ahead of ours at times; further ahead is a forgery.
CLOCK_SKEW = timedelta(minutes=5)


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


def refusal(access: HookAccess, *, setting: str, basic_auth: bool = False) -> web.Response | None:
    """The answer to a hook call without a valid secret; None when it may proceed."""
    if access is HookAccess.ALLOWED:
        return None
    if access is HookAccess.NOT_CONFIGURED:
        return web.json_response(
            {"error": f"this hook is disabled until {setting} is set"}, status=403
        )
    if basic_auth:
        # Azure DevOps' web hook form offers basic authentication: the challenge names it.
        return web.json_response(
            {"error": "a valid ?key= or basic-auth password is required"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="mlbot hooks"'},
        )
    return web.json_response({"error": "a valid ?key= is required"}, status=401)


def staleness(at: datetime | None, now: datetime, max_age: timedelta) -> str | None:
    """Why a notification stamped `at` is refused as a replay; None when it is fresh."""
    if at is None:
        return "the notification carries no timestamp"
    if at < now - max_age:
        return f"the notification is older than {int(max_age.total_seconds())} s"
    if at > now + CLOCK_SKEW:
        return "the notification is stamped in the future"
    return None


@dataclass(frozen=True, slots=True)
class HookGuard:
    """One hook's secret (by the setting that holds it) and its replay window."""

    setting: str  # e.g. MLBOT_ALERTS_HOOK_SECRET: named when the hook is disabled
    secret: Callable[[], str]
    clock: Callable[[], datetime]
    max_age: Callable[[], timedelta]

    def refuse(self, request: web.Request, *, basic_auth: bool = False) -> web.Response | None:
        """Check the secret a request presents; the refusal to answer, or None."""
        access = check_hook_secret(
            self.secret(), request.query.get("key"), request.headers.get("Authorization")
        )
        return refusal(access, setting=self.setting, basic_auth=basic_auth)

    def stale(self, at: datetime | None) -> str | None:
        return staleness(at, self.clock(), self.max_age())

    def stale_response(self, at: datetime | None) -> web.Response | None:
        """A 400 for a notification outside the replay window (retrying cannot help)."""
        reason = self.stale(at)
        if reason is None:
            return None
        return web.json_response({"error": f"refused as a replay: {reason}"}, status=400)
