"""The living card of a monitoring session, watched in the Agents Playground's team channel.

mlbot runs the sandbox's default scenario faster than real time. When the playground's
page loads, the bot is installed in the team, whose first channel then gets everything
but *started* events. The scenario's one monitoring session (experiment
`circuit-training`) must show as ONE card in that channel, posted once and updated in
place (`PUT …/activities/{id}`) as its jobs move, with the failure as a reply in the
card's thread (`<channel>;messageid=<card id>`).

What is checked, as a person sees it (the page) and as the playground was told (the
messages its conversation WebSocket sent the page):

- the card appears once, showing PLANT002/CIRCUIT02 failed on attempt 1;
- the failure's error arrives as a reply below the card, in its thread;
- the same card later shows PLANT002/CIRCUIT02 completed by attempt 2 (the automatic
  retry), and there is still exactly one such card.

Why not PLANT001/CIRCUIT01 (Running, then Completed 48 s in): the engine first looks at
the session when it starts, 30 s and 90 s in (its backoff). The first two checks only
find jobs starting, which the channel does not subscribe to; the third finds the first
failures and PLANT001/CIRCUIT01 already completed, and that is when the card is first
posted. The retry's completion (about 210 s in) is the first change the card shows.
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

# 90 s of the scenario in 18 s: the page has loaded (installing the bot) well before the
# first failures are announced (about 8 s), and the retry shows about 45 s after the start.
SPEED = 5
SESSION_TITLE = "circuit-training"  # the experiment of the default scenario
CIRCUIT = "PLANT002/CIRCUIT02"  # fails once; its automatic retry completes
FAILURE = "loss became NaN at epoch 3"  # its scenario error
FIRST_ANNOUNCED_AT_SIM_S = 90  # the engine's check that first finds failures
STEP_TIMEOUT_S = 30
EVENT_TIMEOUT_S = 90
DRIVER_TIMEOUT_S = 200

_FAILED_FIRST = re.compile(r"^❌ Failed · [^·]+ · attempt 1\b")
_COMPLETED_BY_RETRY = re.compile(r"^✅ Completed · [^·]+ · attempt 2\b")


def _is_session_card(frame: dict[str, Any]) -> bool:
    return re.fullmatch(rf"\W*{re.escape(SESSION_TITLE)}", frame["heading"]) is not None


@pytest.mark.parametrize("sandbox_speed", [SPEED], ids=[f"speed{SPEED}"])
def test_one_living_card_per_session_in_the_team_channel(
    e2e_tools: Tools,
    playground: Playground,
    sandbox_bot: Bot,
    artifacts: Path,
    services: list[Service],
) -> None:
    request = {
        "url": f"{playground.url}/",
        "chromium": e2e_tools.chromium,
        "artifacts": str(artifacts),
        "botUrl": sandbox_bot.url,
        "sessionTitle": SESSION_TITLE,
        "circuit": CIRCUIT,
        "failure": FAILURE,
        "installBeforeSimS": FIRST_ANNOUNCED_AT_SIM_S,
        "stepTimeoutMs": STEP_TIMEOUT_S * 1000,
        "eventTimeoutMs": EVENT_TIMEOUT_S * 1000,
    }
    outcome = run_browser_script(
        e2e_tools,
        "watch_living_card.mjs",
        request,
        artifacts=artifacts,
        services=services,
        timeout_s=DRIVER_TIMEOUT_S,
    )

    assert outcome["steps"] == [
        "load the playground page",
        "open the team channel",
        "see the session card appear in the channel",
        "see the failure as a reply in the card's thread",
        f"see {CIRCUIT} change on the same card",
        "see the whole thread",
    ]

    # On the page: one card, first with the failure, then with the recovery.
    assert outcome["firstCount"] == 1, outcome["firstCard"]
    assert _FAILED_FIRST.match(outcome["firstRow"] or ""), outcome["firstCard"]
    assert CIRCUIT in outcome["reply"], outcome["reply"]
    assert FAILURE in outcome["reply"], outcome["reply"]
    assert outcome["replyBelowTheCard"] is True
    assert _COMPLETED_BY_RETRY.match(outcome["updatedRow"] or ""), outcome["updatedCard"]
    assert outcome["sessionCards"] == 1, outcome["updatedCard"]
    assert outcome["sessionThreads"] == 1

    # As the playground was told: one create, then updates of that very message.
    frames: list[dict[str, Any]] = outcome["frames"]
    channel = playground.world.team_id
    cards = [frame for frame in frames if _is_session_card(frame)]
    created = [frame for frame in cards if frame["action"] == "createMessage"]
    assert len(created) == 1, created
    assert created[0]["conversation"] == channel
    card_id = created[0]["id"]
    updates = [frame for frame in cards if frame["action"] == "updateMessage"]
    assert updates, "the session card was never updated"
    assert {(frame["conversation"], frame["id"]) for frame in updates} == {(channel, card_id)}
    assert _FAILED_FIRST.match(created[0]["rows"][CIRCUIT]), created[0]
    assert any(_COMPLETED_BY_RETRY.match(frame["rows"][CIRCUIT]) for frame in updates), updates

    # Details are replies in the card's thread, never posts of their own in the channel.
    thread = f"{channel};messageid={card_id}"
    replies = [f for f in frames if f["action"] == "createMessage" and f["conversation"] == thread]
    assert any(FAILURE in reply["text"] and CIRCUIT in reply["text"] for reply in replies), replies
    in_channel = [
        f for f in frames if f["action"] == "createMessage" and f["conversation"] == channel
    ]
    assert [frame["id"] for frame in in_channel if FAILURE in frame["text"]] == []

    # The card tells what the emulated Azure ML did: the retry (attempt 2) completed.
    jobs = get_json(f"{sandbox_bot.url}/_sandbox/state")["jobs"]
    attempts = {job["attempt"]: job["status"] for job in jobs if job["circuit"] == CIRCUIT}
    assert attempts.get(1) == "Failed", attempts
    assert attempts.get(2) == "Completed", attempts

    assert sorted(path.name for path in artifacts.glob("*.png")) == [
        "01-playground.png",
        "02-team-channel.png",
        "03-session-card.png",
        "04-failure-reply.png",
        "05-card-updated.png",
        "06-session-thread.png",
    ]
