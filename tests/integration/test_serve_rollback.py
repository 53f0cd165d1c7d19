"""`mlbot serve --sandbox` with the rollback scenario, as a user runs it: a real process.

The emulated Azure DevOps deploys to prod and posts its service hook to the bot, whose
scheduler drives the health watch through the real Azure Monitor SDK; the sandbox's
state shows the one rollback run. Simulated time runs 120x, so the story's twelve
minutes take a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.slow  # `mlbot serve` runs as a real process

ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "sandbox" / "scenarios" / "rollback.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _state(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(f"{url}/_sandbox/state") as response:
            return await response.json() if response.status == 200 else None
    except aiohttp.ClientError:
        return None


async def test_the_rollback_scenario_ends_with_one_rollback_run(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        # AZUREML_*: the Azure ML SDK records the emulator cloud of earlier tests there.
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLBOT_", "Microsoft", "AZUREML_"))
        },
        "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/mlbot.db",
        "MLBOT_PORT": str(port),
    }
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "app.py"),
        "serve",
        "--sandbox",
        "--speed",
        "120",
        "--scenario",
        str(SCENARIO),
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            deadline = time.monotonic() + 90
            state: dict[str, Any] | None = None
            while time.monotonic() < deadline:
                state = await _state(session, url)
                runs = (state or {}).get("pipeline_runs", [])
                if any(r["pipeline"] == "rollback-pipeline" for r in runs):
                    break
                assert process.returncode is None, (tmp_path / "serve.log").read_text()
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(
                    f"no rollback within 90 s: {state}\n{(tmp_path / 'serve.log').read_text()}"
                )
            # Another twenty simulated minutes: the watch does not flap.
            await asyncio.sleep(10)
            state = await _state(session, url)
            assert state is not None
            rollbacks = [r for r in state["pipeline_runs"] if r["pipeline"] == "rollback-pipeline"]
            assert len(rollbacks) == 1
            assert rollbacks[0]["parameters"]["endpoint"] == "plant-models-prod"
            assert [h["stage"] for h in state["service_hooks"]] == ["Deploy_Prod", "Rollback_Prod"]
            assert all(h["status"] == 200 for h in state["service_hooks"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
