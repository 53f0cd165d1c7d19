"""Why a job failed, from Azure ML's run details and the end of the job's main log.

The job resource (`JobBase`) carries no error. Azure ML keeps it in the run history:
`GET {api}/history/v1.0/…/workspaces/{ws}/runs/{job name}/details` answers a
`RunDetails` whose `error` is an `ErrorResponse` (`error.code` is `UserError` or
`SystemError`, `error.message` the text Studio shows) and whose `logFiles` maps each log
file's name to a read-only SAS URL. This module turns that JSON and a log's text into a
`JobFailure`; fetching them is the job source's business.

Log lines are shown in Teams, so they are bounded, and anything that looks like a secret
(SAS signatures, account keys, bearer tokens, `password=`…) is masked first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.jobs import JobFailure

MAX_MESSAGE_CHARS = 500
MAX_LOG_LINES = 15
MAX_LOG_LINE_CHARS = 200
MAX_LOG_BYTES = 256 * 1024  # read at most this much from the end of a log

# The main log of a job, best first: command jobs write user_logs/std_log.txt (v2
# runtime); older runtimes wrote the driver log.
MAIN_LOGS = (
    "user_logs/std_log.txt",
    "azureml-logs/70_driver_log.txt",
    "std_log.txt",
)

_MASK = "***"
_SECRET_PATTERNS = (
    # SAS query strings: keep the URL readable, hide the signature and its siblings.
    re.compile(r"(?i)\b(sig|se|st|sp|sv|skoid|sktid|skt|ske|sks|skv)=[^&\s\"']+"),
    re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s\"']+"),
    re.compile(
        r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|client_secret)\s*[=:]\s*[^\s\"',;]+"
    ),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9\-_.=]+"),
    # JWTs anywhere (three base64url segments, the first starting like {"alg").
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
)
# Terminal colour codes first, then any other control character.
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def mask_secrets(line: str) -> str:
    """`line` with every secret-looking value replaced by ***."""
    masked = line
    for pattern in _SECRET_PATTERNS:
        masked = pattern.sub(_keep_name, masked)
    return masked


def _keep_name(match: re.Match[str]) -> str:
    text = match.group(0)
    for separator in ("=", ":"):
        if separator in text and not text.startswith("eyJ"):
            name = text.split(separator, 1)[0]
            return f"{name}{separator}{_MASK}"
    if text.lower().startswith("bearer"):
        return f"Bearer {_MASK}"
    return _MASK


def log_tail(text: str, max_lines: int = MAX_LOG_LINES) -> tuple[str, ...]:
    """The last non-empty lines of a log, without terminal colours, bounded and masked."""
    lines = [_CONTROL.sub("", line).rstrip() for line in text.splitlines()]
    kept = [line for line in lines if line.strip()][-max_lines:]
    return tuple(_bounded(mask_secrets(line), MAX_LOG_LINE_CHARS) for line in kept)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main_log(log_files: Mapping[str, Any]) -> str | None:
    """The name of the job's main log among `RunDetails.logFiles`, if any."""
    names = [str(name) for name in log_files]
    for preferred in MAIN_LOGS:
        if preferred in names:
            return preferred
    texts = sorted(name for name in names if name.endswith(".txt"))
    return texts[0] if texts else None


def category_of(code: str | None) -> str:
    if code is None:
        return "unknown"
    lowered = code.lower()
    if lowered.startswith("user"):
        return "user"
    if lowered.startswith("system") or lowered.startswith("service"):
        return "system"
    return "unknown"


def failure_from_run_details(details: Mapping[str, Any]) -> JobFailure:
    """The error of a `RunDetails` JSON (no log yet; see `with_log`)."""
    response = details.get("error")
    error = response.get("error") if isinstance(response, Mapping) else None
    if not isinstance(error, Mapping):
        return JobFailure(unavailable="Azure ML recorded no error details for this run")
    code = error.get("code")
    message = error.get("message")
    text = " ".join(str(message).split()) if message else None
    return JobFailure(
        code=str(code) if code else None,
        message=_bounded(mask_secrets(text), MAX_MESSAGE_CHARS) if text else None,
        category=category_of(str(code) if code else None),
    )


def with_log(failure: JobFailure, name: str, text: str) -> JobFailure:
    return JobFailure(
        code=failure.code,
        message=failure.message,
        category=failure.category,
        log_name=name,
        log_tail=log_tail(text),
        unavailable=failure.unavailable,
    )


def unavailable(failure: JobFailure | None, reason: str) -> JobFailure:
    """`failure` (or an empty one) noting why something could not be read."""
    base = failure or JobFailure()
    note = reason if base.unavailable is None else f"{base.unavailable}; {reason}"
    return JobFailure(
        code=base.code,
        message=base.message,
        category=base.category,
        log_name=base.log_name,
        log_tail=base.log_tail,
        unavailable=note,
    )
