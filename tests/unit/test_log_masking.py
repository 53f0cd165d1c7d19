from __future__ import annotations

import logging

from service.logs import SecretMaskingFilter


def test_secrets_are_masked_in_log_records() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token=%s and pat=%s", ("abcdef123456", "zzz"), None
    )
    SecretMaskingFilter(["abcdef123456", "zzz", ""]).filter(record)
    # Too-short values are not treated as secrets (they would mask ordinary words).
    assert record.getMessage() == "token=******** and pat=zzz"
