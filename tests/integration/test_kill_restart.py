"""`kill -9` of the serving process, three times, changes nothing a user sees.

The Azure ML and Azure DevOps emulators, the mail sink and a Workflows webhook stand-in
live in this test process; mlbot's serving side (`build_runtime`: scheduler, engine,
delivery, notifiers) runs in a child process on a SQLite file (see `engine_process`),
on a clock 60 times faster than real time that both processes share. The child is killed
with SIGKILL while it is in the middle of something, and started again:

1. while it queues the first retry run (the POST reaches Azure DevOps, which creates the
   run after the bot has died);
2. while it posts a notification to the webhook (the post is never answered, so it was
   never shown);
3. while it lists the workspace's jobs.

Each kill happens while the child waits on a request held here, so where it stops is
certain and the test cannot flake on timing. Afterwards: every lifecycle event of every
attempt is recorded once; the webhook showed each notification exactly once; the
reminder email arrived once; each retry was queued as exactly one pipeline run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.notifiers import WEBHOOK_KINDS
from cards.events import event_summary
from monitoring.email_message import EVENT_HEADER
from sandbox.scenario import parse_scenario
from sandbox.stack import SandboxStack
from store.database import Database
from store.monitoring import EventRecord, MonitoringStore
from tests.conftest import serve_app
from tests.integration.engine_process import clock_to_json, endpoints_to_json, shared_clock

pytestmark = pytest.mark.slow  # the engine runs as a process that is killed and restarted

ROOT = Path(__file__).resolve().parents[2]
SPEED = 60.0
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
WAIT_S = 90.0  # for any one condition; the whole test normally takes well under a minute

SCENARIO = """
name: kill-restart
subscription_id: 00000000-0000-0000-0000-00000000c0de
resource_group: rg-kill
experiment: circuit-training
workspaces:
  - name: mlw-kill
    circuits: [PLANT001/CIRCUIT01, PLANT001/CIRCUIT02, PLANT001/CIRCUIT03, PLANT001/CIRCUIT04]
jobs:
  - circuit: PLANT001/CIRCUIT01   # completes
    start_after_s: 0
    duration_s: 120
  - circuit: PLANT001/CIRCUIT02   # fails once, the retry completes
    start_after_s: 0
    duration_s: [60, 60]
    outcomes: [Failed, Completed]
    error_message: "UserError: loss became NaN"
  - circuit: PLANT001/CIRCUIT03   # fails on every attempt: two retries, then exhausted
    start_after_s: 0
    duration_s: [150, 60, 60]
    outcomes: [Failed, Failed, Failed]
    error_message: "CUDA out of memory"
  - circuit: PLANT001/CIRCUIT04   # passes 4 h of run time 10 min in: one reminder
    start_after_s: -13800
    duration_s: 15300
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 5, finish_after_s: 5}
  deployment: {name: deployment-pipeline, duration_s: 60, result: succeeded}
  rollback: {name: rollback-pipeline, duration_s: 60, result: succeeded}
variable_groups:
  mlops-pipeline-settings:
    monitoringPollIntervalSeconds: 30
    longRunningJobNotificationIntervalHours: 4
"""

TERMINAL = {
    ("PLANT001/CIRCUIT01", 1): "training_completed",
    ("PLANT001/CIRCUIT02", 1): "training_failed",
    ("PLANT001/CIRCUIT02", 2): "training_completed",
    ("PLANT001/CIRCUIT03", 1): "training_failed",
    ("PLANT001/CIRCUIT03", 2): "training_failed",
    ("PLANT001/CIRCUIT03", 3): "training_failed",
    ("PLANT001/CIRCUIT04", 1): "training_completed",
}


async def until(
    condition: Callable[[], bool],
    what: str,
    seen: Callable[[], object] = lambda: "",
    timeout_s: float = WAIT_S,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; seen: {seen()}")
        await asyncio.sleep(0.02)


class WebhookStandIn:
    """A Workflows webhook that shows a post once it has answered it (as Teams does).

    `hold_after(n)`: the first post arriving once `n` are shown is held unanswered;
    its sender dying then means it was never shown.
    """

    def __init__(self) -> None:
        self.shown: list[str] = []  # the cards' fallback text, in order
        self.held = asyncio.Event()
        self.dropped = asyncio.Event()
        self._hold_after: int | None = None

    def hold_after(self, shown: int) -> None:
        self._hold_after = shown
        self.held.clear()
        self.dropped.clear()

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = str(body["attachments"][0]["content"].get("fallbackText", ""))
        if self._hold_after is not None and len(self.shown) >= self._hold_after:
            self._hold_after = None
            self.held.set()
            try:
                # aiohttp offers no event for a peer that went away: look for it.
                while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            finally:
                self.dropped.set()
            return web.Response(status=503)  # nobody is left to read it
        self.shown.append(text)
        return web.Response(status=202)


class ServingProcess:
    """The child running mlbot's serving side; `kill()` is a real SIGKILL."""

    def __init__(self, config: dict[str, Any], logs: Path) -> None:
        self._config = config
        self._logs = logs
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.starts += 1
        log = (self._logs / f"serve-{self.starts}.log").open("wb")
        # azure-ai-ml records the cloud it last used in the environment (AZUREML_CURRENT_CLOUD);
        # one left by an earlier test in this process would name an emulator long gone.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML_")}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.engine_process",
            json.dumps(self._config),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), WAIT_S)
        assert line.strip() == b"ready", (
            line,
            (self._logs / f"serve-{self.starts}.log").read_text(),
        )

    def log_tail(self) -> str:
        """The end of the running child's log, for a failure message."""
        path = self._logs / f"serve-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def kill(self) -> None:
        assert self._proc is not None and self._proc.returncode is None, "it is running"
        os.kill(self._proc.pid, signal.SIGKILL)
        assert await self._proc.wait() == -signal.SIGKILL
        self._proc = None

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


class World:
    def __init__(self, stack: SandboxStack, webhook: WebhookStandIn, child: ServingProcess):
        self.stack = stack
        self.webhook = webhook
        self.child = child

    def training_runs(self) -> list[dict[str, Any]]:
        runs = self.stack.state()["pipeline_runs"]
        return [r for r in runs if r["pipeline"] == "training-pipeline"]

    def queue_posts(self) -> int:
        return len(self.stack.devops.requests_to("/runs", "POST"))

    def jobs_of(self, circuit: str) -> list[dict[str, Any]]:
        return [j for j in self.stack.state()["jobs"] if j["circuit"] == circuit]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = shared_clock(START, SPEED)
    stack = SandboxStack(parse_scenario(SCENARIO), clock=clock, tick_interval_s=0.05)
    endpoints = await stack.start()
    webhook = WebhookStandIn()
    app = web.Application()
    app.router.add_post("/webhook", webhook.post)
    runner, url = await serve_app(app)
    assert endpoints.smtp_port is not None
    config = {
        "clock": clock_to_json(clock),
        "endpoints": endpoints_to_json(endpoints),
        "settings": {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/mlbot.db",
            "MLBOT_TEAMS_WEBHOOK_URL": f"{url}/webhook",
            "MLBOT_SMTP_HOST": "127.0.0.1",
            "MLBOT_SMTP_PORT": str(endpoints.smtp_port),
            "MLBOT_SMTP_SECURITY": "none",
            "MLBOT_ML_ENGINEERS_EMAIL": "ml-engineers@example.com",
            "MLBOT_GROUP_WAIT_SECONDS": "0",
        },
    }
    child = ServingProcess(config, tmp_path)
    try:
        yield World(stack, webhook, child)
    finally:
        await child.stop()
        await runner.cleanup()
        await stack.stop()


async def stored_events(tmp_path: Path) -> list[EventRecord]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/mlbot.db")
    try:
        return await MonitoringStore(db).events(limit=10_000)
    finally:
        await db.dispose()


async def test_kill_9_three_times_nothing_lost_nothing_repeated(
    world: World, tmp_path: Path
) -> None:
    stack, webhook, child = world.stack, world.webhook, world.child

    # 1. Killed while queuing the first retry: Azure DevOps holds the POST and creates
    # the run only after the bot has died.
    stack.devops.inject_fault("slow", path_contains="/runs", method="POST", delay_s=3.0)
    await child.start()
    await until(
        lambda: world.queue_posts() == 1, "the first retry run to be requested", child.log_tail
    )
    await child.kill()
    await until(lambda: len(world.training_runs()) == 1, "the held run to be created")
    await child.start()

    # 2. Killed while a notification is on its way to the webhook.
    webhook.hold_after(len(webhook.shown) + 1)
    await asyncio.wait_for(webhook.held.wait(), WAIT_S)
    await child.kill()
    await asyncio.wait_for(webhook.dropped.wait(), WAIT_S)
    await child.start()

    # 3. Killed in the middle of a check, while it lists the jobs.
    await until(lambda: len(webhook.shown) >= 6, "more notifications", child.log_tail)
    listed = len(stack.azureml.requests)
    stack.azureml.inject("slow", delay_s=30)
    await until(lambda: len(stack.azureml.requests) > listed, "the next Azure ML request")
    await child.kill()
    stack.azureml.clear_faults()
    await child.start()

    # Played to the end: the last attempt of CIRCUIT03 failed and everything was sent.
    def finished() -> bool:
        return (
            any("CIRCUIT03" in text and "3 of 3" in text for text in webhook.shown)
            and any("CIRCUIT04" in text and "ompleted" in text for text in webhook.shown)
            and len(stack.smtp.messages) >= 1
        )

    await until(
        finished,
        "the scenario to play out",
        lambda: (webhook.shown, [m.subject for m in stack.smtp.messages], stack.state()["jobs"]),
    )
    expected_posts = -1
    while expected_posts != len(webhook.shown):
        # Let deliveries in flight land, then stop: nothing may arrive twice meanwhile.
        expected_posts = len(webhook.shown)
        await asyncio.sleep(1.0)
    await child.kill()

    events = await stored_events(tmp_path)
    keys = [e.key for e in events]
    assert len(keys) == len(set(keys))

    # Every attempt ended exactly once, as the emulated Azure ML says it did.
    terminal = {
        (e.circuit, e.payload["attempt"]): e.kind
        for e in events
        if e.kind in ("training_completed", "training_failed", "training_canceled")
    }
    assert terminal == TERMINAL
    assert len([e for e in events if e.kind in set(TERMINAL.values())]) == len(TERMINAL)
    exhausted = [e.payload["attempt"] for e in events if e.payload.get("retries_exhausted")]
    assert exhausted == [3]
    started = Counter(
        (e.circuit, e.payload["attempt"]) for e in events if e.kind == "training_started"
    )
    assert set(started) <= set(TERMINAL) and max(started.values()) == 1
    assert not [e for e in events if e.kind == "monitoring_timed_out"]

    # The webhook showed each notification once, and nothing else.
    assert all(e.delivered_at is not None for e in events if e.kind in WEBHOOK_KINDS)
    wanted = Counter(event_summary(e) for e in events if e.kind in WEBHOOK_KINDS)
    assert Counter(webhook.shown) == wanted

    # One reminder, by email. SMTP has no way to ask "did that arrive?", so a kill right
    # after the server accepted it sends it again on restart, with the same Message-ID
    # (mail clients show one message): one message as users see it, at most one resend.
    reminders = [e for e in events if e.kind == "long_running"]
    assert [(e.circuit, e.payload["reminder"]) for e in reminders] == [("PLANT001/CIRCUIT04", 1)]
    emails = stack.smtp.messages
    assert {m.headers.get(EVENT_HEADER) for m in emails} == {reminders[0].key}
    assert len({m.headers.get("Message-ID") for m in emails}) == 1
    assert 1 <= len(emails) <= 2

    # Each retry became exactly one pipeline run, with the circuits it was for.
    retries = [e for e in events if e.kind == "retry_queued"]
    runs = world.training_runs()
    assert sorted(e.payload["run_id"] for e in retries) == sorted(r["id"] for r in runs)
    retried = Counter(
        circuit for r in runs for circuit in r["parameters"]["manualCircuits"].split(",")
    )
    assert retried == {"PLANT001/CIRCUIT02": 1, "PLANT001/CIRCUIT03": 2}
    # And each retried attempt exists once in Azure ML.
    assert len(world.jobs_of("PLANT001/CIRCUIT03")) == 3
    assert len(world.jobs_of("PLANT001/CIRCUIT02")) == 2
    assert child.starts == 4
