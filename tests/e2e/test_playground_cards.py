"""What the status, help and config cards look like in the Agents Playground's channel.

The cards are drawn by the playground's own page in headless Chromium, and measured
there: each circuit name sits on one rendered line and is not cut off, the status card
is read at a phone's width too, help shows each command's argument syntax with no
description cut at the card's edge, and config shows its areas with every setting
behind a toggle. Screenshots of each land in `artifacts/e2e/playground_cards/`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cards.help import display_usage
from tests.e2e.conftest import (
    Bot,
    Playground,
    Service,
    Tools,
    http_get,
    run_browser_script,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STEP_TIMEOUT_S = 30
DRIVER_TIMEOUT_S = 150
PHONE_WIDTH = 320  # CSS pixels: a card's width in Teams on a phone held upright
CIRCUIT = re.compile(r"^[A-Z]+\d+/[A-Z]+\d+$")


def jobs_in_the_store(bot: Bot) -> int | None:
    """The watched jobs the bot's /metrics counts, once its first check found any."""
    answer = http_get(f"{bot.url}/metrics")
    if answer is None or answer[0] != 200:
        return None
    counted = re.findall(rb"^mlbot_watched_jobs\{[^}]*\} (\d+(?:\.\d+)?)$", answer[1], re.M)
    total = sum(float(value) for value in counted)
    return int(total) if total else None


def shown_lines(inner_text: str) -> list[str]:
    return [line.strip() for line in inner_text.split("\n") if line.strip()]


def broken(measured: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in measured["matches"] if m["lines"] != 1 or m["hidden"]]


def clipped(measured: dict[str, Any]) -> list[str]:
    return [t["text"] for t in measured["texts"] if t["clipped"]]


def test_status_help_and_config_read_well_in_the_channel(
    e2e_tools: Tools,
    playground: Playground,
    sandbox_bot: Bot,
    artifacts: Path,
    services: list[Service],
) -> None:
    # Ask once the bot's first check has found the scenario's jobs.
    wait_until("the first monitoring pass", lambda: jobs_in_the_store(sandbox_bot), timeout_s=60)
    outcome = run_browser_script(
        e2e_tools,
        "drive_cards.mjs",
        {
            "url": f"{playground.url}/",
            "chromium": e2e_tools.chromium,
            "artifacts": str(artifacts),
            "botName": playground.world.bot_name,
            "stepTimeoutMs": STEP_TIMEOUT_S * 1000,
            "phoneWidth": PHONE_WIDTH,
        },
        artifacts=artifacts,
        services=services,
        timeout_s=DRIVER_TIMEOUT_S,
    )
    assert outcome["steps"] == [
        "load the playground page",
        "open the team channel",
        "mention the bot with status and see the status card",
        "mention the bot with help and see the help card",
        "mention the bot with config and see the config card",
        "see the status card at a phone's width",
    ]

    # Status: every circuit whole, on one line, in the channel and at a phone's width.
    status = outcome["status"]
    circuits = [m["text"] for m in status["matches"]]
    assert len(set(circuits)) >= 3, status["text"]
    assert broken(status) == [], status["matches"]
    assert clipped(status) == [], status["texts"]
    lines = shown_lines(status["text"])
    for circuit in set(circuits):
        assert circuit in lines, f"{circuit} is not a line of its own: {lines}"
    phone = outcome["phone"]
    assert phone["width"] <= PHONE_WIDTH, phone["width"]
    assert {m["text"] for m in phone["matches"]} == set(circuits)
    assert broken(phone) == [], phone["matches"]

    # Help: the argument syntax is shown, and no description is cut at the card's edge.
    help_text = outcome["help"]["text"]
    assert display_usage("retry <circuits>") in help_text, help_text  # between guillemets
    assert "status [filter]" in help_text, help_text
    assert clipped(outcome["help"]) == [], outcome["help"]["texts"]

    # Config: areas, what differs first, the rest behind the toggle; names whole.
    config = outcome["config"]
    before = [t["text"] for t in config["before"]["texts"]]
    after = [t["text"] for t in config["after"]["texts"]]
    assert "Access and security" in before and "Azure" in after, before
    assert re.fullmatch(r"Show all \d+ settings", config["toggle"]), config["toggle"]
    lines_before = shown_lines(config["before"]["text"])
    lines_after = shown_lines(config["after"]["text"])
    assert "MLBOT_OPERATORS" in lines_before and "MLBOT_MAX_REQUEST_BYTES" not in lines_before
    assert "MLBOT_MAX_REQUEST_BYTES" in lines_after and len(lines_after) > 2 * len(lines_before)
    # A long name is split after an underscore, each part whole on its own line.
    at = lines_after.index("MLBOT_LONG_RUNNING_JOB_")
    assert lines_after[at + 1] == "NOTIFICATION_INTERVAL_HOURS", lines_after[at : at + 2]
    assert len(config["after"]["matches"]) > 70
    assert broken(config["after"]) == [], config["after"]["matches"]
    assert clipped(config["after"]) == [], config["after"]["texts"]

    shots = sorted(path.name for path in artifacts.glob("*.png"))
    for name in ("status", "help", "config", "config-all", "status-phone"):
        assert any(shot.endswith(f"-{name}.png") for shot in shots), shots
