"""The real azure-devops SDK (through AzureDevOpsPipelines) against the local emulator.

Everything goes over HTTP on 127.0.0.1. Retry delays are recorded by an injected
`sleep`, never waited for. The SDK's location cache goes to a fresh temp dir: the
variable is set here, before anything imports `azure.devops` (when unset).
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="mlbot-ado-cache-"))

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from monitoring.azure_calls import (
    AzureAuthError,
    AzureNotFoundError,
    AzureResponseError,
    RetryPolicy,
    TransientAzureError,
)
from monitoring.devops import DEVOPS_SCOPE, AzureDevOpsPipelines
from sandbox.devops_emulator import DevOpsEmulator, EmulatedRun

PAT = "test-pat-123"
CIRCUITS = "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02"
GROUP = "mlops-pipeline-settings"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def emulator() -> AsyncIterator[DevOpsEmulator]:
    emu = DevOpsEmulator(
        pat=PAT,
        variable_groups={
            GROUP: {"monitoringPollIntervalSeconds": "15", "manualCircuits": CIRCUITS},
        },
    )
    emu.set_variables(
        GROUP, {"teamsWebhookUrl": "https://hook"}, secrets=frozenset({"teamsWebhookUrl"})
    )
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_adapter(emulator: DevOpsEmulator, sleeps: Sleeps) -> Callable[..., AzureDevOpsPipelines]:
    def make(
        *, project: str = "mlops", pat: str | None = PAT, attempts: int = 3, timeout_s: float = 5.0,
        credential: Any = None,
    ) -> AzureDevOpsPipelines:  # fmt: skip
        return AzureDevOpsPipelines(
            emulator.org_url,
            project,
            pat=pat,
            credential=credential,
            policy=RetryPolicy(attempts=attempts, base_delay_s=0.01, timeout_s=timeout_s),
            sleep=sleeps,
        )

    return make


@pytest.fixture
def ado(make_adapter: Callable[..., AzureDevOpsPipelines]) -> AzureDevOpsPipelines:
    return make_adapter()


# --- pipelines and runs ----------------------------------------------------------------------
async def test_find_pipeline_by_name_negotiates_locations(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    ref = await ado.find_pipeline("training-pipeline")
    assert ref.id == emulator.pipeline_named("training-pipeline").id
    assert ref.name == "training-pipeline"
    assert ref.web_url.endswith(f"/mlops/_build/definition?definitionId={ref.id}")
    methods = [(r.method, r.path) for r in emulator.requests]
    assert ("OPTIONS", "/sandbox-org/_apis") in methods
    listing = emulator.requests_to("/mlops/_apis/build/definitions", "GET")[-1]
    assert "api-version=7.1" in listing.accept  # the SDK negotiates the version in Accept
    assert listing.auth_scheme == "Basic"


async def test_unknown_pipeline_is_not_found(ado: AzureDevOpsPipelines) -> None:
    with pytest.raises(AzureNotFoundError) as caught:
        await ado.find_pipeline("no-such-pipeline")
    assert "no-such-pipeline" in str(caught.value)
    assert "MLBOT_TRAINING_PIPELINE" in str(caught.value)


async def test_queue_run_sends_exact_template_parameters(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    queued: list[EmulatedRun] = []
    emulator.run_hooks.append(queued.append)

    run = await ado.queue_run("training-pipeline", {"manualCircuits": CIRCUITS})

    posts = emulator.requests_to("/runs", "POST")
    assert len(posts) == 1
    assert posts[0].body == {"templateParameters": {"manualCircuits": CIRCUITS}}
    assert [r.template_parameters for r in queued] == [{"manualCircuits": CIRCUITS}]
    assert run.run_id == queued[0].id
    assert run.pipeline_name == "training-pipeline"
    assert run.state == "inProgress" and run.result is None
    assert run.template_parameters == {"manualCircuits": CIRCUITS}


async def test_queue_rollback_with_environment_and_reason(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    params = {"environment": "prod", "reason": "error rate 7.5% > 5%"}
    run = await ado.queue_run("rollback-pipeline", params)
    assert emulator.runs[run.run_id].template_parameters == params
    assert emulator.runs[run.run_id].requested_by == emulator.pat_identity


async def test_get_run_reports_state_result_and_web_link(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    run = await ado.queue_run("training-pipeline", {"manualCircuits": CIRCUITS})
    running = await ado.get_run(run.pipeline_id, run.run_id)
    assert (running.state, running.result, running.is_finished) == ("inProgress", None, False)

    emulator.complete_run(run.run_id)
    done = await ado.get_run(run.pipeline_id, run.run_id)
    assert (done.state, done.result, done.succeeded) == ("completed", "succeeded", True)
    assert done.web_url == f"{emulator.org_url}/mlops/_build/results?buildId={run.run_id}"
    assert done.finished_at is not None

    other = emulator.queue_run("deployment-pipeline")
    emulator.fail_run(other.id)
    failed = await ado.get_run(other.pipeline_id, other.id)
    assert (failed.result, failed.succeeded) == ("failed", False)


async def test_unknown_run_is_not_found(ado: AzureDevOpsPipelines) -> None:
    ref = await ado.find_pipeline("training-pipeline")
    with pytest.raises(AzureNotFoundError):
        await ado.get_run(ref.id, 999)


# --- approvals -------------------------------------------------------------------------------
async def test_list_pending_approvals(ado: AzureDevOpsPipelines, emulator: DevOpsEmulator) -> None:
    run = emulator.queue_run("deployment-pipeline")
    pending = emulator.add_approval(run.id, approvers=("Prod Approvers",), instructions="prod")
    done = emulator.add_approval(run.id)
    done.status = "approved"

    approvals = await ado.list_pending_approvals()

    assert [a.id for a in approvals] == [pending.id]
    approval = approvals[0]
    assert approval.is_pending
    assert (approval.pipeline_name, approval.run_id, approval.run_name) == (
        "deployment-pipeline",
        run.id,
        run.name,
    )
    assert approval.approvers == ("Prod Approvers",)
    assert approval.instructions == "prod"
    request = emulator.requests_to("/_apis/pipelines/approvals", "GET")[-1]
    assert request.query == {"api-version": "7.1", "state": "pending", "$expand": "steps"}
    assert request.auth_scheme == "Basic"


async def test_an_approval_is_placed_from_the_run_timeline_and_check_suite(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    other = emulator.queue_run("training-pipeline")
    run = emulator.queue_run("deployment-pipeline")
    pending = emulator.add_approval(run.id, stage="Deploy_Prod", environment="Prod")

    place = await ado.locate_approval(pending.id.upper())  # approval ids are GUIDs

    assert place is not None
    assert (place.run_id, place.pipeline_name, place.stage) == (
        run.id,
        "deployment-pipeline",
        "Deploy_Prod",
    )
    assert place.environment == "Prod"
    assert place.web_url.endswith(f"_build/results?buildId={run.id}")
    assert emulator.requests_to("/_apis/build/builds", "GET")[0].query.get("statusFilter") == (
        "inProgress"
    )
    suite = emulator.requests_to(f"/_apis/pipelines/checks/runs/{pending.check_suite_id}")
    assert suite and suite[0].query.get("$expand") == "resources"
    # A run hint is read first; the other run's timeline is then not needed.
    before = len(emulator.requests_to(f"/builds/{other.id}/timeline"))
    again = await ado.locate_approval(pending.id, run_id=run.id)
    assert again == place
    assert len(emulator.requests_to(f"/builds/{other.id}/timeline")) == before


async def test_an_approval_no_run_holds_has_no_place(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    emulator.queue_run("deployment-pipeline")
    assert await ado.locate_approval("5f0e6c52-0000-4000-8000-000000000000") is None
    assert await ado.locate_approval("5f0e6c52-0000-4000-8000-000000000000", run_id=999) is None


async def test_an_approval_without_an_environment_check_has_no_environment(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    run = emulator.queue_run("deployment-pipeline")
    pending = emulator.add_approval(run.id, environment=None)
    place = await ado.locate_approval(pending.id)
    assert place is not None and place.run_id == run.id
    assert place.environments == () and place.environment is None


@pytest.mark.parametrize(("approve", "status"), [(True, "approved"), (False, "rejected")])
async def test_decide_approval_sends_the_exact_patch_body(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator, approve: bool, status: str
) -> None:
    run = emulator.queue_run("deployment-pipeline")
    pending = emulator.add_approval(run.id)

    decided = await ado.decide_approval(pending.id, approve, "Decided in Teams by Ada")

    patches = emulator.requests_to("/_apis/pipelines/approvals", "PATCH")
    assert len(patches) == 1
    assert patches[0].query == {"api-version": "7.1"}
    assert patches[0].body == [
        {"approvalId": pending.id, "status": status, "comment": "Decided in Teams by Ada"}
    ]
    assert decided.id == pending.id and decided.status == status
    assert decided.comment == "Decided in Teams by Ada"
    # Recorded under the identity of the token used.
    assert emulator.approvals[pending.id].decided_by == emulator.pat_identity
    assert decided.decided_by == emulator.pat_identity


async def test_deciding_twice_is_refused(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    pending = emulator.add_approval(emulator.queue_run("deployment-pipeline").id)
    await ado.decide_approval(pending.id, True, "ok")
    with pytest.raises(AzureResponseError) as caught:
        await ado.decide_approval(pending.id, False, "too late")
    assert "already been completed" in str(caught.value)
    assert emulator.approvals[pending.id].status == "approved"


async def test_bearer_token_from_a_credential(
    make_adapter: Callable[..., AzureDevOpsPipelines], emulator: DevOpsEmulator
) -> None:
    scopes: list[tuple[str, ...]] = []

    class FakeCredential:
        def get_token(self, *requested: str, **kwargs: Any) -> AccessToken:
            scopes.append(requested)
            return AccessToken("entra-token", 4_102_444_800)

    ado = make_adapter(pat=None, credential=FakeCredential())
    pending = emulator.add_approval(emulator.queue_run("deployment-pipeline").id)
    await ado.find_pipeline("training-pipeline")
    await ado.decide_approval(pending.id, True, "ok")
    assert {r.auth_scheme for r in emulator.requests} == {"Bearer"}
    assert set(scopes) == {(DEVOPS_SCOPE,)}
    assert emulator.approvals[pending.id].decided_by == emulator.bearer_identity


# --- variable group --------------------------------------------------------------------------
async def test_read_variable_group(ado: AzureDevOpsPipelines, emulator: DevOpsEmulator) -> None:
    values = await ado.get_variable_group(GROUP)
    # Secret values never come back from the API.
    assert values == {"monitoringPollIntervalSeconds": "15", "manualCircuits": CIRCUITS}
    request = emulator.requests_to("/distributedtask/variablegroups", "GET")[-1]
    assert request.query == {"groupName": GROUP}
    assert "api-version=7.1-preview.2" in request.accept


async def test_missing_variable_group_names_the_setting(ado: AzureDevOpsPipelines) -> None:
    with pytest.raises(AzureNotFoundError) as caught:
        await ado.get_variable_group("no-such-group")
    assert "MLBOT_VARIABLE_GROUP" in str(caught.value)


# --- faults ----------------------------------------------------------------------------------
async def test_throttling_is_retried_after_retry_after(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator, sleeps: Sleeps
) -> None:
    emulator.inject_fault("throttle", 2, retry_after_s=7)
    ref = await ado.find_pipeline("training-pipeline")
    assert ref.name == "training-pipeline"
    assert sleeps.delays == [7, 7]
    assert len(emulator.requests_to("/mlops/_apis/build/definitions", "GET")) == 3


async def test_throttled_approval_decision_is_retried(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator, sleeps: Sleeps
) -> None:
    pending = emulator.add_approval(emulator.queue_run("deployment-pipeline").id)
    emulator.inject_fault("throttle", 1, method="PATCH", retry_after_s=3)
    decided = await ado.decide_approval(pending.id, True, "ok")
    assert decided.status == "approved"
    assert sleeps.delays == [3]
    assert len(emulator.approval_updates) == 1  # the throttled attempt never reached the handler


async def test_server_error_is_retried(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator, sleeps: Sleeps
) -> None:
    emulator.inject_fault("server_error", 1, path_contains="variablegroups")
    assert await ado.get_variable_group(GROUP)
    assert len(sleeps.delays) == 1


async def test_server_errors_past_the_attempts_are_transient(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    emulator.inject_fault("server_error", 5)
    with pytest.raises(TransientAzureError) as caught:
        await ado.list_pending_approvals()
    assert "500" in str(caught.value)
    assert len(emulator.requests_to("/approvals", "GET")) == 3


async def test_queueing_is_not_retried(ado: AzureDevOpsPipelines, emulator: DevOpsEmulator) -> None:
    # A POST that failed on the server side may still have queued a run.
    emulator.inject_fault("server_error", 1, method="POST")
    with pytest.raises(TransientAzureError):
        await ado.queue_run("training-pipeline", {"manualCircuits": CIRCUITS})
    assert len(emulator.requests_to("/runs", "POST")) == 1


async def test_slow_answer_past_the_timeout_is_a_typed_error(
    make_adapter: Callable[..., AzureDevOpsPipelines], emulator: DevOpsEmulator
) -> None:
    ado = make_adapter(attempts=1, timeout_s=0.3)
    await ado.find_pipeline("training-pipeline")  # locations negotiated at full speed
    emulator.inject_fault("slow", 1, delay_s=1.5)
    with pytest.raises(TransientAzureError):
        await ado.find_pipeline("training-pipeline")


async def test_malformed_body_is_a_response_error(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator
) -> None:
    emulator.inject_fault("malformed", 1)
    with pytest.raises(AzureResponseError) as caught:
        await ado.find_pipeline("training-pipeline")
    assert "malformed" in str(caught.value)
    emulator.inject_fault("malformed", 1, path_contains="approvals")
    with pytest.raises(AzureResponseError):
        await ado.list_pending_approvals()


@pytest.mark.parametrize("kind", ["unauthorized", "forbidden", "login_page"])
async def test_auth_failures_name_the_pat_setting(
    ado: AzureDevOpsPipelines, emulator: DevOpsEmulator, kind: Any
) -> None:
    emulator.inject_fault(kind, 1)
    with pytest.raises(AzureAuthError) as caught:
        await ado.find_pipeline("training-pipeline")
    assert caught.value.setting == "MLBOT_DEVOPS_PAT"
    assert "MLBOT_DEVOPS_PAT" in str(caught.value)
    emulator.inject_fault(kind, 1, path_contains="approvals")
    with pytest.raises(AzureAuthError):
        await ado.list_pending_approvals()


async def test_wrong_pat_is_an_auth_error_and_not_retried(
    make_adapter: Callable[..., AzureDevOpsPipelines], emulator: DevOpsEmulator, sleeps: Sleeps
) -> None:
    ado = make_adapter(pat="not-the-pat")
    with pytest.raises(AzureAuthError) as caught:
        await ado.get_variable_group(GROUP)
    assert caught.value.setting == "MLBOT_DEVOPS_PAT"
    assert sleeps.delays == []
    assert PAT not in str(caught.value) and "not-the-pat" not in str(caught.value)


async def test_wrong_project_names_the_project_setting(
    make_adapter: Callable[..., AzureDevOpsPipelines],
) -> None:
    ado = make_adapter(project="mlopz")
    with pytest.raises(AzureNotFoundError) as caught:
        await ado.find_pipeline("training-pipeline")
    assert "mlopz" in str(caught.value)
    assert "MLBOT_DEVOPS_PROJECT" in str(caught.value)
    with pytest.raises(AzureNotFoundError) as caught_approvals:
        await ado.list_pending_approvals()
    assert "MLBOT_DEVOPS_PROJECT" in str(caught_approvals.value)


async def test_unreachable_service_is_transient(sleeps: Sleeps) -> None:
    emu = DevOpsEmulator(pat=PAT)
    org_url = await emu.start()
    await emu.stop()  # the port is closed now: connections are refused
    ado = AzureDevOpsPipelines(
        org_url, "mlops", pat=PAT, policy=RetryPolicy(attempts=2, base_delay_s=0.01), sleep=sleeps
    )
    with pytest.raises(TransientAzureError) as caught:
        await ado.find_pipeline("training-pipeline")
    assert "connect" in str(caught.value)
    assert len(sleeps.delays) == 1


# --- classification of SDK exceptions without HTTP facts (pure) -------------------------------
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Operation returned a 503 status code.", TransientAzureError),
        ("Operation returned a 429 status code.", TransientAzureError),
        ("Operation returned a 404 status code.", AzureNotFoundError),
        ("Operation returned a 403 status code.", AzureAuthError),
        ("Operation returned a 400 status code.", AzureResponseError),
    ],
)
def test_classify_reads_the_status_from_sdk_messages(message: str, expected: type) -> None:
    from azure.devops.exceptions import AzureDevOpsClientRequestError

    from monitoring.devops import classify

    assert isinstance(classify(AzureDevOpsClientRequestError(message)), expected)


def test_classify_maps_authentication_and_deserialization_errors() -> None:
    from azure.devops.exceptions import AzureDevOpsAuthenticationError
    from msrest.exceptions import DeserializationError

    from monitoring.devops import classify

    auth = classify(AzureDevOpsAuthenticationError("The requested resource requires auth"))
    assert isinstance(auth, AzureAuthError) and auth.setting == "MLBOT_DEVOPS_PAT"
    assert isinstance(classify(DeserializationError("JSON is invalid")), AzureResponseError)


async def test_wrong_organization_names_the_org_setting(
    emulator: DevOpsEmulator, sleeps: Sleeps
) -> None:
    wrong_org = emulator.org_url.rsplit("/", 1)[0] + "/other-org"
    ado = AzureDevOpsPipelines(wrong_org, "mlops", pat=PAT, policy=RetryPolicy(), sleep=sleeps)
    with pytest.raises(AzureNotFoundError) as caught:
        await ado.find_pipeline("training-pipeline")
    assert "MLBOT_DEVOPS_ORG_URL" in str(caught.value)
