"""A person's path through the Microsoft 365 Agents Playground, against mlbot in sandbox mode.

In the playground's team channel: mention the bot with `status` and see the status card;
ask for a retry, click "Queue the retry" on the confirmation card and see that card
replaced by the answer; then check the sandbox's Azure DevOps really queued the training
pipeline with that circuit. Screenshots of every step land in `artifacts/e2e/`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    E2E_DIR,
    LOOPBACK_PRELOAD,
    NODE_MODULES,
    Bot,
    Playground,
    Service,
    StepTimeout,
    Tools,
    base_env,
    get_json,
    start_service,
    stop_service,
)

pytestmark = pytest.mark.e2e

CIRCUIT = "PLANT001/CIRCUIT01"  # completes in the default scenario: never retried on its own
STEP_TIMEOUT_S = 30
DRIVER_TIMEOUT_S = 120


def drive_playground(
    tools: Tools, playground: Playground, artifacts: Path, services: list[Service]
) -> dict[str, Any]:
    """Run the browser script; its last line is the outcome, earlier lines the steps."""
    request = {
        "url": f"{playground.url}/",
        "chromium": tools.chromium,
        "artifacts": str(artifacts),
        "botName": playground.world.bot_name,
        "circuit": CIRCUIT,
        "stepTimeoutMs": STEP_TIMEOUT_S * 1000,
        "modules": str(NODE_MODULES.parent),
    }
    argv = [
        tools.node,
        "--require",
        str(LOOPBACK_PRELOAD),
        str(E2E_DIR / "drive_playground.mjs"),
        json.dumps(request),
    ]
    log = artifacts / "driver.log"
    driver = start_service("browser", argv, cwd=artifacts, env=base_env(), log=log)
    services.append(driver)
    try:
        driver.process.wait(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_service(driver)
        raise StepTimeout(
            f"step 'drive the playground page' timed out after {DRIVER_TIMEOUT_S} s; "
            f"steps finished: {[line.get('step') for line in _json_lines(driver.log_text())]}"
        ) from None
    lines = _json_lines(driver.log_text())
    if not lines or "ok" not in lines[-1]:
        raise AssertionError(
            f"the browser script gave no outcome (exit {driver.process.returncode}):\n"
            f"{driver.log_text()[-3000:]}"
        )
    outcome: dict[str, Any] = lines[-1]
    if not outcome["ok"]:
        raise AssertionError(
            f"step '{outcome['step']}' failed in the browser: {outcome['error']}\n"
            f"(screenshots, failure.png, page.html and logs in {artifacts})"
        )
    outcome["steps"] = [line["step"] for line in lines[:-1]]
    return outcome


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"')]


def test_status_and_a_card_action_in_the_team_channel(
    e2e_tools: Tools,
    playground: Playground,
    sandbox_bot: Bot,
    artifacts: Path,
    services: list[Service],
) -> None:
    outcome = drive_playground(e2e_tools, playground, artifacts, services)

    assert outcome["steps"] == [
        "load the playground page",
        "open the team channel",
        "mention the bot with status and see the status card",
        "ask for a retry and see the confirmation card",
        "click Queue the retry and see the card update",
    ]
    status = outcome["statusCard"]
    assert "Training status" in status
    assert re.search(r"\d+ job\(s\)", status), status
    assert "As of " in status

    confirm = outcome["confirmCard"]
    assert "Retry training?" in confirm
    assert "Queue the retry" in confirm

    answer = outcome["answerCard"]
    assert "Retry queued" in answer
    assert CIRCUIT in answer
    assert "Queue the retry" not in answer  # the confirmation was replaced, not added to
    run_number = re.search(r"training-pipeline run #(\d+)", answer)
    assert run_number, answer

    # The click reached Azure DevOps (the sandbox's emulator): that run, that circuit.
    runs = get_json(f"{sandbox_bot.url}/_sandbox/state")["pipeline_runs"]
    queued = [run for run in runs if run["id"] == int(run_number.group(1))]
    assert len(queued) == 1, runs
    assert queued[0]["pipeline"] == "training-pipeline"
    assert queued[0]["parameters"].get("manualCircuits") == CIRCUIT

    assert sorted(path.name for path in artifacts.glob("*.png")) == [
        "01-playground.png",
        "02-team-channel.png",
        "03-status-typed.png",
        "04-status-card.png",
        "05-retry-typed.png",
        "06-retry-confirmation.png",
        "07-retry-queued.png",
    ]
