"""A local stand-in for the Azure Resource Manager jobs API of Azure Machine Learning.

It speaks the REST that azure-ai-ml's `MLClient.jobs` sends: list (with `listViewType`
and `nextLink` paging), get, and cancel (a long-running operation answered with 202 and
a `Location`). State lives in one `AzureMLEmulator` object, so several can run in one
process. Tests queue faults for the next requests and read the request log. Besides the
jobs it builds itself, it serves recorded ARM bodies as given (`add_recorded_job`), so
Microsoft's published examples reach the SDK unchanged.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from domain.jobs import Workspace
from sandbox.faults import FaultKind, FaultQueue, LoggedRequest, arm_error
from sandbox.https_site import HttpsSite
from sandbox.tls import TlsMaterial

_PROVIDER = "Microsoft.MachineLearningServices"
_WORKSPACE_PREFIX = (
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + _PROVIDER + "/workspaces/{ws}"
)
_TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
LIST_VIEW_TYPES = ("ActiveOnly", "ArchivedOnly", "All")


@dataclass(slots=True)
class EmulatedJob:
    """One Azure ML job as the emulator stores it; mutate freely between requests."""

    workspace: Workspace
    name: str
    status: str = "Queued"
    display_name: str | None = None
    experiment: str = "Default"
    tags: dict[str, str] = field(default_factory=dict)
    job_type: str = "Command"
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error_message: str | None = None
    archived: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    # ARM's systemData.createdBy: the pipeline's service principal, or a person.
    created_by: str = "mlops-pipeline"
    created_by_type: str = "Application"

    @property
    def arm_id(self) -> str:
        ws = self.workspace
        prefix = _WORKSPACE_PREFIX.format(sub=ws.subscription_id, rg=ws.resource_group, ws=ws.name)
        return f"{prefix}/jobs/{self.name}"

    def studio_url(self, studio_base: str) -> str:
        ws = self.workspace
        wsid = (
            f"/subscriptions/{ws.subscription_id}/resourcegroups/{ws.resource_group}"
            f"/workspaces/{ws.name}"
        )
        return f"{studio_base.rstrip('/')}/runs/{quote(self.name)}?wsid={wsid}"

    @property
    def error_code(self) -> str:
        """Azure ML's code for the failure: the message's own prefix, else a user error."""
        prefix = (self.error_message or "").split(":", 1)[0].strip()
        return prefix if prefix in ("UserError", "SystemError") else "UserError"

    def std_log(self) -> str:
        """The job's `user_logs/std_log.txt` as a training script would write it."""
        lines = [
            f"Starting training job {self.name} ({self.tags.get('circuit', 'no circuit')}, "
            f"attempt {self.tags.get('attempt', '1')})",
            "Loading dataset from azureml://datastores/workspaceblobstore/paths/training/",
        ]
        lines += [f"epoch {epoch}/20 loss={1.0 / epoch:.4f}" for epoch in range(1, 6)]
        if self.status == "Failed":
            message = self.error_message or "training failed"
            lines += [
                "Traceback (most recent call last):",
                '  File "train.py", line 88, in <module>',
                "    main()",
                '  File "train.py", line 61, in main',
                "    loss = trainer.step(batch)",
                f"RuntimeError: {message}",
                # Real logs carry SAS URLs; whoever shows this log must mask them.
                "Uploading outputs to https://stsandbox.blob.core.windows.net/azureml/"
                f"ExperimentRun/dcid.{self.name}/outputs?sv=2023-01-03&sr=c&sp=rcwl"
                "&sig=c2FuZGJveC1zaWduYXR1cmU%3D",
            ]
        return "\n".join(lines) + "\n"

    def run_details(self, log_url: str) -> dict[str, Any]:
        """The run history's `RunDetails` of this job (the shape of run-history.json)."""
        error: dict[str, Any] | None = None
        if self.status == "Failed":
            error = {
                "error": {
                    "code": self.error_code,
                    "message": self.error_message or "Execution failed.",
                    "messageFormat": None,
                    "messageParameters": {},
                    "referenceCode": None,
                    "detailsUri": None,
                    "target": None,
                    "details": [],
                    "innerError": None,
                    "additionalInfo": None,
                },
                "correlation": {"operation": None, "request": None},
                "environment": None,
                "location": None,
                "time": _arm_time(self.ended_at or self.created_at),
                "componentName": "CommonRuntime",
            }
        return {
            "runId": self.name,
            "runUuid": None,
            "parentRunUuid": None,
            "rootRunUuid": None,
            "target": "cpu-cluster",
            "status": self.status,
            "parentRunId": None,
            "startTimeUtc": _arm_time(self.started_at) if self.started_at else None,
            "endTimeUtc": _arm_time(self.ended_at) if self.ended_at else None,
            "error": error,
            "warnings": None,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": None,
            "logFiles": {"user_logs/std_log.txt": log_url},
            "jobCost": None,
            "revision": 1,
            "runTypeV2": {"orchestrator": None, "traits": [], "attribution": None},
            "settings": {},
            "services": {},
        }

    def to_rest(self, studio_base: str) -> dict[str, Any]:
        """The ARM JSON of a job (`JobBase` resource with `CommandJob` properties)."""
        ws = self.workspace
        properties = dict(self.properties)
        # Azure ML reports run times as properties of the job, not as fields.
        if self.started_at is not None:
            properties["StartTimeUtc"] = _service_time(self.started_at)
        if self.ended_at is not None:
            properties["EndTimeUtc"] = _service_time(self.ended_at)
        compute = (
            _WORKSPACE_PREFIX.format(sub=ws.subscription_id, rg=ws.resource_group, ws=ws.name)
            + "/computes/cpu-cluster"
        )
        # A pipeline job has settings and steps, not a command of its own (PipelineJob).
        if self.job_type == "Pipeline":
            kind: dict[str, Any] = {"settings": {}, "inputs": {}, "outputs": {}}
        else:
            kind = {
                "command": "python train.py",
                "environmentId": "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
                "inputs": {},
                "outputs": {},
                "resources": {"instanceCount": 1},
            }
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": f"{_PROVIDER}/workspaces/jobs",
            "systemData": {
                "createdAt": _arm_time(self.created_at),
                "createdBy": self.created_by,
                "createdByType": self.created_by_type,
                "lastModifiedAt": _arm_time(self.ended_at or self.started_at or self.created_at),
            },
            "properties": {
                "jobType": self.job_type,
                "status": self.status,
                "displayName": self.display_name or self.name,
                "experimentName": self.experiment,
                "description": None,
                "tags": dict(self.tags),
                "properties": properties,
                "isArchived": self.archived,
                "computeId": compute,
                **kind,
                "services": {
                    "Studio": {
                        "jobServiceType": "Studio",
                        "endpoint": self.studio_url(studio_base),
                    },
                    "Tracking": {
                        "jobServiceType": "Tracking",
                        "endpoint": f"azureml://tracking{self.arm_id}",
                    },
                },
            },
        }


@dataclass(slots=True)
class RecordedJob:
    """A job whose ARM JSON is given whole (a published example): served as it is."""

    workspace: Workspace
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("name", ""))

    @property
    def archived(self) -> bool:
        return bool((self.body.get("properties") or {}).get("isArchived"))

    @property
    def created_at(self) -> dt.datetime:
        raw = (self.body.get("systemData") or {}).get("createdAt")
        try:
            moment = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    def to_rest(self, studio_base: str) -> dict[str, Any]:
        return copy.deepcopy(self.body)


def skip_token(offset: int) -> str:
    """The opaque `$skipToken` of the page that starts at `offset`."""
    return base64.urlsafe_b64encode(f"jobs:{offset}".encode()).decode().rstrip("=")


def _offset_of(token: str | None) -> int | None:
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError):
        return None
    return offset if kind == "jobs" and offset >= 0 else None


def _arm_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _service_time(value: dt.datetime) -> str:
    # The run-time properties are written as Azure ML writes them (`az ml job show`):
    # UTC, a space between date and time, whole seconds, no zone.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class AzureMLEmulator:
    """In-memory Azure ML jobs behind an HTTPS aiohttp server on 127.0.0.1."""

    def __init__(
        self,
        *,
        page_size: int = 100,
        studio_base: str = "https://ml.azure.com",
        instant_cancel: bool = True,
        tls: TlsMaterial | None = None,
    ) -> None:
        self.page_size = page_size
        self.studio_base = studio_base
        # False leaves canceled jobs in CancelRequested until a scenario moves them on.
        self.instant_cancel = instant_cancel
        self.jobs: dict[tuple[str, str], EmulatedJob] = {}  # (workspace key, job name)
        self.recorded: dict[tuple[str, str], RecordedJob] = {}  # served as given
        self.requests: list[LoggedRequest] = []
        # Run-history and log calls, kept apart so that counts of job calls stay as they are.
        self.detail_requests: list[LoggedRequest] = []
        self.logs_readable = True  # False: log blobs answer 403, as an expired SAS does
        self._faults = FaultQueue(f"{_PROVIDER}/workspaces/jobs/read")
        self._site = HttpsSite(self.app, tls, name="the emulator")

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._site.base_url

    @property
    def ca_path(self) -> str:
        return self._site.ca_path

    def app(self) -> web.Application:
        app = web.Application()
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        """The emulator's Resource Manager routes, on any application (one ARM front)."""
        ws = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + _PROVIDER + "/workspaces/{ws}"
        app.router.add_get(ws + "/jobs", self._list_jobs)
        app.router.add_get(ws + "/jobs/{name}", self._get_job)
        app.router.add_post(ws + "/jobs/{name}/cancel", self._cancel_job)
        app.router.add_get(ws + "/jobs/{name}/cancelOperation", self._cancel_operation)
        # Where a failed job's error and logs live: the workspace's discovery URL names
        # the run history's host, whose run details list the log files as SAS URLs.
        app.router.add_get(ws, self._get_workspace)
        app.router.add_get("/discovery/workspaces/{sub}/{rg}/{ws}", self._discovery)
        app.router.add_get("/history/v1.0" + ws + "/runs/{name}/details", self._run_details)
        app.router.add_route("*", "/logs/{sub}/{rg}/{ws}/{name}/{log:.+}", self._log_file)

    async def start(self) -> str:
        """Serve on an ephemeral port of 127.0.0.1; return the base URL."""
        self._faults.open()
        return await self._site.start()

    async def stop(self) -> None:
        self._faults.close()  # releases answers held back by SLOW faults
        await self._site.stop()

    # --- state -------------------------------------------------------------------------

    def add_job(self, workspace: Workspace, name: str, **fields: Any) -> EmulatedJob:
        job = EmulatedJob(workspace=workspace, name=name, **fields)
        self.jobs[(workspace.key.lower(), name)] = job
        return job

    def add_jobs(self, jobs: Iterable[EmulatedJob]) -> None:
        for job in jobs:
            self.jobs[(job.workspace.key.lower(), job.name)] = job

    def add_recorded_job(self, workspace: Workspace, body: dict[str, Any]) -> RecordedJob:
        """Serve `body` (a job's ARM JSON, e.g. a published example) in list and get."""
        job = RecordedJob(workspace, copy.deepcopy(body))
        self.recorded[(workspace.key.lower(), job.name)] = job
        return job

    def job(self, workspace: Workspace, name: str) -> EmulatedJob:
        return self.jobs[(workspace.key.lower(), name)]

    def set_status(
        self,
        workspace: Workspace,
        name: str,
        status: str,
        *,
        error_message: str | None = None,
        at: dt.datetime | None = None,
    ) -> EmulatedJob:
        """Move a job to `status`, stamping start and end times the way Azure ML does."""
        job = self.job(workspace, name)
        now = at or dt.datetime.now(dt.UTC)
        job.status = status
        if status in ("Running", "Finalizing") and job.started_at is None:
            job.started_at = now
        if status in _TERMINAL and job.ended_at is None:
            job.ended_at = now
        if error_message is not None:
            job.error_message = error_message
        return job

    def snapshot(self) -> list[dict[str, Any]]:
        """Plain data of every job, for inspection endpoints and assertions."""
        return [
            {
                "workspace": job.workspace.key,
                "name": job.name,
                "status": job.status,
                "experiment": job.experiment,
                "tags": dict(job.tags),
                "archived": job.archived,
            }
            for job in self.jobs.values()
        ]

    # --- faults and inspection ---------------------------------------------------------

    def inject(self, kind: FaultKind | str, count: int = 1, **params: float) -> None:
        """Answer the next `count` requests with a fault (`retry_after_s`, `delay_s`)."""
        self._faults.inject(kind, count, **params)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def hanging(self) -> int:
        """How many requests "hang" faults hold right now."""
        return self._faults.hanging

    async def wait_hanging(self, count: int) -> None:
        """Until at least `count` requests are held by "hang" faults."""
        await self._faults.wait_hanging(count)

    def release_hung(self) -> None:
        """Answer the requests held by "hang" faults (and let later ones through)."""
        self._faults.release_hung()

    def requests_to(self, path_suffix: str, method: str = "GET") -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- handlers ----------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> web.Response | None:
        """Log the request, check the bearer token and apply a queued fault."""
        self.requests.append(LoggedRequest(request.method, request.path, dict(request.query)))
        return await self._faults.admit(request)

    def _workspace(self, request: web.Request) -> Workspace:
        info = request.match_info
        return Workspace(info["sub"], info["rg"], info["ws"])

    def _api_version_error(self, request: web.Request) -> web.Response | None:
        if not request.query.get("api-version"):
            return arm_error(400, "MissingApiVersionParameter", "api-version is required.")
        return None

    async def _list_jobs(self, request: web.Request) -> web.Response:
        refused = await self._admit(request) or self._api_version_error(request)
        if refused is not None:
            return refused
        view = request.query.get("listViewType", "ActiveOnly")
        if view not in LIST_VIEW_TYPES:
            return arm_error(400, "InvalidListViewType", f"Unknown listViewType {view!r}.")
        key = self._workspace(request).key.lower()
        every: list[tuple[tuple[str, str], EmulatedJob | RecordedJob]] = [
            *self.jobs.items(),
            *self.recorded.items(),
        ]
        selected = [
            job
            for (ws_key, _), job in every
            if ws_key == key
            and (
                view == "All"
                or (view == "ActiveOnly" and not job.archived)
                or (view == "ArchivedOnly" and job.archived)
            )
        ]
        selected.sort(key=lambda j: j.created_at, reverse=True)  # newest first, like Azure ML
        offset = _offset_of(request.query.get("$skipToken"))
        if offset is None:
            return arm_error(400, "InvalidSkipToken", "The continuation token is invalid.")
        page = selected[offset : offset + self.page_size]
        body: dict[str, Any] = {"value": [job.to_rest(self.studio_base) for job in page]}
        if offset + self.page_size < len(selected):
            # Jobs_List documents `$skipToken`: an opaque token that only the service reads.
            next_query = f"api-version={request.query['api-version']}&listViewType={view}"
            next_query += f"&$skipToken={skip_token(offset + self.page_size)}"
            body["nextLink"] = f"{self._origin(request)}{request.path}?{next_query}"
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _get_job(self, request: web.Request) -> web.Response:
        refused = await self._admit(request) or self._api_version_error(request)
        if refused is not None:
            return refused
        key = (self._workspace(request).key.lower(), request.match_info["name"])
        job: EmulatedJob | RecordedJob | None = self.jobs.get(key) or self.recorded.get(key)
        if job is None:
            return arm_error(404, "UserError", f"Job {request.match_info['name']} not found.")
        return web.json_response(job.to_rest(self.studio_base))

    async def _cancel_job(self, request: web.Request) -> web.Response:
        refused = await self._admit(request) or self._api_version_error(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        job = self.jobs.get((self._workspace(request).key.lower(), name))
        if job is None:
            return arm_error(404, "UserError", f"Job {name} not found.")
        if job.status not in _TERMINAL:
            self.set_status(
                job.workspace, name, "Canceled" if self.instant_cancel else "CancelRequested"
            )
        location = (
            f"{self._origin(request)}{request.path.removesuffix('/cancel')}/cancelOperation"
            f"?api-version={request.query['api-version']}"
        )
        return web.Response(status=202, headers={"Location": location, "Retry-After": "0"})

    async def _cancel_operation(self, request: web.Request) -> web.Response:
        """The cancel operation's `Location`: 202 while cancellation is pending, then 200."""
        refused = await self._admit(request)
        if refused is not None:
            return refused
        job = self.jobs.get((self._workspace(request).key.lower(), request.match_info["name"]))
        if job is None:
            return arm_error(404, "UserError", "Job not found.")
        if job.status == "CancelRequested":
            return web.Response(status=202, headers={"Retry-After": "1"})
        return web.Response(status=200)

    # --- run history (error details and logs) ------------------------------------------

    async def _get_workspace(self, request: web.Request) -> web.Response:
        refused = self._api_version_error(request)
        if refused is not None:
            return refused
        ws = self._workspace(request)
        self.detail_requests.append(LoggedRequest(request.method, request.path, {}))
        prefix = _WORKSPACE_PREFIX.format(sub=ws.subscription_id, rg=ws.resource_group, ws=ws.name)
        discovery = (
            f"{self._origin(request)}/discovery/workspaces/"
            f"{ws.subscription_id}/{ws.resource_group}/{ws.name}"
        )
        return web.json_response(
            {
                "id": prefix,
                "name": ws.name,
                "type": f"{_PROVIDER}/workspaces",
                "location": "westeurope",
                "kind": "Default",
                "identity": {"type": "SystemAssigned"},
                "sku": {"name": "Basic", "tier": "Basic"},
                "properties": {
                    "friendlyName": ws.name,
                    "discoveryUrl": discovery,
                    "workspaceId": "00000000-0000-0000-0000-00000000beef",
                    "provisioningState": "Succeeded",
                    "publicNetworkAccess": "Enabled",
                },
            }
        )

    async def _discovery(self, request: web.Request) -> web.Response:
        self.detail_requests.append(LoggedRequest(request.method, request.path, {}))
        origin = self._origin(request)
        services = ("api", "catalog", "experimentation", "history", "modelmanagement")
        return web.json_response(
            {name: origin for name in services} | {"studio": self.studio_base.rstrip("/")}
        )

    async def _run_details(self, request: web.Request) -> web.Response:
        self.detail_requests.append(LoggedRequest(request.method, request.path, {}))
        if not request.headers.get("Authorization", "").lower().startswith("bearer "):
            return arm_error(401, "AuthenticationFailed", "Bearer token required.")
        ws = self._workspace(request)
        name = request.match_info["name"]
        job = self.jobs.get((ws.key.lower(), name))
        if job is None:
            return arm_error(404, "UserError", f"Run {name} not found.")
        log_url = (
            f"{self._origin(request)}/logs/{ws.subscription_id}/{ws.resource_group}/{ws.name}"
            f"/{quote(name)}/user_logs/std_log.txt?sv=2023-01-03&sr=b&sp=r&sig=c2FuZGJveA%3D%3D"
        )
        return web.json_response(job.run_details(log_url))

    async def _log_file(self, request: web.Request) -> web.StreamResponse:
        """A log blob behind a read-only SAS URL: HEAD for its size, GET with Range."""
        self.detail_requests.append(LoggedRequest(request.method, request.path, {}))
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        if not request.query.get("sig") or not self.logs_readable:
            return web.Response(status=403, text="AuthenticationFailed: SAS not valid")
        ws = Workspace(
            request.match_info["sub"], request.match_info["rg"], request.match_info["ws"]
        )
        job = self.jobs.get((ws.key.lower(), request.match_info["name"]))
        if job is None or request.match_info["log"] != "user_logs/std_log.txt":
            return web.Response(status=404, text="BlobNotFound")
        content = job.std_log().encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers | {"Content-Length": str(len(content))})
        start, status = 0, 200
        wanted = request.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted[6:].split("-", 1)[0].isdigit():
            start, status = min(int(wanted[6:].split("-", 1)[0]), len(content)), 206
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        return web.Response(status=status, body=content[start:], headers=headers)

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"
