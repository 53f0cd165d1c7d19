"""A mail server on loopback that keeps what it receives, so the sandbox's emails can be read.

The long-running reminders go by email to `mlEngineersEmail`. In the sandbox nothing may
leave the machine, so the sandbox runs this SMTP server (aiosmtpd, on the running event
loop, 127.0.0.1, a free port) and points mlbot's SMTP settings at it — unless SMTP was
configured explicitly. Every message is accepted and kept in memory (the latest
`MAX_KEPT` of them) with its envelope, subject and text / HTML parts; the control API
shows them at `GET /_sandbox/emails`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from config.settings import Settings
    from sandbox.stack import SandboxStack

log = logging.getLogger(__name__)

MAX_KEPT = 500
SANDBOX_RECIPIENT = "ml-engineers@sandbox.invalid"
_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    """One message as the sink received it."""

    number: int  # 1 for the first message since the sink started
    received_at: str  # ISO 8601, the sandbox clock's time
    mail_from: str
    rcpt_to: tuple[str, ...]  # the envelope recipients
    subject: str
    to: str  # the To header
    text: str | None
    html: str | None
    headers: dict[str, str]

    def view(self) -> dict[str, Any]:
        return asdict(self)


def parse_message(
    number: int, received_at: datetime, mail_from: str, rcpt_to: list[str], raw: bytes
) -> ReceivedEmail:
    """What a sandbox user wants to see of one raw message (pure)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the default policy builds EmailMessage
    return ReceivedEmail(
        number=number,
        received_at=received_at.isoformat(),
        mail_from=mail_from,
        rcpt_to=tuple(rcpt_to),
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        text=_part(message, "plain"),
        html=_part(message, "html"),
        headers={name: str(value) for name, value in message.items()},
    )


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_subtype() != subtype:
        return None
    content = body.get_content()
    return content if isinstance(content, str) else None


class SmtpSink:
    """Accepts every message on 127.0.0.1 and keeps the latest `MAX_KEPT`."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock  # stamps messages with the sandbox's (simulated) time
        self._kept: deque[ReceivedEmail] = deque(maxlen=MAX_KEPT)
        self._received = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def messages(self) -> list[ReceivedEmail]:
        return list(self._kept)

    @property
    def received(self) -> int:
        """How many messages arrived since the start (also those no longer kept)."""
        return self._received

    async def start(self) -> int | None:
        """Listen on a free loopback port; None when aiosmtpd is not installed."""
        try:
            from aiosmtpd.smtp import SMTP
        except ImportError:
            log.warning("sandbox: aiosmtpd is not installed, emails are not captured")
            return None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(_Handler(self), hostname="mlbot-sandbox", loop=loop), _HOST, 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def keep(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> ReceivedEmail:
        self._received += 1
        now = self.clock() if self.clock is not None else datetime.now().astimezone()
        message = parse_message(self._received, now, mail_from, rcpt_to, raw)
        self._kept.append(message)
        log.info("sandbox: email %r to %s", message.subject, ", ".join(message.rcpt_to))
        return message

    def views(self) -> list[dict[str, Any]]:
        return [message.view() for message in self._kept]


class _Handler:
    """aiosmtpd calls `handle_DATA` once a whole message has arrived."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self._sink.keep(str(envelope.mail_from or ""), list(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


def sandbox_email_settings(settings: Settings, stack: SandboxStack) -> Settings:
    """Settings whose SMTP goes to the stack's mail sink, unless SMTP was configured.

    Recipients stay as configured; without any, the scenario's `mlEngineersEmail` (or a
    sandbox address) receives the reminders, so they are sent at all.
    """
    port = stack.endpoints.smtp_port
    if port is None or settings.smtp_host:
        return settings
    group = stack.scenario.variable_groups.get(settings.variable_group, {})
    recipients = tuple(settings.ml_engineers_email) or tuple(
        part.strip() for part in group.get("mlEngineersEmail", "").split(",") if part.strip()
    )
    log.warning("  emails       smtp://%s:%d (read them at /_sandbox/emails)", _HOST, port)
    return settings.model_copy(
        update={
            "smtp_host": _HOST,
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_username": "",
            "smtp_password": SecretStr(""),
            "ml_engineers_email": recipients or (SANDBOX_RECIPIENT,),
        }
    )
