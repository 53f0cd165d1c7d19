"""Azure DevOps service hooks, as the sandbox's emulated Azure DevOps sends them.

A real Azure DevOps project has service hook subscriptions ("Run stage state changed",
"Approval pending", Web Hooks) that post to mlbot's `/api/hooks/devops`. The sandbox
plays that part: when a deployment or rollback stage finishes, `ServiceHookSender` posts
the documented `ms.vss-pipelines.stage-state-changed-event` body to every subscriber, and
when an approval starts waiting the `ms.vss-pipelinechecks-events.approval-pending` one,
retrying failed deliveries a few times as Azure DevOps does. Bodies are built by pure
functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

STAGE_STATE_CHANGED = "ms.vss-pipelines.stage-state-changed-event"
APPROVAL_PENDING = "ms.vss-pipelinechecks-events.approval-pending"
_RETRY_DELAYS_S = (0.2, 1.0, 5.0, 15.0)


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage of a pipeline run that completed (what the hook reports)."""

    org_url: str
    project: str
    pipeline_id: int
    pipeline_name: str
    run_id: int
    run_name: str
    stage: str  # e.g. Deploy_Prod, Rollback_Prod
    result: str  # succeeded | failed | canceled
    finished: dt.datetime


@dataclass(frozen=True, slots=True)
class ApprovalPending:
    """An approval check that started waiting at a stage of a run (what the hook reports)."""

    org_url: str
    project: str
    pipeline_id: int
    pipeline_name: str
    run_id: int
    run_name: str
    stage: str
    environment: str
    approval_id: str
    approvers: tuple[str, ...]
    instructions: str
    created: dt.datetime


def stage_name(action: str, environment: str) -> str:
    """`Deploy_Prod` / `Rollback_Prod`: the stage naming mlbot reads environments from."""
    return f"{action}_{environment[:1].upper()}{environment[1:]}"


def stage_finished_body(event: StageFinished, notification_id: str) -> dict[str, Any]:
    """The JSON Azure DevOps posts for a finished stage (resource version 5.1-preview.1)."""
    run_url = f"{event.org_url}/{event.project}/_build/results?buildId={event.run_id}"
    finished = event.finished.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    pipeline = {
        "id": event.pipeline_id,
        "name": event.pipeline_name,
        "url": f"{event.org_url}/{event.project}/_apis/pipelines/{event.pipeline_id}",
    }
    # Worded as the published samples are: "Run 2 stage __default succeeded."
    text = f"Run {event.run_name} stage {event.stage} {event.result}."
    return {
        "subscriptionId": "00000000-0000-0000-0000-00000000b00c",
        "notificationId": 1,
        "id": notification_id,
        "eventType": STAGE_STATE_CHANGED,
        "publisherId": "pipelines",
        "message": {"text": text, "markdown": text},
        "detailedMessage": {"text": text},
        "resource": {
            "stage": {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_url}#{event.stage}")),
                "name": event.stage,
                "displayName": event.stage.replace("_", " "),
                "state": "completed",
                "result": event.result,
                "_links": {"web": {"href": f"{run_url}&view=results"}},
            },
            "run": {
                "pipeline": pipeline,
                "state": "completed",
                "result": event.result,
                "createdDate": finished,
                "finishedDate": finished,
                "id": event.run_id,
                "name": event.run_name,
                "_links": {"web": {"href": run_url}},
            },
            "pipeline": pipeline,
        },
        "resourceVersion": "5.1-preview.1",
        "createdDate": finished,
    }


def approval_pending_body(event: ApprovalPending, notification_id: str) -> dict[str, Any]:
    """The JSON Azure DevOps posts when an approval starts waiting (resource version
    5.1-preview.1): the approval with its steps, and the run, stage and pipeline it holds."""
    run_url = f"{event.org_url}/{event.project}/_build/results?buildId={event.run_id}"
    created = event.created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    pipeline = {
        "id": event.pipeline_id,
        "name": event.pipeline_name,
        "url": f"{event.org_url}/{event.project}/_apis/pipelines/{event.pipeline_id}",
    }
    text = (
        f"Approval pending for deployment of pipeline {event.run_name} "
        f"to environment {event.environment}."
    )
    steps = [
        {
            "assignedApprover": {
                "displayName": name,
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            },
            "status": "pending",
            "comment": None,
            "initiatedOn": created,
        }
        for name in event.approvers
    ]
    return {
        "subscriptionId": "00000000-0000-0000-0000-00000000b00c",
        "notificationId": 1,
        "id": notification_id,
        "eventType": APPROVAL_PENDING,
        "publisherId": "pipelines",
        "message": {"text": text, "markdown": text},
        "detailedMessage": {"text": text},
        "resource": {
            "approval": {
                "id": event.approval_id,
                "steps": steps,
                "status": "pending",
                "createdOn": created,
                "lastModifiedOn": created,
                "instructions": event.instructions,
                "minRequiredApprovers": 1,
                "blockedApprovers": [],
                "_links": {},
            },
            "pipeline": pipeline,
            "stage": {"name": event.stage, "displayName": event.stage.replace("_", " ")},
            "run": {
                "id": event.run_id,
                "name": event.run_name,
                "_links": {"web": {"href": run_url}},
            },
            "resource": {"type": "environment", "name": event.environment},
            "stageName": event.stage,
            "attemptId": 1,
        },
        "resourceVersion": "5.1-preview.1",
        "createdDate": created,
    }


@dataclass(slots=True)
class Delivery:
    url: str  # as given, secret included: never logged
    event_type: str
    stage: str
    run_id: int
    status: int | None = None  # the subscriber's last HTTP answer
    attempts: int = 0
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "stage": self.stage,
            "run_id": self.run_id,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
        }


HookEvent = StageFinished | ApprovalPending


@dataclass
class ServiceHookSender:
    """Posts finished-stage and pending-approval notifications to subscribers in the
    background."""

    subscribers: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # Everything published, so a subscriber added after the sandbox started (the bot
    # subscribes once it is built) still hears what happened first.
    published: list[tuple[HookEvent, dict[str, Any]]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def subscribe(self, url: str) -> None:
        """Add a subscriber; it is sent what was published before, in order."""
        if url in self.subscribers:
            return
        self.subscribers.append(url)
        for event, body in self.published:
            self._send(url, event, body)

    def publish(self, event: HookEvent) -> None:
        """Send to every subscriber; needs a running event loop (the sandbox has one)."""
        if isinstance(event, ApprovalPending):
            body = approval_pending_body(event, str(uuid.uuid4()))
        else:
            body = stage_finished_body(event, str(uuid.uuid4()))
        self.published.append((event, body))
        for url in self.subscribers:
            self._send(url, event, body)

    def _send(self, url: str, event: HookEvent, body: dict[str, Any]) -> None:
        delivery = Delivery(url, str(body["eventType"]), event.stage, event.run_id)
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every delivery under way has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, delivery: Delivery, body: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for delay in (0.0, *_RETRY_DELAYS_S):
            if delay:
                await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                async with self._session.post(delivery.url, json=body) as response:
                    delivery.status = response.status
                    delivery.error = None
                    if response.status < 300:
                        return
                    delivery.error = f"answered {response.status}"
                    if response.status < 500 and response.status != 429:
                        break  # the subscriber refuses it; retrying will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.error = type(exc).__name__
        log.warning(
            "sandbox service hook %s for run %s not delivered: %s",
            delivery.stage,
            delivery.run_id,
            delivery.error,
        )
