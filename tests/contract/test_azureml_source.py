"""The real azure-ai-ml SDK, through AzureMLJobSource, against the HTTPS emulator."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from domain.jobs import JobState, Workspace
from monitoring.azure_calls import (
    AzureAuthError,
    AzureNotFoundError,
    AzureResponseError,
    RetryPolicy,
    TransientAzureError,
)
from monitoring.azureml import AzureMLJobSource, AzureMLOptions, CloudEndpoints
from sandbox.azureml_emulator import AzureMLEmulator, FaultKind, skip_token
from sandbox.credentials import SANDBOX_TENANT_ID, StaticTokenCredential
from sandbox.tls import generate_tls

# Importing azure-ai-ml emits marshmallow deprecation warnings that are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
]

WS = Workspace("00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-plant")
OTHER_WS = Workspace("00000000-1111-2222-3333-444444444444", "rg-mlops", "ws-other")
JOBS_PATH = f"/workspaces/{WS.name}/jobs"

SourceFactory = Callable[..., AzureMLJobSource]


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def emulator() -> AsyncIterator[AzureMLEmulator]:
    emu = AzureMLEmulator(page_size=3)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_source(emulator: AzureMLEmulator, sleep: RecordingSleep) -> SourceFactory:
    def factory(
        *, attempts: int = 3, timeout_s: float = 10.0, circuit_tag: str = "circuit"
    ) -> AzureMLJobSource:
        options = AzureMLOptions(
            circuit_tag=circuit_tag,
            retry=RetryPolicy(attempts=attempts, base_delay_s=0.001, timeout_s=timeout_s),
            connection_verify=emulator.ca_path,
            cloud=CloudEndpoints(resource_manager=emulator.base_url),
        )
        return AzureMLJobSource(StaticTokenCredential, [WS, OTHER_WS], options, sleep=sleep)

    return factory


def seed(emulator: AzureMLEmulator, count: int, workspace: Workspace = WS) -> None:
    start = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
    for i in range(count):
        emulator.add_job(
            workspace,
            f"train-{workspace.name}-{i:03d}",
            status="Running",
            display_name=f"train circuit {i}",
            experiment="circuit-training",
            tags={"circuit": f"PLANT001/CIRCUIT{i:02d}"},
            created_at=start + dt.timedelta(minutes=i),
        )


# --- happy paths -----------------------------------------------------------------------


async def test_list_follows_next_link_across_pages_in_one_listing(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    seed(emulator, 10)
    jobs = await make_source().list_active(WS)

    assert sorted(j.name for j in jobs) == sorted(f"train-ws-plant-{i:03d}" for i in range(10))
    listing = emulator.requests_to(JOBS_PATH)
    assert len(listing) == 4  # pages of 3, 3, 3, 1
    tokens = [None, skip_token(3), skip_token(6), skip_token(9)]
    assert [r.query.get("$skipToken") for r in listing] == tokens
    assert all(r.query["listViewType"] == "ActiveOnly" for r in listing)
    assert all(r.query["api-version"] == "2024-01-01-preview" for r in listing)


async def test_a_listing_since_a_time_stops_at_the_first_older_job(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    seed(emulator, 10)  # created a minute apart; the newest come first, 3 to a page
    emulator.set_status(WS, "train-ws-plant-008", "Completed")
    since = dt.datetime(2025, 3, 1, 8, 5, tzinfo=dt.UTC)  # job 5's creation
    jobs = await make_source().list_active(WS, created_since=since)

    # Finished jobs come too: the end of a followed job needs no get.
    assert [j.name for j in jobs] == [f"train-ws-plant-{i:03d}" for i in (9, 8, 7, 6, 5)]
    assert {j.name: j.state for j in jobs}["train-ws-plant-008"] is JobState.COMPLETED
    # Pages 9-8-7 and 6-5-4: job 4 is older, so the last page (3-2-1, 0) is never asked.
    pages = emulator.requests_to(JOBS_PATH)
    assert len(pages) == 2
    assert "$skipToken" not in pages[0].query and pages[1].query.get("$skipToken")


async def test_one_listing_per_workspace(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    seed(emulator, 2)
    seed(emulator, 1, OTHER_WS)
    source = make_source()
    mine = await source.list_active(WS)
    other = await source.list_active(OTHER_WS)

    assert {j.workspace for j in mine} == {WS.key}
    assert [j.name for j in other] == ["train-ws-other-000"]
    assert len(emulator.requests_to(JOBS_PATH)) == 1
    assert len(emulator.requests_to(f"/workspaces/{OTHER_WS.name}/jobs")) == 1
    # Only the jobs API is called: no workspace lookup or discovery.
    assert all("/jobs" in r.path for r in emulator.requests)


async def test_archived_jobs_are_left_out(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    seed(emulator, 2)
    emulator.job(WS, "train-ws-plant-001").archived = True
    jobs = await make_source().list_active(WS)
    assert [j.name for j in jobs] == ["train-ws-plant-000"]


async def test_fields_are_mapped(emulator: AzureMLEmulator, make_source: SourceFactory) -> None:
    emulator.add_job(
        WS,
        "train-42",
        status="Queued",
        display_name="Circuit 7 nightly",
        experiment="circuit-training",
        tags={"circuit": "PLANT001/CIRCUIT07", "site": "north"},
        created_at=dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC),
    )
    emulator.set_status(WS, "train-42", "Running", at=dt.datetime(2025, 3, 1, 8, 5, tzinfo=dt.UTC))
    emulator.set_status(
        WS,
        "train-42",
        "Failed",
        error_message="CUDA out of memory",
        at=dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC),
    )

    job = await make_source().get(WS, "train-42")

    assert job.workspace == WS.key
    assert job.name == "train-42"
    assert job.display_name == "Circuit 7 nightly"
    assert job.experiment == "circuit-training"
    assert job.circuit == "PLANT001/CIRCUIT07"
    assert job.status == "Failed"
    assert job.state is JobState.FAILED
    assert job.created_at == dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
    assert job.started_at == dt.datetime(2025, 3, 1, 8, 5, tzinfo=dt.UTC)
    assert job.ended_at == dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    # The error comes from the run history's details, as Azure ML keeps it there.
    assert job.error_summary == "CUDA out of memory"
    assert job.failure is not None and job.failure.code == "UserError"
    assert job.studio_url is not None
    assert job.studio_url.startswith("https://ml.azure.com/runs/train-42?wsid=/subscriptions/")
    assert f"tid={SANDBOX_TENANT_ID}" in job.studio_url


async def test_running_job_has_no_error_and_no_end(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.add_job(WS, "train-1", status="Queued", tags={"circuit": "PLANT002/CIRCUIT01"})
    emulator.set_status(WS, "train-1", "Running")
    job = await make_source().get(WS, "train-1")
    assert job.state is JobState.RUNNING
    assert job.started_at is not None
    assert job.ended_at is None
    assert job.error_summary is None


async def test_circuit_tag_name_is_configurable(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.add_job(WS, "a", tags={"mlops.circuit": "PLANT009/CIRCUIT03"})
    emulator.add_job(WS, "b", tags={"circuit": "ignored"})
    jobs = {j.name: j for j in await make_source(circuit_tag="mlops.circuit").list_active(WS)}
    assert jobs["a"].circuit == "PLANT009/CIRCUIT03"
    assert jobs["b"].circuit is None


async def test_cancel(emulator: AzureMLEmulator, make_source: SourceFactory) -> None:
    emulator.add_job(WS, "train-1", status="Running")
    source = make_source()
    await source.cancel(WS, "train-1")

    assert emulator.job(WS, "train-1").status == "Canceled"
    assert len(emulator.requests_to("/jobs/train-1/cancel", method="POST")) == 1
    assert (await source.get(WS, "train-1")).state is JobState.CANCELED


async def test_cancel_returns_once_accepted(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.instant_cancel = False
    emulator.add_job(WS, "train-1", status="Running")
    await make_source().cancel(WS, "train-1")
    assert emulator.job(WS, "train-1").status == "CancelRequested"


async def test_cancel_unknown_job_is_not_found(make_source: SourceFactory) -> None:
    with pytest.raises(AzureNotFoundError):
        await make_source().cancel(WS, "nope")


async def test_two_emulators_keep_separate_state(make_source: SourceFactory) -> None:
    second = AzureMLEmulator()
    await second.start()
    try:
        second.add_job(WS, "only-here")
        options = AzureMLOptions(
            retry=RetryPolicy(attempts=1),
            connection_verify=second.ca_path,
            cloud=CloudEndpoints(resource_manager=second.base_url),
        )
        other_source = AzureMLJobSource(StaticTokenCredential, [WS], options)
        assert [j.name for j in await other_source.list_active(WS)] == ["only-here"]
        assert await make_source().list_active(WS) == []
    finally:
        await second.stop()


# --- faults ----------------------------------------------------------------------------


async def test_throttling_is_retried_after_the_advertised_delay(
    emulator: AzureMLEmulator, make_source: SourceFactory, sleep: RecordingSleep
) -> None:
    seed(emulator, 2)
    emulator.inject(FaultKind.THROTTLE, retry_after_s=7)
    jobs = await make_source().list_active(WS)
    assert len(jobs) == 2
    assert sleep.delays == [7.0]
    assert len(emulator.requests_to(JOBS_PATH)) == 2


async def test_server_error_is_retried(
    emulator: AzureMLEmulator, make_source: SourceFactory, sleep: RecordingSleep
) -> None:
    seed(emulator, 1)
    emulator.inject(FaultKind.SERVER_ERROR)
    assert len(await make_source().list_active(WS)) == 1
    assert len(sleep.delays) == 1


async def test_persistent_server_error_is_transient_after_all_attempts(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    seed(emulator, 1)
    emulator.inject(FaultKind.SERVER_ERROR, count=5)
    with pytest.raises(TransientAzureError) as caught:
        await make_source(attempts=3).list_active(WS)
    assert "500" in str(caught.value)
    assert len(emulator.requests_to(JOBS_PATH)) == 3


async def test_slow_answer_past_timeout_is_a_transient_timeout(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.add_job(WS, "train-1")
    source = make_source(attempts=1, timeout_s=0.5)
    await source.get(WS, "train-1")  # client created before the clock matters
    emulator.inject(FaultKind.SLOW, delay_s=30)
    with pytest.raises(TransientAzureError) as caught:
        await source.get(WS, "train-1")
    message = str(caught.value)
    assert "no answer within" in message or "timed out" in message


async def test_slow_answer_then_retry_succeeds(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.add_job(WS, "train-1")
    source = make_source(attempts=2, timeout_s=0.5)
    await source.get(WS, "train-1")
    emulator.inject(FaultKind.SLOW, delay_s=30)
    assert (await source.get(WS, "train-1")).name == "train-1"


@pytest.mark.parametrize("call", ["list", "get"])
async def test_malformed_body_is_a_response_error(
    emulator: AzureMLEmulator, make_source: SourceFactory, call: str
) -> None:
    emulator.add_job(WS, "train-1")
    emulator.inject(FaultKind.MALFORMED)
    source = make_source()
    with pytest.raises(AzureResponseError):
        if call == "list":
            await source.list_active(WS)
        else:
            await source.get(WS, "train-1")
    assert len(emulator.requests) == 1  # not retried


async def test_unauthorized_names_the_credential_settings(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.inject(FaultKind.UNAUTHORIZED)
    with pytest.raises(AzureAuthError) as caught:
        await make_source().list_active(WS)
    assert "AZURE_CLIENT_ID" in caught.value.setting
    assert "AZURE_CLIENT_ID" in str(caught.value)
    assert len(emulator.requests) == 1


async def test_forbidden_names_the_workspace_settings(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.inject(FaultKind.FORBIDDEN)
    with pytest.raises(AzureAuthError) as caught:
        await make_source().get(WS, "train-1")
    assert "MLBOT_AZURE_SUBSCRIPTION_ID" in caught.value.setting
    assert "AuthorizationFailed" in str(caught.value)


async def test_unknown_job_is_not_found(make_source: SourceFactory) -> None:
    with pytest.raises(AzureNotFoundError) as caught:
        await make_source().get(WS, "no-such-job")
    assert "no-such-job" in str(caught.value)


async def test_missing_workspace_listing_is_not_found(
    emulator: AzureMLEmulator, make_source: SourceFactory
) -> None:
    emulator.inject(FaultKind.NOT_FOUND)
    with pytest.raises(AzureNotFoundError) as caught:
        await make_source().list_active(WS)
    assert "MLBOT_AZUREML_WORKSPACES" in str(caught.value)


async def test_unreachable_service_is_transient(sleep: RecordingSleep) -> None:
    tls = generate_tls()
    try:
        stopped = AzureMLEmulator(tls=tls)  # the CA outlives the server
        base_url = await stopped.start()
        options = AzureMLOptions(
            retry=RetryPolicy(attempts=2, base_delay_s=0.001, timeout_s=5),
            connection_verify=str(tls.ca_path),
            cloud=CloudEndpoints(resource_manager=base_url),
        )
        source = AzureMLJobSource(StaticTokenCredential, [WS], options, sleep=sleep)
        await stopped.stop()  # nothing listens on the port any more
        with pytest.raises(TransientAzureError) as caught:
            await source.list_active(WS)
        assert "connection failed" in str(caught.value)
        assert len(sleep.delays) == 1
    finally:
        tls.cleanup()


# --- the emulator itself ---------------------------------------------------------------


async def test_emulator_requires_a_bearer_token(emulator: AzureMLEmulator) -> None:
    url = (
        f"{emulator.base_url}/subscriptions/{WS.subscription_id}/resourceGroups/"
        f"{WS.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/"
        f"{WS.name}/jobs?api-version=2024-01-01-preview"
    )
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=emulator.ca_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as refused:
            assert refused.status == 401
        async with session.get(url, headers={"Authorization": "Bearer x"}) as accepted:
            assert accepted.status == 200
            assert await accepted.json() == {"value": []}
