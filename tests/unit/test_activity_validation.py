from __future__ import annotations

from bot.activity_validation import activity_problems
from tests.teams_payloads import bot_added_to_team, channel_message


def test_real_teams_shapes_are_accepted() -> None:
    assert activity_problems(channel_message("<at>mlbot</at> status", "https://smba.x/amer/")) == []
    assert activity_problems(bot_added_to_team("https://smba.x/amer/")) == []


def test_every_problem_is_reported_at_once() -> None:
    problems = activity_problems({"type": "nope", "text": 3})
    assert any("unknown activity type" in p for p in problems)
    assert any("serviceUrl" in p for p in problems)
    assert any("conversation.id" in p for p in problems)
    assert any("'text' must be a string" in p for p in problems)
    assert activity_problems("string") == [
        "the body must be a JSON object (a Bot Framework activity)"
    ]
