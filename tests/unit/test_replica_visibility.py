"""Who leads, as operators see it: /metrics, the status card, `config`; and a follower's
scheduler runs no pass."""

from __future__ import annotations

from datetime import UTC, datetime

from app import with_replica_id
from cards.status import render_status_card
from domain.leadership import LeaderView, Role
from monitoring.scheduler import EngineScheduler
from monitoring.status_report import StatusReport, leader_note
from service.prometheus import render_metrics
from store.gauges import StoreGauges

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_metrics_say_whether_this_replica_leads_and_who_does() -> None:
    follower = LeaderView("web-2", Role.FOLLOWER, "web-1", 7)
    lines = render_metrics(StoreGauges(), version="1", revision="0011", leader=follower)
    assert 'mlbot_replica_is_leader{replica="web-2"} 0' in lines.splitlines()
    assert 'mlbot_leader_info{leader="web-1",replica="web-2"} 1' in lines.splitlines()
    nobody = LeaderView("web-2", Role.FOLLOWER, None, None)
    text = render_metrics(StoreGauges(), version="1", revision="0011", leader=nobody)
    assert 'mlbot_leader_info{leader="none",replica="web-2"} 1' in text.splitlines()
    leading = LeaderView("web-1", Role.LEADER, "web-1", 7)
    text = render_metrics(StoreGauges(), version="1", revision="0011", leader=leading)
    assert 'mlbot_replica_is_leader{replica="web-1"} 1' in text.splitlines()


def test_status_names_the_leader_and_the_replica_that_answered() -> None:
    assert leader_note(LeaderView("web-2", Role.FOLLOWER, "web-1", 3)) == (
        "Replica web-1 leads the engine (this is web-2)."
    )
    assert "this one" in leader_note(LeaderView("web-1", Role.LEADER, "web-1", 3))
    assert "No replica leads" in leader_note(LeaderView("web-2", Role.FOLLOWER, None, None))
    report = StatusReport(NOW, (), 0, {}, leader_note="Replica web-1 leads the engine.")
    card = render_status_card(report)
    assert "Replica web-1 leads the engine." in str(card)
    plain = render_status_card(StatusReport(NOW, (), 0, {}))
    assert "leads" not in str(plain)


def test_config_shows_the_automatic_replica_id() -> None:
    rows = [("MLBOT_REPLICA_ID", "", "default"), ("MLBOT_PORT", "3978", "default")]
    assert with_replica_id(rows, "host-42") == [
        ("MLBOT_REPLICA_ID", "host-42 (automatic)", "default"),
        ("MLBOT_PORT", "3978", "default"),
    ]
    given = [("MLBOT_REPLICA_ID", "web-1", "environment")]
    assert with_replica_id(given, "web-1") == given


class _Follower:
    def may_act(self) -> bool:
        return False

    def view(self) -> LeaderView:
        return LeaderView("web-2", Role.FOLLOWER, "web-1", 1)


class _Watch:
    def __init__(self) -> None:
        self.ticks = 0

    async def tick(self) -> int:
        self.ticks += 1
        return 0

    async def next_due_at(self) -> datetime | None:
        return None


async def test_a_followers_scheduler_runs_no_pass() -> None:
    watch = _Watch()
    follower = EngineScheduler(None, None, clock=lambda: NOW, watcher=watch, leader=_Follower())
    await follower._fire()  # what its timer runs
    assert watch.ticks == 0
    leader = EngineScheduler(None, None, clock=lambda: NOW, watcher=watch)
    await leader._fire()
    assert watch.ticks == 1
