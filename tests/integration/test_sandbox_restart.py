"""Restarting `mlbot serve --sandbox` on the same database: a new world, told truthfully.

The emulators replay their scenario from the beginning at every start, so the store
forgets the previous run's world (jobs, sessions, events, runs it queued) and keeps the
installations: right after the restart `status` says the first check is under way, then
shows the new world as it is (attempt 1, elapsed from the new start), and the new
failures are announced and retried again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from config.settings import SettingsError
from store.tables import watched_jobs
from tests.conftest import SandboxBot, StartSandboxBot
from tests.integration.test_living_cards import install_in_channel, play
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import CHANNEL_ID, personal_message
from tests.unit.card_rows import ShownRow, job_rows

FAILING = "PLANT002/CIRCUIT02"  # fails at 33 s on attempt 1; its retry succeeds
QUICK = "PLANT001/CIRCUIT01"  # completes 48 s in, after 45 s of running


async def status_card(bot: SandboxBot, connector: ConnectorStandIn) -> dict[str, Any]:
    before = len(connector.calls)
    status, _ = await bot.server.post(personal_message("status", connector.url))
    assert status == 201
    calls = await connector.wait_for(before + 1)
    return dict(calls[-1].body["attachments"][0]["content"])


def rows_by_circuit(card: dict[str, Any]) -> dict[str, ShownRow]:
    return {row.circuit.replace("\\", ""): row for row in job_rows(card)}


def failure_replies(connector: ConnectorStandIn) -> list[str]:
    return [
        str(m.body)
        for m in connector.conversation_messages(CHANNEL_ID)
        if FAILING in str(m.body)
        and "failed" in str(m.body).lower()
        and (m.client_key or "").startswith("reply")
    ]


def training_runs(bot: SandboxBot) -> list[dict[str, Any]]:
    return [
        run
        for run in bot.stack.state()["pipeline_runs"]
        if FAILING in str(run.get("parameters", {}).get("manualCircuits", ""))
    ]


async def test_status_and_alerts_right_after_a_restart_on_the_same_database(
    start_sandbox_bot: StartSandboxBot,
    connector: ConnectorStandIn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = {"MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/kept.db"}
    first = await start_sandbox_bot(database)
    await install_in_channel(first, connector)
    await play(first, 10 * 60)
    old = rows_by_circuit(await status_card(first, connector))
    assert old[QUICK].state == "✅ Completed"
    assert failure_replies(connector) and training_runs(first)
    alerts_before = len(failure_replies(connector))

    caplog.set_level(logging.WARNING, logger="mlbot")
    second = await start_sandbox_bot(database)  # same file, the scenario from zero
    assert "previous run's records were cleared" in caplog.text

    # Before the first monitoring pass: said so, no job of the old world on show.
    card = await status_card(second, connector)
    text = str(card)
    assert "first check of the watched workspaces is under way" in text
    assert job_rows(card) == [] and "Nothing is being watched" not in text

    # After it: the new world as it is, not the old one.
    await play(second, 150)
    now = rows_by_circuit(await status_card(second, connector))
    assert now[QUICK].state == "✅ Completed" and now[QUICK].elapsed == "45s"
    assert all(row.detail.startswith("attempt 1 ") for c, row in now.items() if c != FAILING)
    assert now[FAILING].detail.startswith(("attempt 1 ", "attempt 2 "))

    # The new failure is announced again and retried through the new training pipeline.
    await play(second, 3 * 60)
    assert len(failure_replies(connector)) > alerts_before
    assert training_runs(second), second.stack.state()["pipeline_runs"]
    # The channel the bot was installed in before the restart still gets it all.
    assert any(m.client_key for m in connector.conversation_messages(CHANNEL_ID))


async def test_a_database_with_real_azure_records_is_never_cleared(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn, tmp_path: Path
) -> None:
    database = {"MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/real.db"}
    first = await start_sandbox_bot(database)
    await play(first, 60)
    async with first.runtime.db.sessions.begin() as session:
        await session.execute(update(watched_jobs).values(workspace="real-sub/rg-prod/mlw-prod"))

    with pytest.raises(SettingsError, match="real-sub/rg-prod/mlw-prod"):
        await start_sandbox_bot(database)
    async with first.runtime.db.sessions() as session:
        kept = (await session.execute(select(watched_jobs.c.name))).all()
    assert kept  # nothing was deleted
