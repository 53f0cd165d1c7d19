"""Real mode, end to end: `mlbot serve` configured as a user configures it for Azure.

`mlbot sandbox` runs in its own process and prints the settings real Azure takes
(`MLBOT_AZURE_*`, a Resource Manager URL and Entra ID authority of its own cloud, a CA
bundle, a service principal in `AZURE_*`, `MLBOT_DEVOPS_*`). A second process, `mlbot
serve`, gets exactly those settings and nothing from the sandbox's code: it signs in with
azure-identity (MSAL against the Entra ID stand-in), lists jobs through azure-ai-ml over
HTTPS it trusts only through `MLBOT_CA_BUNDLE` (the Resource Manager stand-in refuses any
token Entra ID did not issue), and queues retries through the azure-devops SDK. The test
sees a training failure posted to a Workflows webhook and its retry queued in Azure DevOps.
A wrong client secret makes `mlbot check` name the setting to fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandbox.standalone import READY_LINE
from tests.conftest import serve_app

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0

SCENARIO = """
name: real-mode
subscription_id: 00000000-0000-0000-0000-0000000000aa
resource_group: rg-real-mode
experiment: circuit-training
workspaces:
  - name: mlw-real-mode
    circuits: [PLANT001/CIRCUIT01, PLANT001/CIRCUIT02]
jobs:
  - circuit: PLANT001/CIRCUIT01   # completes
    start_after_s: 0
    duration_s: 60
  - circuit: PLANT001/CIRCUIT02   # fails once; the retry completes
    start_after_s: 0
    duration_s: [60, 60]
    outcomes: [Failed, Completed]
    error_message: "UserError: loss became NaN"
pipelines:
  training: {name: training-pipeline, circuits_parameter: manualCircuits,
             submit_after_s: 5, finish_after_s: 5}
  deployment: {name: deployment-pipeline, duration_s: 60, result: succeeded}
  rollback: {name: rollback-pipeline, duration_s: 60, result: succeeded}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_environment() -> dict[str, str]:
    """The test's environment without any setting that could point mlbot elsewhere."""
    return {
        key: value
        for key, value in os.environ.items()
        # AZUREML_CURRENT_CLOUD: azure-ai-ml records the last cloud it used in the
        # environment of the process, here the test runner's.
        if not key.startswith(("MLBOT_", "AZURE_", "AZUREML_", "MICROSOFT", "Microsoft"))
    } | {"PYTHONPATH": str(ROOT)}


def _mlbot(*args: str) -> list[str]:
    return [sys.executable, "-c", f"import sys, cli; sys.exit(cli.main({list(args)!r}))"]


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    settings: dict[str, str]
    control_url: str


def _start_sandbox(scenario: Path) -> Sandbox:
    process = subprocess.Popen(
        _mlbot("sandbox", "--scenario", str(scenario), "--speed", "60"),
        env=_clean_environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    settings: dict[str, str] = {}
    control_url = ""
    deadline = time.monotonic() + WAIT_S
    for line in process.stdout:
        line = line.strip()
        if line == READY_LINE:
            break
        if line.startswith("# control API"):
            control_url = line.rsplit(" ", 1)[-1]
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
        assert time.monotonic() < deadline, "mlbot sandbox never became ready"
    else:
        raise AssertionError(f"mlbot sandbox exited with {process.wait()}")
    return Sandbox(process, settings, control_url)


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    started = _start_sandbox(scenario)
    try:
        yield started
    finally:
        _stop(started.process)


@dataclass
class Webhook:
    posts: list[dict[str, Any]]
    url: str


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    posts: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/workflow", receive)
    runner, url = await serve_app(app)
    try:
        yield Webhook(posts, f"{url}/workflow")
    finally:
        await runner.cleanup()


def _start_serving(env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[str]:
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            _mlbot("serve"), env=env, cwd=cwd, stdout=log_file, stderr=log_file, text=True
        )


async def _state(control_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(control_url) as response:
        assert response.status == 200
        return dict(await response.json())


def _training_runs(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for run in state["pipeline_runs"] if run["pipeline"] == "training-pipeline"]


async def test_real_mode_serve_alerts_a_failure_and_queues_its_retry(
    sandbox: Sandbox, webhook: Webhook, tmp_path: Path
) -> None:
    # What the user types: exactly the printed settings, plus a store, a port, a webhook.
    env = _clean_environment() | sandbox.settings
    env |= {
        # A registered bot: real mode with Azure credentials is never local mode. No
        # activity arrives in this test, so nothing asks the Bot Framework for keys.
        "MicrosoftAppId": "11111111-2222-3333-4444-555555555555",
        "MicrosoftAppPassword": "app-secret-for-tests",
        "MicrosoftAppType": "SingleTenant",
        "MicrosoftAppTenantId": sandbox.settings["AZURE_TENANT_ID"],
        "MLBOT_CARD_SIGNING_KEY": "card-signing-key-for-the-real-mode-test",
        "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'mlbot.db'}",
        "MLBOT_PORT": str(_free_port()),
        "MLBOT_TEAMS_WEBHOOK_URL": webhook.url,
        "MLBOT_MONITORING_POLL_INTERVAL_SECONDS": "1",
        "MLBOT_MONITORING_MAX_DELAY_SECONDS": "2",
        "MLBOT_GROUP_WAIT_SECONDS": "0",
    }
    assert env["MLBOT_SANDBOX"] == "false"
    assert env["MLBOT_AZURE_RESOURCE_MANAGER_URL"].startswith("https://127.0.0.1:")
    log_path = tmp_path / "serve.log"
    serving = _start_serving(env, tmp_path, log_path)
    try:
        deadline = time.monotonic() + WAIT_S
        runs: list[dict[str, Any]] = []
        failure_posts: list[str] = []
        while time.monotonic() < deadline:
            assert serving.poll() is None, log_path.read_text()[-3000:]
            runs = _training_runs(await _state(sandbox.control_url))
            failure_posts = [
                text
                for text in (json.dumps(post) for post in webhook.posts)
                if "PLANT001/CIRCUIT02" in text and "loss became NaN" in text
            ]
            if runs and failure_posts:
                break
            await asyncio.sleep(0.5)
        log_text = log_path.read_text()
        assert failure_posts, f"no failure on the webhook; log:\n{log_text[-3000:]}"
        assert runs, f"no retry queued; log:\n{log_text[-3000:]}"
        assert "PLANT001/CIRCUIT02" in json.dumps(runs[0]["parameters"])
        assert "PLANT001/CIRCUIT01" not in json.dumps(runs[0]["parameters"])
        # It ran in real mode, against the sandbox's cloud, and logged no secret.
        assert "SANDBOX MODE" not in log_text
        assert "Resource Manager https://127.0.0.1:" in log_text
        assert sandbox.settings["AZURE_CLIENT_SECRET"] not in log_text
        assert sandbox.settings["MLBOT_DEVOPS_PAT"] not in log_text
        assert "app-secret-for-tests" not in log_text
        assert "LOCAL MODE" not in log_text
    finally:
        _stop(serving)


def test_check_names_the_secret_when_entra_id_refuses_the_service_principal(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = _clean_environment() | sandbox.settings
    env |= {
        "AZURE_CLIENT_SECRET": "not-the-secret",
        "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'mlbot.db'}",
    }
    checked = subprocess.run(
        _mlbot("check"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_S
    )
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0, output
    assert "AZURE_CLIENT_SECRET" in output, output
    assert "not-the-secret" not in output
