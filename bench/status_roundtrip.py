"""Benchmark: the `status` round trip against two floors, at two store sizes, in one run.

Each request is a Teams channel message `@mlbot status` POSTed over real HTTP on
127.0.0.1 and timed until the bot has answered it and the Bot Connector stand-in has
answered the bot's reply (the whole reply, not its first byte). The thread the message
is posted in is known to the stand-in, so every turn is a valid one. Four targets take
turns, in rounds, so drift on a shared machine falls on all of them alike:

  floor   a bare aiohttp handler that posts a reply (no Bot Framework at all);
  echo    botbuilder's own minimal `ActivityHandler` echo bot on a `CloudAdapter` built
          as the framework's samples build it (the framework's floor);
  small   mlbot with `--jobs` watched jobs (default 1,000);
  large   mlbot with `--large-jobs` watched jobs (default 10,000) and `--approvals`
          pending approvals (default 50).

Targets: large p99 <= 1.15x small p99 (status does not grow with the job count) and
small p99 <= 0.5x echo p99. `cpu` is this process's CPU time per request (the client and
the stand-in included, alike for every target), steadier than wall time when the
machine is shared. The run fails (exit 1) if any reply is not 2xx, anything is
logged at WARNING or above while timing, or a status card is not the expected one;
timings never fail it.

    .venv/bin/python bench/status_roundtrip.py [--requests 1000] [--jobs 1000]
        [--large-jobs 10000] [--approvals 50] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import build_runtime
from bench.run_checks import AnsweringConnector, RunChecks
from config.settings import settings_from_mapping
from domain.jobs import JobState, TrainingJob
from tests.standins.connector import Message
from tests.teams_payloads import CHANNEL_ID, channel_message

STATES = [JobState.RUNNING, JobState.WAITING, JobState.COMPLETED, JobState.FAILED]
# The root of the channel thread `channel_message` posts into.
THREAD_ROOT = channel_message("", "")["conversation"]["id"].partition(";messageid=")[2]
TARGETS = {"p99 large / small": 1.15, "p99 small / echo": 0.5}


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _floor_app(session: aiohttp.ClientSession) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        activity = await request.json()
        conversation = activity["conversation"]["id"]
        url = f"{activity['serviceUrl']}v3/conversations/{conversation}/activities/{activity['id']}"
        reply = {"type": "message", "text": "ok", "replyToId": activity["id"]}
        async with session.post(url, json=reply) as response:
            await response.read()
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", handle)
    return app


class _EchoBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(MessageFactory.text(turn_context.activity.text or ""))


class _NoCredentials:
    """The settings botbuilder's samples read, left empty as for a local bot."""

    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def _echo_app() -> web.Application:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_NoCredentials()))
    bot = _EchoBot()

    async def handle(request: web.Request) -> web.Response:
        response = await adapter.process(request, bot)
        return response or web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", handle)
    return app


@dataclass
class _Target:
    name: str
    url: str
    timings: list[float]
    # Status targets: the watched jobs their card must count.
    jobs: int | None = None
    # CPU time of this process over the timed requests (client and stand-in included,
    # alike for every target): steadier than wall time on a shared machine.
    cpu_s: float = 0.0


async def _measure(
    session: aiohttp.ClientSession,
    target: _Target,
    connector: AnsweringConnector,
    count: int,
    checks: RunChecks,
    keep: bool = True,
) -> None:
    cpu_began = time.process_time()
    for _ in range(count):
        activity = channel_message("<at>mlbot</at> status", connector.url)
        expected = len(connector.answers) + 1
        start = time.perf_counter()
        async with session.post(f"{target.url}/api/messages", json=activity) as response:
            await response.read()
        await connector.wait_answered(expected)
        took = (time.perf_counter() - start) * 1000
        checks.reply(response.status, f"{target.name} answered the message")
        if keep:
            target.timings.append(took)
        if target.jobs is not None:
            _check_card(connector, target.jobs, checks)
    if keep:
        target.cpu_s += time.process_time() - cpu_began


def _check_card(connector: AnsweringConnector, jobs: int, checks: RunChecks) -> None:
    cards = connector.cards()
    checks.require(bool(cards), "mlbot replied without a card")
    if cards:
        text = json.dumps(cards[-1])
        checks.require(f"{jobs} job(s)" in text, f"the status card does not count {jobs} jobs")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _add_approvals(runtime: Any, count: int, now: datetime) -> None:
    """Pending approvals as the Azure DevOps hook records them (shown by `status`)."""
    from store.monitoring import NewEvent, Observation

    events = [
        NewEvent(
            key=f"bench/approval/{n}",
            kind="approval_required",
            payload={
                "approval_id": f"approval-{n}",
                "pipeline": "deployment-pipeline",
                "stage": "Deploy_Prod",
                "environment": ("prod", "staging", "test")[n % 3],
            },
        )
        for n in range(count)
    ]
    await runtime.monitoring.apply(Observation(now=now, events=events))


@asynccontextmanager
async def _mlbot(folder: str, jobs: int, approvals: int) -> AsyncIterator[str]:
    settings = settings_from_mapping(
        {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db",
            "MLBOT_CARD_SIGNING_KEY": "bench-signing-key-0123456789abcdef0123",
        }
    )
    runtime = await build_runtime(settings)
    now = datetime.now(UTC)
    for i in range(jobs):
        state = STATES[i % len(STATES)]
        circuit = f"PLANT{i // 10:03d}/CIRCUIT{i % 10:02d}"
        await runtime.jobs.upsert(
            TrainingJob(
                workspace="sub/rg/ws",
                name=f"train-{i:05d}",
                display_name=f"train {circuit}",
                experiment="circuit-training",
                circuit=circuit,
                status=state.value.title(),
                state=state,
                started_at=now - timedelta(minutes=i % 300),
            ),
            now=now,
        )
    if approvals:
        await _add_approvals(runtime, approvals, now)
    runner, url = await _serve(runtime.web_app)
    try:
        yield url
    finally:
        await runner.cleanup()


async def run(
    requests: int, jobs: int, large_jobs: int, approvals: int, rounds: int, checks: RunChecks
) -> dict[str, Any]:
    connector = AnsweringConnector()
    await connector.start()
    # The channel thread every message is posted in, as Teams has it.
    connector.messages[THREAD_ROOT] = Message(THREAD_ROOT, CHANNEL_ID, None, {"type": "message"})
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as session:
        small_dir = stack.enter_context(tempfile.TemporaryDirectory())
        large_dir = stack.enter_context(tempfile.TemporaryDirectory())
        floor_runner, floor_url = await _serve(_floor_app(session))
        echo_runner, echo_url = await _serve(_echo_app())
        small_url = await stack.enter_async_context(_mlbot(small_dir, jobs, 0))
        large_url = await stack.enter_async_context(_mlbot(large_dir, large_jobs, approvals))
        targets = [
            _Target("floor", floor_url, []),
            _Target("echo", echo_url, []),
            _Target("small", small_url, [], jobs),
            _Target("large", large_url, [], large_jobs),
        ]
        # Warm every path (first-request costs: imports, connection pools, caches).
        for target in targets:
            await _measure(session, target, connector, 20, checks, keep=False)
        first_answer = len(connector.answers)
        with checks.timed():
            per_round = max(1, requests // rounds)
            for _ in range(rounds):
                for target in targets:
                    await _measure(session, target, connector, per_round, checks)
        connector.check_answers(checks, since=first_answer)
        await floor_runner.cleanup()
        await echo_runner.cleanup()
    await connector.stop()
    sizes = [len(json.dumps(card).encode()) for card in connector.cards()]
    return {"targets": targets, "card_bytes": max(sizes, default=0)}


def report(targets: list[_Target], card_bytes: int) -> None:
    p99 = {}
    for target in targets:
        values = target.timings
        p99[target.name] = _pct(values, 0.99)
        label = target.name if target.jobs is None else f"status, {target.jobs:,} jobs"
        print(
            f"  {target.name:<5} {label:<22} p50 {statistics.median(values):7.2f} ms"
            f"   p99 {p99[target.name]:7.2f} ms   max {max(values):7.2f} ms"
            f"   cpu {target.cpu_s * 1000 / len(values):6.2f} ms"
        )
    print(f"  largest status card: {card_bytes:,} bytes (Teams limit 28 KB)")
    ratios = {
        "p99 large / small": p99["large"] / p99["small"],
        "p99 small / echo": p99["small"] / p99["echo"],
    }
    for name, value in ratios.items():
        verdict = "MET" if value <= TARGETS[name] else "NOT MET"
        print(f"  {name:<18} {value:5.2f}x   target <= {TARGETS[name]}x: {verdict}")
    print(f"  p99 large / echo   {p99['large'] / p99['echo']:5.2f}x")
    cpu = {t.name: t.cpu_s / len(t.timings) for t in targets}
    print(f"  cpu small / echo   {cpu['small'] / cpu['echo']:5.2f}x (CPU per turn)")
    print(f"  p99 echo / floor   {p99['echo'] / p99['floor']:5.2f}x (the framework's own cost)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per target")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--large-jobs", type=int, default=10_000)
    parser.add_argument("--approvals", type=int, default=50, help="pending, in the large store")
    parser.add_argument("--rounds", type=int, default=10, help="turns the targets take")
    args = parser.parse_args()
    print(
        f"status round trip: {args.requests} requests per target in {args.rounds} rounds; "
        f"small {args.jobs:,} jobs, large {args.large_jobs:,} jobs and {args.approvals} "
        "pending approvals",
        flush=True,
    )
    checks = RunChecks("status round trip")
    result = asyncio.run(
        run(args.requests, args.jobs, args.large_jobs, args.approvals, args.rounds, checks)
    )
    report(result["targets"], result["card_bytes"])
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
