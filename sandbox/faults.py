"""Request admission and fault injection shared by the ARM-style emulators.

Each emulator logs a request, then asks its `FaultQueue` to admit it: the queue checks
the bearer token and answers with the next queued fault, if any, the way Azure Resource
Manager would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web


class FaultKind(StrEnum):
    THROTTLE = "throttle"  # 429 with Retry-After
    SERVER_ERROR = "server_error"  # 500
    SLOW = "slow"  # the normal answer, after a delay
    MALFORMED = "malformed"  # 200 with a body that is not JSON
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404
    HANG = "hang"  # no answer until released (`release_hung`) or the emulator stops


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    retry_after_s: float = 1.0
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]


def arm_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class FaultQueue:
    """Faults queued for the next requests; `forbidden_action` names the denied action."""

    def __init__(self, forbidden_action: str) -> None:
        self.forbidden_action = forbidden_action
        self._faults: deque[Fault] = deque()
        self._closing = asyncio.Event()
        self._released = asyncio.Event()
        self._hanging = 0
        self._hang_changed = asyncio.Condition()

    def inject(self, kind: FaultKind | str, count: int = 1, **params: float) -> None:
        """Answer the next `count` requests with a fault (`retry_after_s`, `delay_s`)."""
        fault = Fault(FaultKind(kind), **params)
        self._faults.extend([fault] * count)

    def clear(self) -> None:
        self._faults.clear()

    @property
    def hanging(self) -> int:
        """How many requests HANG faults hold right now."""
        return self._hanging

    async def wait_hanging(self, count: int) -> None:
        """Until at least `count` requests are held by HANG faults."""
        async with self._hang_changed:
            await self._hang_changed.wait_for(lambda: self._hanging >= count)

    def release_hung(self) -> None:
        """Answer every request held by a HANG fault, and any that a queued one catches."""
        self._released.set()

    def open(self) -> None:
        self._closing.clear()
        self._released.clear()

    def close(self) -> None:
        self._closing.set()  # releases answers held back by SLOW faults
        self._released.set()  # and by HANG faults

    async def admit(self, request: web.Request) -> web.Response | None:
        """Check the bearer token and apply a queued fault; None lets the request through."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            return arm_error(401, "AuthenticationFailed", "Authentication failed.")
        if not self._faults:
            return None
        fault = self._faults.popleft()
        if fault.kind is FaultKind.THROTTLE:
            response = arm_error(429, "TooManyRequests", "Too many requests.")
            response.headers["Retry-After"] = f"{fault.retry_after_s:g}"
            return response
        if fault.kind is FaultKind.SERVER_ERROR:
            return arm_error(500, "InternalServerError", "Something went wrong.")
        if fault.kind is FaultKind.MALFORMED:
            return web.Response(status=200, text='{"value": [', content_type="application/json")
        if fault.kind is FaultKind.UNAUTHORIZED:
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if fault.kind is FaultKind.FORBIDDEN:
            return arm_error(
                403,
                "AuthorizationFailed",
                "The client does not have authorization to perform action "
                f"'{self.forbidden_action}'.",
            )
        if fault.kind is FaultKind.NOT_FOUND:
            return arm_error(404, "ResourceNotFound", "The resource was not found.")
        if fault.kind is FaultKind.HANG:
            await self._hang()
        if fault.kind is FaultKind.SLOW:
            # Held back until the delay passes or the emulator stops, whichever is first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=fault.delay_s)
        return None

    async def _hang(self) -> None:
        async with self._hang_changed:
            self._hanging += 1
            self._hang_changed.notify_all()
        try:
            await self._released.wait()
        finally:
            async with self._hang_changed:
                self._hanging -= 1
                self._hang_changed.notify_all()
