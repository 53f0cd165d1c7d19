"""Calling blocking Azure SDKs from asyncio: worker threads, timeouts, retries, typed errors.

Both azure-ai-ml and azure-devops are synchronous. Every call goes through
`call_blocking`, so the event loop never waits on Azure and every failure reaches the
caller as an `AzureCallError` whose message can be shown to users. Each adapter runs its
calls on its own service's thread pool (monitoring/executors.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class AzureCallError(Exception):
    """An Azure call failed in a way callers can explain to users."""

    def __init__(self, service: str, operation: str, message: str) -> None:
        super().__init__(f"{service}: {operation} failed: {message}")
        self.service = service
        self.operation = operation
        self.message = message


class TransientAzureError(AzureCallError):
    """Worth retrying: throttling (429), server errors (5xx), timeouts, connection errors."""

    def __init__(
        self, service: str, operation: str, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(service, operation, message)
        self.retry_after_s = retry_after_s


class AzureAuthError(AzureCallError):
    """Authentication or permission refused; `setting` names what the operator should fix."""

    def __init__(self, service: str, operation: str, message: str, setting: str) -> None:
        super().__init__(service, operation, f"{message} (check {setting})")
        self.setting = setting


class AzureNotFoundError(AzureCallError):
    """The named resource (job, pipeline, project, variable group) does not exist."""


class AzureResponseError(AzureCallError):
    """The service answered with something we cannot use (malformed body, 4xx)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts and delays for transient failures; `Retry-After` wins when given."""

    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 30.0

    def delay_for(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        exponential = self.base_delay_s * (2 ** (attempt - 1))
        # Full jitter keeps many replicas from retrying in lockstep.
        return min(self.max_delay_s, rng.uniform(0, exponential))


async def call_blocking(
    fn: Callable[[], T],
    *,
    service: str,
    operation: str,
    classify: Callable[[BaseException], AzureCallError],
    policy: RetryPolicy,
    executor: Executor | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `fn` on `executor` with a timeout, retrying transient failures.

    `executor` is the service's own pool; None (tools and tests that build an adapter
    alone) falls back to asyncio's default executor. `classify` turns an SDK exception
    into one of the typed errors above.
    """
    chooser = rng or random.Random()
    last: AzureCallError | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            return await asyncio.wait_for(_in_thread(fn, executor), timeout=policy.timeout_s)
        except TimeoutError:
            last = TransientAzureError(
                service, operation, f"no answer within {policy.timeout_s:g} s"
            )
        except AzureCallError as exc:
            last = exc
        except Exception as exc:  # SDK exceptions vary; classify decides what they mean
            last = classify(exc)
        if not isinstance(last, TransientAzureError) or attempt == policy.attempts:
            break
        await sleep(policy.delay_for(attempt, last.retry_after_s, chooser))
    assert last is not None
    raise last


async def _in_thread(fn: Callable[[], T], executor: Executor | None) -> T:
    # Context variables (log correlation ids) follow the call, as with asyncio.to_thread.
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, context.run, fn)


async def cached_client(
    clients: dict[str, Any],
    key: str,
    lock: asyncio.Lock,
    connect: Callable[[], Awaitable[Any]],
) -> Any:
    """The SDK client cached under `key`, made by `connect` on first use only.

    `lock` keeps concurrent first uses from connecting twice.
    """
    existing = clients.get(key)
    if existing is not None:
        return existing
    async with lock:
        if key not in clients:
            clients[key] = await connect()
    return clients[key]
