"""The `history` card, and a failure with its owner and Acknowledge, as the Agents
Playground's channel draws them.

The sandbox plays its default scenario (PLANT002/CIRCUIT02 fails once, its retry
succeeds); `history PLANT002/CIRCUIT02` shows both attempts, with the run-time chart or,
where the client draws no charts, its fallback line, and the table. Then a training that
fails after the bot joined the channel (submitted through the sandbox): its card says why,
shows the log's last lines and mentions the owner; Acknowledge turns it into "… is on it".
The screenshots land in `artifacts/e2e/playground_history/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Bot,
    Playground,
    Service,
    Tools,
    http_get,
    run_browser_script,
    wait_until,
)
from tests.e2e.test_playground_cards import jobs_in_the_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DRIVER_TIMEOUT_S = 420
# The scenario five times faster than real time: the retry of PLANT002/CIRCUIT02 has
# completed about 45 s in.
SPEED = 5
_COMPLETED = re.compile(
    rb'^mlbot_training_outcomes_total\{[^}]*outcome="completed"[^}]*\} (\S+)$', re.M
)


def completed(bot: Bot) -> float:
    answer = http_get(f"{bot.url}/metrics")
    if answer is None or answer[0] != 200:
        return 0.0
    return sum(float(value) for value in _COMPLETED.findall(answer[1]))


@pytest.mark.parametrize("sandbox_speed", [SPEED], ids=[f"speed{SPEED}"])
def test_the_history_card_reads_in_the_channel(
    e2e_tools: Tools,
    playground: Playground,
    sandbox_bot: Bot,
    artifacts: Path,
    services: list[Service],
) -> None:
    wait_until("the first monitoring pass", lambda: jobs_in_the_store(sandbox_bot), timeout_s=60)
    # PLANT001/CIRCUIT01 completes within a minute, PLANT002/CIRCUIT02's retry a little later.
    wait_until(
        "the retry of PLANT002/CIRCUIT02",
        lambda: True if completed(sandbox_bot) >= 2 else None,
        timeout_s=120,
    )
    outcome = run_browser_script(
        e2e_tools,
        "drive_history.mjs",
        {
            "url": f"{playground.url}/",
            "chromium": e2e_tools.chromium,
            "artifacts": str(artifacts),
            "botName": playground.world.bot_name,
            "stepTimeoutMs": 150_000,
            "controlUrl": sandbox_bot.url,
        },
        artifacts=artifacts,
        services=services,
        timeout_s=DRIVER_TIMEOUT_S,
    )
    history = outcome["history"]["text"]
    assert "#2" in history and "#1" in history, history
    assert "Completed" in history and "Failed" in history, history
    assert "automatic retry" in history and "first run" in history, history
    # Drawn as a chart, or its fallback where charts are not drawn: never nothing.
    assert outcome["history"]["chartDrawn"] or "Run time per attempt" in history, history

    # A failure after the bot joined the channel: why, the log's tail, the owner, a button.
    failure = outcome["failure"]["text"]
    assert "Why it failed" in failure and "CUDA out of memory" in failure, failure
    assert "Owners:" in failure and "Priya Data" in failure, failure
    after = outcome["failure"]["after"]
    assert "is on it" in after and "Acknowledge" not in after, after
