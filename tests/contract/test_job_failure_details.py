"""A failed job's error and log tail, read through the documented calls, via the real SDK.

azure-ai-ml's workspace call gives the discovery URL, the discovery document names the
run history's host, `runs/{name}/details` holds the error and the log files' SAS URLs,
and the end of the main log is read with a Range request. The emulator serves each of
them in its documented shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from domain.jobs import JobState, Workspace
from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLJobSource, AzureMLOptions, CloudEndpoints
from sandbox.azureml_emulator import AzureMLEmulator
from sandbox.credentials import StaticTokenCredential

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
]

WS = Workspace("00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant")
START = dt.datetime(2026, 3, 31, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
async def emulator() -> AsyncIterator[AzureMLEmulator]:
    emu = AzureMLEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def _source(emulator: AzureMLEmulator) -> AzureMLJobSource:
    options = AzureMLOptions(
        retry=RetryPolicy(attempts=1, base_delay_s=0.001, timeout_s=10.0),
        connection_verify=emulator.ca_path,
        cloud=CloudEndpoints(resource_manager=emulator.base_url),
    )
    return AzureMLJobSource(StaticTokenCredential, [WS], options)


def _failed_job(emulator: AzureMLEmulator, name: str, message: str) -> None:
    emulator.add_job(
        WS, name, status="Queued", created_at=START, tags={"circuit": "PLANT001/CIRCUIT02"}
    )
    emulator.set_status(WS, name, "Running", at=START + dt.timedelta(minutes=1))
    emulator.set_status(WS, name, "Failed", error_message=message, at=START + dt.timedelta(hours=1))


async def test_a_failed_job_carries_azure_ml_s_error_and_the_end_of_its_log(
    emulator: AzureMLEmulator,
) -> None:
    _failed_job(emulator, "train-7", "CUDA out of memory. Tried to allocate 2.00 GiB")
    emulator.add_job(WS, "train-8", status="Running", tags={"circuit": "PLANT001/CIRCUIT03"})
    source = _source(emulator)

    jobs = {job.name: job for job in await source.list_active(WS)}

    failed = jobs["train-7"]
    assert failed.state is JobState.FAILED and failed.failure is not None
    assert failed.failure.code == "UserError" and failed.failure.category == "user"
    assert failed.error_summary == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert failed.failure.log_name == "user_logs/std_log.txt"
    tail = failed.failure.log_tail
    assert tail[-2] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    # The log's SAS URL is shown without its signature.
    assert "sig=***" in tail[-1] and "c2FuZGJveC1zaWduYXR1cmU" not in tail[-1]
    assert failed.failure.unavailable is None
    # Jobs that did not fail cost no extra call.
    assert jobs["train-8"].failure is None
    paths = [request.path for request in emulator.detail_requests]
    assert sum("/runs/train-7/details" in path for path in paths) == 1
    assert not any("train-8" in path for path in paths)


async def test_details_are_read_once_per_failed_job(emulator: AzureMLEmulator) -> None:
    _failed_job(emulator, "train-9", "SystemError: node preempted")
    source = _source(emulator)
    first = {job.name: job for job in await source.list_active(WS)}["train-9"]
    before = len(emulator.detail_requests)
    again = await source.get(WS, "train-9")
    await source.list_active(WS)
    assert len(emulator.detail_requests) == before
    assert first.failure == again.failure
    assert first.failure is not None and first.failure.category == "system"


async def test_a_log_that_cannot_be_read_still_gives_the_error_and_says_why(
    emulator: AzureMLEmulator,
) -> None:
    _failed_job(emulator, "train-10", "loss became NaN")
    emulator.logs_readable = False
    job = await _source(emulator).get(WS, "train-10")
    assert job.failure is not None
    assert job.failure.message == "loss became NaN"
    assert job.failure.log_tail == ()
    assert (
        job.failure.unavailable is not None and "log could not be read" in job.failure.unavailable
    )
