"""A session whose many circuits fail at once is retried once, on the real store.

The retry event's key names the circuits; with 60 of them it would not fit the events
table (512 characters) nor, behind `retry:`, the pipeline intents table (600), and every
pass would fail from then on. Found by bench/retention.py's 1,000-circuit team.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.backoff import BackoffPolicy
from monitoring.engine import RETRY_QUEUED, EngineConfig, MonitoringEngine
from monitoring.pipeline_runs import PipelineRuns
from sandbox.clock import ManualClock
from store.database import Database
from store.monitoring import MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from tests.engine_fakes import RecordingPipelines
from tests.gated_job_source import GatedJobSource

START = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WS = Workspace("sub-1", "rg-1", "mlw-1")
CONFIG = EngineConfig(
    backoff=BackoffPolicy(initial_s=30, multiplier=2, max_delay_s=300, max_wait_s=3 * 3600),
    max_retries=2,
    attempt_timeout=timedelta(seconds=3600),
    reminder_interval=timedelta(hours=4),
    discovery_interval=timedelta(seconds=300),
    training_pipeline="training-pipeline",
)
CIRCUITS = [f"PLANT{n // 10:03d}/CIRCUIT{n % 10:02d}" for n in range(60)]


def job(index: int, state: JobState) -> TrainingJob:
    return TrainingJob(
        workspace=WS.key,
        name=f"job-{index}",
        display_name=f"train {CIRCUITS[index]}",
        experiment="nightly-retrain",
        circuit=CIRCUITS[index],
        status=state.value.capitalize(),
        state=state,
        created_at=START,
        started_at=START,
    )


async def test_sixty_circuits_failing_together_queue_one_retry(database: Database) -> None:
    clock = ManualClock(START)
    source = GatedJobSource()
    pipelines = RecordingPipelines()
    store = MonitoringStore(database)
    engine = MonitoringEngine(
        store=store,
        source=source,
        workspaces=[WS],
        runs=PipelineRuns(pipelines, PipelineIntentStore(database), clock.now),
        config=lambda: CONFIG,
        clock=clock.now,
    )
    for index in range(len(CIRCUITS)):
        source.put(job(index, JobState.RUNNING))
    await engine.tick()
    for index in range(len(CIRCUITS)):
        source.put(job(index, JobState.FAILED))
    clock.advance(60)

    report = await engine.tick()
    clock.advance(60)
    again = await engine.tick()

    assert report.failures == [] and again.failures == []
    [retry] = await store.events_of_kind(RETRY_QUEUED)
    assert len(retry.key) <= 512
    assert sorted(retry.payload["circuits"]) == sorted(CIRCUITS)
    [(pipeline, parameters)] = pipelines.queued  # queued once, with every circuit
    assert pipeline == "training-pipeline"
    assert sorted(parameters["manualCircuits"].split(",")) == sorted(CIRCUITS)
