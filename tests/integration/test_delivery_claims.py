"""Two delivery workers on one database never send an event twice nor leave one unsent.

The workers are the real thing (dispatcher, living cards, ProactiveMessenger over
CloudAdapter, the webhook and email notifiers) against the Bot Connector stand-in, a
Workflows webhook sink and an SMTP sink. Each runs on its own engine (its own
connections), in this process or in processes of their own, over the burst of
`delivery_burst` (200 events to 10 conversations, of which 150 also go to the webhook
and 50 by email). What keeps them apart is only what the store holds: the claims on
delivery rows. Without them both would send the same events (each to the webhook and
by email certainly, as nothing else there remembers a send).

A worker that dies in the middle of a pass leaves its claims behind; the other leaves
those rows alone until they expire, then sends them; should the first one wake up after
all, it can no longer record or send anything under its lost claim.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from cards.events import render_event_card
from cards.webhook import webhook_payload
from domain.destinations import EMAIL, WEBHOOK, Destination, TeamsConversation
from domain.events import kinds_where
from monitoring.dispatch import DispatchReport, EventDispatcher
from monitoring.notifier import Notifier
from sandbox.smtp_sink import SmtpSink
from store.database import Database
from store.deliveries import DeliveryStore
from store.group_commit import GroupCommit
from store.monitoring import EventRecord, MonitoringStore
from tests.conftest import POSTGRES_URL, serve_app
from tests.integration.delivery_burst import (
    CONVERSATIONS,
    EVENTS,
    check_outcome,
    conversation_id,
    seed,
)
from tests.integration.delivery_worker import (
    FastClock,
    Sinks,
    build_dispatcher,
    build_notifiers,
)
from tests.standins.connector import ConnectorStandIn

SPEED = 10.0
ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_KINDS = kinds_where(webhook=True)
EMAILED_KINDS = kinds_where(emailed=True)

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="MLBOT_TEST_POSTGRES_URL not set")


class WebhookSink:
    """A Workflows webhook that keeps every body it accepted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/workflows/hook", receive)
        self._runner, base = await serve_app(app)
        self.url = f"{base}/workflows/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Outside:
    connector: ConnectorStandIn
    webhook: WebhookSink
    smtp: SmtpSink

    @property
    def sinks(self) -> Sinks:
        return Sinks(self.webhook.url, self.smtp.port)


@pytest.fixture
async def outside() -> AsyncIterator[Outside]:
    connector, webhook, smtp = ConnectorStandIn(), WebhookSink(), SmtpSink()
    await connector.start()
    await webhook.start()
    assert await smtp.start(), "aiosmtpd is part of the development dependencies"
    yield Outside(connector, webhook, smtp)
    await smtp.stop()
    await webhook.stop()
    await connector.stop()


@pytest.fixture
async def db_url() -> AsyncIterator[str]:
    """A database of its own on the PostgreSQL server, migrated, dropped afterwards."""
    name = f"mlbot_claims_{uuid.uuid4().hex[:10]}"
    admin = Database(POSTGRES_URL)
    autocommit = admin.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        db = Database(url)
        await db.migrate()
        await db.dispose()
        yield url
    finally:
        async with autocommit.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def check_sinks(db: Database, outside: Outside, *, kills: int = 0) -> None:
    """Every webhook and email event arrived once (a killed worker may have sent one
    more whose success it could not record: at least once, at most one more per kill)."""
    events = await MonitoringStore(db).events(limit=EVENTS)
    expected = Counter(
        json.dumps(webhook_payload(render_event_card(e, version="1.4")), sort_keys=True)
        for e in events
        if e.kind in WEBHOOK_KINDS
    )
    got = Counter(json.dumps(body, sort_keys=True) for body in outside.webhook.bodies)
    assert set(got) == set(expected)
    assert sum((got - expected).values()) <= kills
    emailed = Counter(e.key for e in events if e.kind in EMAILED_KINDS)
    mails = Counter(m.headers.get("X-Mlbot-Event", "") for m in outside.smtp.messages)
    assert set(mails) == set(emailed)
    assert sum((mails - emailed).values()) <= kills
    # The burst's share of each; every webhook card differs from the others.
    assert len(expected) == sum(expected.values()) == 150 and len(emailed) == 50


async def drive(
    dispatcher: EventDispatcher, clock: FastClock, reports: list[DispatchReport]
) -> None:
    """Passes until one finds nothing left, sleeping (simulated time) until due."""
    while True:
        report = await dispatcher.dispatch_pending()
        reports.append(report)
        if not (report.completed_events or report.pending_events):
            return
        if report.sent or report.completed_events:
            continue
        wait = 0.5
        if report.next_due is not None:
            wait = min(max((report.next_due - clock()).total_seconds(), 0.0), wait)
        await clock.sleep(wait)


@needs_postgres
@pytest.mark.postgres
async def test_two_dispatchers_on_their_own_connections_send_each_event_once(
    db_url: str, outside: Outside
) -> None:
    first, second = Database(db_url), Database(db_url)
    await seed(first, outside.connector.url)
    clock = FastClock(time.time(), SPEED)
    reports: dict[str, list[DispatchReport]] = {"a": [], "b": []}
    async with aiohttp.ClientSession() as http:
        workers = {
            name: build_dispatcher(db, clock, sinks=outside.sinks, http=http, owner=name)
            for name, db in (("a", first), ("b", second))
        }
        await asyncio.wait_for(
            asyncio.gather(*(drive(workers[n], clock, reports[n]) for n in workers)), 120
        )
    sent = {name: sum(r.sent for r in rs) for name, rs in reports.items()}
    contended = sum(r.claimed_elsewhere for rs in reports.values() for r in rs)
    print(f"sends per dispatcher: {sent}; rows found claimed by the other: {contended}")
    assert contended > 0  # they really worked on the same rows at the same time
    await check_outcome(first, outside.connector, kills=0)
    await check_sinks(first, outside)
    await first.dispose()
    await second.dispose()


class Hung:
    """A notifier of a process that hangs in the middle of a pass: it routes as the real
    one does and never comes back from a send until `thaw` is set."""

    def __init__(self, inner: Notifier, thaw: asyncio.Event, entered: list[str]) -> None:
        self._inner = inner
        self._thaw = thaw
        self._entered = entered

    async def destinations(self, event: EventRecord) -> Sequence[Destination]:
        return await self._inner.destinations(event)

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None:
        self._entered.append(event.key)
        await self._thaw.wait()
        return None  # it never reached anyone


async def claimed_destinations(db: Database, owner: str) -> set[Destination]:
    events = await MonitoringStore(db).events(limit=EVENTS)
    rows = await DeliveryStore(db).for_events([e.id for e in events])
    return {d for by in rows.values() for d, r in by.items() if r.claimed_by == owner}


def outside_destinations() -> set[Destination]:
    everywhere: set[Destination] = {WEBHOOK, EMAIL}
    return everywhere | {TeamsConversation(conversation_id(k)) for k in range(CONVERSATIONS)}


def reached(outside: Outside, destinations: set[Destination]) -> int:
    """How many requests or messages went to any of `destinations`."""
    count = 0
    for destination in destinations:
        if isinstance(destination, TeamsConversation):
            count += sum(
                1
                for call in outside.connector.calls
                if call.path.startswith(f"/v3/conversations/{destination.conversation_id}")
            )
        elif destination == WEBHOOK:
            count += len(outside.webhook.bodies)
        else:
            count += outside.smtp.received
    return count


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@needs_postgres
@pytest.mark.postgres
async def test_a_hung_dispatchers_claims_are_taken_over_once_they_expire(
    db_url: str, outside: Outside
) -> None:
    ttl = timedelta(seconds=40)  # simulated: four real seconds
    stuck_db, live_db = Database(db_url), Database(db_url)
    await seed(stuck_db, outside.connector.url)
    clock = FastClock(time.time(), SPEED)
    thaw, entered = asyncio.Event(), list[str]()
    async with aiohttp.ClientSession() as http:
        real = build_notifiers(
            stuck_db, clock, GroupCommit(stuck_db), sinks=outside.sinks, http=http
        )
        stuck = EventDispatcher(
            events=MonitoringStore(stuck_db),
            deliveries=DeliveryStore(stuck_db),
            notifiers=[Hung(n, thaw, entered) for n in real],
            clock=clock,
            owner="stuck",
            claim_ttl=ttl,
        )
        claimed_at = clock()
        stuck_pass = asyncio.create_task(stuck.dispatch_pending())
        try:
            # 12 destinations (10 conversations, the webhook, email), 8 served at once: the
            # pass has claimed the rows of 8 and hangs in their first sends.
            await eventually(lambda: len(entered) == 8, "the stuck pass never got to its sends")
            held = await claimed_destinations(live_db, stuck.owner)
            assert len(held) == 8
            expiry = claimed_at + ttl

            live = build_dispatcher(
                live_db, clock, sinks=outside.sinks, http=http, owner="live", claim_ttl=ttl
            )
            passes = 0
            while clock() < expiry - timedelta(seconds=10):
                report = await live.dispatch_pending()
                passes += 1
                # The other four destinations are served; the claimed ones are left alone.
                assert report.claimed_elsewhere == 8
                assert reached(outside, held) == 0
                await clock.sleep(1.0)
            assert passes >= 1 and reached(outside, outside_destinations() - held) > 0
            reports: list[DispatchReport] = []
            await asyncio.wait_for(drive(live, clock, reports), 120)
            await check_outcome(live_db, outside.connector, kills=0)
            await check_sinks(live_db, outside)
            before = await DeliveryStore(live_db).for_events(list(range(1, EVENTS + 1)))

            # The stuck pass wakes up: its claims are gone, so it records nothing and starts
            # no other send.
            thaw.set()
            late = await asyncio.wait_for(stuck_pass, 30)
            assert late.sent == 8 and late.claimed_elsewhere >= 8  # sends it could not record
            assert late.completed_events == [] and len(entered) == 8
            after = await DeliveryStore(live_db).for_events(list(range(1, EVENTS + 1)))
            assert after == before
        finally:  # a failed check must not leave the stuck pass running
            stuck_pass.cancel()
            await asyncio.gather(stuck_pass, return_exceptions=True)
    await stuck_db.dispose()
    await live_db.dispose()


async def start_worker(
    db_url: str, epoch: float, outside: Outside, owner: str, claim_seconds: float
) -> asyncio.subprocess.Process:
    command = [
        sys.executable,
        "-m",
        "tests.integration.delivery_worker",
        db_url,
        str(SPEED),
        str(epoch),
        "--webhook",
        outside.webhook.url,
        "--smtp-port",
        str(outside.smtp.port),
        "--owner",
        owner,
        "--claim-seconds",
        str(claim_seconds),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env)


async def claims_held(db: Database) -> int:
    events = await MonitoringStore(db).events(limit=EVENTS)
    rows = await DeliveryStore(db).for_events([e.id for e in events])
    return sum(1 for by in rows.values() for r in by.values() if r.claimed_by is not None)


async def wait_all(processes: list[asyncio.subprocess.Process]) -> list[int]:
    waits: list[Awaitable[int]] = [p.wait() for p in processes]
    return list(await asyncio.wait_for(asyncio.gather(*waits), 120))


@pytest.mark.slow
@needs_postgres
@pytest.mark.postgres
async def test_two_worker_processes_send_each_event_once(db_url: str, outside: Outside) -> None:
    db = Database(db_url)
    await seed(db, outside.connector.url)
    epoch = time.time()
    workers = [await start_worker(db_url, epoch, outside, f"process-{n}", 60) for n in range(2)]
    assert await wait_all(workers) == [0, 0]
    await check_outcome(db, outside.connector, kills=0)
    await check_sinks(db, outside)
    await db.dispose()


@pytest.mark.slow
@needs_postgres
@pytest.mark.postgres
async def test_a_killed_worker_process_is_replaced_after_its_claims_expire(
    db_url: str, outside: Outside
) -> None:
    db = Database(db_url)
    await seed(db, outside.connector.url)
    epoch = time.time()
    doomed = await start_worker(db_url, epoch, outside, "doomed", 30)
    # Killed in the middle of a pass, holding claims: frozen (SIGSTOP) once it has made
    # some requests, killed if it holds claims at that instant, else let go on a little.
    held = 0
    for _ in range(200):
        await eventually(
            lambda: len(outside.connector.calls) >= 30 or doomed.returncode is not None,
            "the first worker made no progress",
        )
        assert doomed.returncode is None, "the first worker finished before it was killed"
        doomed.send_signal(signal.SIGSTOP)
        held = await claims_held(db)
        if held:
            break
        doomed.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.005)
    doomed.send_signal(signal.SIGKILL)
    await doomed.wait()
    assert held > 0 and await claims_held(db) == held  # left behind, never released
    assert await MonitoringStore(db).events(undelivered_only=True, limit=1)
    successor = await start_worker(db_url, epoch, outside, "successor", 30)
    assert await wait_all([successor]) == [0]
    await check_outcome(db, outside.connector, kills=1)
    await check_sinks(db, outside, kills=1)
    await db.dispose()
