"""Each service's blocking calls run on that service's pool, within its size."""

from __future__ import annotations

import asyncio
import threading

import pytest

from monitoring.azure_calls import AzureResponseError, RetryPolicy, call_blocking
from monitoring.executors import ExecutorSizes, ServiceExecutors


def _classify(exc: BaseException) -> AzureResponseError:
    return AzureResponseError("Azure ML", "list jobs", str(exc))


async def test_a_call_runs_on_the_pool_it_is_given() -> None:
    executors = ServiceExecutors.create()
    try:
        name = await call_blocking(
            lambda: threading.current_thread().name,
            service="Azure ML",
            operation="list jobs",
            classify=_classify,
            policy=RetryPolicy(attempts=1),
            executor=executors.azureml,
        )
    finally:
        executors.shutdown()
    assert name.startswith("mlbot-azureml")


async def test_a_pool_never_runs_more_calls_than_its_size() -> None:
    executors = ServiceExecutors.create(ExecutorSizes(azureml=2, devops=1, metrics=1))
    lock = threading.Lock()
    running = 0
    most = 0
    gate = threading.Event()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait()
        with lock:
            running -= 1

    loop = asyncio.get_running_loop()
    calls = [loop.run_in_executor(executors.azureml, call) for _ in range(6)]
    try:
        # Both threads are busy before the gate opens; the other four wait their turn.
        while True:
            with lock:
                if running == 2:
                    break
            await asyncio.sleep(0.001)
        gate.set()
        await asyncio.gather(*calls)
    finally:
        gate.set()
        executors.shutdown()
    assert most == 2


def test_each_service_has_its_own_pool() -> None:
    executors = ServiceExecutors.create()
    try:
        pools = {id(executors.azureml), id(executors.devops), id(executors.metrics)}
        assert len(pools) == 3
    finally:
        executors.shutdown()


def test_a_shut_down_pool_takes_no_more_work() -> None:
    executors = ServiceExecutors.create()
    executors.shutdown()
    with pytest.raises(RuntimeError):
        executors.devops.submit(lambda: None)


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="metrics"):
        ExecutorSizes(metrics=0)
