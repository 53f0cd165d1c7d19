"""mlbot's serving side in a process of its own, against sandbox emulators it does not own.

`mlbot serve --sandbox` starts the emulators inside the bot, so killing the bot would
kill the world it watches. For the `kill -9` test the emulators live in the test process
and this module runs the rest of `mlbot serve` — `build_runtime` with its scheduler,
engine, delivery worker and notifiers, on a SQLite file — pointed at them:

    python -m tests.integration.engine_process '<json config>'

It prints `ready` once the runtime's background work has started. Both processes read
time from a `SimClock` on the wall clock (`shared_clock`), so they agree on the simulated
time without talking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
import time
from typing import Any

from aiohttp import web

from app import AzureClients, build_runtime
from config.settings import settings_from_mapping
from domain.jobs import Workspace
from monitoring.azureml import AzureMLJobSource, CloudEndpoints
from monitoring.devops import AzureDevOpsPipelines
from monitoring.executors import ServiceExecutors
from sandbox.clock import SimClock
from sandbox.stack import SandboxEndpoints


def shared_clock(start: dt.datetime, speed: float, origin: float | None = None) -> SimClock:
    """Simulated time as a function of the wall clock, which (unlike a monotonic clock)
    two processes share."""
    return SimClock(speed, start, monotonic=time.time, origin=origin)


def clock_to_json(clock: SimClock) -> dict[str, Any]:
    return {"start": clock.start.isoformat(), "origin": clock.origin, "speed": clock.speed}


def clock_from_json(data: dict[str, Any]) -> SimClock:
    return shared_clock(dt.datetime.fromisoformat(data["start"]), data["speed"], data["origin"])


def endpoints_to_json(endpoints: SandboxEndpoints) -> dict[str, Any]:
    """What the serving process needs to reach the emulators."""
    return {
        "azureml_base_url": endpoints.azureml_base_url,
        "ca_path": endpoints.ca_path,
        "subscription_id": endpoints.subscription_id,
        "resource_group": endpoints.resource_group,
        "workspaces": [w.name for w in endpoints.workspaces],
        "devops_org_url": endpoints.devops_org_url,
        "devops_project": endpoints.devops_project,
        "devops_pat": endpoints.devops_pat,
        "training_pipeline": endpoints.training_pipeline,
        "deployment_pipeline": endpoints.deployment_pipeline,
        "rollback_pipeline": endpoints.rollback_pipeline,
    }


def endpoints_from_json(data: dict[str, Any]) -> SandboxEndpoints:
    return SandboxEndpoints(
        azureml_base_url=data["azureml_base_url"],
        ca_path=data["ca_path"],
        cloud=CloudEndpoints(resource_manager=data["azureml_base_url"]),
        subscription_id=data["subscription_id"],
        resource_group=data["resource_group"],
        workspaces=[
            Workspace(data["subscription_id"], data["resource_group"], name)
            for name in data["workspaces"]
        ],
        devops_org_url=data["devops_org_url"],
        devops_project=data["devops_project"],
        devops_pat=data["devops_pat"],
        training_pipeline=data["training_pipeline"],
        deployment_pipeline=data["deployment_pipeline"],
        rollback_pipeline=data["rollback_pipeline"],
    )


async def serve(config: dict[str, Any]) -> None:
    settings = settings_from_mapping(config["settings"])
    endpoints = endpoints_from_json(config["endpoints"])
    clock = clock_from_json(config["clock"])
    executors = ServiceExecutors.create()
    clients = AzureClients(
        AzureMLJobSource(
            endpoints.credential_factory,
            endpoints.workspaces,
            endpoints.azureml_options(circuit_tag=settings.circuit_tag),
            executor=executors.azureml,
        ),
        endpoints.workspaces,
        AzureDevOpsPipelines(
            endpoints.devops_org_url,
            endpoints.devops_project,
            pat=endpoints.devops_pat,
            executor=executors.devops,
        ),
        "sandbox emulators in another process",
        executors=executors,
    )
    runtime = await build_runtime(settings, azure=clients, clock=clock.now, speed=clock.speed)
    runner = web.AppRunner(runtime.web_app, access_log=None)
    await runner.setup()  # starts the scheduler (and with it the engine and delivery)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(json.loads(sys.argv[1])))
