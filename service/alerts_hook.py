"""POST /api/hooks/alerts: Azure Monitor alerts about watched endpoints feed the health watch.

An action group's webhook (common alert schema enabled) posts here with
`MLBOT_ALERTS_HOOK_SECRET` as `?key=` or the basic-auth password. An alert about a
watched online endpoint makes that watch read the endpoint's metrics now: the alert is a
reason to look, never a verdict, so a forged alert cannot fail a check or cause a
rollback. Alerts about anything else are acknowledged and ignored (`matched: 0`), so
Azure does not retry; alerts stamped outside the replay window are refused (400).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitoring.health import AlertPayloadError, AlertSignal, parse_common_alert
from service.hook_auth import HookGuard

log = logging.getLogger(__name__)

AlertHandler = Callable[[AlertSignal], Awaitable[int]]


class AlertsHook:
    """The route handler; `on_alert` returns how many watches the alert matched."""

    def __init__(self, guard: HookGuard, on_alert: AlertHandler | None) -> None:
        self._guard = guard
        self._on_alert = on_alert

    async def post(self, request: web.Request) -> web.Response:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        try:
            signal = parse_common_alert(json.loads(await request.read()))
        except (AlertPayloadError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            return web.json_response({"error": f"not an Azure Monitor alert: {exc}"}, status=400)
        stale = self._guard.stale_response(signal.at)
        if stale is not None:
            log.warning("alert %.200s refused: outside the replay window", signal.rule)
            return stale
        matched = 0
        if self._on_alert is not None:
            try:
                matched = await self._on_alert(signal)
            except AlertPayloadError as exc:
                return web.json_response(
                    {"error": f"not an Azure Monitor alert: {exc}"}, status=400
                )
        log.info(
            "alert %s (%s) %s: %d watch(es) matched",
            signal.rule,
            signal.severity,
            signal.condition.value,
            matched,
        )
        return web.json_response({"matched": matched})
