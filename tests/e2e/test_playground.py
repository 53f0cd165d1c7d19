"""A person's path through the Microsoft 365 Agents Playground, against mlbot in sandbox mode.

In the playground's team channel: mention the bot with `status` and see the status card;
ask for a retry, click "Queue the retry" on the confirmation card and see that card
replaced by the answer; then check the sandbox's Azure DevOps really queued the training
pipeline with that circuit. Screenshots of every step land in `artifacts/e2e/`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    Bot,
    Playground,
    Service,
    Tools,
    get_json,
    run_browser_script,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CIRCUIT = "PLANT001/CIRCUIT01"  # completes in the default scenario: never retried on its own
STEP_TIMEOUT_S = 30
DRIVER_TIMEOUT_S = 120


def drive_playground(
    tools: Tools, playground: Playground, artifacts: Path, services: list[Service]
) -> dict[str, Any]:
    request = {
        "url": f"{playground.url}/",
        "chromium": tools.chromium,
        "artifacts": str(artifacts),
        "botName": playground.world.bot_name,
        "circuit": CIRCUIT,
        "stepTimeoutMs": STEP_TIMEOUT_S * 1000,
    }
    return run_browser_script(
        tools,
        "drive_playground.mjs",
        request,
        artifacts=artifacts,
        services=services,
        timeout_s=DRIVER_TIMEOUT_S,
    )


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
