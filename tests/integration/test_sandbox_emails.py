"""Sandbox mode catches the long-running reminder emails in its own mail sink.

The default scenario, a manual clock, the bot's real engine and delivery, and aiosmtplib
talking SMTP to the sink on loopback; the emails are read back over `/_sandbox/emails`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import Runtime, SandboxOptions, build_runtime, start_sandbox
from config.settings import settings_from_mapping
from sandbox.clock import ManualClock
from sandbox.control_api import add_sandbox_routes
from sandbox.smtp_sink import SANDBOX_RECIPIENT, parse_message, sandbox_email_settings
from sandbox.stack import SandboxStack
from tests.conftest import SANDBOX_START, serve_app


@dataclass
class EmailSandbox:
    runtime: Runtime
    stack: SandboxStack
    clock: ManualClock
    url: str
    http: aiohttp.ClientSession

    async def emails(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/_sandbox/emails") as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def play(self, seconds: float, step: float = 15.0) -> None:
        """Move the sandbox on; the engine and the delivery run whenever they are due."""
        engine = self.runtime.engine
        assert engine is not None
        end = self.clock.now().timestamp() + seconds
        while self.clock.now().timestamp() < end:
            now = self.clock.advance(step)
            self.stack.tick(now)
            if now >= await engine.next_wakeup():
                await engine.tick()
            await self.runtime.dispatcher.dispatch_pending()


async def _start(tmp_path: Path, extra: dict[str, str]) -> AsyncIterator[EmailSandbox]:
    clock = ManualClock(SANDBOX_START)
    configured = settings_from_mapping(
        {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/{uuid.uuid4().hex}.db",
            "MLBOT_SANDBOX": "true",
            **extra,
        }
    )
    stack, clients = await start_sandbox(
        configured, SandboxOptions(clock=clock, tick_interval_s=None)
    )
    runner: web.AppRunner | None = None
    http = aiohttp.ClientSession()
    try:
        settings = sandbox_email_settings(configured, stack)
        runtime = await build_runtime(settings, azure=clients, clock=clock.now, background=False)
        add_sandbox_routes(runtime.web_app, stack)
        runner, url = await serve_app(runtime.web_app)
        yield EmailSandbox(runtime, stack, clock, url, http)
    finally:
        await http.close()
        if runner is not None:
            await runner.cleanup()
        await stack.stop()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[EmailSandbox]:
    async for started in _start(tmp_path, {}):
        yield started


async def test_the_long_job_reminder_arrives_in_the_sink(sandbox: EmailSandbox) -> None:
    before = await sandbox.emails()
    assert before["emails"] == [] and before["smtp"].startswith("127.0.0.1:")
    settings = sandbox.runtime.settings
    assert settings.smtp_host == "127.0.0.1" and settings.smtp_security == "none"

    # PLANT003/CIRCUIT01 passes four hours of run time about 30 s into the scenario.
    await sandbox.play(120)

    caught = (await sandbox.emails())["emails"]
    reminders = [e for e in caught if "PLANT003/CIRCUIT01" in e["subject"]]
    assert len(reminders) == 1, [e["subject"] for e in caught]
    email = reminders[0]
    # The scenario's variable group names the ML engineers.
    assert email["rcpt_to"] == ["ml-engineers@example.com"]
    assert "ml-engineers@example.com" in email["to"]
    assert email["mail_from"] == settings.smtp_sender
    assert "4h" in email["text"].replace(" ", "") and "Running" in email["text"]
    assert email["html"] and "PLANT003/CIRCUIT01" in email["html"]

    # Played on, nothing is sent twice; the next reminder comes at 8 h of run time.
    await sandbox.play(600)
    again = [e for e in (await sandbox.emails())["emails"] if "PLANT003/CIRCUIT01" in e["subject"]]
    assert len(again) == 1


async def test_configured_smtp_is_left_alone(tmp_path: Path) -> None:
    extra = {"MLBOT_SMTP_HOST": "mail.example.com", "MLBOT_ML_ENGINEERS_EMAIL": "ada@example.com"}
    async for started in _start(tmp_path, extra):
        settings = started.runtime.settings
        assert settings.smtp_host == "mail.example.com" and settings.smtp_port == 587
        assert settings.ml_engineers_email == ("ada@example.com",)


async def test_recipients_default_when_nobody_is_named(tmp_path: Path) -> None:
    async for started in _start(tmp_path, {}):
        plain = settings_from_mapping({"MLBOT_VARIABLE_GROUP": "no-such-group"})
        assert sandbox_email_settings(plain, started.stack).ml_engineers_email == (
            SANDBOX_RECIPIENT,
        )


def test_a_raw_message_is_read_into_subject_and_parts() -> None:
    raw = (
        b"From: mlbot@localhost\r\nTo: ada@example.com\r\nSubject: Still running\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html body</p>\r\n--b--\r\n"
    )
    parsed = parse_message(1, SANDBOX_START, "mlbot@localhost", ["ada@example.com"], raw)
    assert parsed.subject == "Still running" and parsed.to == "ada@example.com"
    assert parsed.text is not None and parsed.text.strip() == "plain body"
    assert parsed.html is not None and "html body" in parsed.html
    assert parsed.rcpt_to == ("ada@example.com",)
