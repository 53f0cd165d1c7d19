"""The store on SQLite and, when MLBOT_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.event import listen as event_listen

from domain.jobs import JobState, TrainingJob
from store.audit import AuditEntry, AuditTrail
from store.conversations import ConversationRecord, ConversationStore
from store.database import Database, head_revision
from store.watched_jobs import WatchedJobStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def record(conversation_id: str, team: str | None = None) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=conversation_id,
        channel_id="msteams",
        service_url="https://smba.example/amer/",
        tenant_id="tenant-1",
        conversation_type="channel" if team else "personal",
        team_id=team,
        title=None,
        reference={
            "conversation": {"id": conversation_id},
            "serviceUrl": "https://smba.example/amer/",
        },
        installed_by="user-1",
        installed_at=NOW,
    )


async def test_migrations_are_idempotent_and_ready(database: Database) -> None:
    assert await database.migrate() == head_revision()
    readiness = await database.readiness()
    assert readiness.ready and readiness.revision == head_revision()


async def test_unmigrated_database_is_not_ready(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    readiness = await db.readiness()
    assert not readiness.ready and f"expected {head_revision()}" in readiness.detail
    await db.dispose()


async def test_the_head_revision_is_read_once_however_often_readiness_is_asked(
    tmp_path: Path,
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from service.health import HealthRoutes

    reads: list[str] = []

    def read_head() -> str:
        reads.append(head_revision())
        return reads[-1]

    db = Database(f"sqlite+aiosqlite:///{tmp_path}/head.db", read_head=read_head)
    assert await db.migrate() == head_revision()
    app = web.Application()
    app.router.add_get("/readyz", HealthRoutes(db).readyz)
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            response = await client.get("/readyz")
            assert response.status == 200
            assert (await response.json())["schema_revision"] == head_revision()
    assert (await db.readiness()).ready
    assert reads == [head_revision()]
    await db.dispose()


async def test_conversations_remember_refresh_forget(database: Database) -> None:
    store = ConversationStore(database)
    assert await store.remember(record("c1", team="team-1")) is True
    assert await store.remember(record("c1", team="team-1")) is False
    assert await store.remember(record("c2", team="team-1")) is True
    assert await store.remember(record("p1")) is True
    fetched = await store.get("c1")
    assert fetched is not None and fetched.reference["conversation"]["id"] == "c1"
    assert "training_completed" in await store.event_kinds("c1")
    assert await store.forget_team("team-1") == 2
    assert [c.conversation_id for c in await store.all()] == ["p1"]
    assert await store.forget("p1") is True
    assert await store.forget("p1") is False
    assert await store.event_kinds("p1") == []


async def test_watched_jobs_upsert_and_list(database: Database) -> None:
    store = WatchedJobStore(database)
    job = TrainingJob(
        workspace="s/r/w",
        name="job-1",
        display_name="train PLANT001/CIRCUIT01",
        experiment="exp",
        circuit="PLANT001/CIRCUIT01",
        status="Running",
        state=JobState.RUNNING,
        started_at=NOW - timedelta(minutes=3),
    )
    await store.upsert(job, now=NOW)
    finished = TrainingJob(
        workspace=job.workspace,
        name=job.name,
        display_name=job.display_name,
        experiment=job.experiment,
        circuit=job.circuit,
        status="Failed",
        state=JobState.FAILED,
        started_at=job.started_at,
        ended_at=NOW,
        error_summary="CUDA out of memory",
        attempt=2,
    )
    await store.upsert(finished, now=NOW + timedelta(seconds=30))
    listed = await store.list()
    assert len(listed) == 1 and await store.count() == 1
    got = listed[0]
    assert got.state is JobState.FAILED and got.attempt == 2
    assert got.error_summary == "CUDA out of memory"
    assert got.started_at == NOW - timedelta(minutes=3)  # timezone-aware round trip


async def test_audit_trail_newest_first(database: Database) -> None:
    audit = AuditTrail(database)
    await audit.record(AuditEntry(at=NOW, action="install", outcome="ok", actor_id="u1"))
    await audit.record(
        AuditEntry(at=NOW, action="retry", outcome="refused", detail="not an operator")
    )
    entries = await audit.recent()
    assert [e.action for e in entries] == ["retry", "install"]
    assert entries[0].detail == "not an operator"


def _job(
    name: str, state: JobState, circuit: str, experiment: str = "circuit-training"
) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name=name,
        display_name=f"train {circuit}",
        experiment=experiment,
        circuit=circuit,
        status=state.value.title(),
        state=state,
    )


async def test_status_page_orders_filters_limits_and_counts(database: Database) -> None:
    store = WatchedJobStore(database)
    for item in [
        _job("done", JobState.COMPLETED, "P/C4"),
        _job("failed", JobState.FAILED, "P/C3"),
        _job("queued", JobState.WAITING, "P/C2"),
        _job("run-b", JobState.RUNNING, "P/C1b"),
        _job("run-a", JobState.RUNNING, "P/C1a", experiment="nightly"),
    ]:
        await store.upsert(item, now=NOW)
    page = await store.status_page("", limit=10)
    assert [j.name for j in page.jobs] == ["run-a", "run-b", "queued", "failed", "done"]
    assert page.counts == {
        JobState.RUNNING: 2,
        JobState.WAITING: 1,
        JobState.FAILED: 1,
        JobState.COMPLETED: 1,
    }
    limited = await store.status_page("", limit=2)
    assert [j.name for j in limited.jobs] == ["run-a", "run-b"] and limited.total == 5
    # Filters match circuit, experiment or name, case-insensitively.
    assert [j.name for j in (await store.status_page("p/c3", 10)).jobs] == ["failed"]
    assert [j.name for j in (await store.status_page("NIGHTLY", 10)).jobs] == ["run-a"]
    assert [j.name for j in (await store.status_page("queue", 10)).jobs] == ["queued"]
    nothing = await store.status_page("zzz", 10)
    assert nothing.jobs == [] and nothing.total == 0


async def test_status_page_shows_each_circuit_by_its_latest_attempt(database: Database) -> None:
    store = WatchedJobStore(database)
    first = _job("c1-attempt-1", JobState.FAILED, "P/C1")
    retry = dataclasses.replace(
        first, name="c1-attempt-2", state=JobState.COMPLETED, status="Completed", attempt=2
    )
    other = _job("c2-attempt-1", JobState.FAILED, "P/C2")
    for item in (first, retry, other):
        await store.upsert(item, now=NOW)
    page = await store.status_page("", limit=10)
    assert [j.name for j in page.jobs] == ["c2-attempt-1", "c1-attempt-2"]
    assert page.counts == {JobState.FAILED: 1, JobState.COMPLETED: 1}


async def test_status_with_more_jobs_than_the_card_shows_counts_all_and_shows_the_urgent(
    database: Database,
) -> None:
    from monitoring.status_report import MAX_JOBS_SHOWN, StatusService

    store = WatchedJobStore(database)
    # 20 of each state over 120 circuits, written in an order unrelated to status order.
    states = list(JobState)
    jobs = [
        _job(f"job-{n:03d}", states[n % len(states)], f"P/C{n:03d}") for n in reversed(range(120))
    ]
    for item in jobs:
        await store.upsert(item, now=NOW)
    # A retried circuit counts once, by its latest attempt; a job that moved on counts
    # in its new state only.
    failed_once = next(j for j in jobs if j.state is JobState.FAILED)
    await store.upsert(
        dataclasses.replace(
            failed_once, name="retry", state=JobState.RUNNING, status="Running", attempt=2
        ),
        now=NOW,
    )
    waiting = next(j for j in jobs if j.state is JobState.WAITING)
    await store.upsert(
        dataclasses.replace(waiting, state=JobState.COMPLETED, status="Completed"), now=NOW
    )

    report = await StatusService(store).report(NOW)

    assert report.counts == {
        JobState.RUNNING: 21,
        JobState.WAITING: 19,
        JobState.UNKNOWN: 20,
        JobState.FAILED: 19,
        JobState.CANCELED: 20,
        JobState.COMPLETED: 21,
    }
    assert report.total == 120 and report.hidden == 120 - MAX_JOBS_SHOWN
    shown = [line.job for line in report.lines]
    # The most urgent first: every running job, then waiting ones, in circuit order.
    assert [j.state for j in shown] == [JobState.RUNNING] * 21 + [JobState.WAITING] * 4
    running_circuits = [j.circuit or "" for j in shown[:21]]
    assert running_circuits == sorted(running_circuits)
    assert "retry" in {j.name for j in shown}
    assert waiting.name not in {j.name for j in shown}


async def test_pending_approvals_and_last_deployments_from_hook_events(
    database: Database,
) -> None:
    from store.monitoring import MonitoringStore, NewEvent, Observation

    store = MonitoringStore(database)

    def event(key: str, kind: str, **payload: object) -> NewEvent:
        return NewEvent(key=key, kind=kind, payload=dict(payload))

    await store.apply(
        Observation(
            now=NOW,
            events=[
                event(
                    "a1",
                    "approval_required",
                    approval_id="A1",
                    pipeline="deploy",
                    stage="Deploy_Prod",
                    environment="prod",
                ),
                event(
                    "a2",
                    "approval_required",
                    approval_id="A2",
                    pipeline="deploy",
                    environment="staging",
                ),
                event("a2-done", "approval_decided", approval_id="A2"),
                event(
                    "d1",
                    "deployment_completed",
                    environment="prod",
                    pipeline="deploy",
                    run_name="20261129.1",
                ),
                event(
                    "d2",
                    "deployment_failed",
                    environment="prod",
                    pipeline="deploy",
                    run_name="20261129.2",
                ),
                event(
                    "d3",
                    "deployment_completed",
                    environment="staging",
                    pipeline="deploy",
                    run_name="20261129.3",
                ),
            ],
        )
    )
    pending = await store.pending_approvals()
    assert [(p.environment, p.stage) for p in pending] == [("prod", "Deploy_Prod")]
    latest = await store.last_deployments()
    assert [(d.environment, d.run, d.succeeded) for d in latest] == [
        ("prod", "20261129.2", False),
        ("staging", "20261129.3", True),
    ]
    # `status` asks for both at once, and looks at the newest event id only once.
    newest_reads: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "max(events.id)" in statement:
            newest_reads.append(statement)

    event_listen(database.engine.sync_engine, "before_cursor_execute", before)
    assert await store.deployment_overview() == (pending, latest)
    assert len(newest_reads) == 1


async def test_a_pass_planned_from_an_old_session_version_is_refused(database: Database) -> None:
    from store.monitoring import (
        JobProgress,
        MonitoringStore,
        NewEvent,
        Observation,
        SessionSchedule,
    )

    store = MonitoringStore(database)
    job = TrainingJob(
        workspace="s/r/w",
        name="job-1",
        display_name="train PLANT001/CIRCUIT01",
        experiment="exp",
        circuit="PLANT001/CIRCUIT01",
        status="Running",
        state=JobState.RUNNING,
    )
    first = await store.open_session(kind="experiment", key="experiment:exp", title="exp", now=NOW)
    other = await store.open_session(kind="manual", key="manual:job-1", title="job", now=NOW)

    def planned(session_id: int, version: int, key: str) -> Observation:
        return Observation(
            now=NOW,
            jobs=[JobProgress(job, session_id, NOW, True, False, 0)],
            schedules=[SessionSchedule(session_id, "active", 1, NOW, NOW + timedelta(seconds=30))],
            events=[NewEvent(key, "training_started", {}, session_id=session_id)],
            planned_from={session_id: version},
        )

    applied = await store.apply_pass(planned(first.id, first.version, "e1"))
    assert applied.stale_sessions == frozenset()
    assert applied.created == ["e1"]
    current = await store.session(first.id)
    assert current is not None and current.version == first.version + 1

    # A push bumps the version: a pass planned before it writes nothing of that session.
    await store.check_now(first.id, NOW)
    applied = await store.apply_pass(planned(first.id, current.version, "e2"))
    assert applied == type(applied)([], frozenset({first.id}))
    pushed = await store.session(first.id)
    assert pushed is not None and (pushed.next_check_at, pushed.checks_done) == (NOW, 0)

    # A job moved to another session is not written back under the old one, even by a
    # pass that read the old session's version after the move.
    assert await store.move_job("s/r/w", "job-1", to_session=other.id, now=NOW, stop_watching=True)
    fresh = await store.session(first.id)
    assert fresh is not None
    applied = await store.apply_pass(planned(first.id, fresh.version, "e3"))
    assert applied.stale_sessions == frozenset({first.id})
    assert (await store.job_records("s/r/w"))["job-1"].session_id == other.id
    unwatched = await store.session(other.id)
    assert unwatched is not None and unwatched.status == "unwatched"
    assert not await store.move_job("s/r/w", "job-9", to_session=other.id, now=NOW)
    assert [e.key for e in await store.events()] == ["e1"]


async def test_check_now_matching_finds_sessions_by_workspace_and_job(database: Database) -> None:
    from store.monitoring import JobProgress, MonitoringStore, Observation, SessionSchedule

    store = MonitoringStore(database)
    later = NOW + timedelta(minutes=5)
    sessions = []
    for index, workspace in enumerate(("s/r/w1", "s/r/w1", "s/r/w2")):
        session = await store.open_session(
            kind="experiment", key=f"k{index}", title="t", workspace=workspace, now=NOW
        )
        job = TrainingJob(
            workspace=workspace,
            name=f"job-{index}",
            display_name="d",
            experiment="e",
            circuit=None,
            status="Running",
            state=JobState.RUNNING,
        )
        await store.apply(
            Observation(NOW, jobs=[JobProgress(job, session.id, NOW, True, False, 0)])
        )
        sessions.append(session)
    done = await store.open_session(
        kind="experiment", key="k-done", title="t", workspace="s/r/w1", now=NOW
    )

    await store.apply(Observation(NOW, schedules=[SessionSchedule(done.id, "done", 1, NOW, None)]))

    assert await store.check_now_matching(later, workspace="s/r/w1", job_name="job-1") == 1
    assert [s.id for s in await store.due_sessions(later) if s.next_check_at == later] == [
        sessions[1].id
    ]
    assert await store.check_now_matching(later, workspace="s/r/w1") == 2
    assert await store.check_now_matching(later, job_name="job-2") == 1
    assert await store.check_now_matching(later) == 3
    assert await store.check_now_matching(later, job_name="job-404") == 0


async def test_a_push_that_keeps_the_delays_only_brings_a_check_forward(
    database: Database,
) -> None:
    from store.monitoring import MonitoringStore, Observation, SessionSchedule

    store = MonitoringStore(database)
    session = await store.open_session(
        kind="experiment", key="k", title="t", workspace="s/r/w1", now=NOW
    )
    planned = NOW + timedelta(minutes=20)
    await store.apply(
        Observation(NOW, schedules=[SessionSchedule(session.id, "active", 4, NOW, planned)])
    )
    soon = NOW + timedelta(seconds=25)
    assert await store.check_now_matching(NOW, workspace="s/r/w1", due_at=soon, restart=False)
    pushed = await store.session(session.id)
    assert pushed is not None
    assert (pushed.next_check_at, pushed.checks_done) == (soon, 4)
    assert pushed.version > session.version  # a pass planned before the push is refused
    # A later push never puts the check back.
    later = NOW + timedelta(minutes=5)
    await store.check_now_matching(NOW, workspace="s/r/w1", due_at=later, restart=False)
    again = await store.session(session.id)
    assert again is not None and again.next_check_at == soon
