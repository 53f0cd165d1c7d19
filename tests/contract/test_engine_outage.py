"""An Azure ML outage slows discovery down to the poll interval instead of a busy loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.settings import settings_from_mapping
from monitoring.engine import EngineConfig, MonitoringEngine
from tests.contract.sandbox_world import WorldFactory

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

SCENARIO = """
name: outage
subscription_id: 00000000-0000-0000-0000-0000000000e3
resource_group: rg-outage
experiment: circuit-training
workspaces:
  - name: mlw-outage
    circuits: [PLANT001/CIRCUIT01]
jobs:
  - circuit: PLANT001/CIRCUIT01
    start_after_s: 0
    duration_s: 600
"""


async def test_a_failed_listing_is_tried_again_after_the_poll_interval(
    make_world: WorldFactory,
) -> None:
    world = await make_world(SCENARIO, START)
    settings = settings_from_mapping({})
    engine = MonitoringEngine(
        store=world.store,
        source=world.source,
        workspaces=world.stack.endpoints.workspaces,
        runs=None,
        config=lambda: EngineConfig.from_settings(settings),
        clock=world.clock.now,
    )
    world.stack.azureml.inject("forbidden", count=1)

    failed = await engine.tick()

    assert failed.listings == 0 and failed.failures
    now = world.clock.now()
    assert await engine.next_wakeup() == now + timedelta(seconds=30)
    world.clock.advance(30)
    recovered = await engine.tick()
    assert recovered.listings == 1 and recovered.failures == []
