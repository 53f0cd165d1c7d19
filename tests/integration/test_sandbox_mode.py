"""Sandbox mode end to end: emulators, production adapters, the store and `status`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import SandboxOptions, start_sandbox
from cli import check, run_checks
from config.settings import settings_from_mapping
from monitoring.service_check import Verdict
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from tests.conftest import BotServer, StartSandboxBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import channel_message

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
async def sandbox_bot(
    start_sandbox_bot: StartSandboxBot,
) -> tuple[BotServer, SandboxStack, ManualClock]:
    bot = await start_sandbox_bot()
    return bot.server, bot.stack, bot.clock


async def test_status_shows_the_scenario_jobs(
    sandbox_bot: tuple[BotServer, SandboxStack, ManualClock], connector: ConnectorStandIn
) -> None:
    bot, stack, clock = sandbox_bot
    stack.tick(clock.advance(60))
    assert bot.runtime.engine is not None
    report = await bot.runtime.engine.tick()
    assert report.failures == [] and report.listings == 1

    status, _ = await bot.post(channel_message("<at>mlbot</at> status", connector.url))
    assert status == 201
    await connector.wait_for(1)
    card = str(connector.cards()[0])
    circuits = {job["circuit"] for job in stack.state()["jobs"]}
    for circuit in circuits:
        assert circuit in card
    assert "Completed" in card and "Running" in card


async def test_check_is_all_good_against_the_emulators(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/c.db", "MLBOT_SANDBOX": "true"}
    )
    stack, clients = await start_sandbox(settings, SandboxOptions(tick_interval_s=None))
    try:
        results = await run_checks(settings, clients)
    finally:
        await stack.stop()
    assert [r.verdict for r in results] == [Verdict.OK] * len(results), results
    targets = [r.target for r in results]
    assert "pipeline training-pipeline" in targets and "pipeline rollback-pipeline" in targets


async def test_check_with_wrong_project_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_from_mapping(
        {
            "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/w.db",
            "MLBOT_SANDBOX": "true",
            "MLBOT_DEVOPS_PROJECT": "no-such-project",
        }
    )
    exit_code = await check(settings, SandboxOptions(tick_interval_s=None))
    out = capsys.readouterr().out
    assert exit_code == 1
    assert "project no-such-project" in out and "MLBOT_DEVOPS_PROJECT" in out
    assert out.rstrip().endswith("1 check(s) failed")
