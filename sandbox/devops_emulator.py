"""A local stand-in for the slice of the Azure DevOps REST API that mlbot uses.

It speaks what the real `azure-devops` SDK (7.1) and our approvals calls send:

- `OPTIONS {org}/_apis` (location negotiation) and `GET {org}/_apis/ResourceAreas`
  (an empty list, which keeps every area on the organization URL);
- pipelines: list, get, run (`POST …/pipelines/{id}/runs` with `templateParameters`),
  list runs, get run;
- approvals: `GET` / `PATCH {org}/{project}/_apis/pipelines/approvals` and `GET …/{id}`,
  in the documented 7.1 `Approval` shape (no pipeline or run: the run's timeline has
  them);
- builds: list (`statusFilter`), get, and the build timeline, whose `Stage`, `Checkpoint`
  and `Checkpoint.Approval` records tie an approval (record id = approval id) to its stage
  and check suite (the `Checkpoint` record's id);
- check suites: `GET {project}/_apis/pipelines/checks/runs/{checkSuiteId}`, whose check
  runs name the environment they guard; environments: `GET …/distributedtask/environments/{id}`;
- variable groups: `GET {project}/_apis/distributedtask/variablegroups?groupName=`.

All state lives on one `DevOpsEmulator` instance. Tests and scenarios drive it directly
(complete a run or one of its stages, add an approval, set variables), react to queued runs through
`run_hooks`, inject faults for the next requests, and assert on `requests`. `answer_with`
serves a recorded body (a published example) as given.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

log = logging.getLogger(__name__)

FaultKind = Literal[
    "throttle",
    "server_error",
    "slow",
    "malformed",
    "unauthorized",
    "forbidden",
    "login_page",
    "missing_scope",
    # The request is carried out (a run is queued), then answered with a 500: a gateway
    # that failed after the service acted.
    "error_after_acting",
]
RunState = Literal["unknown", "inProgress", "canceling", "completed"]
RunResult = Literal["unknown", "succeeded", "failed", "canceled"]

# Location ids the SDK asks for; they are fixed in the generated clients.
_LOC_PIPELINES = "28e1305e-2afe-47bf-abaf-cbb0e6a91988"
_LOC_RUNS = "7859261e-d2e9-4a68-b820-a5d84cc5bb3d"
_LOC_VARIABLE_GROUPS = "f5b09dd5-9d54-45a1-8b5a-1c8287d634cc"
_LOC_RESOURCE_AREAS = "e81700f7-3be2-46de-8624-2eb35882fcaa"
_LOC_BUILD_DEFINITIONS = "dbeaf647-6167-421a-bda9-c9327b25e2e6"
_LOC_BUILDS = "0cd358e1-9217-4d94-8269-1c1ee6f93dcf"
_LOC_TIMELINE = "8baac422-4c6e-4de5-8532-db96d92acffa"
_LOC_CHECK_SUITES = "91282c1d-c183-444f-9554-1485bfb3879d"
_LOC_ENVIRONMENTS = "8572b1fc-2482-47fa-8f74-7e3ed53ee54b"
# The check type of "Approvals" in Azure DevOps (the same in every organization).
APPROVAL_CHECK_TYPE = "8c6f20a7-a545-4486-9777-f762fafe0d4d"


def _location(
    loc_id: str, area: str, resource: str, template: str, resource_version: int = 1
) -> dict[str, Any]:
    return {
        "id": loc_id,
        "area": area,
        "resourceName": resource,
        "routeTemplate": template,
        "resourceVersion": resource_version,
        "minVersion": 1.0,
        "maxVersion": 7.1,
        "releasedVersion": "7.1",
    }


_LOCATIONS = [
    _location(_LOC_PIPELINES, "pipelines", "pipelines", "{project}/_apis/{area}/{pipelineId}"),
    _location(
        _LOC_RUNS, "pipelines", "runs", "{project}/_apis/{area}/{pipelineId}/{resource}/{runId}"
    ),
    _location(
        _LOC_VARIABLE_GROUPS,
        "distributedtask",
        "variablegroups",
        "{project}/_apis/{area}/{resource}/{groupId}",
        resource_version=2,
    ),
    _location(_LOC_RESOURCE_AREAS, "Location", "ResourceAreas", "_apis/{resource}/{areaId}"),
    _location(
        _LOC_BUILD_DEFINITIONS,
        "build",
        "definitions",
        "{project}/_apis/{area}/{resource}/{definitionId}",
        resource_version=7,
    ),
    _location(_LOC_BUILDS, "build", "builds", "{project}/_apis/{area}/{resource}/{buildId}", 7),
    _location(
        _LOC_TIMELINE,
        "build",
        "Timeline",
        "{project}/_apis/{area}/builds/{buildId}/{resource}/{timelineId}",
        2,
    ),
    _location(
        _LOC_CHECK_SUITES,
        "PipelinesChecks",
        "runs",
        "{project}/_apis/pipelines/checks/{resource}/{checkSuiteId}",
    ),
    _location(
        _LOC_ENVIRONMENTS,
        "distributedtask",
        "environments",
        "{project}/_apis/{area}/{resource}/{environmentId}",
    ),
]


_BUILD_STATUS = {
    "inProgress": "inProgress",
    "canceling": "cancelling",
    "completed": "completed",
    "unknown": "none",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class EmulatedPipeline:
    id: int
    name: str
    folder: str = "\\"
    revision: int = 1
    yaml_path: str = "azure-pipelines.yml"
    # Declared template parameters; None accepts any (unknown ones are refused otherwise,
    # as Azure DevOps does).
    parameters: tuple[str, ...] | None = None


@dataclass
class EmulatedRun:
    id: int
    pipeline_id: int
    pipeline_name: str
    name: str
    created: datetime
    template_parameters: dict[str, str]
    variables: dict[str, str]
    state: RunState = "inProgress"
    result: RunResult | None = None
    finished: datetime | None = None
    requested_by: str = ""
    # Stage name (`Deploy_Prod`) -> (result, finish time): the run's timeline.
    stages: dict[str, tuple[str, datetime]] = field(default_factory=dict)


@dataclass
class EmulatedApproval:
    id: str
    run_id: int
    pipeline_id: int
    pipeline_name: str
    run_name: str
    created: datetime
    approvers: tuple[str, ...]
    instructions: str = ""
    status: str = "pending"
    comment: str = ""
    decided_by: str = ""
    modified: datetime | None = None
    stage: str = "Deploy"
    environment_id: int | None = None  # the environment whose check this approval is
    check_suite_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class EmulatedVariableGroup:
    id: int
    name: str
    variables: dict[str, str]
    secrets: frozenset[str] = frozenset()
    description: str = ""
    modified: datetime | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it (no credentials kept)."""

    method: str
    path: str
    query: Mapping[str, str]
    accept: str
    auth_scheme: str
    body: Any
    raw_body: str


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    path_contains: str | None
    method: str | None
    retry_after_s: float
    delay_s: float


@dataclass
class _Reply:
    status: int
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


RunHook = Callable[[EmulatedRun], Awaitable[None] | None]
_Handler = Callable[[web.Request, re.Match[str], Any, str], Awaitable[_Reply]]


def _wrapped_exception(message: str, type_key: str, status: int) -> _Reply:
    """Azure DevOps' error body (a serialized .NET exception), as the SDK parses it."""
    return _Reply(
        status,
        {
            "$id": "1",
            "innerException": None,
            "message": message,
            "typeName": f"Microsoft.TeamFoundation.{type_key}, Microsoft.TeamFoundation",
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        },
    )


def _collection(items: list[Any]) -> dict[str, Any]:
    return {"count": len(items), "value": items}


class DevOpsEmulator:
    """In-memory Azure DevOps organization with one project, served over loopback HTTP.

    `start()` binds 127.0.0.1 on a free port and returns the organization URL
    (`http://127.0.0.1:PORT/sandbox-org`), which is what `MLBOT_DEVOPS_ORG_URL` takes.
    """

    def __init__(
        self,
        *,
        organization: str = "sandbox-org",
        project: str = "mlops",
        pat: str = "sandbox-pat",
        pipelines: tuple[str, ...] = (
            "training-pipeline",
            "deployment-pipeline",
            "rollback-pipeline",
        ),
        variable_groups: Mapping[str, Mapping[str, str]] | None = None,
        pat_identity: str = "mlbot service (PAT)",
        bearer_identity: str = "mlbot service (Entra ID)",
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.organization = organization
        self.project = project
        self.project_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{organization}/{project}"))
        self.pat = pat
        self.pat_identity = pat_identity
        self.bearer_identity = bearer_identity
        self._clock = clock or (lambda: datetime.now(UTC))
        self._host = host
        self._port = port
        self.pipelines: dict[int, EmulatedPipeline] = {}
        # Pipelines - List returns this many per page at most (tests make it small).
        self.pipelines_page_size = 100
        self.runs: dict[int, EmulatedRun] = {}
        self.approvals: dict[str, EmulatedApproval] = {}
        self.variable_groups: dict[str, EmulatedVariableGroup] = {}
        self.environments: dict[int, str] = {}  # id -> name
        self.requests: list[RecordedRequest] = []
        self.approval_updates: list[list[dict[str, Any]]] = []
        # Recorded answers (published examples), served as given before any route.
        self.recorded: list[tuple[str, re.Pattern[str], _Reply]] = []
        # Called with each queued run (sync or async callables), before the answer is sent.
        self.run_hooks: list[RunHook] = []
        self._faults: list[_Fault] = []
        self._next_run_id = 1
        self._next_group_id = 1
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        for name in pipelines:
            self.add_pipeline(name)
        for group_name, values in (variable_groups or {}).items():
            self.set_variables(group_name, values)
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("GET", re.compile(r"^/_apis/resourceareas/?$", re.I), self._resource_areas),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/approvals/?$", re.I),
             self._list_approvals),
            ("PATCH", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/approvals/?$", re.I),
             self._update_approvals),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/approvals/(?P<aid>[^/]+)/?$",
                        re.I),
             self._get_approval),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/?$", re.I),
             self._list_pipelines),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/build/definitions/?$", re.I),
             self._list_definitions),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/(?P<pid>\d+)/?$", re.I),
             self._get_pipeline),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/(?P<pid>\d+)/runs/?$", re.I),
             self._list_runs),
            ("POST", re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/(?P<pid>\d+)/runs/?$", re.I),
             self._queue_run),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/(?P<pid>\d+)/runs/(?P<rid>\d+)/?$",
                        re.I),
             self._get_run),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/distributedtask/variablegroups/?$", re.I),
             self._list_variable_groups),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/build/builds/?$", re.I),
             self._list_builds),
            ("GET", re.compile(r"^/(?P<project>[^/]+)/_apis/build/builds/(?P<bid>\d+)/?$", re.I),
             self._get_build),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/build/builds/(?P<bid>\d+)/timeline/?$",
                        re.I),
             self._get_timeline),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/pipelines/checks/runs/(?P<sid>[^/]+)/?$",
                        re.I),
             self._get_check_suite),
            ("GET",
             re.compile(r"^/(?P<project>[^/]+)/_apis/distributedtask/environments/(?P<eid>\d+)/?$",
                        re.I),
             self._get_environment),
        ]  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self) -> str:
        """Serve on loopback; returns the organization URL."""
        runner = web.AppRunner(self.build_app(), shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self._base_url = f"http://{self._host}:{port}"
        return self.org_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevOpsEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def org_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("emulator not started")
        return f"{self._base_url}/{self.organization}"

    # --- state control -----------------------------------------------------------------
    def add_pipeline(
        self, name: str, *, folder: str = "\\", parameters: tuple[str, ...] | None = None
    ) -> EmulatedPipeline:
        pipeline_id = max(self.pipelines, default=0) + 1
        pipeline = EmulatedPipeline(pipeline_id, name, folder=folder, parameters=parameters)
        self.pipelines[pipeline_id] = pipeline
        return pipeline

    def pipeline_named(self, name: str) -> EmulatedPipeline:
        for pipeline in self.pipelines.values():
            if pipeline.name.lower() == name.lower():
                return pipeline
        raise KeyError(name)

    def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str] | None = None
    ) -> EmulatedRun:
        """Queue a run as if someone else had (no hooks are called)."""
        return self._new_run(self.pipeline_named(pipeline_name), dict(template_parameters or {}))

    def runs_of(self, pipeline_name: str) -> list[EmulatedRun]:
        return [r for r in self.runs.values() if r.pipeline_name.lower() == pipeline_name.lower()]

    def complete_run(self, run_id: int, result: RunResult = "succeeded") -> EmulatedRun:
        run = self.runs[run_id]
        run.state = "completed"
        run.result = result
        run.finished = self._clock()
        return run

    def finish_stage(self, run_id: int, stage: str, result: RunResult = "succeeded") -> EmulatedRun:
        """Record that one stage of a run ended (what the run's timeline shows)."""
        run = self.runs[run_id]
        run.stages[stage] = (result, self._clock())
        return run

    def fail_run(self, run_id: int) -> EmulatedRun:
        return self.complete_run(run_id, "failed")

    def cancel_run(self, run_id: int) -> EmulatedRun:
        return self.complete_run(run_id, "canceled")

    def add_approval(
        self,
        run_id: int,
        *,
        approvers: tuple[str, ...] = ("Release Approvers",),
        instructions: str = "",
        stage: str = "Deploy",
        environment: str | None = None,
    ) -> EmulatedApproval:
        """A pending approval on an existing run: the approval check of `environment`
        (an environment of that name is created when new) at `stage`."""
        run = self.runs[run_id]
        approval = EmulatedApproval(
            id=str(uuid.uuid4()),
            run_id=run.id,
            pipeline_id=run.pipeline_id,
            pipeline_name=run.pipeline_name,
            run_name=run.name,
            created=self._clock(),
            approvers=approvers,
            instructions=instructions,
            stage=stage,
            environment_id=self.environment_id(environment) if environment else None,
        )
        self.approvals[approval.id] = approval
        return approval

    def environment_id(self, name: str) -> int:
        """The id of the environment `name`, created when new (names compare without case)."""
        for existing_id, existing in self.environments.items():
            if existing.lower() == name.lower():
                return existing_id
        new_id = len(self.environments) + 1
        self.environments[new_id] = name
        return new_id

    def set_variables(
        self,
        group_name: str,
        values: Mapping[str, str],
        *,
        secrets: frozenset[str] = frozenset(),
        replace: bool = False,
    ) -> EmulatedVariableGroup:
        """Create the group or update its variables (merged unless `replace`)."""
        group = self.variable_groups.get(group_name)
        if group is None:
            group = EmulatedVariableGroup(self._next_group_id, group_name, {})
            self._next_group_id += 1
            self.variable_groups[group_name] = group
        if replace:
            group.variables = {}
        group.variables.update(values)
        group.secrets = group.secrets | secrets
        group.modified = self._clock()
        return group

    def inject_fault(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        retry_after_s: float = 1,
        delay_s: float = 2.0,
    ) -> None:
        """Make the next `count` matching requests fail as `kind`.

        Location negotiation (`OPTIONS _apis`, `ResourceAreas`) is never matched unless
        `path_contains` names it, so faults hit the API call under test.
        """
        self._faults.append(
            _Fault(kind, count, path_contains, method.upper() if method else None,
                   retry_after_s, delay_s)
        )  # fmt: skip

    def answer_with(self, method: str, path: str, body: Any, status: int = 200) -> None:
        """Answer `method` requests whose path below the organization matches the regular
        expression `path` (e.g. `/[^/]+/_apis/distributedtask/variablegroups`) with `body`."""
        pattern = re.compile(f"^{path}/?$", re.IGNORECASE)
        self.recorded.append((method.upper(), pattern, _Reply(status, body)))

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests_to(self, path_contains: str, method: str | None = None) -> list[RecordedRequest]:
        needle = path_contains.lower()
        return [
            r
            for r in self.requests
            if needle in r.path.lower() and (method is None or r.method == method.upper())
        ]

    def snapshot(self) -> dict[str, Any]:
        """Plain-data view of runs and approvals (for `/_sandbox/state`)."""
        return {
            "pipeline_runs": [
                {
                    "id": r.id,
                    "pipeline": r.pipeline_name,
                    "name": r.name,
                    "state": r.state,
                    "result": r.result,
                    "templateParameters": dict(r.template_parameters),
                }
                for r in self.runs.values()
            ],
            "approvals": [
                {
                    "id": a.id,
                    "pipeline": a.pipeline_name,
                    "run_id": a.run_id,
                    "status": a.status,
                    "comment": a.comment,
                    "decided_by": a.decided_by,
                }
                for a in self.approvals.values()
            ],
        }

    # --- HTTP plumbing ---------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text() if request.can_read_body else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        auth_header = request.headers.get("Authorization", "")
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                accept=request.headers.get("Accept", ""),
                auth_scheme=auth_header.split(" ", 1)[0] if auth_header else "",
                body=body,
                raw_body=raw,
            )
        )
        fault = self._take_fault(request)
        if fault is not None:
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_s)
            elif fault.kind != "error_after_acting":
                return self._render(self._fault_reply(fault))
        identity = self._authenticate(auth_header)
        if identity is None:
            return self._render(self._unauthorized())
        prefix = f"/{self.organization}"
        if not request.path.lower().startswith(prefix.lower() + "/"):
            return self._render(_Reply(404, text="Not found", content_type="text/plain"))
        sub_path = request.path[len(prefix) :]
        if request.method == "OPTIONS" and sub_path.rstrip("/").lower() == "/_apis":
            return self._render(_Reply(200, _collection(_LOCATIONS)))
        for method, pattern, recorded in self.recorded:
            if method == request.method and pattern.match(sub_path):
                return self._render(recorded)
        for method, pattern, handler in self._routes:
            match = pattern.match(sub_path)
            if match is None or method != request.method:
                continue
            project = match.groupdict().get("project")
            if project is not None and project.lower() not in {
                self.project.lower(),
                self.project_id,
            }:
                return self._render(
                    _wrapped_exception(
                        f"TF200016: The following project does not exist: {project}. Verify "
                        "that the name of the project is correct and that the project exists "
                        "on the specified Azure DevOps Server.",
                        "ProjectDoesNotExistWithNameException",
                        404,
                    )
                )
            reply = await handler(request, match, body, identity)
            if fault is not None and fault.kind == "error_after_acting":
                reply = _wrapped_exception(
                    "VS402933: An unexpected error occurred. Try again later.",
                    "UnexpectedServerException",
                    500,
                )
            return self._render(reply)
        return self._render(
            _wrapped_exception(
                f"The resource {request.method} {request.path} is not served by the emulator.",
                "ApiResourceNotFoundException",
                404,
            )
        )

    def _take_fault(self, request: web.Request) -> _Fault | None:
        path = request.path.lower()
        negotiation = request.method == "OPTIONS" or path.endswith("/resourceareas")
        for fault in self._faults:
            if fault.method is not None and fault.method != request.method:
                continue
            if fault.path_contains is not None:
                if fault.path_contains.lower() not in path:
                    continue
            elif negotiation:
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault
        return None

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if fault.kind == "throttle":
            reply = _wrapped_exception(
                "TF400733: The request has been blocked due to exceeding usage of resource "
                "'ATCPU' in namespace 'User'.",
                "RequestBlockedException",
                429,
            )
            reply.headers["Retry-After"] = f"{fault.retry_after_s:g}"
            return reply
        if fault.kind == "server_error":
            return _wrapped_exception(
                "VS402933: An unexpected error occurred. Try again later.",
                "UnexpectedServerException",
                500,
            )
        if fault.kind == "malformed":
            return _Reply(
                200, text='{"count": 1, "value": [{"id": ', content_type="application/json"
            )
        if fault.kind == "unauthorized":
            return self._unauthorized()
        if fault.kind == "missing_scope":
            # A valid token without the scope the call needs: 401 and TF400813.
            return _wrapped_exception(
                f"TF400813: The user '{uuid.uuid5(uuid.NAMESPACE_URL, self.pat_identity)}' is "
                "not authorized to access this resource.",
                "UnauthorizedRequestException",
                401,
            )
        if fault.kind == "forbidden":
            return _wrapped_exception(
                "TF400813: The user is not authorized to access this resource.",
                "UnauthorizedRequestException",
                403,
            )
        # login_page: what a rejected credential gets without X-TFS-FedAuthRedirect.
        return _Reply(
            203,
            text="<html><head><title>Azure DevOps Services | Sign In</title></head></html>",
            content_type="text/html",
        )

    @staticmethod
    def _unauthorized() -> _Reply:
        return _Reply(
            401,
            text="Access Denied: The Personal Access Token used has expired.",
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Basic realm="https://dev.azure.com/"'},
        )

    def _authenticate(self, header: str) -> str | None:
        """Who is calling: Basic with the configured PAT (any user name), or any Bearer."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return self.bearer_identity
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip()).decode("utf-8")
            except ValueError:
                return None
            _, _, password = decoded.partition(":")
            if password == self.pat:
                return self.pat_identity
        return None

    @staticmethod
    def _render(reply: _Reply) -> web.Response:
        text = reply.text if reply.text is not None else json.dumps(reply.body)
        return web.Response(
            status=reply.status,
            text=text,
            content_type=reply.content_type,
            charset="utf-8",
            headers=reply.headers,
        )

    # --- JSON shapes -----------------------------------------------------------------------
    def _project_url(self) -> str:
        return f"{self._base_url}/{self.organization}/{self.project_id}"

    def _web_project_url(self) -> str:
        return f"{self._base_url}/{self.organization}/{self.project}"

    def _definition_web_url(self, pipeline_id: int) -> str:
        return f"{self._web_project_url()}/_build/definition?definitionId={pipeline_id}"

    def _pipeline_json(self, pipeline: EmulatedPipeline, *, full: bool) -> dict[str, Any]:
        api_url = (
            f"{self._project_url()}/_apis/pipelines/{pipeline.id}?revision={pipeline.revision}"
        )
        data: dict[str, Any] = {
            "_links": {
                "self": {"href": api_url},
                "web": {"href": self._definition_web_url(pipeline.id)},
            },
            "url": api_url,
            "id": pipeline.id,
            "revision": pipeline.revision,
            "name": pipeline.name,
            "folder": pipeline.folder,
        }
        if full:
            data["configuration"] = {
                "path": pipeline.yaml_path,
                "repository": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, pipeline.name)),
                               "type": "azureReposGit"},
                "type": "yaml",
            }  # fmt: skip
        return data

    def _run_json(self, run: EmulatedRun) -> dict[str, Any]:
        pipeline = self.pipelines[run.pipeline_id]
        api_url = f"{self._project_url()}/_apis/pipelines/{run.pipeline_id}/runs/{run.id}"
        web_url = f"{self._web_project_url()}/_build/results?buildId={run.id}"
        data: dict[str, Any] = {
            "_links": {
                "self": {"href": api_url},
                "web": {"href": web_url},
                "pipeline.web": {"href": self._definition_web_url(pipeline.id)},
                "pipeline": {"href": f"{self._project_url()}/_apis/pipelines/{pipeline.id}"},
            },
            "templateParameters": dict(run.template_parameters),
            "pipeline": {
                "url": f"{self._project_url()}/_apis/pipelines/{pipeline.id}",
                "id": pipeline.id,
                "revision": pipeline.revision,
                "name": pipeline.name,
                "folder": pipeline.folder,
            },
            "state": run.state,
            "createdDate": _iso(run.created),
            "url": api_url,
            "resources": {
                "repositories": {"self": {"refName": "refs/heads/main", "version": "0" * 40}}
            },
            "id": run.id,
            "name": run.name,
        }
        if run.result is not None:
            data["result"] = run.result
        if run.finished is not None:
            data["finishedDate"] = _iso(run.finished)
        return data

    def _approval_json(self, approval: EmulatedApproval, *, expand_steps: bool) -> dict[str, Any]:
        created = _iso(approval.created)
        modified = _iso(approval.modified or approval.created)
        steps = [
            {
                "assignedApprover": {
                    "displayName": name,
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                },
                "status": approval.status,
                "comment": approval.comment,
                "initiatedOn": created,
                "history": [],
                **(
                    {"actualApprover": {"displayName": approval.decided_by}}
                    if approval.decided_by
                    else {}
                ),
            }
            for name in approval.approvers
        ]
        return {
            "id": approval.id,
            "steps": steps if expand_steps else [],
            "status": approval.status,
            "createdOn": created,
            "lastModifiedOn": modified,
            "instructions": approval.instructions,
            "minRequiredApprovers": 1,
            "blockedApprovers": [],
            "executionOrder": "anyOrder",
            "_links": {
                "self": {"href": f"{self._project_url()}/_apis/pipelines/approvals/{approval.id}"}
            },
        }

    def _variable_group_json(self, group: EmulatedVariableGroup) -> dict[str, Any]:
        moment = _iso(group.modified or self._clock())
        identity = {"displayName": self.pat_identity, "id": str(uuid.uuid4())}
        return {
            "variables": {
                key: (
                    {"isSecret": True, "value": None} if key in group.secrets else {"value": value}
                )
                for key, value in group.variables.items()
            },
            "id": group.id,
            "type": "Vsts",
            "name": group.name,
            "description": group.description,
            "createdBy": identity,
            "createdOn": moment,
            "modifiedBy": identity,
            "modifiedOn": moment,
            "isShared": False,
            "variableGroupProjectReferences": [
                {
                    "projectReference": {"id": self.project_id, "name": self.project},
                    "name": group.name,
                    "description": group.description,
                }
            ],
        }

    # --- handlers ---------------------------------------------------------------------------
    async def _resource_areas(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        return _Reply(200, _collection([]))

    async def _list_pipelines(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        # Pipelines - List pages as Azure DevOps does: `$top` (or the service's own page
        # size) per page, the next page's token in `x-ms-continuationtoken`, passed back
        # as `continuationToken`. Here the token is the offset of the next page.
        items = sorted(self.pipelines.values(), key=lambda p: p.name.lower())
        top = request.query.get("$top", "")
        size = (
            min(int(top), self.pipelines_page_size) if top.isdigit() else self.pipelines_page_size
        )
        token = request.query.get("continuationToken", "0")
        if not token.isdigit():
            return _wrapped_exception(
                "The continuation token is not valid.", "InvalidArgumentValueException", 400
            )
        start = int(token)
        page = items[start : start + max(size, 1)]
        reply = _Reply(200, _collection([self._pipeline_json(p, full=False) for p in page]))
        if start + len(page) < len(items):
            reply.headers["x-ms-continuationtoken"] = str(start + len(page))
        return reply

    async def _list_definitions(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        # Definitions - List: `name` is matched case-insensitively, `*` is a wildcard.
        wanted = request.query.get("name")
        pattern = (
            re.compile("^" + ".*".join(map(re.escape, wanted.split("*"))) + "$", re.I)
            if wanted
            else None
        )
        items = [
            p
            for p in sorted(self.pipelines.values(), key=lambda p: p.name.lower())
            if pattern is None or pattern.match(p.name)
        ]
        return _Reply(200, _collection([self._definition_json(p) for p in items]))

    def _definition_json(self, pipeline: EmulatedPipeline) -> dict[str, Any]:
        api_url = f"{self._project_url()}/_apis/build/Definitions/{pipeline.id}"
        return {
            "_links": {
                "self": {"href": api_url},
                "web": {"href": self._definition_web_url(pipeline.id)},
            },
            "quality": "definition",
            "queueStatus": "enabled",
            "id": pipeline.id,
            "name": pipeline.name,
            "url": api_url,
            "uri": f"vstfs:///Build/Definition/{pipeline.id}",
            "path": pipeline.folder,
            "type": "build",
            "revision": pipeline.revision,
            "createdDate": _iso(self._clock()),
            "project": {"id": self.project_id, "name": self.project, "state": "wellFormed"},
        }

    def _pipeline_or_404(self, match: re.Match[str]) -> EmulatedPipeline | _Reply:
        pipeline = self.pipelines.get(int(match["pid"]))
        if pipeline is None:
            return _wrapped_exception(
                f"Pipeline with id {match['pid']} not found.", "PipelineNotFoundException", 404
            )
        return pipeline

    async def _get_pipeline(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        found = self._pipeline_or_404(match)
        if isinstance(found, _Reply):
            return found
        return _Reply(200, self._pipeline_json(found, full=True))

    async def _list_runs(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        found = self._pipeline_or_404(match)
        if isinstance(found, _Reply):
            return found
        runs = sorted(
            (r for r in self.runs.values() if r.pipeline_id == found.id),
            key=lambda r: r.id,
            reverse=True,
        )
        return _Reply(200, _collection([self._run_json(r) for r in runs]))

    async def _queue_run(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        found = self._pipeline_or_404(match)
        if isinstance(found, _Reply):
            return found
        payload = body if isinstance(body, dict) else {}
        raw_params = payload.get("templateParameters") or {}
        if not isinstance(raw_params, dict):
            return _wrapped_exception(
                "templateParameters must be an object.", "ArgumentException", 400
            )
        params = {str(k): str(v) for k, v in raw_params.items()}
        if found.parameters is not None:
            unknown = sorted(set(params) - set(found.parameters))
            if unknown:
                return _wrapped_exception(
                    f"Unexpected parameter '{unknown[0]}'",
                    "PipelineValidationException",
                    400,
                )
        raw_vars = payload.get("variables") or {}
        variables = {
            str(k): str(v.get("value", "")) if isinstance(v, dict) else str(v)
            for k, v in raw_vars.items()
        }
        run = self._new_run(found, params, variables, requested_by=identity)
        for hook in list(self.run_hooks):
            try:
                outcome = hook(run)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # a broken scenario hook must not break the API answer
                log.exception("run hook failed for run %s", run.id)
        return _Reply(200, self._run_json(run))

    def _new_run(
        self,
        pipeline: EmulatedPipeline,
        params: dict[str, str],
        variables: dict[str, str] | None = None,
        requested_by: str = "",
    ) -> EmulatedRun:
        now = self._clock()
        run = EmulatedRun(
            id=self._next_run_id,
            pipeline_id=pipeline.id,
            pipeline_name=pipeline.name,
            name=f"{now:%Y%m%d}.{self._next_run_id}",
            created=now,
            template_parameters=params,
            variables=variables or {},
            requested_by=requested_by,
        )
        self._next_run_id += 1
        self.runs[run.id] = run
        return run

    async def _get_run(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        found = self._pipeline_or_404(match)
        if isinstance(found, _Reply):
            return found
        run = self.runs.get(int(match["rid"]))
        if run is None or run.pipeline_id != found.id:
            return _wrapped_exception(
                f"Run with id {match['rid']} not found.", "PipelineRunNotFoundException", 404
            )
        return _Reply(200, self._run_json(run))

    def _build_json(self, run: EmulatedRun) -> dict[str, Any]:
        pipeline = self.pipelines[run.pipeline_id]
        web_url = f"{self._web_project_url()}/_build/results?buildId={run.id}"
        data: dict[str, Any] = {
            "_links": {
                "self": {"href": f"{self._project_url()}/_apis/build/Builds/{run.id}"},
                "web": {"href": web_url},
                "timeline": {"href": f"{self._project_url()}/_apis/build/builds/{run.id}/Timeline"},
            },
            "id": run.id,
            "buildNumber": run.name,
            # A build's status and result have their own words (BuildStatus, BuildResult).
            "status": _BUILD_STATUS.get(run.state, "none"),
            "queueTime": _iso(run.created),
            "url": f"{self._project_url()}/_apis/build/Builds/{run.id}",
            "definition": {
                "id": pipeline.id,
                "name": pipeline.name,
                "path": pipeline.folder,
                "revision": pipeline.revision,
                "type": "build",
                "queueStatus": "enabled",
            },
            "project": {"id": self.project_id, "name": self.project},
            "templateParameters": dict(run.template_parameters),
        }
        if run.result is not None:
            data["result"] = "none" if run.result == "unknown" else run.result
        if run.finished is not None:
            data["finishTime"] = _iso(run.finished)
        return data

    def _build_or_404(self, match: re.Match[str]) -> EmulatedRun | _Reply:
        run = self.runs.get(int(match["bid"]))
        if run is None:
            return _wrapped_exception(
                f"The requested build {match['bid']} could not be found.",
                "BuildNotFoundException",
                404,
            )
        return run

    async def _list_builds(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        wanted = request.query.get("statusFilter", "").lower()
        runs = [
            r
            for r in sorted(self.runs.values(), key=lambda r: r.id, reverse=True)
            if not wanted or r.state.lower() in wanted.split(",")
        ]
        return _Reply(200, _collection([self._build_json(r) for r in runs]))

    async def _get_build(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        found = self._build_or_404(match)
        return found if isinstance(found, _Reply) else _Reply(200, self._build_json(found))

    async def _get_timeline(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        """Build - Get Build Timeline: a `Stage` record per stage; each approval is a
        `Checkpoint.Approval` record (id = approval id) under its stage's `Checkpoint`
        record (id = the check suite id)."""
        found = self._build_or_404(match)
        if isinstance(found, _Reply):
            return found
        run = found
        records: list[dict[str, Any]] = []
        stages: dict[str, str] = {}

        def record(
            record_id: str, parent: str | None, kind: str, name: str, state: str
        ) -> dict[str, Any]:
            return {
                "id": record_id,
                "parentId": parent,
                "type": kind,
                "name": name,
                "identifier": name if kind == "Stage" else None,
                "state": state,
                "result": None,
                "order": len(records) + 1,
                "changeId": 1,
                "lastModified": _iso(run.created),
                "attempt": 1,
            }

        # Stages that finished (deployment stages the scenario completed), with results.
        for stage, (result, finished) in run.stages.items():
            finished_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.id}/{stage}"))
            stages[stage] = finished_id
            done = record(finished_id, None, "Stage", stage, "completed")
            done |= {"result": result, "startTime": _iso(run.created), "finishTime": _iso(finished)}
            records.append(done)
        for approval in (a for a in self.approvals.values() if a.run_id == run.id):
            stage_id = stages.get(approval.stage)
            if stage_id is None:
                stage_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.id}/{approval.stage}"))
                stages[approval.stage] = stage_id
                records.append(record(stage_id, None, "Stage", approval.stage, "pending"))
            state = "inProgress" if approval.status == "pending" else "completed"
            records.append(
                record(approval.check_suite_id, stage_id, "Checkpoint", "Checkpoint", state)
            )
            records.append(
                record(approval.id, approval.check_suite_id, "Checkpoint.Approval", "", state)
            )
        if not records:
            records.append(
                record(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run.id}/Build")), None, "Stage",
                       "Build", "inProgress" if run.state != "completed" else "completed")
            )  # fmt: skip
        timeline_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"timeline/{run.id}"))
        return _Reply(
            200,
            {
                "records": records,
                "lastChangedBy": str(uuid.uuid5(uuid.NAMESPACE_URL, "agent")),
                "lastChangedOn": _iso(run.created),
                "id": timeline_id,
                "changeId": 1,
                "url": f"{self._project_url()}/_apis/build/builds/{run.id}/Timeline/{timeline_id}",
            },
        )

    async def _get_check_suite(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        """Check Evaluations - Get: the check runs of one suite and the resource each guards."""
        suite_id = match["sid"].lower()
        approval = next(
            (a for a in self.approvals.values() if a.check_suite_id.lower() == suite_id), None
        )
        if approval is None:
            return _wrapped_exception(
                f"Check suite {match['sid']} not found.", "CheckSuiteNotFoundException", 404
            )
        status = {"pending": "running"}.get(approval.status, approval.status)
        runs = []
        if approval.environment_id is not None:
            resource = {"type": "environment", "id": str(approval.environment_id)}
            if "resources" in request.query.get("$expand", "").lower():
                resource["name"] = self.environments[approval.environment_id]
            runs.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"check-run/{approval.id}")),
                    "createdDate": _iso(approval.created),
                    "checkConfigurationRef": {
                        "id": approval.environment_id,
                        "type": {"id": APPROVAL_CHECK_TYPE, "name": "Approval"},
                        "url": f"{self._project_url()}/_apis/pipelines/checks/configurations/"
                        f"{approval.environment_id}",
                        "resource": resource,
                    },
                    "status": status,
                }
            )
        return _Reply(
            200,
            {
                "status": status,
                "message": "",
                "checkRuns": runs,
                "_links": {"self": {"href": f"{self._project_url()}/_apis/pipelines/checks/runs"}},
                "id": approval.check_suite_id,
                "context": {"Pipeline.Id": approval.pipeline_id},
            },
        )

    async def _get_environment(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        name = self.environments.get(int(match["eid"]))
        if name is None:
            return _wrapped_exception(
                f"Environment {match['eid']} not found.", "EnvironmentNotFoundException", 404
            )
        moment = _iso(self._clock())
        return _Reply(
            200,
            {
                "id": int(match["eid"]),
                "name": name,
                "description": "",
                "createdBy": {"displayName": self.pat_identity},
                "createdOn": moment,
                "lastModifiedOn": moment,
                "project": {"id": self.project_id, "name": self.project},
            },
        )

    async def _list_approvals(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        state = request.query.get("state")
        ids = {i.strip() for i in request.query.get("approvalIds", "").split(",") if i.strip()}
        expand = request.query.get("$expand", "").lower()
        items = [
            a
            for a in self.approvals.values()
            if (state is None or a.status.lower() == state.lower()) and (not ids or a.id in ids)
        ]
        top = request.query.get("top")
        if top and top.isdigit():
            items = items[: int(top)]
        return _Reply(
            200,
            _collection([self._approval_json(a, expand_steps="steps" in expand) for a in items]),
        )

    async def _get_approval(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        wanted = match["aid"].lower()
        approval = next((a for a in self.approvals.values() if a.id.lower() == wanted), None)
        if approval is None:
            return _wrapped_exception(
                f"Approval {match['aid']} not found.", "ApprovalNotFoundException", 404
            )
        expand = request.query.get("$expand", "").lower()
        return _Reply(200, self._approval_json(approval, expand_steps="steps" in expand))

    async def _update_approvals(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            return _wrapped_exception(
                "Value cannot be null. Parameter name: updateParameters",
                "ArgumentNullException",
                400,
            )
        self.approval_updates.append(body)
        updated: list[EmulatedApproval] = []
        for item in body:
            approval = self.approvals.get(str(item.get("approvalId", "")))
            if approval is None:
                return _wrapped_exception(
                    f"Approval {item.get('approvalId')} not found.",
                    "ApprovalNotFoundException",
                    404,
                )
            status = str(item.get("status", ""))
            if status not in {"approved", "rejected"}:
                return _wrapped_exception(
                    f"Invalid approval status '{status}'.", "InvalidApprovalStatusException", 400
                )
            if approval.status != "pending":
                return _wrapped_exception(
                    f"Approval {approval.id} has already been completed.",
                    "ApprovalAlreadyCompletedException",
                    400,
                )
            approval.status = status
            approval.comment = str(item.get("comment") or "")
            approval.decided_by = identity
            approval.modified = self._clock()
            updated.append(approval)
        return _Reply(
            200, _collection([self._approval_json(a, expand_steps=True) for a in updated])
        )

    async def _list_variable_groups(
        self, request: web.Request, match: re.Match[str], body: Any, identity: str
    ) -> _Reply:
        wanted = request.query.get("groupName")
        if wanted:
            pattern = re.compile(
                "^" + ".*".join(re.escape(p) for p in wanted.split("*")) + "$", re.I
            )
            groups = [g for g in self.variable_groups.values() if pattern.match(g.name)]
        else:
            groups = list(self.variable_groups.values())
        groups.sort(key=lambda g: g.id, reverse=True)
        return _Reply(200, _collection([self._variable_group_json(g) for g in groups]))
