"""POST /api/hooks/alerts: Azure Monitor alerts about watched endpoints feed the health watch.

An action group's webhook (common alert schema enabled) posts here with the hook secret
as `?key=` or the basic-auth password. A Fired metric alert about a watched online
endpoint counts as a failed health check, a Resolved one as a passing check; alerts
about anything else are acknowledged and ignored (`matched: 0`), so Azure does not retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitoring.health import AlertPayloadError, AlertSignal, parse_common_alert
from service.hook_auth import refuse_request

log = logging.getLogger(__name__)

AlertHandler = Callable[[AlertSignal], Awaitable[int]]


class AlertsHook:
    """The route handler; `on_alert` returns how many watches the alert matched."""

    def __init__(self, secret: Callable[[], str], on_alert: AlertHandler | None) -> None:
        self._secret = secret
        self._on_alert = on_alert

    async def post(self, request: web.Request) -> web.Response:
        refused = refuse_request(request, self._secret())
        if refused is not None:
            return refused
        try:
            signal = parse_common_alert(json.loads(await request.read()))
        except (AlertPayloadError, ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"error": f"not an Azure Monitor alert: {exc}"}, status=400)
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
