"""The `status` card: every watched training job at a glance."""

from __future__ import annotations

from typing import Any

from cards.common import Card, card, escape_markdown, format_duration, heading, text
from monitoring.jobs import JobState
from monitoring.status_report import StatusReport

_STATE_LABEL = {
    JobState.WAITING: ("⏳ Waiting", "Default"),
    JobState.RUNNING: ("▶️ Running", "Accent"),
    JobState.COMPLETED: ("✅ Completed", "Good"),
    JobState.FAILED: ("❌ Failed", "Attention"),
    JobState.CANCELED: ("⏹ Canceled", "Warning"),
    JobState.UNKNOWN: ("❔ Unknown", "Warning"),
}

_COLUMNS = ("Circuit", "State", "Elapsed", "Attempt", "Job")


def _summary(report: StatusReport) -> str:
    parts = [
        f"{count} {state.value}" for state in JobState if (count := report.counts.get(state, 0))
    ]
    return ", ".join(parts)


def _row(cells: list[dict[str, Any]], header: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {"type": "TableRow", "cells": cells}
    if header:
        row["style"] = "emphasis"
    return row


def _cell(value: str, **props: Any) -> dict[str, Any]:
    return {"type": "TableCell", "items": [text(value, **props)]}


def render_status_card(report: StatusReport) -> Card:
    stamp = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    title = "Training status"
    if report.filter_text:
        title += f" — “{escape_markdown(report.filter_text)}”"
    body: list[dict[str, Any]] = [heading(title)]
    if not report.lines:
        if report.filter_text:
            body.append(text(f"No watched job matches “{escape_markdown(report.filter_text)}”."))
        else:
            body.append(
                text(
                    "Nothing is being watched right now. Jobs appear here as soon as a "
                    "training pipeline starts them in a watched workspace."
                )
            )
        body.append(text(f"As of {stamp}", isSubtle=True, size="Small"))
        return card(body)

    body.append(text(f"{report.total} job(s): {_summary(report)}", isSubtle=True))
    rows = [_row([_cell(c, weight="Bolder") for c in _COLUMNS], header=True)]
    for line in report.lines:
        job = line.job
        label, color = _STATE_LABEL[job.state]
        name = escape_markdown(job.display_name or job.name)
        job_cell = f"[{name}]({job.studio_url})" if job.studio_url else name
        rows.append(
            _row(
                [
                    _cell(escape_markdown(job.circuit or "—"), weight="Bolder"),
                    _cell(label, color=color),
                    _cell(format_duration(line.elapsed)),
                    _cell(str(job.attempt)),
                    _cell(job_cell),
                ]
            )
        )
    body.append(
        {
            "type": "Table",
            "gridStyle": "accent",
            "firstRowAsHeaders": True,
            "columns": [{"width": w} for w in (3, 2, 2, 1, 4)],
            "rows": rows,
        }
    )
    if report.hidden:
        body.append(
            text(
                f"…and {report.hidden} more. Narrow it down with `status <circuit or experiment>`.",
                isSubtle=True,
            )
        )
    body.append(text(f"As of {stamp}", isSubtle=True, size="Small"))
    return card(body)
