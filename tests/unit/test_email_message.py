"""Reminder and event emails: subject, both parts, escaping, headers (pure)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from domain.jobs import JobState, TrainingJob
from monitoring.email_message import (
    EVENT_HEADER,
    render_event_email,
    render_long_running_email,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SENDER = "mlbot@contoso.example"
RECIPIENTS = ("ana@contoso.example", "ben@contoso.example")
STUDIO = "https://ml.azure.com/runs/train-001?wsid=/subscriptions/s/resourcegroups/r/workspaces/w"


def running_job(**overrides: object) -> TrainingJob:
    values: dict[str, object] = {
        "workspace": "s/r/w",
        "name": "train-001",
        "display_name": "Circuit 01 training",
        "experiment": "circuit-training",
        "circuit": "PLANT001/CIRCUIT01",
        "status": "Running",
        "state": JobState.RUNNING,
        "started_at": NOW - timedelta(hours=4),
        "studio_url": STUDIO,
        "attempt": 2,
    }
    values.update(overrides)
    return TrainingJob(**values)  # type: ignore[arg-type]


def reminder(job: TrainingJob | None = None, **kw: object) -> EmailMessage:
    args: dict[str, object] = {
        "job": job or running_job(),
        "elapsed": timedelta(hours=4),
        "reminder_index": 1,
        "next_reminder_in": timedelta(hours=4),
        "sender": SENDER,
        "recipients": RECIPIENTS,
        "now": NOW,
        "event_key": "long-running:s/r/w/train-001:1",
    }
    args.update(kw)
    return render_long_running_email(**args)  # type: ignore[arg-type]


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    return str(plain.get_content()), str(rich.get_content())


def test_subject_names_circuit_and_elapsed_time() -> None:
    assert reminder()["Subject"] == "[mlbot] PLANT001/CIRCUIT01 still running after 4h 00m"


def test_subject_falls_back_to_the_job_when_there_is_no_circuit() -> None:
    message = reminder(running_job(circuit=None), elapsed=timedelta(minutes=75))
    assert message["Subject"] == "[mlbot] Circuit 01 training still running after 1h 15m"


def test_plain_and_html_parts_carry_every_fact() -> None:
    message = reminder()
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = parts(message)
    for text in (plain, rich):
        assert "PLANT001/CIRCUIT01" in text
        assert "Circuit 01 training (train-001)" in text
        assert "circuit-training" in text
        assert "Running" in text
        assert "4h 00m" in text
        assert "2026-11-29 08:00 UTC" in text  # started
        assert "2026-11-29 16:00 UTC" in text  # next reminder
        assert "#1" in text
        assert "long-running:s/r/w/train-001:1" in text
    assert "Attempt:" in plain and "Attempt</th><td>2</td>" in rich
    assert f"Open in Azure ML Studio: {STUDIO}" in plain
    assert '<a href="https://ml.azure.com/runs/train-001?wsid=/subscriptions/' in rich


def test_no_next_reminder_is_said_plainly() -> None:
    plain, _ = parts(reminder(next_reminder_in=None))
    assert "Next reminder: none scheduled" in plain


def test_headers_identify_the_event_and_suppress_auto_replies() -> None:
    message = reminder()
    assert message["From"] == SENDER
    assert message["To"] == "ana@contoso.example, ben@contoso.example"
    assert message[EVENT_HEADER] == "long-running:s/r/w/train-001:1"
    assert message["Date"] == "Sun, 29 Nov 2026 12:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    message_id = message["Message-ID"]
    assert message_id.startswith("<mlbot.") and message_id.endswith("@contoso.example>")


def test_message_id_is_stable_per_event_so_a_resend_is_recognised() -> None:
    first = reminder()
    resent = reminder(now=NOW + timedelta(minutes=3))
    next_one = reminder(reminder_index=2, event_key="long-running:s/r/w/train-001:2")
    assert first["Message-ID"] == resent["Message-ID"]
    assert first["Message-ID"] != next_one["Message-ID"]


def test_malicious_display_name_is_escaped_in_html_and_kept_literal_in_text() -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    job = running_job(display_name=evil, experiment="a&b", circuit="P1/<b>C1</b>")
    plain, rich = parts(reminder(job))
    assert "<script>" not in rich and "<img" not in rich and "<b>C1" not in rich
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in rich
    assert "a&amp;b" in rich
    assert evil in plain  # text stays literal; nothing interprets it


def test_newlines_in_values_cannot_inject_headers_or_lines() -> None:
    job = running_job(
        circuit="PLANT001/CIRCUIT01\r\nBcc: attacker@evil.example",
        display_name="name\nStatus: Completed",
    )
    message = reminder(job)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert "Bcc: attacker@evil.example still running" in message["Subject"]
    plain, _ = parts(message)
    assert "\nStatus: Completed" not in plain
    reparsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert reparsed["Bcc"] is None


def test_only_web_links_become_links() -> None:
    message = reminder(running_job(studio_url="javascript:alert(1)"))
    plain, rich = parts(message)
    assert "javascript:" not in plain and "javascript:" not in rich
    assert "<a " not in rich


def test_generic_event_email() -> None:
    message = render_event_email(
        "Deployment to prod failed",
        [("Environment", "prod"), ("Pipeline run", "#42 <main>")],
        "https://dev.azure.com/org/proj/_build/results?buildId=42",
        "deployment-failed:42",
        SENDER,
        ("ops@contoso.example",),
        NOW,
        intro="The deployment pipeline failed.",
        link_label="Open in Azure DevOps",
    )
    assert message["Subject"] == "[mlbot] Deployment to prod failed"
    assert message[EVENT_HEADER] == "deployment-failed:42"
    plain, rich = parts(message)
    assert plain.startswith("The deployment pipeline failed.\n")
    assert "Pipeline run: #42 <main>" in plain
    assert "Open in Azure DevOps: https://dev.azure.com/" in plain
    assert "#42 &lt;main&gt;" in rich
    assert ">Open in Azure DevOps</a>" in rich


def test_non_ascii_values_survive_encoding() -> None:
    message = reminder(running_job(display_name="Überwachung Kreis 01 — Test"))
    reparsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    plain, rich = parts(reparsed)
    assert "Überwachung Kreis 01 — Test" in plain and "Überwachung" in rich


@pytest.mark.parametrize("key", ["", "a\r\nBcc: x@y"])
def test_bad_event_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="event_key"):
        reminder(event_key=key)


def test_recipients_are_required() -> None:
    with pytest.raises(ValueError, match="recipient"):
        reminder(recipients=())
