"""Emails to the ML engineers: long-running training reminders and other events.

Pure rendering: data in, `EmailMessage` out, no I/O. Every message carries a plain-text
part for terminals and mail filters and an HTML alternative for mail clients. Values
come from Azure (job names, tags) and are treated as untrusted: control characters are
removed so they cannot forge header or body lines, and the HTML escapes every value.

A message's `Message-ID` is derived from its event key, so an email sent again after a
delivery whose outcome was unknown (a timeout after DATA) is the same message to mail
clients, and `X-Mlbot-Event` lets filters and people recognise it.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from domain.durations import format_duration
from domain.jobs import TrainingJob

EVENT_HEADER = "X-Mlbot-Event"
SUBJECT_PREFIX = "[mlbot]"
STUDIO_LINK_LABEL = "Open in Azure ML Studio"

_FALLBACK_DOMAIN = "mlbot.invalid"
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_FOOTER = (
    "You receive this because your address is in mlEngineersEmail "
    "(MLBOT_ML_ENGINEERS_EMAIL). Sent automatically by mlbot."
)


def render_long_running_email(
    job: TrainingJob,
    elapsed: timedelta,
    reminder_index: int,
    next_reminder_in: timedelta | None,
    sender: str,
    recipients: tuple[str, ...],
    now: datetime,
    *,
    event_key: str,
) -> EmailMessage:
    """The reminder that a training job is still running, sent every few hours.

    `reminder_index` counts reminders for this job (1 for the first); `next_reminder_in`
    is None when no further reminder is scheduled (e.g. the job will hit its timeout).
    """
    now = _as_utc(now)
    subject_name = job.circuit or job.display_name or job.name
    elapsed_text = format_duration(max(elapsed, timedelta(0)))
    if next_reminder_in is None:
        next_text = "none scheduled"
    else:
        due = now + next_reminder_in
        next_text = (
            f"in {format_duration(next_reminder_in)} (around {_timestamp(due)}), "
            "unless the job finishes first"
        )
    lines: list[tuple[str, str]] = [
        ("Circuit", job.circuit or "(no circuit tag)"),
        ("Job", _job_label(job)),
        ("Experiment", job.experiment or "—"),
        ("Status", job.status or job.state.value),
        ("Elapsed", elapsed_text),
    ]
    if job.started_at is not None:
        lines.append(("Started", _timestamp(job.started_at)))
    lines += [
        ("Attempt", str(job.attempt)),
        ("Reminder", f"#{reminder_index}"),
        ("Next reminder", next_text),
    ]
    return render_event_email(
        f"{subject_name} still running after {elapsed_text}",
        lines,
        job.studio_url,
        event_key,
        sender,
        recipients,
        now,
        intro=f"Training for {subject_name} is still running after {elapsed_text}.",
    )


def render_event_email(
    subject: str,
    lines: list[tuple[str, str]],
    link: str | None,
    event_key: str,
    sender: str,
    recipients: tuple[str, ...],
    now: datetime,
    *,
    intro: str | None = None,
    link_label: str = STUDIO_LINK_LABEL,
) -> EmailMessage:
    """Any event as an email: `[mlbot] <subject>`, an intro line, label/value lines, a link.

    `link` is shown only when it is an http(s) URL, so a value from Azure can never
    become a `javascript:` or `file:` link in someone's mail client.
    """
    if not recipients:
        raise ValueError("an email needs at least one recipient")
    if not event_key or _clean(event_key) != event_key:
        raise ValueError("event_key must be non-empty and free of control characters")
    now = _as_utc(now)
    clean_subject = f"{SUBJECT_PREFIX} {_clean(subject)}"
    clean_intro = _clean(intro) if intro else None
    rows = [(_clean(label), _clean(value)) for label, value in lines]
    safe_link = link if link and _is_web_link(link) else None

    message = EmailMessage()
    message["Subject"] = clean_subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.format_datetime(now)
    message["Message-ID"] = _message_id(event_key, sender)
    message[EVENT_HEADER] = event_key
    # Keep out-of-office replies and Exchange auto-responses from answering a robot.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"

    message.set_content(_plain_text(clean_intro, rows, safe_link, link_label, event_key))
    message.add_alternative(
        _html(clean_subject, clean_intro, rows, safe_link, link_label, event_key),
        subtype="html",
    )
    return message


def _plain_text(
    intro: str | None,
    rows: list[tuple[str, str]],
    link: str | None,
    link_label: str,
    event_key: str,
) -> str:
    width = max((len(label) for label, _ in rows), default=0) + 1
    parts: list[str] = []
    if intro:
        parts += [intro, ""]
    parts += [f"{label + ':':<{width}} {value}" for label, value in rows]
    if link:
        parts += ["", f"{_clean(link_label)}: {link}"]
    parts += ["", "-- ", _FOOTER, f"Reference: {event_key}"]
    return "\n".join(parts) + "\n"


def _html(
    subject: str,
    intro: str | None,
    rows: list[tuple[str, str]],
    link: str | None,
    link_label: str,
    event_key: str,
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{e(subject)}</title></head>",
        '<body style="font-family: Segoe UI, Helvetica, Arial, sans-serif; font-size: 14px;">',
    ]
    if intro:
        out.append(f"<p><strong>{e(intro)}</strong></p>")
    out.append('<table cellpadding="4" cellspacing="0" style="border-collapse: collapse;">')
    for label, value in rows:
        out.append(
            '<tr><th align="left" style="padding-right: 16px; color: #555;">'
            f"{e(label)}</th><td>{e(value)}</td></tr>"
        )
    out.append("</table>")
    if link:
        out.append(f'<p><a href="{e(link)}">{e(_clean(link_label))}</a></p>')
    out.append(
        f'<p style="color: #777; font-size: 12px;">{e(_FOOTER)}<br>Reference: {e(event_key)}</p>'
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _job_label(job: TrainingJob) -> str:
    if job.display_name and job.display_name != job.name:
        return f"{job.display_name} ({job.name})"
    return job.name


def _clean(value: str) -> str:
    """One line of text: control and format characters (CR, LF, bidi overrides) become
    spaces, so a tag value cannot add header lines, fake body lines or reverse text."""
    chars = (" " if unicodedata.category(ch).startswith("C") else ch for ch in value)
    return " ".join("".join(chars).split())


def _is_web_link(url: str) -> bool:
    return url.startswith(("https://", "http://")) and _clean(url) == url and " " not in url


def _message_id(event_key: str, sender: str) -> str:
    # Same event, same Message-ID: mail clients fold a resend into the original.
    digest = hashlib.sha256(event_key.encode("utf-8")).hexdigest()[:40]
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2]
    if not _DOMAIN.match(domain):
        domain = _FALLBACK_DOMAIN
    return f"<mlbot.{digest}@{domain}>"


def _as_utc(value: datetime) -> datetime:
    # The engine's clock is UTC; a naive value is taken to be UTC as well.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%d %H:%M UTC")
