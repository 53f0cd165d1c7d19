"""The `status` card: every watched training job at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cards.common import Card, card, escape_markdown, facts, heading, text
from domain.destinations import parse_destination
from domain.durations import format_duration
from domain.jobs import JobState
from domain.status import STATES_IN_ORDER, StatusReport, status_order

STATE_LABEL = {
    JobState.WAITING: "⏳ Waiting",
    JobState.RUNNING: "▶️ Running",
    JobState.COMPLETED: "✅ Completed",
    JobState.FAILED: "❌ Failed",
    JobState.CANCELED: "⏹ Canceled",
    JobState.UNKNOWN: "❔ Unknown",
}


_FIRST_CHECK_EMPTY = (
    "The first check of the watched workspaces is under way: jobs appear here in a "
    "moment. Ask again shortly."
)
_FIRST_CHECK_NOTE = "Checking Azure ML for changes since the bot started; this may be a moment old."


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as the cards that list jobs show it (`status`, the living card)."""

    circuit: str
    state: JobState
    elapsed: timedelta | None
    attempt: int
    name: str
    url: str | None


def job_row(row: JobRow) -> dict[str, Any]:
    """A job as two short lines in two columns, readable on a phone:

        PLANT001/CIRCUIT01                 ▶️ Running
        attempt 2 · train-plant001-…           1h 05m

    The circuit and the state never wrap: a circuit name is one token people read and
    copy, so it is kept whole rather than broken at the card's edge. Columns, not a
    `Table`: Teams mobile draws tables blank.
    """
    name = escape_markdown(row.name)
    link = f"[{name}]({row.url})" if row.url else name
    left = {
        "type": "Column",
        "width": "stretch",
        "items": [
            text(escape_markdown(row.circuit), weight="Bolder", wrap=False),
            text(f"attempt {row.attempt} · {link}", isSubtle=True, spacing="None"),
        ],
    }
    right = {
        "type": "Column",
        "width": "auto",
        "items": [
            text(STATE_LABEL[row.state], wrap=False, horizontalAlignment="Right"),
            text(
                format_duration(row.elapsed),
                isSubtle=True,
                wrap=False,
                spacing="None",
                horizontalAlignment="Right",
            ),
        ],
    }
    return {"type": "ColumnSet", "spacing": "Medium", "columns": [left, right]}


def _summary(report: StatusReport) -> str:
    parts = [
        f"{count} {state.value}"
        for state in STATES_IN_ORDER
        if (count := report.counts.get(state, 0))
    ]
    return ", ".join(parts)


def render_status_card(report: StatusReport) -> Card:
    stamp = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    # What a user typed is never part of the heading: it is shown as plain, bounded text.
    body: list[dict[str, Any]] = [heading("Training status")]
    if report.filter_text:
        body.append(text(f"Filtered by “{escape_markdown(report.filter_text)}”"))
    if not report.lines:
        if report.first_check_pending:
            body.append(text(_FIRST_CHECK_EMPTY))
        elif report.filter_text:
            body.append(text(f"No watched job matches “{escape_markdown(report.filter_text)}”."))
        else:
            body.append(
                text(
                    "Nothing is being watched right now. Jobs appear here as soon as a "
                    "training pipeline starts them in a watched workspace."
                )
            )
        _append_deployments(body, report)
        _append_held(body, report)
        _append_stuck(body, report)
        body.append(text(_as_of(stamp, report), isSubtle=True, size="Small"))
        return card(body)

    body.append(text(f"{report.total} job(s): {_summary(report)}", isSubtle=True))
    if report.first_check_pending:
        body.append(text(_FIRST_CHECK_NOTE, isSubtle=True, size="Small"))
    for line in sorted(report.lines, key=lambda line: status_order(line.job)):
        job = line.job
        body.append(
            job_row(
                JobRow(
                    circuit=job.circuit or "—",
                    state=job.state,
                    elapsed=line.elapsed,
                    attempt=job.attempt,
                    name=job.display_name or job.name,
                    url=job.studio_url,
                )
            )
        )
    if report.hidden:
        body.append(
            text(
                f"…and {report.hidden} more. Narrow it down with **status** and a circuit "
                "or experiment.",
                isSubtle=True,
            )
        )
    _append_deployments(body, report)
    _append_held(body, report)
    _append_stuck(body, report)
    body.append(text(_as_of(stamp, report), isSubtle=True, size="Small"))
    return card(body)


def _append_held(body: list[dict[str, Any]], report: StatusReport) -> None:
    """Held events are recorded, not posted: say so, so that nothing vanishes unseen."""
    if not (report.active_silences or report.held_recently):
        return
    parts = []
    if report.active_silences:
        parts.append(f"{report.active_silences} active silence(s)")
    if report.held_recently:
        parts.append(f"{report.held_recently} event(s) held back in the last 24 h")
    body.append(
        text(f"🔕 {' · '.join(parts)} — **silences** lists them", isSubtle=True, size="Small")
    )


def _append_deployments(body: list[dict[str, Any]], report: StatusReport) -> None:
    if report.approvals:
        body.append(text(f"🛂 {len(report.approvals)} pending approval(s)", weight="Bolder"))
        body.append(
            facts(
                [
                    (
                        escape_markdown(a.environment or "—"),
                        f"{escape_markdown(a.pipeline)} {escape_markdown(a.stage)}".strip()
                        + " · **approvals** to decide",
                    )
                    for a in report.approvals
                ]
            )
        )
    if report.deployments:
        body.append(text("🚀 Last deployments", weight="Bolder"))
        body.append(
            facts(
                [
                    (
                        escape_markdown(d.environment),
                        f"{'✅' if d.succeeded else '❌'} {escape_markdown(d.pipeline)} "
                        f"{escape_markdown(d.run)} · {d.at.strftime('%Y-%m-%d %H:%M UTC')}",
                    )
                    for d in report.deployments
                ]
            )
        )


def _destination_label(stored: str) -> str:
    try:
        return parse_destination(stored).label
    except ValueError:
        return stored  # a row older than the destinations it names


def _append_stuck(body: list[dict[str, Any]], report: StatusReport) -> None:
    """Notifications that could not be delivered are shown, never silently dropped."""
    if not report.stuck:
        return
    body.append(text("⚠️ Not delivered", weight="Bolder", color="Warning"))
    for kind, destination, error in report.stuck:
        where = _destination_label(destination)
        body.append(
            text(
                f"{escape_markdown(kind)} → {escape_markdown(where)}: {escape_markdown(error)}",
                isSubtle=True,
                size="Small",
            )
        )


def _as_of(stamp: str, report: StatusReport) -> str:
    # With several replicas, operators learn here which one runs the engine.
    return f"As of {stamp}. {report.leader_note}" if report.leader_note else f"As of {stamp}"
