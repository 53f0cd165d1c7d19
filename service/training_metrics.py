"""Training and delivery figures for `/metrics`, for dashboards that track them over time.

Counters and histograms grow as the store records events: each scrape reads the events
past the last one it saw (bounded batches) and adds them up. They start at zero when the
process starts, as Prometheus counters do; `rate()` and `histogram_quantile()` handle a
restart. Labels are bounded on purpose: `experiment` (a team has a handful) and
`outcome`; never the circuit, which would make one series per circuit and bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.prometheus import label_value
from store.training_stats import RETRY_KIND, EventFacts, TrainingStatsReader

DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)
DELAY_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0)
_BATCHES_PER_SCRAPE = 4  # at most this many batches of events read by one scrape
_MAX_PENDING = 10_000  # events awaiting delivery whose latency is still to be measured
_OUTCOMES = {
    "training_completed": "completed",
    "training_failed": "failed",
    "training_canceled": "canceled",
}

Labels = tuple[tuple[str, str], ...]


def _series(name: str, labels: Labels, extra: Labels = ()) -> str:
    pairs = ",".join(f'{k}="{label_value(v)}"' for k, v in (*labels, *extra))
    return f"{name}{{{pairs}}}" if pairs else name


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    _counts: dict[Labels, list[int]] = field(default_factory=dict)
    _sums: dict[Labels, float] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[bisect_left(self.buckets, value)] += 1
        self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(tuple(sorted(labels.items())), []))

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key in sorted(self._counts):
            running = 0
            counts = self._counts[key]
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else _number(bound)
                out.append(f"{_series(self.name + '_bucket', key, (('le', le),))} {running}")
            out.append(f"{_series(self.name + '_sum', key)} {_number(self._sums[key])}")
            out.append(f"{_series(self.name + '_count', key)} {running}")
        return out


@dataclass
class Counter:
    name: str
    help: str
    _values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{_series(self.name, k)} {_number(v)}" for k, v in sorted(self._values.items())]
        return out


@dataclass
class TrainingFigures:
    """The figures themselves; `add` folds one event in (pure, no I/O)."""

    durations: Histogram = field(
        default_factory=lambda: Histogram(
            "mlbot_training_duration_seconds",
            "Run time of finished trainings (start to end), by experiment and outcome.",
            DURATION_BUCKETS,
        )
    )
    outcomes: Counter = field(
        default_factory=lambda: Counter(
            "mlbot_training_outcomes_total", "Finished trainings, by experiment and outcome."
        )
    )
    retries: Counter = field(
        default_factory=lambda: Counter(
            "mlbot_training_retries_total", "Circuits queued again by automatic retries."
        )
    )
    detection: Histogram = field(
        default_factory=lambda: Histogram(
            "mlbot_detection_delay_seconds",
            "From a training's end in Azure ML to mlbot recording it, by outcome.",
            DELAY_BUCKETS,
        )
    )
    delivery: Histogram = field(
        default_factory=lambda: Histogram(
            "mlbot_delivery_latency_seconds",
            "From an event being recorded to its delivery everywhere it goes.",
            LATENCY_BUCKETS,
        )
    )

    def add(self, event: EventFacts) -> None:
        outcome = _OUTCOMES.get(event.kind)
        if outcome is not None:
            experiment = event.experiment or "unknown"
            self.outcomes.inc(experiment=experiment, outcome=outcome)
            if event.started_at is not None and event.ended_at is not None:
                seconds = max((event.ended_at - event.started_at).total_seconds(), 0.0)
                self.durations.observe(seconds, experiment=experiment, outcome=outcome)
            if event.ended_at is not None:
                delay = max((event.created_at - event.ended_at).total_seconds(), 0.0)
                self.detection.observe(delay, outcome=outcome)
        elif event.kind == RETRY_KIND and event.retried_circuits:
            self.retries.inc(event.retried_circuits)

    def delivered(self, created_at: datetime, delivered_at: datetime) -> None:
        self.delivery.observe(max((delivered_at - created_at).total_seconds(), 0.0))

    def lines(self) -> list[str]:
        parts: Iterable[Histogram | Counter] = (
            self.durations,
            self.outcomes,
            self.retries,
            self.detection,
            self.delivery,
        )
        return [line for part in parts for line in part.lines()]


class TrainingMetrics:
    """Keeps `TrainingFigures` up to date from the store, scrape by scrape."""

    def __init__(self, reader: TrainingStatsReader, started_at: Callable[[], datetime]) -> None:
        self._reader = reader
        self._started_at = started_at()
        self._cursor: int | None = None
        self._pending: OrderedDict[int, datetime] = OrderedDict()
        self.figures = TrainingFigures()

    async def collect(self) -> None:
        if self._cursor is None:
            # Count what happened since this process started, not the store's whole past.
            self._cursor = 0
            since: datetime | None = self._started_at
        else:
            since = None
        for _ in range(_BATCHES_PER_SCRAPE):
            batch = await self._reader.events_after(self._cursor, since=since)
            if not batch:
                break
            self._fold(batch)
            self._cursor = batch[-1].id
        done = await self._reader.delivered(list(self._pending))
        for event_id, delivered_at in done.items():
            self.figures.delivered(self._pending.pop(event_id), delivered_at)

    def _fold(self, batch: Sequence[EventFacts]) -> None:
        for event in batch:
            self.figures.add(event)
            if event.delivered_at is not None:
                self.figures.delivered(event.created_at, event.delivered_at)
            else:
                self._pending[event.id] = event.created_at
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)  # bounded: the oldest are no longer measured

    def lines(self) -> list[str]:
        return self.figures.lines()
