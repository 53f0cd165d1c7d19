"""GET /metrics: what mlbot is watching and delivering, in the Prometheus text format.

Only counts and versions are exposed: no names, conversation ids or secrets, so the
route carries no authentication (scrape it from inside the network, like /healthz).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from domain.leadership import LeaderView, Role
from store.gauges import StoreGauges

if TYPE_CHECKING:  # it renders with this module's escaping
    from service.training_metrics import TrainingMetrics

CONTENT_TYPE = "text/plain"  # with version=0.0.4, the Prometheus exposition format


def label_value(value: str) -> str:
    """A label value escaped as the exposition format wants it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    name: str, help_text: str, kind: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{label_value(val)}"' for key, val in sorted(labels.items()))
        lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
    return lines


def _by(label: str, counts: Mapping[str, int]) -> list[tuple[Mapping[str, str], float]]:
    return [({label: key}, float(count)) for key, count in sorted(counts.items())]


def _leader_families(view: LeaderView | None) -> list[str]:
    if view is None:
        return []
    return [
        *_family(
            "mlbot_replica_is_leader",
            "1 when this replica runs the engine, the health watch and deliveries.",
            "gauge",
            [({"replica": view.replica_id}, 1.0 if view.role is Role.LEADER else 0.0)],
        ),
        *_family(
            "mlbot_leader_info",
            "The replica that leads, as this replica knows it (none while nobody does).",
            "gauge",
            [({"replica": view.replica_id, "leader": view.leader or "none"}, 1.0)],
        ),
    ]


def render_metrics(
    gauges: StoreGauges,
    *,
    version: str,
    revision: str | None,
    extra: Sequence[str] = (),
    leader: LeaderView | None = None,
) -> str:
    """The exposition text; every family is present even when it has no samples yet.

    `extra` are further families, already in the exposition format (training figures)."""
    lines = [
        *_family(
            "mlbot_info",
            "mlbot's version and the store's schema revision.",
            "gauge",
            [({"version": version, "schema_revision": revision or "none"}, 1.0)],
        ),
        *_family(
            "mlbot_watched_jobs",
            "Azure ML jobs in the store, by state.",
            "gauge",
            _by("state", gauges.jobs_by_state),
        ),
        *_family(
            "mlbot_monitoring_sessions",
            "Monitoring sessions, by status.",
            "gauge",
            _by("status", gauges.sessions_by_status),
        ),
        *_family(
            "mlbot_events",
            "Events recorded (training, deployment, rollback...).",
            "gauge",
            [({}, float(gauges.events_total))],
        ),
        *_family(
            "mlbot_events_undelivered",
            "Events not yet delivered everywhere they should go.",
            "gauge",
            [({}, float(gauges.events_undelivered))],
        ),
        *_family(
            "mlbot_deliveries",
            "Deliveries of events to destinations, by status.",
            "gauge",
            _by("status", gauges.deliveries_by_status),
        ),
        *_family(
            "mlbot_deployment_watches",
            "Deployment health watches, by status.",
            "gauge",
            _by("status", gauges.watches_by_status),
        ),
        *_leader_families(leader),
        *extra,
    ]
    return "\n".join(lines) + "\n"


class MetricsRoute:
    def __init__(
        self,
        read: Callable[[], Awaitable[StoreGauges]],
        revision: Callable[[], Awaitable[str | None]],
        version: str,
        leader: Callable[[], LeaderView] | None = None,
        training: TrainingMetrics | None = None,
    ) -> None:
        self._read = read
        self._revision = revision
        self._version = version
        self._leader = leader
        self._training = training

    async def get(self, request: web.Request) -> web.Response:
        try:
            gauges = await self._read()
            revision = await self._revision()
            if self._training is not None:
                await self._training.collect()
        except Exception as exc:  # the store is down: say so, as /readyz does
            return web.json_response(
                {"error": f"store unavailable: {type(exc).__name__}"}, status=503
            )
        extra = self._training.lines() if self._training is not None else []
        body = render_metrics(
            gauges,
            version=self._version,
            revision=revision,
            extra=extra,
            leader=self._leader() if self._leader is not None else None,
        )
        return web.Response(text=body, content_type=CONTENT_TYPE, charset="utf-8")
