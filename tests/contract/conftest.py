from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from sandbox.clock import ManualClock
from sandbox.scenario import parse_scenario
from sandbox.stack import SandboxStack
from store.database import Database
from store.monitoring import MonitoringStore
from tests.contract.sandbox_world import SandboxWorld, WorldFactory


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[WorldFactory]:
    """Start sandbox worlds on demand; all are stopped when the test ends."""
    started: list[SandboxWorld] = []

    async def make(scenario: str, start: datetime) -> SandboxWorld:
        clock = ManualClock(start)
        stack = SandboxStack(parse_scenario(scenario), clock=clock, tick_interval_s=None)
        endpoints = await stack.start()
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/world-{len(started)}.db")
        await db.migrate()
        policy = RetryPolicy(attempts=2, base_delay_s=0.0, timeout_s=10.0)
        source = AzureMLJobSource(
            endpoints.credential_factory,
            endpoints.workspaces,
            endpoints.azureml_options(retry=policy),
        )
        pipelines = AzureDevOpsPipelines(
            endpoints.devops_org_url,
            endpoints.devops_project,
            pat=endpoints.devops_pat,
            policy=policy,
        )
        world = SandboxWorld(stack, clock, db, MonitoringStore(db), source, pipelines)
        started.append(world)
        return world

    yield make
    for world in started:
        await world.db.dispose()
        await world.stack.stop()
