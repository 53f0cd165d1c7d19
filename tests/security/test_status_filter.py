"""`status <filter>`: bounded, wildcards taken literally, never echoed into the heading."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from cards.status import render_status_card
from domain.jobs import JobState, TrainingJob
from monitoring.status_report import StatusFilterError, StatusService, like_pattern
from store.database import Database
from store.watched_jobs import WatchedJobStore
from tests.conftest import FixedClock, StartBot
from tests.standins.connector import ConnectorStandIn
from tests.teams_payloads import channel_message


def _job(name: str, circuit: str, now: datetime) -> TrainingJob:
    return TrainingJob(
        workspace="sub/rg/ws",
        name=name,
        display_name=f"train {circuit}",
        experiment="circuit-training",
        circuit=circuit,
        status="Running",
        state=JobState.RUNNING,
        started_at=now,
    )


async def test_a_huge_filter_gets_a_helpful_reply_over_http(
    start_bot: StartBot, connector: ConnectorStandIn
) -> None:
    bot = await start_bot()
    status, _ = await bot.post(
        # Far above the bound, within the 64 KB a request body may have.
        channel_message("<at>mlbot</at> status " + "%_" * 10_000, connector.url)
    )
    assert status == 201
    calls = await connector.wait_for(1)
    reply = json.dumps(calls[0].body)
    assert "Something went wrong" not in reply
    assert "use at most 100" in reply


async def test_a_filter_over_the_bound_never_reaches_the_database(database: Database) -> None:
    service = StatusService(WatchedJobStore(database))
    with pytest.raises(StatusFilterError, match="at most 100"):
        await service.report(datetime(2026, 11, 29, 12, 0), "x" * 101)
    report = await service.report(datetime(2026, 11, 29, 12, 0), "x" * 100)
    assert report.total == 0


async def test_wildcards_in_the_filter_match_themselves_only(
    database: Database, clock: FixedClock
) -> None:
    store = WatchedJobStore(database)
    await store.upsert(_job("train-a", "PLANT001/CIRCUIT01", clock.now), now=clock.now)
    await store.upsert(_job("train_b", "PLANT002/CIRCUIT02", clock.now), now=clock.now)
    service = StatusService(store)
    assert (await service.report(clock.now, "%")).total == 0
    assert [line.job.name for line in (await service.report(clock.now, "_")).lines] == ["train_b"]
    assert (await service.report(clock.now, "plant00_")).total == 0
    assert (await service.report(clock.now, "PLANT001")).total == 1


def test_like_patterns_escape_their_wildcards_and_the_escape_itself() -> None:
    assert like_pattern("50%_a!b") == "%50!%!_a!!b%"


async def test_the_filter_is_not_part_of_the_heading(database: Database) -> None:
    report = await StatusService(WatchedJobStore(database)).report(
        datetime(2026, 11, 29, 12, 0), "**bold** [link](https://x)"
    )
    card = render_status_card(report)
    heading = card["body"][0]
    assert heading["text"] == "Training status"
    shown = json.dumps(card)
    assert "\\\\*\\\\*bold\\\\*\\\\*" in shown and "\\\\[link\\\\]" in shown
