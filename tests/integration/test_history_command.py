"""`history <circuit>` over HTTP: the sandbox plays its default scenario (PLANT002/CIRCUIT02
fails and its automatic retry succeeds), an operator retries PLANT001/CIRCUIT01 by hand,
and the card shows each attempt, its outcome and who asked for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sandbox.clock import ManualClock
from tests.integration.test_chatops import ChatOps, actions_of, chatops

__all__ = ["chatops"]  # the fixture, shared with the chat-ops tests


async def _play(ops: ChatOps, seconds: float, step: float = 15.0) -> None:
    engine = ops.runtime.engine
    assert engine is not None
    clock = ops.stack.clock
    assert isinstance(clock, ManualClock)  # the tests' sandbox runs on a manual clock
    end = clock.now() + timedelta(seconds=seconds)
    while clock.now() < end:
        now = clock.advance(step)
        ops.stack.tick(now)
        if now >= await engine.next_wakeup():
            await engine.tick()


def _card(reply: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = reply["attachments"][0]["content"]
    return content


def _rows(card: dict[str, Any]) -> list[list[str]]:
    return [
        [column["items"][0]["text"] for column in element["columns"]]
        for element in card["body"]
        if element.get("type") == "ColumnSet"
    ]


def _triggers(card: dict[str, Any]) -> list[str]:
    return [
        e["text"] for e in card["body"] if e.get("type") == "TextBlock" and e.get("size") == "Small"
    ]


async def test_history_shows_a_failure_and_its_automatic_retry(chatops: ChatOps) -> None:
    await _play(chatops, 20 * 60)
    card = _card(await chatops.say("history plant002/circuit02"))

    assert card["body"][0]["text"].startswith("📈 PLANT002/CIRCUIT02 — last 2 attempt(s)")
    rows = _rows(card)
    assert rows[0] == ["Attempt", "Outcome", "Run time", "Started"]
    assert [row[:2] for row in rows[1:]] == [["#2", "✅ Completed"], ["#1", "❌ Failed"]]
    assert _triggers(card) == ["automatic retry", "first run"]
    chart = next(e for e in card["body"] if e["type"] == "Chart.VerticalBar")
    assert [bar["color"] for bar in chart["data"]] == ["attention", "good"]  # oldest left
    assert chart["fallback"]["type"] == "TextBlock"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Succeeded"] == "1 of 2 finished (50%)"


async def test_history_names_who_retried_by_hand(chatops: ChatOps) -> None:
    await _play(chatops, 5 * 60)  # PLANT001/CIRCUIT01 has completed
    reply = await chatops.say("retry PLANT001/CIRCUIT01")
    status, _ = await chatops.press(actions_of(reply)["retry.confirm"])
    assert status == 200
    await _play(chatops, 10 * 60)

    card = _card(await chatops.say("history PLANT001/CIRCUIT01"))
    assert [row[0] for row in _rows(card)[1:]] == ["#2", "#1"]
    assert _triggers(card) == ["retried by Ada Lovelace", "first run"]


async def test_history_explains_what_it_needs(chatops: ChatOps) -> None:
    assert "Which circuit?" in str(await chatops.say("history"))
    assert "optional count" in str(await chatops.say("history PLANT001/CIRCUIT01 many"))
    assert "1 to 30" in str(await chatops.say("history PLANT001/CIRCUIT01 99"))
    unknown = _card(await chatops.say("history PLANT404/NOPE"))
    assert "No training of this circuit" in str(unknown["body"])
