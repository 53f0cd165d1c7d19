"""Approvals and the deployment health alert in the Microsoft 365 Agents Playground.

mlbot runs the sandbox's rollback scenario (a prod deployment that degrades) 6x faster,
with two approvals waiting (staging and prod) and the playground's user an approver. In
the team channel: `approvals` lists both with their stage; rejecting the staging one
changes that row only (the prod one keeps working buttons); the rejection is announced
as a rejection, not as a failed deployment; then the health alert arrives with its
figures, and cancelling its rollback keeps them on the card. Screenshots of every step
land in `artifacts/e2e/playground_approvals/`.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ROOT,
    Bot,
    Playground,
    PlaygroundWorld,
    Service,
    Tools,
    get_json,
    run_browser_script,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STEP_TIMEOUT_S = 30
EVENT_TIMEOUT_S = 150  # the health alert comes about 95 s after the bot starts at 6x
DRIVER_TIMEOUT_S = 300


@pytest.fixture
def sandbox_scenario() -> Path:
    return ROOT / "sandbox" / "scenarios" / "rollback.yaml"


@pytest.fixture
def sandbox_speed() -> float:
    return 6.0


@pytest.fixture
def bot_environment(world: PlaygroundWorld) -> dict[str, str]:
    # Approvers are operators too: the playground's user may reject and cancel.
    return {"MLBOT_APPROVERS": world.user_aad_object_id}


def open_approval(bot: Bot, environment: str) -> dict[str, Any]:
    body = json.dumps(
        {
            "pipeline": "deployment-pipeline",
            "stage": f"Deploy_{environment.title()}",
            "environment": environment,
            "instructions": f"Deploy the retrained models to {environment}",
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310  (loopback only)
        f"{bot.url}/_sandbox/approvals", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status == 201
        opened: dict[str, Any] = json.loads(answer.read())
        return opened


def test_approvals_and_the_health_alert_in_the_team_channel(
    e2e_tools: Tools,
    playground: Playground,
    sandbox_bot: Bot,
    artifacts: Path,
    services: list[Service],
) -> None:
    staging = open_approval(sandbox_bot, "staging")
    prod = open_approval(sandbox_bot, "prod")
    request = {
        "url": f"{playground.url}/",
        "chromium": e2e_tools.chromium,
        "artifacts": str(artifacts),
        "botName": playground.world.bot_name,
        "userName": playground.world.user_name,
        "stepTimeoutMs": STEP_TIMEOUT_S * 1000,
        "eventTimeoutMs": EVENT_TIMEOUT_S * 1000,
    }
    outcome = run_browser_script(
        e2e_tools,
        "drive_playground_approvals.mjs",
        request,
        artifacts=artifacts,
        services=services,
        timeout_s=DRIVER_TIMEOUT_S,
    )

    assert outcome["steps"] == [
        "load the playground page",
        "open the team channel",
        "ask for the approvals and see both",
        "reject the staging approval and see only its row change",
        "see the rejection announced",
        "see the health alert of the prod deployment",
        "cancel the rollback and keep the evidence",
    ]
    listed = outcome["approvalsCard"]
    assert outcome["approvalsCard"]["rejectButtons"] == 2
    # The stage each approval waits at is shown (from the run's timeline), never "—".
    assert "Deploy_Staging" in listed["text"] and "Deploy_Prod" in listed["text"]
    assert not re.search(r"Stage\s*—", listed["text"]), listed["text"]

    after = outcome["afterReject"]
    # Only the rejected row changed: the prod approval is still actionable.
    assert after["rejectButtons"] == 1 and after["approveButtons"] == 1
    assert re.search(rf"Rejected\s+by\s+{re.escape(playground.world.user_name)}", after["text"])
    assert "Deploy_Prod" in after["text"] and "Deploy_Staging" in after["text"]

    announced = outcome["rejectedAnnouncement"]["text"]
    assert "Deployment to staging rejected" in announced
    assert f"{playground.world.user_name} (in Teams)" in announced  # by whom
    assert "failed" not in announced and "logs" not in announced
    assert "Deployment to staging failed" not in outcome["pageText"]

    alert = outcome["healthAlert"]["text"]
    assert "plant-models-prod / green in prod is unhealthy" in alert
    assert "Failed checks (UTC)" in alert
    caption = re.search(r"Last (\d+) minutes\s+(\d\d:\d\d) to (\d\d:\d\d) UTC · (\d+) bars", alert)
    assert caption, alert
    minutes, bars = int(caption.group(1)), int(caption.group(4))
    assert minutes == bars  # one bar per minute, as the caption says
    # The chart ends with the last failed check.
    checks = re.findall(r"^(\d\d:\d\d)\s", alert, flags=re.MULTILINE)
    assert checks and max(checks) == caption.group(3), (checks, caption.group(0))

    cancelled = outcome["afterCancel"]["text"]
    assert "Automatic rollback of prod cancelled" in cancelled
    assert "✅" not in cancelled
    assert "Failed checks (UTC)" in cancelled  # the evidence stayed on the card

    # The clicks reached Azure DevOps (the sandbox's emulator).
    approvals = {a["id"]: a for a in get_json(f"{sandbox_bot.url}/_sandbox/state")["approvals"]}
    assert approvals[staging["id"]]["status"] == "rejected"
    assert approvals[prod["id"]]["status"] == "pending"
    pictures = {path.name.split("-", 1)[1] for path in artifacts.glob("*.png")}
    assert {"approvals.png", "approvals-after-reject.png", "health-alert.png"} <= pictures
