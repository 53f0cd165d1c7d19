"""POST /api/hooks/eventgrid: Azure ML run events make the affected session check now.

Event Grid raises `RunStatusChanged` (only for some statuses) and `RunCompleted`; they
are hints, never the source of truth: the engine re-reads the job from Azure ML.
Both the Event Grid schema (with its SubscriptionValidationEvent handshake) and the
CloudEvents schema (with its OPTIONS handshake) are accepted. Calls present
`MLBOT_EVENTGRID_HOOK_SECRET` as `?key=`; a delivery with an event stamped outside the
replay window (`eventTime`, CloudEvents `time`) is refused.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from service.hook_auth import HookGuard

log = logging.getLogger(__name__)

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
RUN_EVENTS = frozenset({RUN_STATUS_CHANGED, RUN_COMPLETED})
_TOPIC = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PushedRun:
    workspace_key: str | None  # "subscription/resource-group/workspace"
    job_name: str | None
    status: str | None


@dataclass
class EventGridBatch:
    validation_code: str | None = None
    runs: list[PushedRun] = field(default_factory=list)
    ignored: int = 0


def workspace_key_from_topic(topic: str) -> str | None:
    match = _TOPIC.search(topic or "")
    if match is None:
        return None
    return f"{match['sub']}/{match['rg']}/{match['ws']}"


def resolve_workspace_key(key: str | None, known: Iterable[str]) -> str | None:
    """`key` as mlbot spells that workspace, compared without case.

    ARM ids are case-insensitive and Azure does not keep one spelling: topics arrive with
    `resourcegroups` or `resourceGroups` and names lower-cased. A key no configured
    workspace matches is returned as it came (the engine then looks for new jobs).
    """
    if key is None:
        return None
    wanted = key.lower()
    return next((candidate for candidate in known if candidate.lower() == wanted), key)


def parse_eventgrid(body: Any) -> EventGridBatch:
    """Read an Event Grid (or CloudEvents) delivery; ValueError says what is malformed."""
    items = body if isinstance(body, list) else [body]
    batch = EventGridBatch()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"event {index} is not an object")
        kind = item.get("eventType") or item.get("type")
        if not isinstance(kind, str):
            raise ValueError(f"event {index} has no eventType")
        data = item.get("data")
        data = data if isinstance(data, dict) else {}
        if kind == VALIDATION_EVENT:
            code = data.get("validationCode")
            if not isinstance(code, str) or not code:
                raise ValueError("the validation event has no validationCode")
            batch.validation_code = code
        elif kind in RUN_EVENTS:
            topic = item.get("topic") or item.get("source") or ""
            run_id = data.get("runId")
            # `RunCompleted` carries no status: it is raised for successful runs only.
            status = data.get("runStatus") or ("Completed" if kind == RUN_COMPLETED else None)
            batch.runs.append(
                PushedRun(
                    workspace_key_from_topic(str(topic)),
                    run_id if isinstance(run_id, str) else None,
                    status if isinstance(status, str) else None,
                )
            )
        else:
            batch.ignored += 1
    return batch


# (workspace key, job name, pushed status): the status only says how soon to look.
PushHandler = Callable[[str | None, str | None, str | None], Awaitable[int]]


def event_times(body: Any) -> list[datetime | None]:
    """The time of every event of a delivery except the validation handshake."""
    items = body if isinstance(body, list) else [body]
    times: list[datetime | None] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if (item.get("eventType") or item.get("type")) == VALIDATION_EVENT:
            continue
        raw = item.get("eventTime") or item.get("time")
        try:
            at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            at = None
        times.append(at if at is None or at.tzinfo is not None else None)
    return times


class EventGridHook:
    def __init__(
        self,
        guard: HookGuard,
        on_push: PushHandler | None,
        workspaces: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._guard = guard
        self._on_push = on_push
        # The configured workspace keys: a topic is matched to them without case.
        self._workspaces = workspaces

    async def options(self, request: web.Request) -> web.Response:
        """CloudEvents abuse-protection handshake."""
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        origin = request.headers.get("WebHook-Request-Origin", "*")
        # The CloudEvents webhook spec asks for the allowed rate too (requests per minute;
        # `*` = no limit): Event Grid's handshake reads both headers.
        return web.Response(
            status=200,
            headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"},
        )

    async def post(self, request: web.Request) -> web.Response:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read())
            batch = parse_eventgrid(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return web.json_response({"error": f"not an Event Grid delivery: {exc}"}, status=400)
        if batch.validation_code is not None:
            return web.json_response({"validationResponse": batch.validation_code})
        for at in event_times(body):
            stale = self._guard.stale_response(at)
            if stale is not None:
                log.warning("event grid: delivery refused, outside the replay window")
                return stale
        checked = 0
        if self._on_push is not None:
            known = list(self._workspaces())
            for run in batch.runs:
                key = resolve_workspace_key(run.workspace_key, known)
                checked += await self._on_push(key, run.job_name, run.status)
        log.info("event grid: %d run event(s), %d session(s) to check", len(batch.runs), checked)
        return web.json_response({"accepted": len(batch.runs), "ignored": batch.ignored})
