"""A retry is queued once, even when the process stopped right after queuing it.

The engine stores its intent to queue before the POST; a retry found with that intent
and no run is looked up in Azure DevOps (the sandbox, through the production adapter)
before anything is queued again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.settings import settings_from_mapping
from monitoring.engine import RETRY_QUEUED, EngineConfig, MonitoringEngine
from monitoring.pipeline_runs import PipelineRuns
from store.monitoring import NewEvent, Observation
from store.pipeline_intents import PipelineIntentStore
from tests.contract.sandbox_world import SandboxWorld, WorldFactory

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

SCENARIO = """
name: retry-once
subscription_id: 00000000-0000-0000-0000-0000000000e2
resource_group: rg-retry
experiment: circuit-training
workspaces:
  - name: mlw-retry
    circuits: [PLANT001/CIRCUIT01]
jobs:
  - circuit: PLANT001/CIRCUIT01
    start_after_s: null
    duration_s: 600
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 60, finish_after_s: 5}
"""


def engine_for(world: SandboxWorld) -> MonitoringEngine:
    settings = settings_from_mapping({})
    return MonitoringEngine(
        store=world.store,
        source=world.source,
        workspaces=world.stack.endpoints.workspaces,
        runs=PipelineRuns(world.pipelines, PipelineIntentStore(world.db), world.clock.now),
        config=lambda: EngineConfig.from_settings(settings),
        clock=world.clock.now,
    )


async def record_retry(world: SandboxWorld, payload_extra: dict[str, object]) -> None:
    payload = {
        "circuits": ["PLANT001/CIRCUIT01"],
        "manualCircuits": "PLANT001/CIRCUIT01",
        "attempt": 2,
        "next_attempts": {"PLANT001/CIRCUIT01": 2},
        "max_attempts": 3,
        "pipeline": "training-pipeline",
        "run_id": None,
        "session": "circuit-training",
        **payload_extra,
    }
    key = "experiment:mlw-retry:circuit-training/retry_queued/PLANT001/CIRCUIT01/2"
    event = NewEvent(key=key, kind=RETRY_QUEUED, payload=payload)
    await world.store.apply(Observation(world.clock.now(), events=[event]))


def training_runs(world: SandboxWorld) -> list[dict[str, object]]:
    runs = world.stack.state()["pipeline_runs"]
    return [r for r in runs if r["pipeline"] == "training-pipeline"]


async def test_a_run_queued_before_a_stop_is_found_not_queued_again(
    make_world: WorldFactory,
) -> None:
    world = await make_world(SCENARIO, START)
    # The stopped process had recorded its intent and sent the POST, then died.
    requested = world.clock.now()
    await record_retry(world, {"queue_requested_at": requested.isoformat()})
    world.clock.advance(2)
    run = await world.pipelines.queue_run(
        "training-pipeline", {"manualCircuits": "PLANT001/CIRCUIT01"}
    )
    world.clock.advance(30)

    report = await engine_for(world).tick()

    assert report.runs_queued == 0 and report.failures == []
    assert [r["id"] for r in training_runs(world)] == [run.run_id]
    [event] = await world.store.events_of_kind(RETRY_QUEUED)
    assert event.payload["run_id"] == run.run_id


async def test_an_intent_without_a_run_is_queued_once(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    # Died before the POST went out; an older run with the same circuits does not count.
    await world.pipelines.queue_run("training-pipeline", {"manualCircuits": "PLANT001/CIRCUIT01"})
    world.clock.advance(3600)
    await record_retry(world, {"queue_requested_at": world.clock.now().isoformat()})

    engine = engine_for(world)
    first = await engine.tick()
    world.clock.advance(timedelta(minutes=1).total_seconds())
    second = await engine.tick()

    assert first.runs_queued == 1 and second.runs_queued == 0
    runs = training_runs(world)
    assert len(runs) == 2
    [event] = await world.store.events_of_kind(RETRY_QUEUED)
    assert event.payload["run_id"] == runs[-1]["id"]


async def test_a_fresh_retry_stores_its_intent_before_queuing(make_world: WorldFactory) -> None:
    world = await make_world(SCENARIO, START)
    await record_retry(world, {})

    report = await engine_for(world).tick()

    assert report.runs_queued == 1
    [event] = await world.store.events_of_kind(RETRY_QUEUED)
    assert event.payload["queue_requested_at"] == world.clock.now().isoformat()
    assert event.payload["run_id"] == training_runs(world)[0]["id"]
