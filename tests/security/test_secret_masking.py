"""Secrets never reach the channel or the log: the database password in `config`, every
secret setting in the mask list, and masking of whole log lines, tracebacks included,
with values learnt after start-up."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from config.settings import secret_values, settings_from_mapping, settings_report
from service.logs import MASK, SecretList, SecretMaskingFormatter, learn_secrets

DB_URL = "postgresql+asyncpg://mlbot:Db-pa55word-x@db.internal:5432/mlbot"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with a masking handler of its own (the root logger stays untouched)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SecretMaskingFormatter("%(message)s", None, SecretList(["pat-0123456"])))
    logger = logging.getLogger("tests.security.masking")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, out
    logger.removeHandler(handler)


def test_config_shows_the_database_url_without_its_password() -> None:
    settings = settings_from_mapping({"MLBOT_DATABASE_URL": DB_URL})
    shown = {name: value for name, value, _ in settings_report(settings, {}, env_file=None)}
    assert "Db-pa55word-x" not in shown["MLBOT_DATABASE_URL"]
    assert (
        shown["MLBOT_DATABASE_URL"] == f"postgresql+asyncpg://mlbot:{MASK}@db.internal:5432/mlbot"
    )


def test_every_secret_setting_is_in_the_mask_list() -> None:
    settings = settings_from_mapping(
        {
            "MLBOT_DATABASE_URL": DB_URL,
            "MLBOT_SMTP_PASSWORD": "smtp-pa55word",
            "MLBOT_DEVOPS_HOOK_SECRET": "devops-hook-s3cret",
            "MLBOT_EVENTGRID_HOOK_SECRET": "eventgrid-hook-s3cret",
            "MLBOT_ALERTS_HOOK_SECRET": "alerts-hook-s3cret",
            "MLBOT_DEVOPS_PAT": "pat-s3cret-value",
        }
    )
    values = set(secret_values(settings))
    assert {
        "Db-pa55word-x",
        "smtp-pa55word",
        "devops-hook-s3cret",
        "eventgrid-hook-s3cret",
        "alerts-hook-s3cret",
        "pat-s3cret-value",
    } <= values


def test_a_secret_inside_a_traceback_is_masked(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    try:
        raise ConnectionError(
            "POST https://bot/api/hooks/alerts?key=leaky-hook-key failed: pat-0123456"
        )
    except ConnectionError:
        logger.exception("delivery failed")
    written = out.getvalue()
    assert "Traceback" in written and "ConnectionError" in written
    assert "leaky-hook-key" not in written and "pat-0123456" not in written
    assert f"?key={MASK}" in written


def test_arguments_and_url_passwords_are_masked(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    logger.info("connecting to %s with %s", DB_URL, "pat-0123456")
    written = out.getvalue()
    assert "Db-pa55word-x" not in written and "pat-0123456" not in written
    assert "db.internal" in written  # only the secret part goes


def test_secrets_learnt_later_are_masked_from_then_on(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    learn_secrets(["https://contoso.webhook.office.com/late-secret-url"], logger)
    logger.warning("webhook https://contoso.webhook.office.com/late-secret-url answered 500")
    assert "late-secret-url" not in out.getvalue()
    assert MASK in out.getvalue()
