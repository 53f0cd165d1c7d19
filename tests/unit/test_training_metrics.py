"""Training figures for /metrics: what each event adds, and the exposition text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from service.training_metrics import TrainingFigures
from store.training_stats import EventFacts


def metric_names(lines: Iterable[str]) -> Mapping[str, str]:
    """Family name -> type, from exposition text (`# TYPE` lines)."""
    found = {}
    for line in lines:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            found[name] = kind
    return found


T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def _event(
    kind: str, *, minutes: float = 30, seen_after_s: float = 20, **extra: object
) -> EventFacts:
    ended = T0 + timedelta(minutes=minutes)
    values: dict[str, object] = {
        "id": 1,
        "kind": kind,
        "created_at": ended + timedelta(seconds=seen_after_s),
        "delivered_at": None,
        "experiment": "circuit-training",
        "started_at": T0,
        "ended_at": ended,
        "retried_circuits": 0,
    }
    values.update(extra)
    return EventFacts(**values)  # type: ignore[arg-type]


def test_a_finished_training_adds_its_outcome_run_time_and_detection_delay() -> None:
    figures = TrainingFigures()
    figures.add(_event("training_completed", minutes=30, seen_after_s=20))
    figures.add(_event("training_failed", minutes=3, seen_after_s=200))
    figures.add(_event("training_started"))  # not finished: nothing
    assert figures.outcomes.value(experiment="circuit-training", outcome="completed") == 1
    assert figures.outcomes.value(experiment="circuit-training", outcome="failed") == 1
    assert figures.durations.count(experiment="circuit-training", outcome="completed") == 1
    assert figures.detection.count(outcome="failed") == 1
    text = "\n".join(figures.lines())
    # 30 minutes falls in the 1800 s bucket and every larger one; not in 900 s.
    completed = 'experiment="circuit-training",outcome="completed"'
    assert f'mlbot_training_duration_seconds_bucket{{{completed},le="900"}} 0' in text
    assert f'mlbot_training_duration_seconds_bucket{{{completed},le="1800"}} 1' in text
    assert f'mlbot_training_duration_seconds_bucket{{{completed},le="+Inf"}} 1' in text
    assert f"mlbot_training_duration_seconds_sum{{{completed}}} 1800" in text
    assert 'mlbot_detection_delay_seconds_bucket{outcome="failed",le="120"} 0' in text
    assert 'mlbot_detection_delay_seconds_bucket{outcome="failed",le="300"} 1' in text


def test_retries_count_circuits_and_unknown_experiments_are_labelled_so() -> None:
    figures = TrainingFigures()
    figures.add(_event("retry_queued", retried_circuits=3))
    figures.add(_event("training_canceled", experiment=None, started_at=None))
    assert figures.retries.value() == 3
    assert figures.outcomes.value(experiment="unknown", outcome="canceled") == 1
    assert figures.durations.count(experiment="unknown", outcome="canceled") == 0


def test_every_family_is_typed_even_before_anything_happened() -> None:
    names = metric_names(TrainingFigures().lines())
    assert names == {
        "mlbot_training_duration_seconds": "histogram",
        "mlbot_training_outcomes_total": "counter",
        "mlbot_training_retries_total": "counter",
        "mlbot_detection_delay_seconds": "histogram",
        "mlbot_delivery_latency_seconds": "histogram",
    }
