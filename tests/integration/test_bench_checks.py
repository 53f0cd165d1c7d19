"""The status benchmark's checks against the real bot: the error path cannot pass as figures."""

from __future__ import annotations

import io

from bench.run_checks import AnsweringConnector, RunChecks
from bench.status_roundtrip import THREAD_ROOT
from tests.conftest import StartBot
from tests.standins.connector import Message
from tests.teams_payloads import CHANNEL_ID, channel_message


async def _status_turn(start_bot: StartBot, known_thread: bool) -> tuple[int, str]:
    connector = AnsweringConnector()
    await connector.start()
    if known_thread:
        connector.messages[THREAD_ROOT] = Message(THREAD_ROOT, CHANNEL_ID, None, {})
    try:
        bot = await start_bot({"MLBOT_CARD_SIGNING_KEY": "test-signing-key-0123456789abcdef0123"})
        checks = RunChecks("status round trip")
        with checks.timed():
            status, _ = await bot.post(channel_message("<at>mlbot</at> status", connector.url))
            await connector.wait_answered(1)
        checks.reply(status, "bot")
        connector.check_answers(checks)
        out = io.StringIO()
        return checks.exit_code(out), out.getvalue()
    finally:
        await connector.stop()


async def test_a_reply_into_an_unknown_thread_fails_the_run(start_bot: StartBot) -> None:
    code, message = await _status_turn(start_bot, known_thread=False)
    assert code == 1
    assert "HTTP 404" in message  # ActivityNotFound from the stand-in
    assert "WARNING or above" in message  # the turn went through the error handler


async def test_a_valid_status_turn_passes(start_bot: StartBot) -> None:
    assert await _status_turn(start_bot, known_thread=True) == (0, "")
