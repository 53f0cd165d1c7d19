"""What azure-core exceptions mean for mlbot: one of the typed errors of `azure_calls`.

The Azure SDKs mlbot uses (azure-ai-ml, azure-mgmt-monitor) all raise azure-core's
exception types, so a single classification serves them; each adapter supplies its
service name and the settings an operator should check when Azure says no.
`azure.core` is imported inside the function, where it is needed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping

from monitoring.azure_calls import (
    AzureAuthError,
    AzureCallError,
    AzureNotFoundError,
    AzureResponseError,
    TransientAzureError,
)


def retry_after_s(headers: Mapping[str, str] | None, *, milliseconds: bool = True) -> float | None:
    """Seconds the service asks us to wait, from `Retry-After` (seconds or an HTTP date).

    With `milliseconds`, `retry-after-ms` / `x-ms-retry-after-ms` are read first.
    """
    if not headers:
        return None
    if milliseconds:
        value_ms = headers.get("retry-after-ms") or headers.get("x-ms-retry-after-ms")
        if value_ms:
            try:
                return float(value_ms) / 1000
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def service_message(exc: BaseException) -> str:
    """The ARM error code and message, without the SDK's multi-line decoration."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if code or message:
        return f"{code}: {message}" if code and message else str(code or message)
    reason = getattr(exc, "reason", None)
    status = getattr(exc, "status_code", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def classify_azure_core(
    exc: BaseException,
    *,
    service: str,
    operation: str,
    subject: str,
    credential_settings: str,
    forbidden_hint: str,
    not_found_hint: str | None = None,
    refused_401_is_auth: bool = True,
    retry_after_ms: bool = True,
    sdk_package: str | None = None,
) -> AzureCallError:
    """Turn an azure-core exception into one of mlbot's typed errors.

    `credential_settings` is what to check when authentication fails and `forbidden_hint`
    what to check on a 403; `not_found_hint`, if given, is appended to 404 messages.
    `refused_401_is_auth` treats a plain 401 HttpResponseError as an authentication error
    (otherwise it is an unexpected answer); `retry_after_ms` honours the millisecond
    Retry-After headers; exceptions raised from `sdk_package` are the service's answers.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        DeserializationError,
        HttpResponseError,
        IncompleteReadError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, AzureCallError):
        return exc
    what = f" {subject}" if subject else ""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, IncompleteReadError):
        return TransientAzureError(service, operation, "the connection closed mid-answer")
    if isinstance(exc, DecodeError | DeserializationError):
        return AzureResponseError(service, operation, f"unreadable answer: {service_message(exc)}")
    if isinstance(exc, ClientAuthenticationError) and status in (None, 401):
        # Also raised by the credential itself, before any request is sent.
        return AzureAuthError(
            service,
            operation,
            f"authentication failed: {service_message(exc)}",
            credential_settings,
        )
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        hint = f" (check {not_found_hint})" if not_found_hint else ""
        return AzureNotFoundError(
            service, operation, f"not found{what}: {service_message(exc)}{hint}"
        )
    if isinstance(exc, HttpResponseError):
        if status == 401 and refused_401_is_auth:
            return AzureAuthError(
                service,
                operation,
                f"authentication refused: {service_message(exc)}",
                credential_settings,
            )
        if status == 403:
            return AzureAuthError(
                service,
                operation,
                f"permission denied{what}: {service_message(exc)}",
                forbidden_hint,
            )
        if status in (408, 429) or (status is not None and status >= 500):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            return TransientAzureError(
                service,
                operation,
                f"HTTP {status}: {service_message(exc)}",
                retry_after_s=retry_after_s(headers, milliseconds=retry_after_ms),
            )
        return AzureResponseError(service, operation, f"HTTP {status}: {service_message(exc)}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return AzureCallError(service, operation, "the server's TLS certificate is not trusted")
        if "timeout" in type(exc).__name__.lower() or "timed out" in text.lower():
            return TransientAzureError(service, operation, f"timed out waiting for {service}")
        return TransientAzureError(service, operation, f"connection failed: {service_message(exc)}")
    if isinstance(exc, ValueError):
        # A body that is not JSON surfaces as a plain JSONDecodeError from the pager.
        return AzureResponseError(service, operation, f"unreadable answer: {exc}")
    if sdk_package and type(exc).__module__.startswith(sdk_package):
        return AzureResponseError(service, operation, service_message(exc))
    return AzureCallError(service, operation, f"unexpected {type(exc).__name__}: {exc}")
