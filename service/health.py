"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from aiohttp import web

from store.database import Database


class HealthRoutes:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def healthz(self, request: web.Request) -> web.Response:
        # Alive means the event loop answers; dependencies are /readyz's business.
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = await self._db.readiness()
        body = {
            "status": "ready" if readiness.ready else "not ready",
            "database": readiness.detail,
            "schema_revision": readiness.revision,
        }
        return web.json_response(body, status=200 if readiness.ready else 503)
