"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from domain.leadership import LeaderView
from store.database import Database


def leader_json(view: LeaderView) -> dict[str, Any]:
    """This replica and who leads, as /readyz shows them."""
    return {"id": view.replica_id, "role": view.role.value, "leader": view.leader}


class HealthRoutes:
    def __init__(self, db: Database, leader: Callable[[], LeaderView] | None = None) -> None:
        self._db = db
        self._leader = leader

    async def healthz(self, request: web.Request) -> web.Response:
        # Alive means the event loop answers; dependencies are /readyz's business.
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = await self._db.readiness()
        body: dict[str, Any] = {
            "status": "ready" if readiness.ready else "not ready",
            "database": readiness.detail,
            "schema_revision": readiness.revision,
        }
        if self._leader is not None:
            # Every replica is ready to serve hooks and chat; only one runs the engine.
            body["replica"] = leader_json(self._leader())
        return web.json_response(body, status=200 if readiness.ready else 503)
