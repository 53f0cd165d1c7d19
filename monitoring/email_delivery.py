"""Sending mlbot's emails over SMTP, with failures sorted into "retry" and "give up".

The outbox worker retries transient failures (4xx replies, connection problems,
timeouts) and parks permanent ones (5xx replies, refused recipients, bad credentials,
TLS or capability mismatches) with a reason an operator can act on: it names the
setting to fix. The SMTP password never appears in a reason or a log line.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
from pydantic import SecretStr

from config.settings import Settings
from monitoring.email_message import EVENT_HEADER

log = logging.getLogger(__name__)

SmtpSecurity = Literal["starttls", "tls", "none"]

_MASK = "********"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the mail server and whom to tell; a slice of `Settings`.

    The server settings are fixed at start-up; `recipients` is only a snapshot, as
    `mlEngineersEmail` is live: the sender asks for the current list at each send.
    """

    host: str
    port: int = 587
    # "starttls" upgrades a plain connection (587), "tls" is implicit TLS (465).
    security: SmtpSecurity = "starttls"
    username: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    sender: str = "mlbot@localhost"
    recipients: tuple[str, ...] = ()
    # Applies to each network step (connect, each command, DATA), not the whole send.
    timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            recipients=tuple(settings.ml_engineers_email),
            timeout_seconds=settings.smtp_timeout_seconds,
        )


class EmailDeliveryError(Exception):
    """An email was not delivered. `permanent` says whether sending again can help.

    `reason` is meant for operators (status card, logs) and never holds the password.
    `code` is the SMTP reply code when the server gave one.
    """

    def __init__(self, permanent: bool, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"EmailDeliveryError({kind}, {self.reason!r}, code={self.code})"


class EmailSender:
    """Delivers one message per connection; reminders are hours apart, so no pooling.

    `tls_context` replaces the system trust store (e.g. a company CA for an internal
    relay); certificates are always verified. `recipients`, when given, is asked for
    the current addresses at each send (they come from the variable group, which may
    change them while the bot runs); without it, `settings.recipients` is used.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        recipients: Callable[[], tuple[str, ...]] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ):
        self._settings = settings
        self._recipients = recipients
        self._tls_context = tls_context

    @property
    def is_configured(self) -> bool:
        """A server to send through and someone to send to."""
        return bool(self._settings.host and self.recipients)

    @property
    def sender(self) -> str:
        return self._settings.sender

    @property
    def recipients(self) -> tuple[str, ...]:
        if self._recipients is not None:
            return tuple(self._recipients())
        return self._settings.recipients

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to the addresses in its To/Cc/Bcc headers.

        Raises EmailDeliveryError. If the server accepts some recipients and refuses
        others, the message counts as sent (sending again would duplicate it for those
        who got it) and the refusals are logged.
        """
        s = self._settings
        event = message.get(EVENT_HEADER, "-")
        if not self.is_configured:
            raise EmailDeliveryError(
                True, "email is not configured: set MLBOT_SMTP_HOST and MLBOT_ML_ENGINEERS_EMAIL"
            )
        password = s.password.get_secret_value()
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=password if s.username else None,
                use_tls=s.security == "tls",
                # Explicit False for "none": an opportunistic upgrade could fail on a
                # relay with a private certificate that the operator chose not to use.
                start_tls=s.security == "starttls",
                validate_certs=True,
                tls_context=self._tls_context if s.security != "none" else None,
                timeout=s.timeout_seconds,
            )
        except Exception as exc:
            error = _classify(exc, s)
            if error is None:
                raise
            log.warning(
                "email %s not delivered via %s:%d (%s): %s",
                event,
                s.host,
                s.port,
                "permanent" if error.permanent else "will retry",
                error.reason,
            )
            raise error from exc
        for address, response in refused.items():
            log.warning(
                "email %s: recipient %s refused: %s",
                event,
                address,
                _scrub(f"{response.code} {response.message}", password),
            )
        log.info("email %s sent via %s:%d", event, s.host, s.port)


def _classify(exc: BaseException, s: SmtpSettings) -> EmailDeliveryError | None:
    """Map an aiosmtplib/socket failure to a delivery error; None for programming errors."""
    password = s.password.get_secret_value()
    where = f"{s.host}:{s.port}"

    def error(permanent: bool, reason: str, code: int | None = None) -> EmailDeliveryError:
        return EmailDeliveryError(permanent, _scrub(reason, password), code=code)

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        # Any 4xx refusal may clear up (mailbox busy, greylisting); all 5xx will not.
        permanent = all(code >= 500 for code in codes)
        hint = " (check MLBOT_ML_ENGINEERS_EMAIL)" if permanent else ""
        return error(permanent, f"every recipient was refused{hint}: {detail}", max(codes))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if 400 <= exc.code < 500:
            return error(False, f"temporary login failure at {where}: {_reply(exc)}", exc.code)
        return error(
            True,
            f"{where} refused the login of user {s.username!r}: {_reply(exc)}; "
            "check MLBOT_SMTP_USERNAME and MLBOT_SMTP_PASSWORD",
            exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        permanent = not 400 <= exc.code < 500
        return error(permanent, f"{where} answered {_reply(exc)}", exc.code)
    tls_failure = _tls_failure(exc)
    if tls_failure is not None:
        if isinstance(tls_failure, ssl.SSLCertVerificationError):
            return error(
                True,
                f"the certificate of {where} is not trusted ({tls_failure.verify_message}); "
                "check MLBOT_SMTP_HOST",
            )
        if not isinstance(tls_failure, ssl.SSLEOFError):
            return error(
                True,
                f"TLS with {where} failed ({tls_failure}); check MLBOT_SMTP_SECURITY "
                f"({s.security}) and MLBOT_SMTP_PORT",
            )
    if isinstance(exc, TimeoutError):  # includes aiosmtplib.SMTPTimeoutError
        return error(False, f"{where} did not answer within {s.timeout_seconds:g}s")
    if isinstance(exc, aiosmtplib.SMTPConnectError):  # refused, unreachable, DNS
        return error(False, exc.message)  # already names host and port
    if isinstance(exc, OSError):  # disconnects and resets mid-conversation
        return error(False, f"connection to {where} lost: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # What is left is a capability mismatch: no STARTTLS, no AUTH, no SMTPUTF8.
        return error(
            True,
            f"{where}: {exc.message.rstrip('.')}; check MLBOT_SMTP_SECURITY ({s.security}) "
            "and MLBOT_SMTP_USERNAME",
        )
    if isinstance(exc, ValueError):
        # aiosmtplib refuses addresses it cannot send safely; resending will not help.
        return error(
            True,
            f"the message cannot be sent: {exc}; "
            "check MLBOT_SMTP_SENDER and MLBOT_ML_ENGINEERS_EMAIL",
        )
    return None


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"


def _scrub(text: str, password: str) -> str:
    # A server may echo what it was sent; the reason must never carry the password.
    return text.replace(password, _MASK) if password else text
