"""Azure Machine Learning's Event Grid events, as published, through mlbot's parser and hook.

Sources (MicrosoftDocs/azure-docs), stored verbatim:
- `articles/event-grid/event-schema-machine-learning.md` at
  0aa2b14aec0e5cae30883a8e96f8eafafc88767f ("Example events"):
  `RunStatusChanged` in the Event Grid schema -> examples/eventgrid_ml_run_status_changed.json,
  `RunCompleted` in the Cloud event schema -> examples/eventgrid_ml_run_completed_cloudevent.json,
  `ModelRegistered` (an event mlbot does not use) -> examples/eventgrid_ml_model_registered.json;
  its "Event properties" tables document the `data` fields of both run events:
  `experimentId, experimentName, runId, runType, runTags, runProperties` (+ `runStatus`
  for RunStatusChanged).
- `articles/event-grid/webhook-event-delivery.md` at 0b9b1f7c4ef21f183a34660b5cffdd1fdb4efc03
  (the SubscriptionValidationEvent example and its `validationResponse` answer)
  -> examples/eventgrid_subscription_validation.json.

The samples' topic is a template (`/subscriptions/{subscription-id}/...`); the tests that
need a real workspace fill it the way Azure sends real ids, including lower-cased ones.
The hook's clock is set just after each sample's `eventTime`, so the published times pass
the replay window.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.eventgrid import EventGridHook, parse_eventgrid, resolve_workspace_key
from service.hook_auth import HookGuard

EXAMPLES = Path(__file__).parent / "examples"
RUN_DATA_FIELDS = {
    "experimentId",
    "experimentName",
    "runId",
    "runType",
    "runTags",
    "runProperties",
}
JOB = "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"


def _sample(name: str) -> list[dict[str, Any]]:
    events = json.loads((EXAMPLES / name).read_text())
    assert isinstance(events, list)
    return events


def _in(topic: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    filled = copy.deepcopy(events)
    for event in filled:
        event["topic" if "topic" in event else "source"] = topic
    return filled


def test_the_samples_carry_the_documented_data_fields() -> None:
    (changed,) = _sample("eventgrid_ml_run_status_changed.json")
    (completed,) = _sample("eventgrid_ml_run_completed_cloudevent.json")
    assert set(changed["data"]) == RUN_DATA_FIELDS | {"runStatus"}
    assert set(completed["data"]) == RUN_DATA_FIELDS


def test_run_status_changed_names_the_job_and_its_status() -> None:
    batch = parse_eventgrid(_sample("eventgrid_ml_run_status_changed.json"))
    (run,) = batch.runs
    assert run.job_name == JOB
    assert run.status == "failed"
    assert run.workspace_key == "{subscription-id}/{resource-group-name}/{workspace-name}"


def test_run_completed_in_the_cloud_event_schema() -> None:
    batch = parse_eventgrid(_sample("eventgrid_ml_run_completed_cloudevent.json"))
    (run,) = batch.runs
    assert run.job_name == JOB
    # RunCompleted carries no runStatus: it is raised for successful runs only.
    assert run.status == "Completed"


def test_other_machine_learning_events_are_ignored() -> None:
    events = [
        *_sample("eventgrid_ml_model_registered.json"),
        *_sample("eventgrid_ml_run_status_changed.json"),
    ]
    batch = parse_eventgrid(events)
    assert batch.ignored == 1 and len(batch.runs) == 1


def test_a_lower_cased_topic_finds_the_configured_workspace() -> None:
    configured = ["0000-AAAA/RG-Training/ws-Prod", "0000-AAAA/RG-Training/ws-Dev"]
    topic = (
        "/subscriptions/0000-aaaa/resourcegroups/rg-training/providers/"
        "microsoft.machinelearningservices/workspaces/ws-prod"
    )
    (run,) = parse_eventgrid(_in(topic, _sample("eventgrid_ml_run_status_changed.json"))).runs
    assert resolve_workspace_key(run.workspace_key, configured) == "0000-AAAA/RG-Training/ws-Prod"
    assert resolve_workspace_key("other/rg/ws", configured) == "other/rg/ws"
    assert resolve_workspace_key(None, configured) is None


# --- the samples posted to /api/hooks/eventgrid ---------------------------------------

SECRET = "published-eventgrid-secret"
CONFIGURED = "0000-AAAA/RG-Training/ws-Prod"


@dataclass
class Endpoint:
    url: str
    session: aiohttp.ClientSession
    clock: list[datetime]
    pushes: list[tuple[str | None, str | None]] = field(default_factory=list)

    async def post(self, events: list[dict[str, Any]]) -> tuple[int, Any]:
        stamp = events[0].get("eventTime") or events[0].get("time")
        self.clock[0] = datetime.fromisoformat(str(stamp)) + timedelta(seconds=5)
        async with self.session.post(
            f"{self.url}/api/hooks/eventgrid", params={"key": SECRET}, json=events
        ) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    clock = [datetime.fromisoformat("2017-06-26T18:41:05+00:00")]
    pushes: list[tuple[str | None, str | None]] = []

    async def on_push(workspace_key: str | None, job_name: str | None, status: str | None) -> int:
        pushes.append((workspace_key, job_name))
        return 1

    guard = HookGuard(
        "MLBOT_EVENTGRID_HOOK_SECRET",
        lambda: SECRET,
        lambda: clock[0],
        lambda: timedelta(minutes=15),
    )
    hook = EventGridHook(guard, on_push, workspaces=lambda: [CONFIGURED])
    app = web.Application()
    app.router.add_post("/api/hooks/eventgrid", hook.post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield Endpoint(f"http://127.0.0.1:{port}", session, clock, pushes)
    await runner.cleanup()


async def test_the_published_validation_handshake(endpoint: Endpoint) -> None:
    status, answer = await endpoint.post(_sample("eventgrid_subscription_validation.json"))

    # The documented answer, with the documented 200 (202 is not accepted).
    assert (status, answer) == (200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    assert endpoint.pushes == []


async def test_both_published_run_events_make_the_job_be_checked(endpoint: Endpoint) -> None:
    topic = (
        "/subscriptions/0000-aaaa/resourcegroups/rg-training/providers/"
        "microsoft.machinelearningservices/workspaces/ws-prod"
    )
    changed = await endpoint.post(_in(topic, _sample("eventgrid_ml_run_status_changed.json")))
    completed = await endpoint.post(
        _in(topic, _sample("eventgrid_ml_run_completed_cloudevent.json"))
    )

    assert changed == (200, {"accepted": 1, "ignored": 0})
    assert completed == (200, {"accepted": 1, "ignored": 0})
    assert endpoint.pushes == [(CONFIGURED, JOB), (CONFIGURED, JOB)]


async def test_the_published_model_event_is_acknowledged(endpoint: Endpoint) -> None:
    status, answer = await endpoint.post(_sample("eventgrid_ml_model_registered.json"))

    assert (status, answer) == (200, {"accepted": 0, "ignored": 1})
    assert endpoint.pushes == []
