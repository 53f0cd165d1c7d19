"""Azure ML Jobs_List as Microsoft publishes it, through azure-ai-ml and mlbot's job source.

Sources (Azure/azure-rest-api-specs, `specification/machinelearningservices/resource-manager/
Microsoft.MachineLearningServices/preview/2024-01-01-preview/examples/Job/`, the api-version
azure-ai-ml 1.35 sends for `jobs.list()`):
- `CommandJob/list.json` at ea83a2a3e90ca3f0420e9d0ef55a811523541aba
  -> examples/azureml_jobs_list_command_2024-01-01-preview.json
- `PipelineJob/list.json` at e86d0248ef1fd989c04747f59004c2ccbe191609
  -> examples/azureml_jobs_list_pipeline_2024-01-01-preview.json
- the documented job statuses: the swagger's `JobStatus` enum, as azure-ai-ml generates it
  (`azure/ai/ml/_restclient/arm_ml_service/models/_enums.py`, `JobStatus`, azure-ai-ml 1.35).

The examples are stored verbatim. Their values are placeholders (`"name": "string"`,
`"computeId": "string"`, `"nextLink": "string"`): served as they stand, azure-ai-ml refuses
the whole page (`arm_id cannot be resolved`), so each test fills the placeholders a real job
has - its ARM id and name, the ids of its compute, code, environment and component - and
what the test is about (tags, status, run times). Every other field stays as published,
`systemData` included. The emulator serves the bodies (`add_recorded_job`) and pages them
with its own `nextLink`, as Azure ML does with `$skipToken`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from domain.jobs import JobState, TrainingJob, Workspace
from monitoring.azure_calls import AzureCallError, RetryPolicy
from monitoring.azureml import AzureMLJobSource, AzureMLOptions, CloudEndpoints
from sandbox.azureml_emulator import AzureMLEmulator, EmulatedJob
from sandbox.credentials import StaticTokenCredential

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
]

EXAMPLES = Path(__file__).parent / "examples"
# The workspace the examples' parameters name.
WS = Workspace("00000000-1111-2222-3333-444444444444", "test-rg", "my-aml-workspace")
WS_ID = (
    "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/test-rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/my-aml-workspace"
)
UTC = dt.UTC


def _published(name: str) -> dict[str, Any]:
    body = json.loads((EXAMPLES / name).read_text())["responses"]["200"]["body"]
    (job,) = body["value"]
    assert isinstance(job, dict)
    return job


COMMAND = _published("azureml_jobs_list_command_2024-01-01-preview.json")
PIPELINE = _published("azureml_jobs_list_pipeline_2024-01-01-preview.json")


def filled(published: dict[str, Any], name: str, **properties: Any) -> dict[str, Any]:
    """The published job with its id placeholders filled and `properties` set."""
    job = copy.deepcopy(published)
    job["id"] = f"{WS_ID}/jobs/{name}"
    job["name"] = name
    job["type"] = "Microsoft.MachineLearningServices/workspaces/jobs"
    fields = job["properties"]
    ids = {
        "computeId": f"{WS_ID}/computes/gpu-cluster",
        "codeId": f"{WS_ID}/codes/train-src/versions/1",
        "environmentId": "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "componentId": f"{WS_ID}/components/train_circuit/versions/1",
    }
    for key, value in ids.items():
        if key in fields:
            fields[key] = value
    fields.update(properties)
    return job


@pytest.fixture
async def emulator() -> AsyncIterator[AzureMLEmulator]:
    emu = AzureMLEmulator(page_size=2)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def _source(emulator: AzureMLEmulator) -> AzureMLJobSource:
    options = AzureMLOptions(
        retry=RetryPolicy(attempts=1, base_delay_s=0.001, timeout_s=20.0),
        connection_verify=emulator.ca_path,
        cloud=CloudEndpoints(resource_manager=emulator.base_url),
        # Run details are another contract (test_job_failure_details.py).
        failure_details=False,
    )
    return AzureMLJobSource(StaticTokenCredential, [WS], options)


async def _listed(emulator: AzureMLEmulator) -> dict[str, TrainingJob]:
    jobs = await _source(emulator).list_active(WS)
    return {job.name: job for job in jobs}


async def test_command_and_pipeline_jobs_across_pages(emulator: AzureMLEmulator) -> None:
    emulator.add_recorded_job(
        WS,
        filled(
            COMMAND,
            "train-plant001-circuit01-2",
            status="Running",
            tags={"circuit": "PLANT001/CIRCUIT01", "attempt": "2"},
            properties={"StartTimeUtc": "2020-01-01 12:40:00"},
        ),
    )
    emulator.add_recorded_job(
        WS,
        filled(
            PIPELINE,
            "train-plant002-pipeline",
            status="Completed",
            tags={"circuit": "PLANT002/CIRCUIT01"},
            properties={
                "StartTimeUtc": "2020-01-01 12:35:10",
                "EndTimeUtc": "2020-01-01 13:05:42",
            },
        ),
    )
    # A step of the pipeline, without tags of its own: the circuit is the pipeline job's.
    emulator.add_recorded_job(
        WS, filled(COMMAND, "train-plant002-pipeline-step-train", status="Completed")
    )

    jobs = await _listed(emulator)

    command = jobs["train-plant001-circuit01-2"]
    assert (command.circuit, command.attempt, command.state) == (
        "PLANT001/CIRCUIT01",
        2,
        JobState.RUNNING,
    )
    # `createdAt` is published with an offset of +00:23: mlbot keeps the instant, in UTC.
    assert command.created_at == dt.datetime(2020, 1, 1, 12, 11, 56, 999000, tzinfo=UTC)
    assert command.started_at == dt.datetime(2020, 1, 1, 12, 40, tzinfo=UTC)
    assert command.ended_at is None
    assert command.studio_url is not None
    assert command.studio_url.startswith("https://ml.azure.com/runs/train-plant001-circuit01-2")
    assert "wsid=/subscriptions/00000000-1111-2222-3333-444444444444/" in command.studio_url

    pipeline = jobs["train-plant002-pipeline"]
    assert (pipeline.circuit, pipeline.attempt, pipeline.state) == (
        "PLANT002/CIRCUIT01",
        1,
        JobState.COMPLETED,
    )
    assert pipeline.created_at == dt.datetime(2020, 1, 1, 12, 34, 56, 999000, tzinfo=UTC)
    assert pipeline.started_at == dt.datetime(2020, 1, 1, 12, 35, 10, tzinfo=UTC)
    assert pipeline.ended_at == dt.datetime(2020, 1, 1, 13, 5, 42, tzinfo=UTC)

    # The step carries no circuit: it is not a training job of its own.
    assert jobs["train-plant002-pipeline-step-train"].circuit is None

    # Three jobs, pages of two: the SDK followed the emulator's nextLink once.
    listing = emulator.requests_to("/my-aml-workspace/jobs")
    assert len(listing) == 2
    assert "$skipToken" not in listing[0].query and listing[1].query.get("$skipToken")
    assert all(r.query["listViewType"] == "ActiveOnly" for r in listing)


async def test_the_published_job_as_it_stands_has_no_circuit(emulator: AzureMLEmulator) -> None:
    # Only the id placeholders are filled: tags are the example's own {"string": "string"}.
    emulator.add_recorded_job(WS, filled(COMMAND, "some-notebook-job"))

    (job,) = (await _listed(emulator)).values()

    assert job.circuit is None and job.attempt == 1
    assert job.status == "Failed" and job.state is JobState.FAILED
    assert job.display_name == "string" and job.experiment == "string"


async def test_the_published_placeholders_fail_the_listing_loudly(
    emulator: AzureMLEmulator,
) -> None:
    # As published ("computeId": "string", ...) azure-ai-ml cannot read the job, and the
    # whole page fails: mlbot reports a failed listing, never an empty workspace.
    emulator.add_recorded_job(WS, COMMAND)

    with pytest.raises(AzureCallError, match="list jobs"):
        await _source(emulator).list_active(WS)


# What each documented status means to people watching the job (docs/azure.md).
EXPECTED_STATES = {
    "NotStarted": JobState.WAITING,
    "Starting": JobState.WAITING,
    "Provisioning": JobState.WAITING,
    "Preparing": JobState.WAITING,
    "Queued": JobState.WAITING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "CancelRequested": JobState.RUNNING,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELED,
    "NotResponding": JobState.UNKNOWN,
    "Paused": JobState.WAITING,
    "Unknown": JobState.UNKNOWN,
}


def test_every_status_the_swagger_documents_is_mapped() -> None:
    from azure.ai.ml._restclient.arm_ml_service.models import JobStatus

    documented = {status.value for status in JobStatus}
    assert documented == set(EXPECTED_STATES)


async def test_every_documented_status_through_the_sdk(emulator: AzureMLEmulator) -> None:
    for number, status in enumerate(EXPECTED_STATES):
        emulator.add_recorded_job(
            WS,
            filled(
                COMMAND,
                f"train-status-{number:02d}",
                status=status,
                tags={"circuit": f"PLANT{number:03d}/CIRCUIT01"},
            ),
        )

    jobs = await _listed(emulator)

    seen = {job.status: job.state for job in jobs.values()}
    assert seen == EXPECTED_STATES


def test_the_emulator_writes_no_field_the_published_job_lacks() -> None:
    emulated = EmulatedJob(
        workspace=WS,
        name="train-plant001-circuit01-1",
        status="Completed",
        tags={"circuit": "PLANT001/CIRCUIT01"},
        started_at=dt.datetime(2026, 3, 31, 18, 14, 56, tzinfo=UTC),
        ended_at=dt.datetime(2026, 3, 31, 19, 0, 1, tzinfo=UTC),
    ).to_rest("https://ml.azure.com")

    assert set(emulated) <= set(COMMAND)
    assert set(emulated["systemData"]) <= set(COMMAND["systemData"])
    assert set(emulated["properties"]) <= set(COMMAND["properties"])
    service = next(iter(emulated["properties"]["services"].values()))
    assert set(service) <= set(next(iter(COMMAND["properties"]["services"].values())))


def test_an_emulated_pipeline_job_has_a_pipeline_job_s_fields() -> None:
    emulated = EmulatedJob(
        workspace=WS, name="train-plant002-pipeline", job_type="Pipeline", status="Running"
    ).to_rest("https://ml.azure.com")

    # `isArchived` belongs to every job (JobBase), as the command example shows.
    assert set(emulated["properties"]) - {"isArchived"} <= set(PIPELINE["properties"])
    assert emulated["properties"]["jobType"] == "Pipeline"
