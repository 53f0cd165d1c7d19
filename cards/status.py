"""The `status` card: every watched training job at a glance."""

from __future__ import annotations

from typing import Any

from cards.common import Card, card, escape_markdown, facts, heading, text
from domain.durations import format_duration
from domain.jobs import JobState
from monitoring.status_report import StatusReport

STATE_LABEL = {
    JobState.WAITING: "⏳ Waiting",
    JobState.RUNNING: "▶️ Running",
    JobState.COMPLETED: "✅ Completed",
    JobState.FAILED: "❌ Failed",
    JobState.CANCELED: "⏹ Canceled",
    JobState.UNKNOWN: "❔ Unknown",
}


def _summary(report: StatusReport) -> str:
    parts = [
        f"{count} {state.value}" for state in JobState if (count := report.counts.get(state, 0))
    ]
    return ", ".join(parts)


def render_status_card(report: StatusReport) -> Card:
    stamp = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    # What a user typed is never part of the heading: it is shown as plain, bounded text.
    body: list[dict[str, Any]] = [heading("Training status")]
    if report.filter_text:
        body.append(text(f"Filtered by “{escape_markdown(report.filter_text)}”"))
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
        _append_deployments(body, report)
        _append_stuck(body, report)
        body.append(text(_as_of(stamp, report), isSubtle=True, size="Small"))
        return card(body)

    body.append(text(f"{report.total} job(s): {_summary(report)}", isSubtle=True))
    # One fact per job keeps the card small: Teams caps cards at ~28 KB and every
    # element costs serialization time on each send.
    rows: list[tuple[str, str]] = []
    for line in report.lines:
        job = line.job
        name = escape_markdown(job.display_name or job.name)
        link = f"[{name}]({job.studio_url})" if job.studio_url else name
        detail = (
            f"{STATE_LABEL[job.state]} · {format_duration(line.elapsed)} · "
            f"attempt {job.attempt} · {link}"
        )
        rows.append((escape_markdown(job.circuit or "—"), detail))
    body.append(facts(rows))
    if report.hidden:
        body.append(
            text(
                f"…and {report.hidden} more. Narrow it down with **status** and a circuit "
                "or experiment.",
                isSubtle=True,
            )
        )
    _append_deployments(body, report)
    _append_stuck(body, report)
    body.append(text(_as_of(stamp, report), isSubtle=True, size="Small"))
    return card(body)


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


def _append_stuck(body: list[dict[str, Any]], report: StatusReport) -> None:
    """Notifications that could not be delivered are shown, never silently dropped."""
    if not report.stuck:
        return
    body.append(text("⚠️ Not delivered", weight="Bolder", color="Warning"))
    for kind, destination, error in report.stuck:
        where = "the Workflows webhook" if destination == "webhook" else destination
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
