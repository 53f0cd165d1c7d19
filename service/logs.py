"""Logging set-up: one format, the configured level, and no secret ever printed.

Masking happens in the formatter, on the finished line: the message, its arguments, a
traceback and a stack all pass through it, so a secret inside an exception (a hook URL
with `?key=` in a connection error) is masked too. The list of secrets is live: values
that arrive after start-up (a webhook URL from the variable group, the sandbox's hook
secrets) are added to it with `learn_secrets`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "********"
# Short values would mask ordinary words; real secrets are long.
_MIN_SECRET_CHARS = 6
# Credentials that travel in URLs, whoever's they are (hook keys, SAS signatures, codes).
_URL_CREDENTIAL = re.compile(
    r"(?P<name>[?&](?:key|code|sig|token|access_token|password)=)[^&\s'\"<>]+", re.IGNORECASE
)
# `scheme://user:password@host`: the password of any URL that carries one.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@'\"]*:)[^@\s/'\"]+(?=@)")


class SecretList:
    """The secrets to mask; grows while the process runs, never shrinks."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        fresh = {v for v in values if v and len(v) >= _MIN_SECRET_CHARS} - set(self._values)
        if fresh:
            # Longest first, so a secret that contains another is masked whole.
            self._values = sorted({*self._values, *fresh}, key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._values)

    def mask(self, text: str) -> str:
        for secret in self._values:
            text = text.replace(secret, MASK)
        text = _URL_CREDENTIAL.sub(lambda m: m["name"] + MASK, text)
        return _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)


class SecretMaskingFilter(logging.Filter):
    """Masks secrets in a record's message (for handlers whose formatter is not ours)."""

    def __init__(self, secrets: Iterable[str] | SecretList) -> None:
        super().__init__()
        self._secrets = secrets if isinstance(secrets, SecretList) else SecretList(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._secrets.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class SecretMaskingFormatter(logging.Formatter):
    """Formats as usual, then masks every secret anywhere in the finished text."""

    def __init__(self, fmt: str, datefmt: str | None, secrets: SecretList) -> None:
        super().__init__(fmt, datefmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self.secrets.mask(super().format(record))


def configure_logging(level: str, secrets: Iterable[str]) -> SecretList:
    """Log to stderr at `level`; returns the live list of secrets the output masks."""
    live = SecretList(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(
        SecretMaskingFormatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S", live
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party libraries are chatty at INFO (every HTTP request, every scheduler run,
    # every SMTP command of the sandbox's mail sink); keep them quieter.
    noisy_loggers = (
        "alembic",
        "azure",
        "msrest",
        "urllib3",
        "aiohttp.access",
        "msal",
        "apscheduler",
        "mail.log",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return live


def learn_secrets(values: Iterable[str], logger: logging.Logger | None = None) -> None:
    """Add secrets that arrived after start-up to every masking handler of `logger`."""
    wanted = list(values)
    for handler in (logger or logging.getLogger()).handlers:
        formatter = handler.formatter
        if isinstance(formatter, SecretMaskingFormatter):
            formatter.secrets.add(wanted)
        else:
            # A handler someone else configured: mask at least the messages.
            handler.addFilter(SecretMaskingFilter(wanted))
