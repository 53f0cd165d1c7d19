"""Benchmark: the `status` round trip, bot vs. a minimal aiohttp floor.

An activity is POSTed to the running bot (real HTTP on 127.0.0.1, real CloudAdapter,
1,000 watched jobs in a SQLite store) and timed until the Bot Connector stand-in has
received the reply card. The floor is the same round trip through a bare aiohttp
handler that replies without the bot. Target: bot p99 <= 3x floor p99.

    .venv/bin/python bench/status_roundtrip.py [--requests 1000] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import build_runtime
from config.settings import settings_from_mapping
from monitoring.jobs import JobState, TrainingJob
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import channel_message

STATES = [JobState.RUNNING, JobState.WAITING, JobState.COMPLETED, JobState.FAILED]


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


async def _measure(
    session: aiohttp.ClientSession, url: str, connector: ConnectorStandIn, count: int
) -> list[float]:
    timings = []
    for _ in range(count):
        activity = channel_message("<at>mlbot</at> status", connector.url)
        expected = len(connector.calls) + 1
        start = time.perf_counter()
        async with session.post(f"{url}/api/messages", json=activity) as response:
            await response.read()
            if response.status != 201:
                raise RuntimeError(f"unexpected status {response.status}")
        await connector.wait_for(expected)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


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


async def run(requests: int, jobs: int, approvals: int = 0) -> dict[str, Any]:
    connector = ConnectorStandIn()
    await connector.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_from_mapping(
            {"MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db"}
        )
        runtime = await build_runtime(settings)
        now = datetime.now(UTC)
        for i in range(jobs):
            state = STATES[i % len(STATES)]
            await runtime.jobs.upsert(
                TrainingJob(
                    workspace="sub/rg/ws",
                    name=f"train-{i:05d}",
                    display_name=f"train PLANT{i // 10:03d}/CIRCUIT{i % 10:02d}",
                    experiment="circuit-training",
                    circuit=f"PLANT{i // 10:03d}/CIRCUIT{i % 10:02d}",
                    status=state.value.title(),
                    state=state,
                    started_at=now - timedelta(minutes=i % 300),
                ),
                now=now,
            )
        if approvals:
            await _add_approvals(runtime, approvals, now)
        bot_runner, bot_url = await _serve(runtime.web_app)
        async with aiohttp.ClientSession() as session:
            floor_runner, floor_url = await _serve(_floor_app(session))
            # Warm both paths (first-request costs: imports, connection pools).
            await _measure(session, bot_url, connector, 20)
            await _measure(session, floor_url, connector, 20)
            floor = await _measure(session, floor_url, connector, requests)
            bot = await _measure(session, bot_url, connector, requests)
            await floor_runner.cleanup()
        await bot_runner.cleanup()
    await connector.stop()
    card = connector.cards()[-1]
    return {"bot": bot, "floor": floor, "card_bytes": len(json.dumps(card).encode())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--approvals", type=int, default=0, help="pending approvals to show")
    args = parser.parse_args()
    print(
        f"status round trip: {args.requests} requests, {args.jobs} watched jobs, "
        f"{args.approvals} pending approvals",
        flush=True,
    )
    result = asyncio.run(run(args.requests, args.jobs, args.approvals))
    rows = []
    for name in ("floor", "bot"):
        values = result[name]
        rows.append((name, statistics.median(values), _pct(values, 0.99), max(values)))
        print(
            f"  {name:<5} p50 {rows[-1][1]:7.2f} ms   p99 {rows[-1][2]:7.2f} ms"
            f"   max {rows[-1][3]:7.2f} ms"
        )
    print(f"  status card size: {result['card_bytes']:,} bytes (Teams limit 28 KB)")
    ratio50 = rows[1][1] / rows[0][1]
    ratio99 = rows[1][2] / rows[0][2]
    verdict = "within" if ratio99 <= 3 else "ABOVE"
    print(f"  ratio p50 {ratio50:.2f}x   p99 {ratio99:.2f}x  ({verdict} the 3x target)")


if __name__ == "__main__":
    main()
