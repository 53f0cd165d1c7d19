"""A pipeline run is queued once, even when Azure DevOps does not say whether it was.

Against the sandbox's Azure DevOps emulator through the production adapter: a POST that
is carried out and then answered with a 500 (`error_after_acting`), or held until the
adapter gave up (`slow`). The button, the automatic rollback and the engine's retry each
end with exactly one run. The intent store is also checked on SQLite and, when
MLBOT_TEST_POSTGRES_URL is set, PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import settings_from_mapping
from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from monitoring.engine import RETRY_QUEUED, EngineConfig, MonitoringEngine
from monitoring.pipeline_runs import (
    AlreadyQueued,
    OutcomeUnknown,
    PipelineRuns,
    Queued,
)
from sandbox.clock import ManualClock
from sandbox.scenario import parse_scenario
from sandbox.stack import SandboxStack
from store.database import Database
from store.deployment_watches import ROLLED_BACK, DeploymentWatchStore
from store.monitoring import MonitoringStore, NewEvent, Observation
from store.pipeline_intents import POSTING, QUEUED, UNKNOWN, PipelineIntentStore
from tests.conftest import StartSandboxBot
from tests.integration.test_auto_rollback import (
    APPROVER,
    HOOK_SECRET,
    ROLLBACK_SCENARIO,
    Prod,
)
from tests.integration.test_chatops import OPERATOR, ChatOps, actions_of, card_text
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import bot_added_to_team

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WAIT_S = 15.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for something the emulator does on its own time."""
    for _ in range(int(WAIT_S / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- a button -------------------------------------------------------------------------------
@pytest.fixture
async def chatops(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> AsyncIterator[ChatOps]:
    bot = await start_sandbox_bot(
        {
            "MLBOT_OPERATORS": OPERATOR,
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789abcdef",
        }
    )
    bot.stack.tick(bot.clock.advance(60))
    assert bot.runtime.engine is not None
    await bot.runtime.engine.tick()  # the store learns the circuits
    baseline = len(bot.stack.state()["pipeline_runs"])
    yield ChatOps(bot.runtime, bot.stack, bot.url, bot.session, connector, baseline)


async def test_a_retry_button_without_an_answer_pressed_again_queues_one_run(
    chatops: ChatOps,
) -> None:
    reply = await chatops.say("retry PLANT001/CIRCUIT01")
    confirm = actions_of(reply)["retry.confirm"]
    training = chatops.stack.devops.pipeline_named("training-pipeline")
    chatops.stack.devops.inject_fault(
        "error_after_acting", path_contains=f"/pipelines/{training.id}/runs", method="POST"
    )

    status, first = await chatops.press(confirm)
    assert status == 200
    assert "Outcome being checked" in card_text(first)
    assert "press the button again" in card_text(first)
    assert "Retry queued" not in card_text(first)
    [run] = chatops.runs("training-pipeline")  # Azure DevOps did queue it

    status, second = await chatops.press(confirm)
    assert status == 200
    assert "Retry queued" in card_text(second) and f"run #{run['id']}" in card_text(second)
    _, third = await chatops.press(confirm)
    assert f"run #{run['id']}" in card_text(third)
    assert [r["id"] for r in chatops.runs("training-pipeline")] == [run["id"]]
    entries = await chatops.runtime.audit.recent(limit=10)  # newest first
    outcomes = [e.outcome for e in entries if e.action == "card:retry.confirm"]
    assert outcomes == ["ok", "unknown"]


# --- the automatic rollback -----------------------------------------------------------------
@pytest.fixture
async def prod(start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn) -> Prod:
    bot = await start_sandbox_bot(
        {
            "MLBOT_HOOK_SECRET": HOOK_SECRET,
            "MLBOT_APPROVERS": APPROVER["aadObjectId"],
            "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-tests-0123456789abcdef",
        },
        scenario=ROLLBACK_SCENARIO,
    )
    bot.stack.service_hooks.subscribe(f"{bot.url}/api/hooks/devops?key={HOOK_SECRET}")
    async with bot.session.post(
        f"{bot.url}/api/messages", json=bot_added_to_team(connector.url)
    ) as response:
        assert response.status == 201
    await connector.wait_for(1)
    return Prod(bot, connector)


async def test_a_rollback_without_an_answer_is_not_failed_and_runs_once(prod: Prod) -> None:
    rollback = prod.stack.devops.pipeline_named("rollback-pipeline")
    prod.stack.devops.inject_fault(
        "error_after_acting", path_contains=f"/pipelines/{rollback.id}/runs", method="POST"
    )
    await prod.play(15 * 60, until=lambda: bool(prod.runs("rollback-pipeline")))
    [run] = prod.runs("rollback-pipeline")

    await prod.play(10 * 60, step=30)

    assert [r["id"] for r in prod.runs("rollback-pipeline")] == [run["id"]]
    events = await prod.runtime.monitoring.events(limit=1000)
    assert [e for e in events if e.kind == "rollback_failed"] == []
    [queued] = [e for e in events if e.kind == "rollback_queued"]
    assert queued.payload["run_id"] == run["id"]
    watches = DeploymentWatchStore(prod.runtime.db)
    [watch] = await watches.with_status("prod", ROLLED_BACK)
    assert watch.rollback_run_id == run["id"]


# --- the engine's retry ---------------------------------------------------------------------
SCENARIO = """
name: queue-once
subscription_id: 00000000-0000-0000-0000-0000000000e3
resource_group: rg-queue
experiment: circuit-training
workspaces:
  - name: mlw-queue
    circuits: [PLANT001/CIRCUIT01]
jobs:
  - circuit: PLANT001/CIRCUIT01
    start_after_s: null
    duration_s: 600
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 60, finish_after_s: 5}
"""
RETRY_KEY = "experiment:mlw-queue:circuit-training/retry_queued/PLANT001/CIRCUIT01/2"


class World:
    def __init__(self, stack: SandboxStack, clock: ManualClock, db: Database) -> None:
        self.stack, self.clock, self.db = stack, clock, db
        self.store = MonitoringStore(db)
        endpoints = stack.endpoints
        # Gives up on an answer quickly, so that a held POST is a POST without an answer.
        self.pipelines = AzureDevOpsPipelines(
            endpoints.devops_org_url,
            endpoints.devops_project,
            pat=endpoints.devops_pat,
            policy=RetryPolicy(attempts=1, base_delay_s=0.0, timeout_s=0.3),
        )
        self.runs = PipelineRuns(self.pipelines, PipelineIntentStore(db), clock.now)

    def engine(self) -> MonitoringEngine:
        settings = settings_from_mapping({})
        endpoints = self.stack.endpoints
        return MonitoringEngine(
            store=self.store,
            source=AzureMLJobSource(
                endpoints.credential_factory, endpoints.workspaces, endpoints.azureml_options()
            ),
            workspaces=endpoints.workspaces,
            runs=self.runs,
            config=lambda: EngineConfig.from_settings(settings),
            clock=self.clock.now,
        )

    def training_runs(self) -> list[dict[str, Any]]:
        runs = self.stack.state()["pipeline_runs"]
        return [r for r in runs if r["pipeline"] == "training-pipeline"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(START)
    stack = SandboxStack(parse_scenario(SCENARIO), clock=clock, tick_interval_s=None)
    await stack.start()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/queue.db")
    await db.migrate()
    yield World(stack, clock, db)
    await db.dispose()
    await stack.stop()


async def record_retry(world: World) -> None:
    payload = {
        "circuits": ["PLANT001/CIRCUIT01"],
        "manualCircuits": "PLANT001/CIRCUIT01",
        "attempt": 2,
        "next_attempts": {"PLANT001/CIRCUIT01": 2},
        "max_attempts": 3,
        "pipeline": "training-pipeline",
        "run_id": None,
        "session": "circuit-training",
    }
    event = NewEvent(key=RETRY_KEY, kind=RETRY_QUEUED, payload=payload)
    await world.store.apply(Observation(world.clock.now(), events=[event]))


async def test_the_engines_retry_after_an_unanswered_post_queues_one_run(world: World) -> None:
    await record_retry(world)
    world.stack.devops.inject_fault("slow", path_contains="/runs", method="POST", delay_s=1.5)
    engine = world.engine()

    first = await engine.tick()  # the POST is held past the adapter's patience
    assert first.runs_queued == 0 and any("outcome unknown" in f for f in first.failures)

    world.clock.advance(60)
    second = await engine.tick()  # the held POST has not created its run yet
    assert second.runs_queued == 0
    assert world.training_runs() == []

    await eventually(lambda: len(world.training_runs()) == 1, "the held run to be created")
    world.clock.advance(60)
    third = await engine.tick()
    assert third.runs_queued == 0 and third.failures == []

    [run] = world.training_runs()
    [event] = await world.store.events_of_kind(RETRY_QUEUED)
    assert event.payload["run_id"] == run["id"]
    world.clock.advance(600)
    await engine.tick()
    assert [r["id"] for r in world.training_runs()] == [run["id"]]


async def test_queue_once_with_the_same_key_never_posts_twice(world: World) -> None:
    parameters = {"manualCircuits": "PLANT001/CIRCUIT01"}
    first = await world.runs.queue_once("card:nonce-one", "training-pipeline", parameters)
    again = await world.runs.queue_once("card:nonce-one", "training-pipeline", parameters)
    other = await world.runs.queue_once("card:nonce-two", "training-pipeline", parameters)

    assert isinstance(first, Queued) and isinstance(other, Queued)
    assert again == AlreadyQueued("card:nonce-one", first.run)
    assert other.run.run_id != first.run.run_id
    assert len(world.training_runs()) == 2
    posts = world.stack.devops.requests_to("/runs", method="POST")
    assert len(posts) == 2


async def test_an_unanswered_post_whose_run_never_appears_is_posted_again_once_settled(
    world: World,
) -> None:
    parameters = {"manualCircuits": "PLANT001/CIRCUIT01"}
    world.stack.devops.inject_fault("server_error", path_contains="/runs", method="POST")

    first = await world.runs.queue_once("card:nonce-lost", "training-pipeline", parameters)
    assert isinstance(first, OutcomeUnknown)
    world.clock.advance(60)
    waiting = await world.runs.queue_once("card:nonce-lost", "training-pipeline", parameters)
    assert isinstance(waiting, OutcomeUnknown) and world.training_runs() == []

    world.clock.advance(10 * 60)  # no POST can still create it: ask again
    settled = await world.runs.queue_once("card:nonce-lost", "training-pipeline", parameters)
    assert isinstance(settled, Queued)
    assert [r["id"] for r in world.training_runs()] == [settled.run.run_id]


# --- the intent store, on both databases ----------------------------------------------------
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_one_intent_per_key_and_one_poster_at_a_time(database: Database) -> None:
    store = PipelineIntentStore(database)
    opened = await asyncio.gather(
        *(store.open("card:abc", "rollback-pipeline", {"env": "prod"}, NOW) for _ in range(5))
    )
    assert sum(created for _, created in opened) == 1
    intent = opened[0][0]
    claims = await asyncio.gather(*(store.begin_post(intent, NOW) for _ in range(5)))
    assert sum(claims) == 1
    posting = await store.get("card:abc")
    assert posting is not None and (posting.status, posting.posts) == (POSTING, 1)

    await store.mark_unsettled("card:abc", UNKNOWN, "timed out", NOW + timedelta(seconds=30))
    assert [i.key for i in await store.unresolved("card:", 10)] == ["card:abc"]
    await store.mark_queued("card:abc", 77, "https://runs/77", NOW + timedelta(minutes=1))
    done = await store.get("card:abc")
    assert done is not None and (done.status, done.run_id) == (QUEUED, 77)
    assert await store.unresolved("card:", 10) == []
    assert await store.run_taken("rollback-pipeline", 77, other_than="card:other")
    assert not await store.run_taken("rollback-pipeline", 77, other_than="card:abc")
    # A late "unknown" never overwrites a run that was found.
    await store.mark_unsettled("card:abc", UNKNOWN, "late", NOW + timedelta(minutes=2))
    assert (await store.get("card:abc")) == done


async def test_the_event_cursor_reads_each_retry_event_once(database: Database) -> None:
    monitoring = MonitoringStore(database)
    store = PipelineIntentStore(database)

    async def record(key: str) -> None:
        payload = {
            "circuits": ["PLANT001/CIRCUIT01"],
            "manualCircuits": "PLANT001/CIRCUIT01",
            "attempt": 2,
            "next_attempts": {"PLANT001/CIRCUIT01": 2},
            "max_attempts": 3,
            "pipeline": "training-pipeline",
            "run_id": None,
            "session": "s",
        }
        await monitoring.apply(Observation(NOW, events=[NewEvent(key, RETRY_QUEUED, payload)]))

    await record("retry-1")
    found, position = await store.new_events("test", RETRY_QUEUED, 10)
    assert [e.key for e in found] == ["retry-1"]
    await store.move_cursor("test", position, NOW)
    assert (await store.new_events("test", RETRY_QUEUED, 10))[0] == []
    await record("retry-2")
    await record("retry-3")
    page, position = await store.new_events("test", RETRY_QUEUED, 1)
    assert [e.key for e in page] == ["retry-2"]
    await store.move_cursor("test", position, NOW)
    rest, _ = await store.new_events("test", RETRY_QUEUED, 10)
    assert [e.key for e in rest] == ["retry-3"]
