"""The `history` card: a circuit's last attempts as a chart and a compact table.

The chart is Teams' native `Chart.VerticalBar` (run time per attempt, coloured by
outcome). Teams draws it on desktop and web, not yet on iOS, so it carries a `fallback`;
the table below it has the same figures and reads on any client (ColumnSets, not `Table`,
which renders blank on Teams mobile).
"""

from __future__ import annotations

from typing import Any

from cards.common import Card, card, escape_markdown, facts, heading, text
from domain.durations import format_duration
from domain.history import Attempt, CircuitHistory
from domain.jobs import JobState

_OUTCOME = {
    JobState.COMPLETED: ("✅", "Completed", "good"),
    JobState.FAILED: ("❌", "Failed", "attention"),
    JobState.CANCELED: ("⏹", "Canceled", "warning"),
    JobState.RUNNING: ("▶️", "Running", "neutral"),
    JobState.WAITING: ("⏳", "Waiting", "neutral"),
    JobState.UNKNOWN: ("❔", "Unknown", "neutral"),
}


def _outcome(attempt: Attempt) -> tuple[str, str, str]:
    return _OUTCOME.get(attempt.job.state, _OUTCOME[JobState.UNKNOWN])


def _started(attempt: Attempt) -> str:
    moment = attempt.job.started_at or attempt.job.created_at
    return f"{moment:%d %b %H:%M}" if moment is not None else "—"


def _bar_label(attempt: Attempt) -> str:
    # Attempt numbers restart with each training session, so the start time tells bars
    # apart; short, as chart labels are cut at a bar's width.
    moment = attempt.job.started_at or attempt.job.created_at
    return f"#{attempt.job.attempt} {moment:%H:%M}" if moment else f"#{attempt.job.attempt}"


def _chart(history: CircuitHistory) -> dict[str, Any] | None:
    bars = [
        {
            "x": _bar_label(attempt),
            "y": round(attempt.duration.total_seconds() / 60, 1),
            "color": _outcome(attempt)[2],
        }
        for attempt in history.attempts
        if attempt.duration is not None
    ]
    if len(bars) < 2:
        return None  # one bar says nothing the table does not
    return {
        "type": "Chart.VerticalBar",
        "title": "Run time per attempt (minutes), oldest left",
        "xAxisTitle": "Attempt",
        "yAxisTitle": "Minutes",
        "showBarValues": True,
        "data": list(reversed(bars)),
        "fallback": text(
            "Run time per attempt: this Teams client does not draw charts; "
            "the table below has the same figures.",
            isSubtle=True,
            size="Small",
        ),
    }


def _cell(value: str, width: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "Column",
        "width": width,
        "items": [{"type": "TextBlock", "text": value, "wrap": False, **props}],
    }


_COLUMNS = (("Attempt", "72px"), ("Outcome", "stretch"), ("Run time", "auto"), ("Started", "auto"))


def _row(cells: list[str], *, header: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"weight": "Bolder"} if header else {}
    return {
        "type": "ColumnSet",
        "spacing": "Small",
        "separator": header,
        "columns": [
            _cell(value, width, **props) for value, (_, width) in zip(cells, _COLUMNS, strict=True)
        ],
    }


def _attempt_rows(history: CircuitHistory) -> list[dict[str, Any]]:
    rows = [_row([name for name, _ in _COLUMNS], header=True)]
    for attempt in history.attempts:
        icon, word, _ = _outcome(attempt)
        rows.append(
            _row(
                [
                    f"#{attempt.job.attempt}",
                    f"{icon} {word}",
                    format_duration(attempt.duration),
                    _started(attempt),
                ]
            )
        )
        rows.append(
            text(escape_markdown(attempt.trigger), isSubtle=True, size="Small", spacing="None")
        )
    return rows


def render_history_card(history: CircuitHistory) -> Card:
    circuit = escape_markdown(history.circuit)
    if not history.attempts:
        return card(
            [
                heading(f"📈 {circuit}"),
                text(
                    "No training of this circuit is in the store yet. Check the name "
                    "(`status` lists the circuits mlbot watches)."
                ),
            ]
        )
    rate = history.success_rate
    finished = history.finished
    completed = sum(a.job.state == JobState.COMPLETED for a in finished)
    summary = [
        ("Attempts shown", str(len(history.attempts))),
        (
            "Succeeded",
            f"{completed} of {len(finished)} finished ({rate:.0%})" if rate is not None else "—",
        ),
        ("Median run time", format_duration(history.median_duration) + " (completed runs)"),
    ]
    body: list[dict[str, Any]] = [
        heading(f"📈 {circuit} — last {len(history.attempts)} attempt(s)"),
        facts(summary),
    ]
    chart = _chart(history)
    if chart is not None:
        body.append(chart)
    body.extend(_attempt_rows(history))
    return card(body, fallbackText=f"Training history of {history.circuit}")
