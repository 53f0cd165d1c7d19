"""Cards for mlbot's events: what subscribers see when a training job, a deployment or a
deployment's health changes.

Each stored event (`EventRecord`: a kind plus the JSON payload written by
`monitoring.engine.event_payload`, the Azure DevOps hooks or `monitoring.deployment_watch`)
becomes one Adaptive Card and one plain-text summary line for notification previews.
Payloads are read defensively: rows written by older versions may lack fields or hold odd
types, and a card must still go out rather than block the outbox.

Bot messages use card version 1.5; Workflows webhooks may refuse anything above 1.4, so
`version="1.4"` sticks to elements and properties that exist in 1.4 (no `style` on
TextBlocks, no Table, no Action.Execute).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cards.common import Card, card, escape_markdown, facts, heading, text
from domain.durations import format_duration
from domain.jobs import CIRCUIT_PATTERN
from domain.monitoring import EventRecord

__all__ = [
    "HEALTH_KINDS",
    "MAX_ERROR_CHARS",
    "MAX_LISTED",
    "SUPPORTED_KINDS",
    "SUPPORTED_VERSIONS",
    "event_summary",
    "health_evidence",
    "render_event_card",
]

Element = dict[str, Any]

SUPPORTED_VERSIONS = ("1.4", "1.5")
# Enough of an Azure ML error to recognise it; the full text is one click away in Studio.
MAX_ERROR_CHARS = 500
# Jobs or circuits listed on one card; the rest are counted, so the card stays under 28 KB.
MAX_LISTED = 20
_MAX_NAME_CHARS = 200  # any single name or value; a runaway string must not fill the card
_MAX_SUMMARY_CHARS = 200  # previews show one short line
_MAX_GENERIC_FIELDS = 30
# Environment names `rollback <env>` accepts (bot.operations.ENVIRONMENT_NAME).
_ROLLBACK_ENVIRONMENT = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _clip(value: str, limit: int) -> str:
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _safe(value: str, limit: int = _MAX_NAME_CHARS) -> str:
    # Clip before escaping so a cut never splits an escape sequence.
    return escape_markdown(_clip(value, limit))


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _https(url: object) -> str | None:
    """A link people may be sent to: https with a host, nothing else (no javascript:, http:)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.netloc:
        return None
    return url


def _md_link(label: str, url: str) -> str:
    # Characters that would end the markdown link early are percent-encoded.
    target = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label}]({target})"


def _stamp(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class _View:
    """An event record read defensively: every accessor returns None for a missing or odd field."""

    record: EventRecord
    version: str

    @property
    def payload(self) -> Mapping[str, Any]:
        payload = self.record.payload
        return payload if isinstance(payload, Mapping) else {}

    def string(self, key: str) -> str | None:
        value = self.payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        return None

    def number(self, key: str) -> int | None:
        value = self.payload.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return None

    def seconds(self, key: str) -> timedelta | None:
        value = self.payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            return timedelta(seconds=value)
        except (OverflowError, ValueError):
            return None

    def when(self, key: str) -> datetime | None:
        value = self.payload.get(key)
        if not isinstance(value, str):
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None

    def flag(self, key: str) -> bool | None:
        value = self.payload.get(key)
        return value if isinstance(value, bool) else None

    @property
    def circuit(self) -> str:
        """Who the event is about, as plain text: the circuit, else the job's own name."""
        return (
            _clip(self.record.circuit or "", _MAX_NAME_CHARS)
            or _clip(self.string("circuit") or "", _MAX_NAME_CHARS)
            or _clip(self.string("display_name") or "", _MAX_NAME_CHARS)
            or _clip(self.record.job_name or self.string("job_name") or "", _MAX_NAME_CHARS)
            or "Training job"
        )

    @property
    def attempt(self) -> int | None:
        number = self.number("attempt")
        return number if number is not None and number >= 1 else None

    @property
    def max_attempts(self) -> int | None:
        number = self.number("max_attempts")
        return number if number is not None and number >= 1 else None

    @property
    def attempt_text(self) -> str | None:
        """`2 of 3`, or `2` when the maximum is unknown; None when nothing is known."""
        if self.attempt is None:
            return None
        if self.max_attempts is None:
            return str(self.attempt)
        return f"{self.attempt} of {self.max_attempts}"

    @property
    def retries_exhausted(self) -> bool | None:
        """No automatic retry follows; derived from the attempt numbers for older rows."""
        stored = self.flag("retries_exhausted")
        if stored is not None:
            return stored
        if self.attempt is not None and self.max_attempts is not None:
            return self.attempt >= self.max_attempts
        return None

    @property
    def studio_url(self) -> str | None:
        return _https(self.payload.get("studio_url"))

    def heading(self, value: str) -> Element:
        # `style: heading` (accessibility) exists only from 1.5 on.
        if self.version == "1.4":
            return text(value, size="Large", weight="Bolder")
        return heading(value)


class _Parts(NamedTuple):
    body: list[Element]
    actions: list[Element]


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one event kind is told: its card content and its one-line summary."""

    render: Callable[[_View], _Parts]
    summary: Callable[[_View], str]


# --- shared pieces ------------------------------------------------------------------------


def _open_url(title: str, url: str | None) -> list[Element]:
    return [{"type": "Action.OpenUrl", "title": title, "url": url}] if url else []


def _studio_action(view: _View) -> list[Element]:
    return _open_url("Open in Azure ML Studio", view.studio_url)


def _job_label(view: _View) -> str | None:
    """`display name (job name)`, escaped; experiment and job are what people search Studio by."""
    display = view.string("display_name")
    name = view.record.job_name or view.string("job_name")
    if display and name and display != name:
        return f"{_safe(display)} ({_safe(name)})"
    if display or name:
        return _safe(display or name or "")
    return None


def _workspace_name(view: _View) -> str | None:
    # Workspace keys are `subscription/resource-group/name`; people know the name.
    key = view.record.workspace or view.string("workspace")
    if not key:
        return None
    return _safe(key.rstrip("/").rsplit("/", 1)[-1])


def _facts(*pairs: tuple[str, str | None]) -> Element:
    # Old rows miss fields: an unknown fact is left out rather than shown empty.
    return facts([(title, value) for title, value in pairs if value])


def _job_facts(view: _View, state: str, *extra: tuple[str, str | None]) -> Element:
    """State, attempt, the kind's own facts, then where to find the job."""
    return _facts(
        ("State", state),
        ("Attempt", view.attempt_text),
        *extra,
        ("Job", _job_label(view)),
        ("Workspace", _workspace_name(view)),
    )


def _footer(view: _View) -> Element:
    seen = view.when("at") or view.record.created_at
    return text(f"Seen {_stamp(seen)}", isSubtle=True, size="Small")


def _retry_command(view: _View) -> str:
    """The command that queues this circuit again, ready to copy.

    Card markdown has no code spans (backticks show literally in Teams), so it is bold and
    escaped; only a well-formed circuit (letters, digits, `_`, `-`) is offered, anything
    else gets a placeholder.
    """
    circuit = view.record.circuit or view.string("circuit") or ""
    target = circuit if CIRCUIT_PATTERN.fullmatch(circuit) else "<PLANT>/<CIRCUIT>"
    # No bot name: the card goes to channels and chats alike, and the bot may be renamed.
    return f"**retry {_safe(target)}**"


def _attempt_suffix(view: _View) -> str:
    return f" (attempt {view.attempt_text})" if view.attempt_text else ""


def _next_step(view: _View) -> Element | None:
    """What happens after a failed or timed-out attempt: a retry, or a person's decision."""
    exhausted = view.retries_exhausted
    if exhausted is None:
        return None
    if exhausted:
        return text(
            "**Retries exhausted**: no automatic retry follows. Fix the cause, then queue it "
            f"again with {_retry_command(view)}.",
            color="Attention",
        )
    following = ""
    if view.attempt is not None and view.max_attempts is not None:
        following = f" (attempt {view.attempt + 1} of {view.max_attempts})"
    # Retries go out in one batch per experiment, once its other circuits have finished.
    return text(
        f"**Next**: automatic retry queued{following}; it starts with the next retry batch, "
        "once the other circuits of this run have finished."
    )


_CATEGORY_TEXT = {
    "user": "User error: something in the job's code, data or configuration",
    "system": "System error: on Azure ML's side; a retry may well succeed",
}


def _literal(value: str, limit: int) -> str:
    # Log text is shown as written: markdown escaped, and angle brackets (`<module>`),
    # which Teams reads as HTML tags and drops, swapped for look-alikes.
    return _safe(value, limit).replace("<", "\u2039").replace(">", "\u203a")


def _log_lines(view: _View) -> list[str]:
    raw = view.payload.get("log_tail")
    if not isinstance(raw, list | tuple):
        return []
    return [_literal(line, 200) for line in raw if isinstance(line, str)][-15:]


def _error_block(view: _View) -> list[Element]:
    error = view.string("error_summary")
    code = view.string("error_code")
    lines = _log_lines(view)
    unavailable = view.string("details_unavailable")
    if error is None and not lines:
        missing = (
            f"Azure ML's error details could not be read ({_safe(unavailable, 200)}). "
            if unavailable
            else "No error message was reported. "
        )
        return [text(missing + "See the job's logs and outputs in Studio.")]
    block: list[Element] = [text("Why it failed", weight="Bolder", spacing="Medium")]
    category = _CATEGORY_TEXT.get(view.string("error_category") or "")
    if category or code:
        label = category or "Error"
        block.append(
            text(
                f"{label}{f' ({_safe(code, 60)})' if code else ''}.", isSubtle=True, spacing="None"
            )
        )
    if error is not None:
        block.append(text(_literal(error, MAX_ERROR_CHARS), fontType="Monospace"))
    if lines:
        source = _safe(view.string("log_name") or "the job's log", 80)
        block.append(text(f"Last lines of {source}", weight="Bolder", spacing="Medium"))
        # One block per line: markdown would run single line breaks together.
        block.append(
            {
                "type": "Container",
                "style": "emphasis",
                "items": [
                    text(line, fontType="Monospace", size="Small", spacing="None") for line in lines
                ],
            }
        )
    elif unavailable:
        block.append(text(f"Log not shown: {_safe(unavailable, 200)}.", isSubtle=True))
    return block


def _more(hidden: int, noun: str) -> Element:
    return text(f"…and {hidden} more {noun}.", isSubtle=True)


# --- one renderer per kind ----------------------------------------------------------------


def _training_started(view: _View) -> _Parts:
    started = view.when("started_at")
    body = [
        view.heading(f"▶️ {_safe(view.circuit)} — training started"),
        _job_facts(view, "Running", ("Started", _stamp(started) if started else None)),
        _footer(view),
    ]
    return _Parts(body, _studio_action(view))


def _training_completed(view: _View) -> _Parts:
    body = [
        view.heading(f"✅ {_safe(view.circuit)} — training completed"),
        _job_facts(
            view,
            "Completed",
            ("Duration", format_duration(view.seconds("duration"))),
            ("Ended", _stamp(view.when("ended_at") or view.when("at"))),
        ),
        _footer(view),
    ]
    return _Parts(body, _studio_action(view))


def _training_failed(view: _View) -> _Parts:
    body = [
        view.heading(f"❌ {_safe(view.circuit)} — training failed"),
        _job_facts(view, "Failed", ("Ran for", format_duration(view.seconds("duration")))),
        *_error_block(view),
    ]
    step = _next_step(view)
    if step is not None:
        body.append(step)
    body.append(_footer(view))
    return _Parts(body, _studio_action(view))


def _training_canceled(view: _View) -> _Parts:
    body = [
        view.heading(f"⏹ {_safe(view.circuit)} — training canceled"),
        _job_facts(view, "Canceled", ("Ran for", format_duration(view.seconds("duration")))),
        # A cancel is a person's decision, so the engine does not retry it.
        text(
            "Canceled jobs are not retried automatically; "
            f"{_retry_command(view)} queues the circuit again."
        ),
        _footer(view),
    ]
    return _Parts(body, _studio_action(view))


def _attempt_timed_out(view: _View) -> _Parts:
    timeout = view.seconds("timeout")
    body = [
        view.heading(f"⏱ {_safe(view.circuit)} — attempt timed out"),
        _job_facts(
            view,
            "Timed out (canceling)",
            ("Running for", format_duration(view.seconds("running_for"))),
            ("Time limit", format_duration(timeout) if timeout is not None else None),
        ),
        text("The attempt ran past its time limit and counts as failed; mlbot is canceling it."),
    ]
    step = _next_step(view)
    if step is not None:
        body.append(step)
    body.append(_footer(view))
    return _Parts(body, _studio_action(view))


def _long_running(view: _View) -> _Parts:
    reminder = view.number("reminder")
    body = [
        view.heading(f"⏳ {_safe(view.circuit)} — still running"),
        _job_facts(
            view,
            "Running",
            ("Running for", format_duration(view.seconds("running_for"))),
            ("Reminder", f"#{reminder}" if reminder else None),
        ),
        text("Reminders repeat until the job finishes."),
        _footer(view),
    ]
    return _Parts(body, _studio_action(view))


def _unfinished_jobs(view: _View) -> list[Mapping[str, Any]]:
    jobs = view.payload.get("unfinished")
    if not isinstance(jobs, list):
        return []
    return [job for job in jobs if isinstance(job, Mapping)]


def _unfinished_fact(job: Mapping[str, Any]) -> tuple[str, str]:
    def field(key: str) -> str | None:
        value = job.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    name = field("name")
    title = _safe(field("circuit") or name or "—")
    detail = _safe(field("status") or "Unknown")
    url = _https(job.get("studio_url"))
    if url:
        detail += " · " + _md_link(_safe(name or "Studio"), url)
    elif name and field("circuit"):
        detail += f" · {_safe(name)}"
    return title, detail


def _monitoring_timed_out(view: _View) -> _Parts:
    title = view.string("title")
    jobs = _unfinished_jobs(view)
    shown = jobs[:MAX_LISTED]
    started = view.when("started_at")
    label = f"“{_safe(title)}”" if title else "this run"
    body: list[Element] = [
        view.heading(f"⌛ Stopped waiting for {label}"),
        _facts(
            ("Waited", format_duration(view.seconds("waited"))),
            ("Since", _stamp(started) if started else None),
            ("Unfinished", str(len(jobs))),
        ),
        text(
            "mlbot reached its maximum wait with these jobs unfinished. Running jobs still "
            "get long-running reminders; **status** shows where they are."
        ),
    ]
    if shown:
        body.append(facts([_unfinished_fact(job) for job in shown]))
    if len(jobs) > len(shown):
        body.append(_more(len(jobs) - len(shown), "jobs"))
    body.append(_footer(view))
    return _Parts(body, [])


def _retry_circuits(view: _View) -> list[str]:
    circuits = view.payload.get("circuits")
    if isinstance(circuits, list):
        names = [c.strip() for c in circuits if isinstance(c, str) and c.strip()]
        if names:
            return names
    manual = view.string("manualCircuits")
    return [c for c in (manual or "").split(",") if c.strip()]


def _retry_queued(view: _View) -> _Parts:
    circuits = _retry_circuits(view)
    shown = circuits[:MAX_LISTED]
    subject = _safe(circuits[0]) if len(circuits) == 1 else f"{len(circuits)} circuits"
    run_url = _https(view.payload.get("run_url"))
    run_id = view.string("run_id") or (
        str(view.number("run_id")) if view.number("run_id") is not None else None
    )
    if run_id and run_url:
        run = _md_link(f"#{_safe(run_id)}", run_url)
    elif run_id:
        run = f"#{_safe(run_id)}"
    else:
        run = "waiting to be queued"
    pipeline = view.string("pipeline")
    session = view.string("session")
    body: list[Element] = [
        view.heading(f"🔁 Retry queued — {subject}" if circuits else "🔁 Retry queued"),
        _facts(
            ("Circuits", ", ".join(_safe(c) for c in shown) if shown else "—"),
            ("Attempt", view.attempt_text),
            ("Pipeline", _safe(pipeline) if pipeline else None),
            ("Run", run),
            ("Experiment", _safe(session) if session else None),
        ),
    ]
    if len(circuits) > len(shown):
        body.append(_more(len(circuits) - len(shown), "circuits"))
    body.append(_footer(view))
    return _Parts(body, _open_url("Open pipeline run", run_url))


def _generic(view: _View) -> _Parts:
    """Any kind this module does not know yet: its plain fields, so nothing is lost or crashes."""
    pairs: list[tuple[str, str]] = []
    for key, value in view.payload.items():
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, str | int | float) and str(value).strip():
            shown = _safe(_one_line(str(value)))
        else:
            continue  # lists, objects and empty values do not fit one fact
        pairs.append((_safe(str(key), 60), shown))
    scalars = pairs[:_MAX_GENERIC_FIELDS]
    kind = _safe(view.record.kind or "event")
    body: list[Element] = [view.heading(f"🔔 {_safe(view.circuit)} — {kind}")]
    if scalars:
        body.append(facts(scalars))
    if len(pairs) > len(scalars):
        body.append(_more(len(pairs) - len(scalars), "fields"))
    body.append(_footer(view))
    return _Parts(body, _studio_action(view))


# --- deployments and approvals (Azure DevOps service hooks, see service.devops_hooks) ---------

# Results that mean the new model went live, possibly with warnings.
_DEPLOY_SUCCEEDED = frozenset({"succeeded", "partiallysucceeded", "succeededwithissues"})
_DEPLOY_PARTIAL = frozenset({"partiallysucceeded", "succeededwithissues"})
# An approval's final status -> (icon, verb) for the heading and the summary.
_APPROVAL_OUTCOMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "approved": ("✅", "Approved"),
        "rejected": ("🚫", "Rejected"),
        "canceled": ("⏹", "Approval canceled"),
        "timedout": ("⌛", "Approval timed out"),
        "skipped": ("⏭", "Approval skipped"),
    }
)


def _names(view: _View, key: str) -> list[str]:
    value = view.payload.get(key)
    if not isinstance(value, list):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def _result_word(view: _View) -> str:
    return (view.string("result") or "").lower()


def _result_text(view: _View) -> str | None:
    """`partiallySucceeded` -> `Partially succeeded`: Azure DevOps' words, readable."""
    result = view.string("result")
    if result is None:
        return None
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", result).lower()
    return _safe(words[:1].upper() + words[1:])


def _deployment_subject(view: _View) -> str:
    """`Deployment to prod`, `Rollback of prod`, or without an environment just the noun.

    Plain text; callers escape it for cards.
    """
    environment = view.string("environment")
    if view.flag("rollback"):
        return f"Rollback of {environment}" if environment else "Rollback"
    return f"Deployment to {environment}" if environment else "Deployment"


def _run_label(view: _View) -> str | None:
    """`#20261129.3`, else `#4242`: how Azure DevOps names a run. Plain text."""
    name = view.string("run_name")
    number = view.number("run_id")
    if name:
        return f"#{name}"
    return f"#{number}" if number is not None else None


def _run_fact(view: _View) -> str | None:
    label = _run_label(view)
    url = _https(view.payload.get("web_url"))
    if label and url:
        return _md_link(_safe(label), url)
    return _safe(label) if label else None


def _where(view: _View) -> str:
    """`deployment-pipeline #20261129.3` for summaries; empty when nothing is known."""
    parts = [part for part in (view.string("pipeline"), _run_label(view)) if part]
    return f" ({' '.join(parts)})" if parts else ""


def _deployment_facts(view: _View, *extra: tuple[str, str | None]) -> Element:
    def safe(key: str) -> str | None:
        value = view.string(key)
        return _safe(value) if value else None

    return _facts(
        *extra,
        ("Pipeline", safe("pipeline")),
        ("Run", _run_fact(view)),
        ("Stage", safe("stage")),
        ("Environment", safe("environment")),
        ("Requested by", safe("requested_for")),
    )


def _run_action(view: _View, title: str = "Open pipeline run") -> list[Element]:
    return _open_url(title, _https(view.payload.get("web_url")))


def _deployment_heading(view: _View, fallback_verb: str) -> tuple[str, str]:
    """(icon, `Deployment to prod completed`) from the stored result; plain text."""
    result = _result_word(view)
    subject = _deployment_subject(view)
    if result in _DEPLOY_PARTIAL:
        return "⚠️", f"{subject} partially succeeded"
    if result in _DEPLOY_SUCCEEDED:
        return "✅", f"{subject} completed"
    if result in ("canceled", "cancelled", "rejected", "abandoned"):
        return "❌", f"{subject} {'canceled' if result != 'rejected' else 'rejected'}"
    if result == "failed":
        return "❌", f"{subject} failed"
    return ("✅" if fallback_verb == "completed" else "❌"), f"{subject} {fallback_verb}"


def _deployment_completed(view: _View) -> _Parts:
    icon, title = _deployment_heading(view, "completed")
    body: list[Element] = [
        view.heading(f"{icon} {_safe(title)}"),
        _deployment_facts(view, ("Result", _result_text(view))),
    ]
    if _result_word(view) in _DEPLOY_PARTIAL:
        body.append(text("Some steps reported issues; see the run in Azure DevOps."))
    body.append(_footer(view))
    return _Parts(body, _run_action(view))


def _rejected(view: _View) -> bool:
    """The stage failed because its approval was rejected (a decision, not a fault)."""
    return (view.string("approval_status") or "").lower() == "rejected"


def _deployment_rejected(view: _View) -> _Parts:
    by = view.string("decided_by")
    comment = view.string("comment")
    body: list[Element] = [
        view.heading(f"🚫 {_safe(_deployment_subject(view))} rejected"),
        _deployment_facts(view, ("Rejected by", _safe(by) if by else None)),
    ]
    if comment:
        body.append(text("Comment", weight="Bolder", spacing="Medium"))
        body.append(text(_safe(comment, MAX_ERROR_CHARS)))
    body.append(text("The approval was rejected, so the stage did not run; nothing was deployed."))
    body.append(_footer(view))
    return _Parts(body, _run_action(view))


def _deployment_failed(view: _View) -> _Parts:
    if _rejected(view):
        return _deployment_rejected(view)
    icon, title = _deployment_heading(view, "failed")
    environment = view.string("environment") or ""
    body: list[Element] = [
        view.heading(f"{icon} {_safe(title)}"),
        _deployment_facts(view, ("Result", _result_text(view))),
        text("The run's logs in Azure DevOps say what went wrong."),
    ]
    # A rollback command is only offered for a name the command accepts (and never to
    # roll back a failed rollback).
    if _ROLLBACK_ENVIRONMENT.fullmatch(environment) and not view.flag("rollback"):
        body.append(
            text(
                f"If {_safe(environment)} misbehaves, **rollback {environment.lower()}** "
                "puts the previous model back."
            )
        )
    body.append(_footer(view))
    return _Parts(body, _run_action(view))


def _approvers_fact(view: _View) -> str | None:
    names = _names(view, "approvers")
    if not names:
        return None
    shown = ", ".join(_safe(name) for name in names[:MAX_LISTED])
    hidden = len(names) - min(len(names), MAX_LISTED)
    return shown + (f" and {hidden} more" if hidden else "")


def _instructions(view: _View) -> list[Element]:
    instructions = view.string("instructions")
    if instructions is None:
        return []
    return [
        text("Instructions", weight="Bolder", spacing="Medium"),
        text(_safe(instructions, MAX_ERROR_CHARS)),
    ]


def _approval_required(view: _View) -> _Parts:
    needed = view.number("min_approvers")
    body: list[Element] = [
        view.heading(f"🔐 Approval required — {_safe(_deployment_subject(view).lower())}"),
        _deployment_facts(
            view,
            ("Approvers", _approvers_fact(view)),
            ("Needs", f"{needed} approvals" if needed and needed > 1 else None),
        ),
        *_instructions(view),
        text("The stage waits until an approver decides."),
        _footer(view),
    ]
    return _Parts(body, _run_action(view, "Review in Azure DevOps"))


def _approval_outcome(view: _View) -> tuple[str, str]:
    status = (view.string("approval_status") or "").lower()
    return _APPROVAL_OUTCOMES.get(status, ("🔔", f"Approval {status or 'decided'}"))


def _approval_decided(view: _View) -> _Parts:
    icon, verb = _approval_outcome(view)
    by = view.string("decided_by")
    comment = view.string("comment")
    body: list[Element] = [
        view.heading(f"{icon} {_safe(verb)} — {_safe(_deployment_subject(view).lower())}"),
        _deployment_facts(view, ("By", _safe(by) if by else None)),
    ]
    if comment:
        body.append(text("Comment", weight="Bolder", spacing="Medium"))
        body.append(text(_safe(comment, MAX_ERROR_CHARS)))
    body.append(_footer(view))
    return _Parts(body, _run_action(view))


# --- deployment health watch (monitoring.deployment_watch) ---------------------------------

# The chart of the observation window. Bot messages (1.5) use Teams' own chart elements
# (`Chart.VerticalBar` for the error rate, `Chart.Line` for latency), which Teams draws on
# desktop and web; each carries a `fallback` that hosts without charts (Teams on iOS, the
# official renderer) draw instead: a row of block characters, one per bar, with its
# figures. Workflows cards (1.4) keep to 1.4 elements, so they get those rows directly.
# Traffic is given as figures only: a steady request rate drawn as bars is a solid block.
_BARS = "▁▂▃▄▅▆▇█"
_NO_DATA = "·"
_CHART_BARS = 32  # wider rows wrap on phones; longer windows get 2+ minutes per bar
_CHART_MINUTES = 60  # monitoring.deployment_watch keeps at most this many points
_MAX_CHART_INPUT = 500  # points read from one row at most, however many it holds


def _figure(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt_number(value: float) -> str:
    if abs(value) >= 1e6:  # only a damaged row holds such figures; keep the card short
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}".removesuffix(".0")


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _clock_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M")


def _watch_subject(view: _View) -> str:
    """`churn-prod / blue in prod`: which deployment the watch is about. Plain text."""
    endpoint = view.string("endpoint") or "endpoint"
    deployment = view.string("deployment")
    environment = view.string("environment")
    where = f"{endpoint} / {deployment}" if deployment else endpoint
    return f"{where} in {environment}" if environment else where


@dataclass(frozen=True, slots=True)
class _Limits:
    """The thresholds the watch judged by (payload `thresholds`), each None when unknown."""

    error_rate: float | None
    latency: float | None
    percentile: str
    in_a_row: int | None
    min_requests: int | None

    @classmethod
    def of(cls, view: _View) -> _Limits:
        limits = view.payload.get("thresholds")
        if not isinstance(limits, Mapping):
            limits = {}
        percentile = limits.get("latency_percentile")
        if not (isinstance(percentile, str) and re.fullmatch(r"P\d{2}", percentile)):
            percentile = ""

        def count(key: str) -> int | None:
            value = limits.get(key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            return value if ok else None

        def limit(key: str) -> float | None:
            value = _figure(limits.get(key))
            return value if value is not None and value >= 0 else None

        return cls(
            error_rate=limit("error_rate_percent"),
            latency=limit("latency_ms"),
            percentile=percentile,
            in_a_row=count("failure_threshold"),
            min_requests=count("min_requests"),
        )

    @property
    def latency_label(self) -> str:
        return f"{self.percentile} latency" if self.percentile else "Latency"

    def fact(self) -> str | None:
        """`error rate > 5 % or P95 latency > 2000 ms, 3 checks in a row (…)`."""
        parts = []
        if self.error_rate is not None:
            parts.append(f"error rate > {_fmt_number(self.error_rate)} %")
        if self.latency is not None:
            parts.append(f"{self.latency_label} > {_fmt_number(self.latency)} ms")
        if not parts:
            return None
        rule = " or ".join(parts)
        if self.in_a_row and self.in_a_row > 1:
            rule += f", {self.in_a_row} checks in a row"
        if self.min_requests:
            rule += f" (min. {self.min_requests} requests per check)"
        return rule


class _Point(NamedTuple):
    at: datetime
    error_rate: float | None
    latency: float | None
    requests: float | None


def _chart_points(view: _View) -> list[_Point]:
    """The payload's per-minute `points`, oldest first, from the newest hour only."""
    raw = view.payload.get("points")
    if not isinstance(raw, list):
        return []
    points = []
    for item in raw[-_MAX_CHART_INPUT:]:
        if not isinstance(item, Mapping):
            continue
        at = _moment(item.get("at"))
        if at is None:
            continue
        points.append(
            _Point(
                at,
                _figure(item.get("error_rate_percent")),
                _figure(item.get("latency_ms")),
                _figure(item.get("requests")),
            )
        )
    if not points:
        return []
    points.sort(key=lambda point: point.at)
    newest = points[-1].at
    return [p for p in points if newest - p.at < timedelta(minutes=_CHART_MINUTES)]


def _bars(values: list[float | None], limit: float | None) -> str:
    """One block character per value, scaled from 0 to the larger of the peak and the limit.

    A flat bottom row then reads "well below the limit" and a full bar "at the peak, which
    is over the limit"; scaling to the window's own low and high would blow a 0.1 % wobble
    up to full height.
    """
    known = [max(v, 0.0) for v in values if v is not None]
    top = max([*known, limit or 0.0])
    out = []
    for value in values:
        if value is None:
            out.append(_NO_DATA)
        elif top <= 0:
            out.append(_BARS[0])
        else:
            level = int(max(value, 0.0) / top * len(_BARS))
            out.append(_BARS[min(level, len(_BARS) - 1)])
    return "".join(out)


def _bucketed(points: list[_Point], per_bar: int) -> list[list[_Point]]:
    """Points grouped into bars of `per_bar` minutes from the first point; a missing minute
    (a check that could not be measured) is an empty bar."""
    first = points[0].at
    count = int((points[-1].at - first).total_seconds() // 60) // per_bar + 1
    buckets: list[list[_Point]] = [[] for _ in range(count)]
    for point in points:
        minute = int((point.at - first).total_seconds() // 60)
        buckets[minute // per_bar].append(point)
    return buckets


def _peak(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _figures_line(
    label: str, unit: str, values: list[float | None], latest: float | None, limit: float | None
) -> str | None:
    """`**Error rate** · now 16.1 % · peak 16.1 % · limit 5 %`; None when nothing is known."""
    peak = _peak(values)
    if peak is None:
        return None
    figures = [f"**{label}**"]
    if latest is not None:
        figures.append(f"now {_fmt_number(latest)}{unit}")
    figures.append(f"peak {_fmt_number(peak)}{unit}")
    if limit is not None:
        figures.append(f"limit {_fmt_number(limit)}{unit}")
    return " · ".join(figures)


def _bars_text(values: list[float | None], limit: float | None) -> Element:
    """One block character per bar, red when the peak is over the limit."""
    peak = _peak(values)
    over = limit is not None and peak is not None and peak > limit
    return text(
        _bars(values, limit),
        fontType="Monospace",
        spacing="None",
        **({"color": "Attention"} if over else {}),
    )


def _figure_row(figures: str, drawn: Element) -> Element:
    """A figure's line of numbers, then its chart (or its row of bars)."""
    return {
        "type": "Container",
        "spacing": "Small",
        "items": [text(figures, size="Small", spacing="Small"), drawn],
    }


def _vertical_bars(
    title: str, unit: str, labels: list[str], values: list[float | None], limit: float | None
) -> dict[str, Any]:
    """`Chart.VerticalBar`: one bar per label, red where over the limit."""
    data = []
    for label, value in zip(labels, values, strict=True):
        if value is None:
            continue  # not measured: no bar, rather than a bar at zero
        over = limit is not None and value > limit
        data.append({"x": label, "y": round(value, 2), "color": "attention" if over else "good"})
    return {
        "type": "Chart.VerticalBar",
        "title": title,
        "xAxisTitle": "UTC",
        "yAxisTitle": unit.strip(),
        "data": data,
    }


def _line(
    title: str,
    legend: str,
    unit: str,
    labels: list[str],
    values: list[float | None],
    limit: float | None,
) -> dict[str, Any]:
    """`Chart.Line`: the figure per label, and its limit as a second, flat line."""
    measured = [
        {"x": label, "y": round(value, 2)}
        for label, value in zip(labels, values, strict=True)
        if value is not None
    ]
    series: list[dict[str, Any]] = [
        {"legend": legend, "values": measured, "color": "categoricalBlue"}
    ]
    if limit is not None and measured:
        series.append(
            {
                "legend": "Limit",
                "values": [{"x": point["x"], "y": limit} for point in measured],
                "color": "attention",
            }
        )
    return {
        "type": "Chart.Line",
        "title": title,
        "xAxisTitle": "UTC",
        "yAxisTitle": unit.strip(),
        "data": series,
    }


def _chart(view: _View) -> list[Element]:
    """Error rate and latency over the watched window, and the traffic in figures.

    Each bar is the worst minute of its `per_bar` minutes and is labelled with the time
    its span ends, which is how the failed checks are timed: the last bar is the last check.
    """
    points = _chart_points(view)
    if not points:
        return []
    minutes = int((points[-1].at - points[0].at).total_seconds() // 60) + 1
    per_bar = -(-minutes // _CHART_BARS)
    buckets = _bucketed(points, per_bar)
    first = points[0].at
    ends = [first + timedelta(minutes=per_bar * (n + 1)) for n in range(len(buckets))]
    labels = [_clock_time(end) for end in ends]
    limits = _Limits.of(view)
    charts = view.version != "1.4"

    def series(pick: Callable[[_Point], float | None]) -> tuple[list[float | None], float | None]:
        # The worst minute of a bar: a short breach must not be averaged away.
        values = [_peak([pick(p) for p in bucket]) for bucket in buckets]
        known = [value for p in points if (value := pick(p)) is not None]
        return values, (known[-1] if known else None)

    rows: list[Element] = []
    gaps = False
    rate, rate_now = series(lambda p: p.error_rate)
    rate_figures = _figures_line("Error rate", " %", rate, rate_now, limits.error_rate)
    if rate_figures is not None:
        drawn = _bars_text(rate, limits.error_rate)
        if charts:
            limit = limits.error_rate
            title = "Error rate (%)" + (f" · limit {_fmt_number(limit)} %" if limit else "")
            drawn = _vertical_bars(title, "%", labels, rate, limit) | {"fallback": drawn}
        rows.append(_figure_row(rate_figures, drawn))
        gaps = gaps or None in rate
    latency, latency_now = series(lambda p: p.latency)
    latency_figures = _figures_line(
        limits.latency_label, " ms", latency, latency_now, limits.latency
    )
    if latency_figures is not None:
        drawn = _bars_text(latency, limits.latency)
        if charts:
            limit = limits.latency
            title = f"{limits.latency_label} (ms)" + (
                f" · limit {_fmt_number(limit)} ms" if limit else ""
            )
            line = _line(title, limits.latency_label, "ms", labels, latency, limit)
            drawn = line | {"fallback": drawn}
        rows.append(_figure_row(latency_figures, drawn))
        gaps = gaps or None in latency
    if not rows:
        return []
    requests = [p.requests for p in points if p.requests is not None]
    if requests:
        low, high = _fmt_number(min(requests)), _fmt_number(max(requests))
        spread = f"steady at {low}/min" if low == high else f"{low} to {high}/min in the window"
        rows.append(
            text(
                f"**Requests** · now {_fmt_number(requests[-1])}/min · {spread}",
                size="Small",
                spacing="Small",
            )
        )
    bars = len(buckets)
    span = f"{_clock_time(first)} to {_clock_time(ends[-1])} UTC"
    scale = "one per minute" if per_bar == 1 else f"one per {per_bar} minutes"
    legend = f"{span} · {bars} bar{'s' if bars != 1 else ''}, {scale}"
    legend += f" · {_NO_DATA} no data" if gaps else ""
    window = bars * per_bar
    return [
        {
            "type": "Container",
            "style": "emphasis",
            "spacing": "Medium",
            "items": [
                text(f"Last {window} minute{'s' if window != 1 else ''}", weight="Bolder"),
                text(legend, isSubtle=True, size="Small", spacing="None"),
                *rows,
            ],
        }
    ]


def _failed_checks(view: _View) -> list[Element]:
    """The failed checks that triggered the rollback: when, and the figures that breached."""
    checks = view.payload.get("checks")
    if not isinstance(checks, list):
        return []
    rows = []
    for check in [c for c in checks if isinstance(c, Mapping)][-MAX_LISTED:]:
        reason = check.get("reason")
        if not (isinstance(reason, str) and reason.strip()):
            continue
        at = _moment(check.get("at"))
        source = " (alert)" if check.get("source") == "alert" else ""
        when = _clock_time(at) if at else "—"
        rows.append((when + source, _safe(_one_line(reason), MAX_ERROR_CHARS)))
    if not rows:
        return []
    return [text("Failed checks (UTC)", weight="Bolder", spacing="Medium"), facts(rows)]


def _evidence(view: _View) -> list[Element]:
    """Why the deployment was judged unhealthy: the failed checks and the window's chart."""
    return [*_failed_checks(view), *_chart(view)]


def _reason_fact(view: _View) -> tuple[str, str | None]:
    reason = view.string("reason")
    return "Reason", _safe(_one_line(reason), MAX_ERROR_CHARS) if reason else None


def _rollback_reason_fact(view: _View) -> tuple[str, str | None]:
    """The reason the pipeline was given; it repeats the last failed check, so it is shown
    only when the checks themselves are not (rows written before they were stored)."""
    return ("Reason", None) if _failed_checks(view) else _reason_fact(view)


def _rollback_pending(view: _View) -> _Parts:
    rollback_at = view.when("rollback_at")
    grace = view.seconds("grace_seconds")
    dry = view.flag("dry_run")
    pipeline = _safe(view.string("pipeline") or "rollback-pipeline")
    when = None
    if rollback_at is not None:
        when = _stamp(rollback_at)
        if grace is not None and grace > timedelta(0):
            when += f" (in {format_duration(grace)})"
    if dry:
        next_step = (
            "**Dry run**: when the grace period ends mlbot describes the rollback it would "
            "queue, and queues nothing."
        )
    elif grace is not None and grace <= timedelta(0):
        next_step = f"mlbot queues {pipeline} now."
    else:
        at = f" at {_stamp(rollback_at)}" if rollback_at else " when the grace period ends"
        next_step = f"mlbot queues {pipeline}{at} unless an approver cancels it before then."
    title = "rollback pending (dry run)" if dry else "rolling back"
    body: list[Element] = [
        view.heading(f"🚨 {_safe(_watch_subject(view))} is unhealthy — {title}"),
        _facts(
            ("Thresholds", _Limits.of(view).fact()),
            ("Rollback at", when),
            ("Mode", "Dry run: nothing will be queued" if dry else None),
        ),
        *_evidence(view),
        text(next_step, spacing="Medium"),
        _footer(view),
    ]
    return _Parts(body, [])


def _rollback_queued(view: _View) -> _Parts:
    run = view.number("run_id")
    url = _https(view.payload.get("web_url"))
    label = f"#{run}" if run is not None else None
    body: list[Element] = [
        view.heading(f"⏪ Rollback queued — {_safe(_watch_subject(view))}"),
        _facts(
            ("Pipeline", _safe(view.string("pipeline") or "rollback-pipeline")),
            ("Run", _md_link(label, url) if label and url else label),
            _rollback_reason_fact(view),
            ("Thresholds", _Limits.of(view).fact()),
        ),
        *_evidence(view),
        _footer(view),
    ]
    return _Parts(body, _open_url("Open pipeline run", url))


def _template_parameters(view: _View) -> str | None:
    params = view.payload.get("template_parameters")
    if not isinstance(params, Mapping):
        return None
    shown = [
        f"{_safe(str(key), 40)}={_safe(_one_line(value), 80)}"
        for key, value in list(params.items())[:MAX_LISTED]
        if isinstance(value, str) and value.strip() and key != "reason"
    ]
    return ", ".join(shown) or None


def _rollback_dry_run(view: _View) -> _Parts:
    why = view.string("why") or "dry run"
    body: list[Element] = [
        view.heading(f"📝 Rollback not queued ({_safe(why)})"),
        _facts(
            ("Deployment", _safe(_watch_subject(view))),
            ("Would queue", _safe(view.string("pipeline") or "rollback-pipeline")),
            ("Parameters", _template_parameters(view)),
            _rollback_reason_fact(view),
            ("Thresholds", _Limits.of(view).fact()),
        ),
        *_evidence(view),
        text("Nothing was queued; roll back by hand if the deployment stays unhealthy."),
        _footer(view),
    ]
    return _Parts(body, [])


def _rollback_cancelled(view: _View) -> _Parts:
    by = view.string("cancelled_by")
    body: list[Element] = [
        view.heading(f"⏹ Automatic rollback cancelled — {_safe(_watch_subject(view))}"),
        _facts(("Cancelled by", _safe(by) if by else None)),
        text("The deployment stays in place; mlbot no longer watches it."),
        *_evidence(view),
        _footer(view),
    ]
    return _Parts(body, [])


def _rollback_skipped(view: _View) -> _Parts:
    blocking = view.string("blocking_watch")
    run = view.number("blocking_run_id")
    held_by = None
    if blocking:
        held_by = _safe(blocking) + (f" (run #{run})" if run is not None else "")
    body: list[Element] = [
        view.heading(f"⚠️ {_safe(_watch_subject(view))} is unhealthy — rollback held"),
        text(
            "Another rollback of this environment is in progress or has just run, so mlbot "
            "did not start a second one. Check the deployment and roll back by hand if needed."
        ),
        _facts(("Held by", held_by), ("Thresholds", _Limits.of(view).fact())),
        *_evidence(view),
        _footer(view),
    ]
    return _Parts(body, [])


def _rollback_failed(view: _View) -> _Parts:
    body: list[Element] = [
        view.heading(f"❌ Could not queue the rollback — {_safe(_watch_subject(view))}"),
        text(_safe(view.string("error") or "Azure DevOps refused the run.", MAX_ERROR_CHARS)),
        text("Roll back by hand; the deployment is still unhealthy."),
        _facts(
            ("Pipeline", _safe(view.string("pipeline") or "rollback-pipeline")),
            _rollback_reason_fact(view),
        ),
        *_evidence(view),
        _footer(view),
    ]
    return _Parts(body, [])


def _health_inconclusive(view: _View) -> _Parts:
    count = view.number("inconclusive_checks")
    ends = view.when("window_ends_at")
    body: list[Element] = [
        view.heading(f"❓ Cannot judge {_safe(_watch_subject(view))}"),
        _facts(
            ("Checks", f"{count} in a row could not be measured" if count else None),
            _reason_fact(view),
            ("Watch ends", _stamp(ends) if ends else None),
        ),
        text("No automatic rollback follows from this; please look at the endpoint."),
        _footer(view),
    ]
    return _Parts(body, [])


def _deployment_healthy(view: _View) -> _Parts:
    checks = view.number("checks")
    failed = view.number("failed_checks")
    quiet = view.number("low_traffic_checks")
    detail = [f"{n} {what}" for n, what in ((failed, "failed"), (quiet, "low traffic")) if n]
    counted = None
    if checks is not None:
        counted = str(checks) + (f" ({', '.join(detail)})" if detail else "")
    body: list[Element] = [
        view.heading(f"💚 {_safe(_watch_subject(view))} is healthy"),
        _facts(
            ("Watched", format_duration(view.seconds("watched_seconds"))),
            ("Checks", counted),
            ("Thresholds", _Limits.of(view).fact()),
        ),
        *_chart(view),
        _footer(view),
    ]
    return _Parts(body, [])


def _summary_rollback_pending(view: _View) -> str:
    mode = " (dry run)" if view.flag("dry_run") else ""
    return f"🚨 {_watch_subject(view)} unhealthy: rollback pending{mode}"


def _summary_rollback_queued(view: _View) -> str:
    run = view.number("run_id")
    return f"⏪ Rollback queued for {_watch_subject(view)}" + (f" (#{run})" if run else "")


def _summary_rollback_dry_run(view: _View) -> str:
    return f"📝 Rollback of {_watch_subject(view)} not queued ({view.string('why') or 'dry run'})"


def _summary_rollback_cancelled(view: _View) -> str:
    by = view.string("cancelled_by")
    return f"⏹ Rollback of {_watch_subject(view)} cancelled" + (f" by {by}" if by else "")


def _summary_rollback_skipped(view: _View) -> str:
    return f"⚠️ {_watch_subject(view)} unhealthy: rollback held (another is in progress)"


def _summary_rollback_failed(view: _View) -> str:
    return f"❌ Could not queue the rollback of {_watch_subject(view)}"


def _summary_health_inconclusive(view: _View) -> str:
    return f"❓ Cannot judge the health of {_watch_subject(view)}"


def _summary_deployment_healthy(view: _View) -> str:
    return f"💚 {_watch_subject(view)} is healthy"


# --- summaries (plain text: notification previews do not render markdown) ------------------


def _summary_started(view: _View) -> str:
    return f"▶️ {view.circuit} started{_attempt_suffix(view)}"


def _summary_completed(view: _View) -> str:
    duration = view.seconds("duration")
    took = f" in {format_duration(duration)}" if duration is not None else ""
    return f"✅ {view.circuit} completed{took}{_attempt_suffix(view)}"


def _summary_failed(view: _View) -> str:
    exhausted = ", retries exhausted" if view.retries_exhausted else ""
    attempt = f" (attempt {view.attempt_text}{exhausted})" if view.attempt_text else ""
    if not attempt and exhausted:
        attempt = " (retries exhausted)"
    return f"❌ {view.circuit} failed{attempt}"


def _summary_canceled(view: _View) -> str:
    return f"⏹ {view.circuit} canceled{_attempt_suffix(view)}"


def _summary_timed_out(view: _View) -> str:
    running = view.seconds("running_for")
    after = f" after {format_duration(running)}" if running is not None else ""
    return f"⏱ {view.circuit} timed out{after}{_attempt_suffix(view)}"


def _summary_long_running(view: _View) -> str:
    running = view.seconds("running_for")
    after = f" after {format_duration(running)}" if running is not None else ""
    return f"⏳ {view.circuit} still running{after}{_attempt_suffix(view)}"


def _summary_monitoring_timed_out(view: _View) -> str:
    title = view.string("title")
    waited = view.seconds("waited")
    after = f" after {format_duration(waited)}" if waited is not None else ""
    count = len(_unfinished_jobs(view))
    return f"⌛ Stopped waiting for {title or 'training'}{after}: {count} job(s) unfinished"


def _summary_retry_queued(view: _View) -> str:
    circuits = _retry_circuits(view)
    listed = ", ".join(circuits[:3]) + (
        f" and {len(circuits) - 3} more" if len(circuits) > 3 else ""
    )
    return f"🔁 Retry queued for {listed or 'failed circuits'}{_attempt_suffix(view)}"


def _summary_deployment_completed(view: _View) -> str:
    icon, title = _deployment_heading(view, "completed")
    return f"{icon} {title}{_where(view)}"


def _summary_deployment_failed(view: _View) -> str:
    if _rejected(view):
        by = view.string("decided_by")
        return f"🚫 {_deployment_subject(view)} rejected{f' by {by}' if by else ''}{_where(view)}"
    icon, title = _deployment_heading(view, "failed")
    return f"{icon} {title}{_where(view)}"


def _summary_approval_required(view: _View) -> str:
    return f"🔐 Approval required: {_deployment_subject(view).lower()}{_where(view)}"


def _summary_approval_decided(view: _View) -> str:
    icon, verb = _approval_outcome(view)
    by = view.string("decided_by")
    return f"{icon} {verb}{f' by {by}' if by else ''}: {_deployment_subject(view).lower()}"


def _summary_generic(view: _View) -> str:
    return f"🔔 {view.circuit}: {view.record.kind or 'event'}"


def _waited(view: _View) -> str:
    return format_duration(view.seconds("waited"))


def _failure_escalated(view: _View) -> _Parts:
    summary = view.string("summary")
    body = [
        view.heading(f"⏫ {_safe(view.circuit)} — still unhandled after {_waited(view)}"),
        text(
            "Nobody acknowledged this failure, and no retry is left: "
            + (_safe(summary, MAX_ERROR_CHARS) if summary else "the training failed.")
        ),
        _facts(
            ("Attempt", view.attempt_text),
            ("Job", _job_label(view)),
            ("Waiting for", _waited(view)),
        ),
        text(
            f"Press Acknowledge if you take it, or {_retry_command(view)} to run it again.",
            isSubtle=True,
        ),
        _footer(view),
    ]
    return _Parts(body, _studio_action(view))


def _approval_escalated(view: _View) -> _Parts:
    summary = view.string("summary")
    body = [
        view.heading(f"⏫ Approval still waiting — {_safe(_deployment_subject(view).lower())}"),
        text(
            f"Nobody decided this approval within {_waited(view)}"
            + (f": {_safe(summary, MAX_ERROR_CHARS)}" if summary else ".")
        ),
        _deployment_facts(view, ("Waiting for", _waited(view))),
        _footer(view),
    ]
    return _Parts(body, _run_action(view, "Review in Azure DevOps"))


def _summary_failure_escalated(view: _View) -> str:
    return f"⏫ {view.circuit}: failure unhandled for {_waited(view)}"


def _summary_approval_escalated(view: _View) -> str:
    return f"⏫ Approval still waiting for {_waited(view)}: {_deployment_subject(view).lower()}"


def _run_vs_median(row: Mapping[str, Any]) -> str:
    last, median = row.get("last_duration"), row.get("median")
    shown = format_duration(timedelta(seconds=last)) if isinstance(last, int | float) else "—"
    if isinstance(median, int | float) and median > 0:
        shown += f" (median {format_duration(timedelta(seconds=median))})"
        if isinstance(last, int | float) and last > 1.5 * median:
            shown = "⚠️ " + shown  # much slower than usual
    return shown


def _digest_list(title: str, items: Sequence[str]) -> list[Element]:
    if not items:
        return []
    shown = "\n".join(f"- {_safe(item)}" for item in items[:MAX_LISTED])
    more = len(items) - min(len(items), MAX_LISTED)
    return [
        text(title, weight="Bolder", spacing="Medium"),
        text(shown + (f"\n- …and {more} more" if more else "")),
    ]


def _listed(view: _View, key: str) -> list[Any]:
    value = view.payload.get(key)
    return value if isinstance(value, list) else []


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _digest_rows(view: _View) -> list[Mapping[str, Any]]:
    return [r for r in _listed(view, "circuits") if isinstance(r, Mapping)]


def _daily_digest(view: _View) -> _Parts:
    rows = _digest_rows(view)
    completed = sum(_count(r.get("completed")) for r in rows)
    failed = sum(_count(r.get("failed")) for r in rows)
    retried = sum(_count(r.get("retried")) for r in rows)
    day = view.string("day") or "yesterday"
    body: list[Element] = [
        view.heading(f"🗞 Daily digest — {_safe(day)}"),
        text(
            f"{completed} completed · {failed} failed · {retried} retried, "
            f"in {len(rows)} circuit(s) ({_safe(view.string('zone') or 'UTC')} day)",
            isSubtle=True,
        ),
    ]
    if rows:
        # Each circuit on a line of its own (never cut), its figures under it: reads on a phone.
        for row in rows:
            body.append(
                text(
                    _safe(str(row.get("circuit") or "—")),
                    weight="Bolder",
                    wrap=False,
                    spacing="Medium",
                )
            )
            body.append(
                text(
                    f"✅ {_count(row.get('completed'))} · ❌ {_count(row.get('failed'))} · "
                    f"🔁 {_count(row.get('retried'))} · last run {_run_vs_median(row)}",
                    spacing="None",
                    isSubtle=True,
                )
            )
        hidden = view.number("hidden_circuits")
        if hidden:
            body.append(text(f"…and {hidden} more circuit(s).", isSubtle=True))
    else:
        body.append(text("No training finished in the day."))
    for title, key in (
        ("🚀 Deployments", "deployments"),
        ("↩️ Rollbacks", "rollbacks"),
        ("🛂 Approvals still open", "open_approvals"),
    ):
        values = [v for v in _listed(view, key) if isinstance(v, str)]
        body.extend(_digest_list(title, values))
    body.append(_footer(view))
    return _Parts(body, [])


def _summary_daily_digest(view: _View) -> str:
    rows = _digest_rows(view)
    failed = sum(_count(r.get("failed")) for r in rows)
    return f"🗞 Daily digest {view.string('day') or ''}: {len(rows)} circuit(s), {failed} failed"


# A constant registry: adding a kind is one entry here, not another branch somewhere.
_KINDS: Mapping[str, _Kind] = MappingProxyType(
    {
        "training_started": _Kind(_training_started, _summary_started),
        "training_completed": _Kind(_training_completed, _summary_completed),
        "training_failed": _Kind(_training_failed, _summary_failed),
        "training_canceled": _Kind(_training_canceled, _summary_canceled),
        "attempt_timed_out": _Kind(_attempt_timed_out, _summary_timed_out),
        "long_running": _Kind(_long_running, _summary_long_running),
        "monitoring_timed_out": _Kind(_monitoring_timed_out, _summary_monitoring_timed_out),
        "retry_queued": _Kind(_retry_queued, _summary_retry_queued),
        "deployment_completed": _Kind(_deployment_completed, _summary_deployment_completed),
        "deployment_failed": _Kind(_deployment_failed, _summary_deployment_failed),
        "approval_required": _Kind(_approval_required, _summary_approval_required),
        "approval_decided": _Kind(_approval_decided, _summary_approval_decided),
        "failure_escalated": _Kind(_failure_escalated, _summary_failure_escalated),
        "approval_escalated": _Kind(_approval_escalated, _summary_approval_escalated),
        "daily_digest": _Kind(_daily_digest, _summary_daily_digest),
    }
)
_GENERIC = _Kind(_generic, _summary_generic)

# The deployment health watch's kinds (monitoring.deployment_watch.EventKind).
_HEALTH_KINDS: Mapping[str, _Kind] = MappingProxyType(
    {
        "rollback_pending": _Kind(_rollback_pending, _summary_rollback_pending),
        "rollback_queued": _Kind(_rollback_queued, _summary_rollback_queued),
        "rollback_dry_run": _Kind(_rollback_dry_run, _summary_rollback_dry_run),
        "rollback_cancelled": _Kind(_rollback_cancelled, _summary_rollback_cancelled),
        "rollback_skipped": _Kind(_rollback_skipped, _summary_rollback_skipped),
        "rollback_failed": _Kind(_rollback_failed, _summary_rollback_failed),
        "health_inconclusive": _Kind(_health_inconclusive, _summary_health_inconclusive),
        "deployment_healthy": _Kind(_deployment_healthy, _summary_deployment_healthy),
    }
)
_RENDERERS: Mapping[str, _Kind] = MappingProxyType({**_KINDS, **_HEALTH_KINDS})

# Every kind with its own card; the catalog and the tests cover each one.
SUPPORTED_KINDS: frozenset[str] = frozenset(_RENDERERS)
HEALTH_KINDS: frozenset[str] = frozenset(_HEALTH_KINDS)  # a subset of SUPPORTED_KINDS


def event_summary(event: EventRecord) -> str:
    """One plain line for notification previews and the card's fallback text.

    For example `❌ PLANT001/CIRCUIT01 failed (attempt 2 of 3)`.
    """
    view = _View(event, "1.5")
    line = _RENDERERS.get(event.kind, _GENERIC).summary(view)
    return _clip(_one_line(line), _MAX_SUMMARY_CHARS)


def health_evidence(
    evidence: Mapping[str, Any], at: datetime, *, version: str = "1.5"
) -> list[Element]:
    """The failed checks and chart of a health watch (`checks`, `thresholds`, `points` as
    the watcher stores them), for a card that answers a decision about it: the figures
    stay in view once someone has acted."""
    record = EventRecord(
        id=0,
        key="evidence",
        kind="rollback_cancelled",
        payload=dict(evidence),
        session_id=None,
        workspace=None,
        job_name=None,
        circuit=None,
        created_at=at,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )
    return _evidence(_View(record, version))


def render_event_card(event: EventRecord, *, version: str = "1.5") -> Card:
    """The Adaptive Card for one stored monitoring event.

    `version` is "1.5" for bot messages and "1.4" for Workflows webhooks, which may refuse
    newer cards. Unknown kinds get a generic card listing the payload's plain fields.
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"card version must be one of {', '.join(SUPPORTED_VERSIONS)}")
    view = _View(event, version)
    parts = _RENDERERS.get(event.kind, _GENERIC).render(view)
    extra: dict[str, Any] = {"fallbackText": event_summary(event)}
    if parts.actions:
        extra["actions"] = parts.actions
    return card(parts.body, version=version, **extra)
