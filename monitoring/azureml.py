"""Azure ML training jobs through the azure-ai-ml SDK: list, get, cancel.

azure-ai-ml is synchronous, so every SDK call (client creation included) runs in a worker
thread through `call_blocking`, with a timeout and retries of transient failures. The SDK's
own retry loop is switched off so that `RetryPolicy` is the only one and its timeout holds.
`azure.ai.ml` is imported lazily because importing it takes about a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from config.clouds import AzureCloud
from domain.jobs import JobFailure, JobState, TrainingJob, Workspace
from monitoring.azure_calls import (
    AzureCallError,
    RetryPolicy,
    cached_client,
    call_blocking,
)
from monitoring.azure_core_errors import classify_azure_core
from monitoring.job_failure import (
    MAX_LOG_BYTES,
    failure_from_run_details,
    main_log,
    unavailable,
    with_log,
)
from monitoring.job_status import job_state

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

SERVICE = "Azure ML"
PUBLIC_CLOUD = "AzureCloud"

# What an operator changes when Azure refuses who we are, or what we may see.
CREDENTIAL_SETTINGS = "AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET or managed identity"
SCOPE_SETTINGS = (
    "MLBOT_AZURE_SUBSCRIPTION_ID / MLBOT_AZURE_RESOURCE_GROUP / MLBOT_AZUREML_WORKSPACES, "
    "or the identity's role on the workspace"
)
WORKSPACE_SETTINGS = (
    "MLBOT_AZURE_SUBSCRIPTION_ID / MLBOT_AZURE_RESOURCE_GROUP / MLBOT_AZUREML_WORKSPACES"
)

# Job properties in which Azure ML reports run times.
_STARTED_KEYS = ("StartTimeUtc", "startTimeUtc")
_ENDED_KEYS = ("EndTimeUtc", "endTimeUtc")
_ERROR_KEYS = ("error", "azureml.error")
_MAX_ERROR_CHARS = 500
_FAILURES_KEPT = 2048


@dataclass(frozen=True, slots=True)
class CloudEndpoints:
    """Endpoints of a cloud other than public Azure (a sovereign cloud or an emulator)."""

    resource_manager: str  # e.g. "https://127.0.0.1:8443"
    portal: str = "https://portal.azure.com/"
    active_directory: str = "https://login.microsoftonline.com/"
    aml_resource_id: str = "https://ml.azure.com/"
    storage_suffix: str = "core.windows.net"
    registry_discovery: str = "https://eastus.api.azureml.ms/"

    @property
    def name(self) -> str:
        # azure-ai-ml keeps clouds in a process-wide table that refuses to redefine a
        # name, so the name is derived from the endpoints: same endpoints, same name.
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:12]
        return f"mlbot-{digest}"

    @classmethod
    def of(cls, cloud: AzureCloud) -> CloudEndpoints:
        """The endpoints of a cloud whose Resource Manager or authority was replaced."""
        return cls(
            resource_manager=cloud.resource_manager,
            portal=cloud.portal,
            active_directory=cloud.authority_host,
            aml_resource_id=cloud.studio,
            storage_suffix=cloud.storage_suffix,
            registry_discovery=cloud.registry_discovery,
        )

    def metadata(self) -> dict[str, str]:
        return {
            "azure_portal": self.portal,
            "resource_manager": self.resource_manager.rstrip("/") + "/",
            "active_directory": self.active_directory,
            "aml_resource_id": self.aml_resource_id,
            "storage_endpoint": self.storage_suffix,
            "registry_discovery_endpoint": self.registry_discovery,
        }


@dataclass(frozen=True, slots=True)
class AzureMLOptions:
    circuit_tag: str = "circuit"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connection_verify: str | None = None  # CA bundle path; None trusts the system store
    cloud: CloudEndpoints | None = None  # endpoints of a customized cloud; None: cloud_name
    connect_timeout_s: float = 10.0
    cloud_name: str = PUBLIC_CLOUD  # one of azure-ai-ml's own clouds
    # Resource Manager's token scope in this cloud (the run history takes the same token).
    token_scope: str = "https://management.azure.com/.default"  # noqa: S105 (a scope, not a secret)
    # Read a failed job's error and log tail from the run history (see job_failure.py).
    failure_details: bool = True


# --- pure mapping ----------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """Accept datetimes and the ISO-8601 strings Azure ML uses; naive means UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00")
        # Azure ML sometimes sends 7 fractional digits, which Python does not read.
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(ch for ch in tail if ch.isdigit())
            zone = tail[len(digits) :]
            text = f"{head}.{digits[:6]}{zone}"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if mapping.get(key):
            return mapping[key]
    return None


def _error_summary(properties: Mapping[str, Any]) -> str | None:
    raw = _first(properties, _ERROR_KEYS)
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        # Errors sometimes arrive as JSON of the form {"error": {"code", "message"}}.
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        inner = decoded.get("error", decoded)
        if isinstance(inner, dict) and inner.get("message"):
            text = str(inner["message"])
    text = " ".join(text.split())
    return text[: _MAX_ERROR_CHARS - 1] + "…" if len(text) > _MAX_ERROR_CHARS else text


def training_job_from_sdk(job: Any, workspace: Workspace, circuit_tag: str) -> TrainingJob:
    """Turn an azure-ai-ml `Job` entity into mlbot's `TrainingJob`."""
    raw_status = getattr(job, "status", None) or "Unknown"
    # The SDK may hand back its JobStatus enum rather than the wire string.
    status = str(getattr(raw_status, "value", raw_status))
    state = job_state(status)
    tags: Mapping[str, Any] = getattr(job, "tags", None) or {}
    properties: Mapping[str, Any] = getattr(job, "properties", None) or {}
    creation = getattr(job, "creation_context", None)
    name = str(job.name)
    circuit = tags.get(circuit_tag)
    try:
        studio_url = job.studio_url
    except Exception:  # the SDK derives it from cloud metadata, which may be incomplete
        studio_url = None
    return TrainingJob(
        workspace=workspace.key,
        name=name,
        display_name=str(getattr(job, "display_name", None) or name),
        experiment=str(getattr(job, "experiment_name", None) or ""),
        circuit=str(circuit) if circuit else None,
        status=status,
        state=state,
        created_at=parse_time(getattr(creation, "created_at", None)),
        started_at=parse_time(_first(properties, _STARTED_KEYS)),
        ended_at=parse_time(_first(properties, _ENDED_KEYS)),
        studio_url=studio_url or None,
        error_summary=_error_summary(properties) if state is JobState.FAILED else None,
        attempt=_attempt(tags),
        created_by=str(getattr(creation, "created_by", None) or "") or None,
    )


def _attempt(tags: Mapping[str, Any]) -> int:
    """The training pipeline tags retries with `attempt`; untagged jobs are first attempts."""
    try:
        value = int(str(tags.get("attempt", 1)))
    except ValueError:
        return 1
    return value if value >= 1 else 1


def _read_log_end(sas_url: str, timeout: tuple[float, float], verify: str | bool) -> str:
    """The last MAX_LOG_BYTES of a log blob (its size first, then a Range read)."""
    import requests

    head = requests.head(sas_url, timeout=timeout, verify=verify)
    head.raise_for_status()
    size = int(head.headers.get("Content-Length", "0") or 0)
    start = max(size - MAX_LOG_BYTES, 0)
    headers = {"Range": f"bytes={start}-"} if start else {}
    answer = requests.get(sas_url, headers=headers, timeout=timeout, verify=verify)
    answer.raise_for_status()
    text = answer.content[-MAX_LOG_BYTES:].decode("utf-8", errors="replace")
    # A read from the middle starts inside a line: drop that partial line.
    return text.split("\n", 1)[1] if start and "\n" in text else text


# --- errors ----------------------------------------------------------------------------


def classify(exc: BaseException, *, operation: str = "call", subject: str = "") -> AzureCallError:
    """Turn an azure-core / azure-ai-ml exception into one of mlbot's typed errors."""
    return classify_azure_core(
        exc,
        service=SERVICE,
        operation=operation,
        subject=subject,
        credential_settings=CREDENTIAL_SETTINGS,
        forbidden_hint=SCOPE_SETTINGS,
        not_found_hint=WORKSPACE_SETTINGS,
        sdk_package="azure.ai.ml",
    )


# --- the job source --------------------------------------------------------------------


class AzureMLJobSource:
    """Lists, reads and cancels training jobs in a fixed set of Azure ML workspaces."""

    def __init__(
        self,
        credential_factory: Callable[[], TokenCredential],
        workspaces: list[Workspace],
        options: AzureMLOptions | None = None,
        *,
        executor: Executor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._credential_factory = credential_factory
        self.workspaces = list(workspaces)
        self.options = options or AzureMLOptions()
        # Azure ML's own pool (monitoring/executors.py); None is asyncio's default.
        self._executor = executor
        self._sleep = sleep
        self._rng = rng
        self._credential: TokenCredential | None = None
        self._clients: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # A failed job stays failed: its details are read once (bounded, oldest dropped).
        self._failures: OrderedDict[tuple[str, str], JobFailure] = OrderedDict()
        self._api_urls: dict[str, str] = {}  # run-history host per workspace

    async def list_active(
        self, workspace: Workspace, *, created_since: dt.datetime | None = None
    ) -> list[TrainingJob]:
        """Every job that is not archived ("ActiveOnly"), terminal ones included.

        One paged listing per call; the SDK follows `nextLink` inside the worker thread,
        one page at a time. Azure ML lists the newest jobs first, so with
        `created_since` the listing stops at the first older job and the pages past it
        are never requested.
        """
        client = await self._client(workspace)
        tag = self.options.circuit_tag

        def listing() -> list[TrainingJob]:
            found = []
            for entity in client.jobs.list():
                if entity is None:
                    continue  # the SDK yields None for jobs it cannot parse: skip them
                job = training_job_from_sdk(entity, workspace, tag)
                if created_since is not None and job.created_at and job.created_at < created_since:
                    break
                found.append(job)
            return found

        jobs = await self._call(listing, "list jobs", f"workspace {workspace.name}")
        return [await self._with_failure(client, workspace, job) for job in jobs]

    async def get(self, workspace: Workspace, name: str) -> TrainingJob:
        client = await self._client(workspace)
        tag = self.options.circuit_tag

        def read() -> TrainingJob:
            return training_job_from_sdk(client.jobs.get(name), workspace, tag)

        job = await self._call(read, "get job", f"job {name} in workspace {workspace.name}")
        return await self._with_failure(client, workspace, job)

    async def _with_failure(
        self, client: Any, workspace: Workspace, job: TrainingJob
    ) -> TrainingJob:
        """A failed job with what Azure ML says went wrong (read once per job)."""
        if job.state is not JobState.FAILED or not self.options.failure_details:
            return job
        key = (workspace.key, job.name)
        failure = self._failures.get(key)
        if failure is None:
            failure = await self._call(
                partial(self._read_failure, client, workspace, job.name),
                "read run details",
                f"job {job.name} in workspace {workspace.name}",
            )
            self._failures[key] = failure
            while len(self._failures) > _FAILURES_KEPT:
                self._failures.popitem(last=False)
        summary = failure.message or job.error_summary
        return dataclasses.replace(job, failure=failure, error_summary=summary)

    def _read_failure(self, client: Any, workspace: Workspace, name: str) -> JobFailure:
        """Run details, then the end of the main log; never raises (the alert goes anyway)."""
        import requests  # the run history and log blobs are plain HTTPS calls

        options = self.options
        verify: str | bool = options.connection_verify or True
        timeout = (min(options.connect_timeout_s, options.retry.timeout_s), options.retry.timeout_s)
        try:
            api = self._api_urls.get(workspace.key)
            if api is None:
                discovery_url = client.workspaces.get(workspace.name).discovery_url
                answer = requests.get(discovery_url, timeout=timeout, verify=verify)
                answer.raise_for_status()
                api = str(answer.json()["api"]).rstrip("/")
                self._api_urls[workspace.key] = api
            assert self._credential is not None  # made with the client
            token = self._credential.get_token(options.token_scope).token
            url = (
                f"{api}/history/v1.0/subscriptions/{workspace.subscription_id}/resourceGroups/"
                f"{workspace.resource_group}/providers/Microsoft.MachineLearningServices/"
                f"workspaces/{workspace.name}/runs/{quote(name, safe='')}/details"
            )
            answer = requests.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, verify=verify
            )
            if answer.status_code != 200:
                return unavailable(None, f"the run history answered {answer.status_code}")
            details = answer.json()
        except Exception as exc:  # any failure here only costs the details
            return unavailable(None, f"the run details could not be read ({type(exc).__name__})")
        failure = failure_from_run_details(details)
        log_files = details.get("logFiles") or {}
        log_name = main_log(log_files)
        if log_name is None:
            return unavailable(failure, "the run lists no log file")
        try:
            text = _read_log_end(str(log_files[log_name]), timeout, verify)
        except Exception as exc:
            return unavailable(failure, f"the log could not be read ({type(exc).__name__})")
        return with_log(failure, log_name, text)

    async def cancel(self, workspace: Workspace, name: str) -> None:
        """Ask Azure ML to cancel; returns once the request is accepted, not when it stops."""
        client = await self._client(workspace)

        def request_cancel() -> None:
            # polling=False: the status is followed by the regular polling, and a poller
            # would keep a background thread alive past our timeout.
            client.jobs.begin_cancel(name, polling=False)

        await self._call(request_cancel, "cancel job", f"job {name} in workspace {workspace.name}")

    async def _call(self, fn: Callable[[], Any], operation: str, subject: str) -> Any:
        return await call_blocking(
            fn,
            service=SERVICE,
            operation=operation,
            classify=partial(classify, operation=operation, subject=subject),
            policy=self.options.retry,
            executor=self._executor,
            sleep=self._sleep,
            rng=self._rng,
        )

    async def _client(self, workspace: Workspace) -> Any:
        return await cached_client(
            self._clients,
            workspace.key,
            self._locks.setdefault(workspace.key, asyncio.Lock()),
            partial(
                self._call,
                partial(self._create_client, workspace),
                "connect",
                f"workspace {workspace.name}",
            ),
        )

    def _create_client(self, workspace: Workspace) -> Any:
        from azure.ai.ml import MLClient  # lazy: the import costs about a second

        if self._credential is None:
            self._credential = self._credential_factory()
        options = self.options
        kwargs: dict[str, Any] = {
            "show_progress": False,
            "enable_telemetry": False,
            # Retries belong to RetryPolicy; the SDK's own loop would outlast our timeout.
            "retry_total": 0,
            "connection_timeout": min(options.connect_timeout_s, options.retry.timeout_s),
            "read_timeout": options.retry.timeout_s,
        }
        if options.connection_verify is not None:
            kwargs["connection_verify"] = options.connection_verify
        if options.cloud is not None:
            kwargs["cloud"] = options.cloud.name
            kwargs["cloud_metadata"] = options.cloud.metadata()
        else:
            # Named explicitly: otherwise MLClient falls back to a process-wide setting that
            # another client may have changed.
            kwargs["cloud"] = options.cloud_name
        return MLClient(
            self._credential,
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.name,
            **kwargs,
        )
