"""The living card of a monitoring session: one message per session and conversation,
updated in place as its jobs move, always showing the session's latest state.

Rendered from the store (the session and its jobs), never from one event, so an update
sent twice or late still shows the truth. Each circuit appears once, by its latest
attempt. Teams refuses cards above ~28 KB: rows are capped and the rest counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cards.common import Card, card, escape_markdown, heading, text
from cards.events import event_summary, render_event_card
from cards.status import JobRow, job_row
from domain.monitoring import EventRecord, JobRecord, SessionRecord
from domain.status import STATES_IN_ORDER, status_order

__all__ = [
    "MAX_CARD_BYTES",
    "MAX_GROUPED",
    "MAX_ROWS",
    "group_summary",
    "render_group_card",
    "render_session_card",
    "session_summary",
]

MAX_ROWS = 40
# Events shown in full on one grouped card; the rest are listed by their summary line.
MAX_GROUPED = 8
# Teams' limit is about 28 KB for the whole activity; leave room for the envelope.
MAX_CARD_BYTES = 26 * 1024
_MAX_NAME_CHARS = 120

_SESSION_STATUS = {
    "active": "watching",
    "timed_out": "past the maximum wait, still checked now and then",
    "done": "finished",
    "unwatched": "no longer watched",
}


def _clip(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= _MAX_NAME_CHARS else value[: _MAX_NAME_CHARS - 1] + "…"


def _https(url: str | None) -> str | None:
    return url if url and url.startswith("https://") else None


def _latest_per_circuit(jobs: Sequence[JobRecord]) -> list[JobRecord]:
    latest: dict[str, JobRecord] = {}
    for record in jobs:
        name = record.job.circuit or record.job.name
        current = latest.get(name)
        if current is None or record.job.attempt >= current.job.attempt:
            latest[name] = record
    return sorted(latest.values(), key=lambda r: status_order(r.job))


def _elapsed(record: JobRecord, now: datetime) -> timedelta | None:
    job = record.job
    start = job.started_at or record.running_since
    if start is None:
        return None
    end = job.ended_at if job.state.is_terminal and job.ended_at else now
    return end - start


def _counts(rows: Sequence[JobRecord]) -> str:
    counted = {state: 0 for state in STATES_IN_ORDER}
    for record in rows:
        counted[record.job.state] += 1
    return ", ".join(f"{n} {state.value}" for state, n in counted.items() if n)


def session_summary(session: SessionRecord, jobs: Sequence[JobRecord]) -> str:
    """One line for notification previews."""
    rows = _latest_per_circuit(jobs)
    counts = _counts(rows)
    return _clip(f"{session.title}: {counts}" if counts else session.title)


def _row(record: JobRecord, now: datetime) -> dict[str, Any]:
    job = record.job
    return job_row(
        JobRow(
            circuit=_clip(job.circuit or "—"),
            state=job.state,
            elapsed=_elapsed(record, now),
            attempt=job.attempt,
            name=_clip(job.display_name or job.name),
            url=_https(job.studio_url),
        )
    )


def _build(session: SessionRecord, rows: list[JobRecord], shown: int, now: datetime) -> Card:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    status = _SESSION_STATUS.get(session.status, session.status)
    body: list[dict[str, Any]] = [heading(f"🧪 {escape_markdown(_clip(session.title))}")]
    if rows:
        body.append(
            text(
                f"{len(rows)} circuit(s): {_counts(rows)} — {escape_markdown(status)}",
                isSubtle=True,
            )
        )
        body.extend(_row(record, now) for record in rows[:shown])
        if len(rows) > shown:
            body.append(text(f"…and {len(rows) - shown} more.", isSubtle=True))
    else:
        body.append(text(f"No job seen yet — {escape_markdown(status)}.", isSubtle=True))
    body.append(text(f"Updated {stamp}", isSubtle=True, size="Small"))
    return card(body)


def render_session_card(session: SessionRecord, jobs: Sequence[JobRecord], now: datetime) -> Card:
    """The session's card as of `now` (Adaptive Card 1.5, under MAX_CARD_BYTES)."""
    rows = _latest_per_circuit(jobs)
    shown = min(len(rows), MAX_ROWS)
    rendered = _build(session, rows, shown, now)
    # Long names can still push a capped card over the limit: show fewer rows.
    while shown > 1 and len(json.dumps(rendered).encode()) > MAX_CARD_BYTES:
        shown = max(1, shown * 3 // 4)
        rendered = _build(session, rows, shown, now)
    return rendered


def group_summary(events: Sequence[EventRecord]) -> str:
    if len(events) == 1:
        return event_summary(events[0])
    return _clip(
        f"{len(events)} circuits need attention: "
        + ", ".join((e.circuit or e.job_name or "?") for e in events[:5])
        + (" …" if len(events) > 5 else "")
    )


def _build_group(events: Sequence[EventRecord], detailed: int) -> Card:
    body: list[dict[str, Any]] = [
        heading(f"❌ {len(events)} circuits failed or stopped"),
        text(
            "They went wrong within moments of each other, so they arrive together.",
            isSubtle=True,
        ),
    ]
    for event in events[:detailed]:
        part = render_event_card(event)["body"]
        if part:
            # Each event's own card, smaller and set apart from the previous one.
            first = {**part[0], "separator": True, "spacing": "Large"}
            if first.get("size") == "Large":
                first["size"] = "Medium"
            body.extend([first, *part[1:]])
    for event in events[detailed:]:
        body.append(text(escape_markdown(event_summary(event)), separator=True))
    return card(body, fallbackText=group_summary(events))


def render_group_card(events: Sequence[EventRecord]) -> Card:
    """One card for several failures of a session (one event: that event's own card)."""
    if not events:
        raise ValueError("a group card needs at least one event")
    if len(events) == 1:
        return render_event_card(events[0])
    detailed = min(len(events), MAX_GROUPED)
    rendered = _build_group(events, detailed)
    while detailed > 0 and len(json.dumps(rendered).encode()) > MAX_CARD_BYTES:
        detailed -= 1
        rendered = _build_group(events, detailed)
    return rendered
