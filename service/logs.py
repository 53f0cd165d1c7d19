"""Logging set-up: one format, the configured level, and no secret ever printed."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "********"


class SecretMaskingFilter(logging.Filter):
    """Replaces any configured secret that slips into a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would mask ordinary words; real secrets are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(SecretMaskingFilter(secrets))
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
