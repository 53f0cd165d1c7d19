"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1, in a thread).

Covers plain SMTP, STARTTLS and implicit TLS with a generated CA, AUTH PLAIN and LOGIN,
and how each kind of failure is classified for the outbox worker.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from config.settings import settings_from_mapping
from domain.jobs import JobState, TrainingJob
from monitoring.email_delivery import EmailDeliveryError, EmailSender, SmtpSettings
from monitoring.email_message import EVENT_HEADER, render_long_running_email
from sandbox.tls import TlsMaterial, generate_tls

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SENDER = "mlbot@contoso.example"
RECIPIENTS = ("ana@contoso.example", "ben@contoso.example")
USERNAME = "mlbot-relay"
PASSWORD = "s3cr3t-Pa55word!"
EVENT_KEY = "long-running:s/r/w/train-001:1"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    over_tls: bool


@dataclass
class Mailbox:
    """An aiosmtpd handler that records what arrives and can be told to misbehave."""

    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply
    data_reply: str = "250 Message accepted for delivery"
    data_delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if not self.data_reply.startswith("250"):
            return self.data_reply
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                over_tls=server.transport.get_extra_info("cipher") is not None,
            )
        )
        return self.data_reply


class Authenticator:
    """Accepts USERNAME/PASSWORD and remembers which mechanism the client used."""

    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        # handled=False: let aiosmtpd answer 535 itself (True means "already answered").
        return AuthResult(success=ok, handled=False)


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on an ephemeral port (it assumes a fixed one)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Server:
    port: int
    mailbox: Mailbox
    authenticator: Authenticator


StartServer = Callable[..., Server]


@pytest.fixture(scope="module")
def tls() -> Iterator[TlsMaterial]:
    material = generate_tls()
    yield material
    material.cleanup()


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    controllers: list[Controller] = []

    def start(mailbox: Mailbox | None = None, **smtp_kwargs: Any) -> Server:
        box = mailbox or Mailbox()
        authenticator = Authenticator()
        smtp_kwargs.setdefault("authenticator", authenticator)
        controller = LoopbackController(
            box, hostname="127.0.0.1", port=0, server_hostname="smtp.test", **smtp_kwargs
        )
        controller.start()
        controllers.append(controller)
        return Server(port=controller.port, mailbox=box, authenticator=authenticator)

    yield start
    for controller in controllers:
        controller.stop()


def smtp(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": SENDER,
        "recipients": RECIPIENTS,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return SmtpSettings(**values)


def reminder(recipients: tuple[str, ...] = RECIPIENTS) -> EmailMessage:
    job = TrainingJob(
        workspace="s/r/w",
        name="train-001",
        display_name="Circuit 01 <training>",
        experiment="circuit-training",
        circuit="PLANT001/CIRCUIT01",
        status="Running",
        state=JobState.RUNNING,
        started_at=NOW - timedelta(hours=4),
        studio_url="https://ml.azure.com/runs/train-001",
    )
    return render_long_running_email(
        job,
        timedelta(hours=4),
        1,
        timedelta(hours=4),
        SENDER,
        recipients,
        NOW,
        event_key=EVENT_KEY,
    )


async def send_failing(sender: EmailSender, message: EmailMessage) -> EmailDeliveryError:
    with pytest.raises(EmailDeliveryError) as caught:
        await sender.send(message)
    return caught.value


def assert_no_password(error: EmailDeliveryError, caplog: pytest.LogCaptureFixture) -> None:
    texts = [str(error), repr(error), error.reason, str(error.__cause__), caplog.text]
    for text in texts:
        assert PASSWORD not in text


# --- delivery -----------------------------------------------------------------------


async def test_plain_delivery_carries_headers_and_both_parts(start_server: StartServer) -> None:
    server = start_server()
    await EmailSender(smtp(server.port)).send(reminder())

    [got] = server.mailbox.received
    assert got.mail_from == SENDER
    assert got.rcpt_tos == list(RECIPIENTS)
    assert not got.over_tls
    message = got.message
    assert message["From"] == SENDER
    assert message["To"] == "ana@contoso.example, ben@contoso.example"
    assert message["Subject"] == "[mlbot] PLANT001/CIRCUIT01 still running after 4h 00m"
    assert message[EVENT_HEADER] == EVENT_KEY
    assert message["Message-ID"].endswith("@contoso.example>")
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    plain_text = plain.get_content()
    rich_text = rich.get_content()
    assert "Circuit 01 <training> (train-001)" in plain_text
    assert "Elapsed:" in plain_text and "4h 00m" in plain_text
    assert "Circuit 01 &lt;training&gt; (train-001)" in rich_text
    assert '<a href="https://ml.azure.com/runs/train-001">' in rich_text


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_with_login(
    start_server: StartServer, tls: TlsMaterial, mechanism: str
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    server = start_server(
        tls_context=tls.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=[other],
    )
    settings = smtp(
        server.port, security="starttls", username=USERNAME, password=SecretStr(PASSWORD)
    )
    await EmailSender(settings, tls_context=tls.client_context()).send(reminder())

    [got] = server.mailbox.received
    assert got.over_tls
    assert got.message[EVENT_HEADER] == EVENT_KEY
    assert server.authenticator.mechanisms == [mechanism]


async def test_implicit_tls(start_server: StartServer, tls: TlsMaterial) -> None:
    server = start_server(ssl_context=tls.server_context())
    settings = smtp(server.port, security="tls")
    await EmailSender(settings, tls_context=tls.client_context()).send(reminder())
    [got] = server.mailbox.received
    assert got.over_tls


async def test_some_recipients_refused_counts_as_sent(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(Mailbox(refuse={"ben@contoso.example": "550 5.1.1 No such user"}))
    with caplog.at_level(logging.WARNING, logger="monitoring.email_delivery"):
        await EmailSender(smtp(server.port)).send(reminder())
    [got] = server.mailbox.received
    assert got.rcpt_tos == ["ana@contoso.example"]
    assert "ben@contoso.example refused: 550" in caplog.text


# --- permanent failures ---------------------------------------------------------------


async def test_wrong_password_is_permanent_and_never_shown(
    start_server: StartServer, tls: TlsMaterial, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(tls_context=tls.server_context(), require_starttls=True)
    wrong = PASSWORD + "-old"
    settings = smtp(server.port, security="starttls", username=USERNAME, password=SecretStr(wrong))
    caplog.set_level(logging.DEBUG, logger="monitoring")
    error = await send_failing(EmailSender(settings, tls_context=tls.client_context()), reminder())

    assert error.permanent
    assert error.code == 535
    assert "MLBOT_SMTP_USERNAME" in error.reason and "MLBOT_SMTP_PASSWORD" in error.reason
    assert USERNAME in error.reason
    assert_no_password(error, caplog)
    for text in (str(error), repr(error), caplog.text):
        assert wrong not in text
    assert "SecretStr('**********')" in repr(settings)
    assert server.mailbox.received == []


async def test_all_recipients_refused_with_550_is_permanent(start_server: StartServer) -> None:
    refuse = dict.fromkeys(RECIPIENTS, "550 5.1.1 Mailbox unavailable")
    server = start_server(Mailbox(refuse=refuse))
    error = await send_failing(EmailSender(smtp(server.port)), reminder())
    assert error.permanent
    assert error.code == 550
    assert "ana@contoso.example: 550" in error.reason
    assert "MLBOT_ML_ENGINEERS_EMAIL" in error.reason


async def test_data_refused_with_554_is_permanent(start_server: StartServer) -> None:
    server = start_server(Mailbox(data_reply="554 5.7.1 Message rejected as spam"))
    error = await send_failing(EmailSender(smtp(server.port)), reminder())
    assert error.permanent
    assert error.code == 554


async def test_untrusted_certificate_is_permanent(
    start_server: StartServer, tls: TlsMaterial
) -> None:
    server = start_server(tls_context=tls.server_context())
    # No tls_context: the system trust store does not know the generated CA.
    error = await send_failing(EmailSender(smtp(server.port, security="starttls")), reminder())
    assert error.permanent
    assert "not trusted" in error.reason and "MLBOT_SMTP_HOST" in error.reason


async def test_starttls_wanted_but_not_offered_is_permanent(start_server: StartServer) -> None:
    server = start_server()  # no TLS context: the server does not advertise STARTTLS
    error = await send_failing(EmailSender(smtp(server.port, security="starttls")), reminder())
    assert error.permanent
    assert "STARTTLS" in error.reason and "MLBOT_SMTP_SECURITY" in error.reason
    assert server.mailbox.received == []


async def test_login_over_plain_connection_is_refused_permanently(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(auth_require_tls=True)  # AUTH only after TLS, as it should be
    settings = smtp(server.port, username=USERNAME, password=SecretStr(PASSWORD))
    error = await send_failing(EmailSender(settings), reminder())
    assert error.permanent
    assert "AUTH" in error.reason and "MLBOT_SMTP_SECURITY" in error.reason
    assert_no_password(error, caplog)


async def test_unconfigured_sender_refuses_without_connecting() -> None:
    sender = EmailSender(SmtpSettings(host="", recipients=RECIPIENTS))
    assert not sender.is_configured
    assert not EmailSender(SmtpSettings(host="127.0.0.1")).is_configured
    error = await send_failing(sender, reminder())
    assert error.permanent and "MLBOT_SMTP_HOST" in error.reason


# --- transient failures ---------------------------------------------------------------


async def test_451_at_data_is_transient(start_server: StartServer) -> None:
    server = start_server(Mailbox(data_reply="451 4.3.0 Try again later"))
    error = await send_failing(EmailSender(smtp(server.port)), reminder())
    assert not error.permanent
    assert error.code == 451
    assert "451 4.3.0 Try again later" in error.reason


async def test_all_recipients_greylisted_is_transient(start_server: StartServer) -> None:
    refuse = dict.fromkeys(RECIPIENTS, "450 4.2.0 Greylisted, come back later")
    server = start_server(Mailbox(refuse=refuse))
    error = await send_failing(EmailSender(smtp(server.port)), reminder())
    assert not error.permanent
    assert error.code == 450


async def test_server_down_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    error = await send_failing(EmailSender(smtp(closed_port)), reminder())
    assert not error.permanent
    assert str(closed_port) in error.reason


async def test_slow_server_after_data_is_transient(start_server: StartServer) -> None:
    server = start_server(Mailbox(data_delay=5.0))
    error = await send_failing(EmailSender(smtp(server.port, timeout_seconds=0.3)), reminder())
    assert not error.permanent
    assert "did not answer within 0.3s" in error.reason


async def test_silent_server_is_transient() -> None:
    # Accepts the TCP connection (backlog) but never greets.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        error = await send_failing(EmailSender(smtp(port, timeout_seconds=0.2)), reminder())
    assert not error.permanent


# --- settings -------------------------------------------------------------------------


def test_smtp_settings_from_settings() -> None:
    settings = settings_from_mapping(
        {
            "MLBOT_SMTP_HOST": "smtp.contoso.example",
            "MLBOT_SMTP_PORT": "465",
            "MLBOT_SMTP_SECURITY": "tls",
            "MLBOT_SMTP_USERNAME": USERNAME,
            "MLBOT_SMTP_PASSWORD": PASSWORD,
            "MLBOT_SMTP_SENDER": SENDER,
            "MLBOT_SMTP_TIMEOUT_SECONDS": "12.5",
            "MLBOT_ML_ENGINEERS_EMAIL": "ana@contoso.example; ben@contoso.example",
        }
    )
    smtp_settings = SmtpSettings.from_settings(settings)
    assert smtp_settings == SmtpSettings(
        host="smtp.contoso.example",
        port=465,
        security="tls",
        username=USERNAME,
        password=SecretStr(PASSWORD),
        sender=SENDER,
        recipients=RECIPIENTS,
        timeout_seconds=12.5,
    )
    assert PASSWORD not in repr(smtp_settings)
    sender = EmailSender(smtp_settings)
    assert sender.is_configured
    assert sender.sender == SENDER and sender.recipients == RECIPIENTS
