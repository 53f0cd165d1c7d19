"""Azure DevOps adapter: pipelines, runs, approvals and the settings variable group.

Built on the official `azure-devops` SDK (7.1), which is synchronous (requests): every
call, client creation included, runs in a worker thread through `call_blocking`, with a
timeout and retries of transient failures under our own `RetryPolicy` (the SDK's own
urllib3 retries are switched off so that `Retry-After` and back-off stay observable and
testable).

The SDK has no client for pipeline approvals, so approvals are read and decided with
`GET`/`PATCH {org}/{project}/_apis/pipelines/approvals?api-version=7.1`, sent through an
msrest `ServiceClient` built from the SDK's `ClientConfiguration` and the same
credentials object, so auth, user agent, timeouts and error capture are shared. The
documented `Approval` has no pipeline or run: where an approval waits (run, stage,
environment) is read from the run's timeline and check suite (`monitoring.approval_places`).

Location cache: the SDK keeps negotiated locations on disk under
`AZURE_DEVOPS_CACHE_DIR`, read once when `azure.devops` is first imported. This module
imports the SDK lazily and, just before, points that variable at a directory under the
system temp dir when it is unset (`ensure_sdk_cache_dir`), so nothing lands in the
user's home directory. Set it yourself (before anything imports `azure.devops`) to
choose another place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from monitoring.approval_places import (
    ApprovalPlace,
    GuardedResource,
    TimelineEntry,
    approvals_in_timeline,
    environment_ids,
)
from monitoring.azure_calls import (
    AzureAuthError,
    AzureCallError,
    AzureNotFoundError,
    AzureResponseError,
    RetryPolicy,
    TransientAzureError,
    call_blocking,
)

if TYPE_CHECKING:
    import random

    from azure.core.credentials import TokenCredential

    from config.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

SERVICE = "Azure DevOps"
# Entra ID resource of Azure DevOps (the same for every organization).
DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"
APPROVALS_API_VERSION = "7.1"
PAT_SETTING = "MLBOT_DEVOPS_PAT"
CREDENTIAL_SETTING = "the Azure credential (Entra ID) used for Azure DevOps"
ORG_SETTING = "MLBOT_DEVOPS_ORG_URL"
PROJECT_SETTING = "MLBOT_DEVOPS_PROJECT"
PIPELINE_SETTINGS = "MLBOT_TRAINING_PIPELINE / MLBOT_ROLLBACK_PIPELINE"
VARIABLE_GROUP_SETTING = "MLBOT_VARIABLE_GROUP"
CACHE_DIR_ENV = "AZURE_DEVOPS_CACHE_DIR"

_STATUS_IN_MESSAGE = re.compile(r"returned a (\d{3}) status code")


def ensure_sdk_cache_dir(environ: MutableMapping[str, str] | None = None) -> str:
    """Give the SDK's on-disk location cache a home under the temp dir unless one is set.

    Must run before `azure.devops` is first imported (the SDK reads it at import time).
    """
    env = os.environ if environ is None else environ
    if not env.get(CACHE_DIR_ENV):
        env[CACHE_DIR_ENV] = os.path.join(tempfile.gettempdir(), "mlbot-azure-devops-cache")
    return env[CACHE_DIR_ENV]


# --- boundary types --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PipelineRef:
    id: int
    name: str
    folder: str = "\\"
    web_url: str = ""


@dataclass(frozen=True, slots=True)
class PipelineRun:
    pipeline_id: int
    pipeline_name: str
    run_id: int
    name: str
    state: str  # unknown | inProgress | canceling | completed
    result: str | None  # succeeded | failed | canceled | unknown; None while running
    web_url: str
    created_at: datetime | None = None
    finished_at: datetime | None = None
    template_parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        return self.state == "completed"

    @property
    def succeeded(self) -> bool:
        return self.state == "completed" and self.result == "succeeded"


@dataclass(frozen=True, slots=True)
class RunStage:
    """One stage of a run, as the run's timeline shows it."""

    identifier: str  # `Deploy_Prod`
    name: str  # the display name, `Deploy Prod`
    state: str  # pending | inProgress | completed
    result: str | None  # succeeded | failed | canceled | skipped | ...; None while running


# What mlbot writes as the comment of a decision made in Teams: the decision is recorded
# under mlbot's identity in Azure DevOps, so the comment names the person.
_TEAMS_DECISION = re.compile(
    r"^(?:Approved|Rejected) in Teams by (?P<person>[^:]+?)(?:: (?P<comment>.*))?$", re.DOTALL
)


def decision_note(approve: bool, person: str, comment: str = "") -> str:
    """The comment of an approval decided in Teams: `Rejected in Teams by Name: why`."""
    verb = "Approved" if approve else "Rejected"
    return f"{verb} in Teams by {person}" + (f": {comment}" if comment else "")


def teams_decision(comment: str) -> tuple[str, str] | None:
    """(person, their own comment) of a `decision_note`; None for any other comment."""
    found = _TEAMS_DECISION.match(comment.strip())
    if found is None:
        return None
    return found.group("person").strip(), (found.group("comment") or "").strip()


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    status: str  # pending | approved | rejected | canceled | skipped | timedOut | ...
    pipeline_id: int | None
    pipeline_name: str
    run_id: int | None
    run_name: str
    instructions: str = ""
    approvers: tuple[str, ...] = ()
    comment: str = ""
    decided_by: str = ""
    created_at: datetime | None = None
    web_url: str = ""
    stage: str = ""
    # The environments whose check this approval is, as Azure DevOps says (not a guess).
    environments: tuple[str, ...] = ()

    @property
    def environment(self) -> str | None:
        return self.environments[0] if len(self.environments) == 1 else None

    @property
    def is_pending(self) -> bool:
        return self.status.lower() == "pending"


# --- error classification --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the HTTP layer saw for the last response of a call (the SDK drops it)."""

    status: int
    url: str = ""
    content_type: str = ""
    retry_after_s: float | None = None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None  # an HTTP date; the policy's own back-off applies


def _status_from_message(exc: BaseException) -> int | None:
    match = _STATUS_IN_MESSAGE.search(str(exc))
    return int(match.group(1)) if match else None


def _inner(exc: BaseException) -> BaseException | None:
    inner = getattr(exc, "inner_exception", None)
    if isinstance(inner, BaseException):
        return inner
    return exc.__cause__


def classify(
    exc: BaseException,
    *,
    operation: str = "request",
    response: ResponseFacts | None = None,
    auth_setting: str = PAT_SETTING,
    not_found_hint: str = PROJECT_SETTING,
) -> AzureCallError:
    """Turn an azure-devops / msrest / requests exception into a typed `AzureCallError`.

    `response` (when known) carries the status code and `Retry-After` that the SDK's
    exceptions do not keep; otherwise the status is read from the SDK's message.
    """
    if isinstance(exc, AzureCallError):
        return exc
    import requests
    from msrest.exceptions import AuthenticationError, DeserializationError

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = _inner(current)
    for item in chain:
        if isinstance(item, requests.Timeout):
            return TransientAzureError(SERVICE, operation, "timed out waiting for Azure DevOps")
        if isinstance(item, requests.ConnectionError):
            return TransientAzureError(SERVICE, operation, "could not connect to Azure DevOps")
    if type(exc).__name__ == "ClientAuthenticationError":  # azure-identity could not get a token
        return AzureAuthError(
            SERVICE, operation, "could not get an Entra ID token", CREDENTIAL_SETTING
        )

    own_status = getattr(exc, "status", None)
    if response is not None:
        status: int | None = response.status
    elif isinstance(own_status, int):
        status = own_status
    else:
        status = _status_from_message(exc)
    server_message = str(getattr(exc, "message", "") or exc).strip()
    if status is None and isinstance(exc, AuthenticationError):
        status = 401
    if status is not None and (status >= 300 or status == 203):
        return _from_status(
            status,
            operation,
            server_message,
            response,
            auth_setting=auth_setting,
            not_found_hint=not_found_hint,
            type_key=str(getattr(exc, "type_key", "") or ""),
        )
    if isinstance(exc, DeserializationError | ValueError):
        return AzureResponseError(SERVICE, operation, "Azure DevOps answered with malformed JSON")
    return AzureResponseError(SERVICE, operation, f"unexpected {type(exc).__name__}")


def _server_words(message: str) -> str:
    """`: <the server's first line>` for a message worth showing, else nothing."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    if not first or "<" in first or _STATUS_IN_MESSAGE.search(first):
        return ""
    return f": {first[:200]}"


def _from_status(
    status: int,
    operation: str,
    server_message: str,
    response: ResponseFacts | None,
    *,
    auth_setting: str,
    not_found_hint: str,
    type_key: str,
) -> AzureCallError:
    # What Azure DevOps said (`TF400813: … not authorized`, `… token has expired`) tells
    # a token without the scope from a wrong one; a sign-in page says nothing.
    said = _server_words(server_message)
    if status in (203, 401):
        # 203 is the sign-in page Azure DevOps serves to a credential it does not accept.
        return AzureAuthError(
            SERVICE,
            operation,
            f"Azure DevOps refused the credentials (HTTP {status}){said}",
            auth_setting,
        )
    if status == 403:
        return AzureAuthError(
            SERVICE,
            operation,
            "Azure DevOps denied access (HTTP 403): the identity lacks a permission or the "
            f"token lacks a scope{said}",
            auth_setting,
        )
    if status == 429 or status == 408 or status >= 500:
        retry_after = response.retry_after_s if response is not None else None
        what = "throttled" if status == 429 else f"HTTP {status}"
        return TransientAzureError(SERVICE, operation, f"Azure DevOps {what}", retry_after)
    if status == 404:
        url = (response.url if response is not None else "").lower().split("?")[0]
        # Location negotiation (`OPTIONS {org}/_apis`, `ResourceAreas[/{id}]`) failed: the
        # organization itself is not there.
        if url.endswith("/_apis") or "/_apis/resourceareas" in url:
            hint = ORG_SETTING
        elif "project" in type_key.lower() or "TF200016" in server_message:
            hint = PROJECT_SETTING
        else:
            hint = not_found_hint
        detail = server_message.split(". Verify")[0] if server_message else "not found"
        return AzureNotFoundError(SERVICE, operation, f"{detail} (check {hint})")
    return AzureResponseError(
        SERVICE, operation, f"HTTP {status}: {server_message or 'request refused'}"
    )


# --- credentials -----------------------------------------------------------------------------
def _entra_authentication(credential: TokenCredential) -> Any:
    """msrest credentials that put a fresh Entra ID bearer token on every request."""
    from msrest.authentication import Authentication

    class EntraTokenAuthentication(Authentication):
        def signed_session(self, session: Any = None) -> Any:
            session = super().signed_session(session)
            # get_token caches and refreshes; asking each time keeps long-lived bots valid.
            token = credential.get_token(DEVOPS_SCOPE)
            session.headers["Authorization"] = f"Bearer {token.token}"
            return session

    return EntraTokenAuthentication()


# --- the adapter -----------------------------------------------------------------------------
class AzureDevOpsPipelines:
    """Pipelines, runs, approvals and variable groups of one Azure DevOps project."""

    def __init__(
        self,
        org_url: str,
        project: str,
        *,
        pat: str | None = None,
        credential: TokenCredential | None = None,
        policy: RetryPolicy | None = None,
        executor: Executor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        user_agent: str = "mlbot",
        ca_bundle: str | None = None,
    ) -> None:
        if not org_url:
            raise ValueError(f"{ORG_SETTING} is not set")
        if not project:
            raise ValueError(f"{PROJECT_SETTING} is not set")
        if not pat and credential is None:
            raise ValueError(f"set {PAT_SETTING} or provide an Azure credential")
        self.org_url = org_url.rstrip("/")
        self.project = project
        self._pat = pat or ""
        self._credential = credential
        self._auth_setting = PAT_SETTING if pat else CREDENTIAL_SETTING
        self._policy = policy or RetryPolicy(attempts=3, base_delay_s=1.0, timeout_s=30.0)
        # Azure DevOps' own pool (monitoring/executors.py); None is asyncio's default.
        self._executor = executor
        self._sleep = sleep
        self._rng = rng
        self._user_agent = user_agent
        self._ca_bundle = ca_bundle  # CA bundle path; None trusts the system store
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._connection: Any = None
        self._seen = threading.local()
        ensure_sdk_cache_dir()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        credential: TokenCredential | None = None,
        policy: RetryPolicy | None = None,
        executor: Executor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AzureDevOpsPipelines:
        """PAT when `MLBOT_DEVOPS_PAT` is set, otherwise the given Entra ID credential."""
        pat = settings.devops_pat.get_secret_value()
        return cls(
            settings.devops_org_url,
            settings.devops_project,
            pat=pat or None,
            credential=None if pat else credential,
            policy=policy,
            executor=executor,
            sleep=sleep,
            ca_bundle=settings.ca_bundle or None,
        )

    # --- public API -----------------------------------------------------------------------
    async def find_pipeline(self, name: str) -> PipelineRef:
        return await self._call(
            "find pipeline", lambda: self._find_pipeline(name), PIPELINE_SETTINGS
        )

    async def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str]
    ) -> PipelineRun:
        """Queue a run with `templateParameters` (e.g. `{"manualCircuits": "A/B,C/D"}`)."""
        params = {str(k): str(v) for k, v in template_parameters.items()}

        def run() -> PipelineRun:
            from azure.devops.v7_1.pipelines.models import RunPipelineParameters

            ref = self._find_pipeline(pipeline_name)
            created = self._sdk("pipelines").run_pipeline(
                RunPipelineParameters(template_parameters=params), self.project, ref.id
            )
            return self._to_run(created, ref.name)

        # Not retried: a POST that timed out may still have queued a run.
        return await self._call(
            f"queue {pipeline_name}", run, PIPELINE_SETTINGS, policy=self._single_attempt()
        )

    async def get_run(self, pipeline_id: int, run_id: int) -> PipelineRun:
        def run() -> PipelineRun:
            found = self._sdk("pipelines").get_run(self.project, pipeline_id, run_id)
            return self._to_run(found, "")

        return await self._call(f"get run {run_id}", run, f"pipeline {pipeline_id} run {run_id}")

    async def get_stages(self, run_id: int) -> list[RunStage]:
        """The stages of a run (its build timeline's `Stage` records)."""

        def run() -> list[RunStage]:
            timeline = self._sdk("build").get_build_timeline(self.project, run_id)
            return [
                RunStage(
                    identifier=str(record.identifier or ""),
                    name=str(record.name or ""),
                    state=str(record.state or ""),
                    result=str(record.result) if record.result else None,
                )
                for record in (timeline.records if timeline is not None else None) or []
                if str(record.type or "").lower() == "stage"
            ]

        return await self._call(f"read the stages of run {run_id}", run, f"run {run_id}")

    async def approvals_of_run(self, run_id: int) -> list[Approval]:
        """Every approval a run waited for, decided or not, with who decided: the run's
        timeline names them (`Checkpoint.Approval` records), Approvals - Get says the rest."""

        def run() -> list[Approval]:
            timeline = self._sdk("build").get_build_timeline(self.project, run_id)
            records = [
                TimelineEntry(str(r.id), r.parent_id, str(r.type or ""), str(r.name or ""))
                for r in (getattr(timeline, "records", None) or [])
                if r.id
            ]
            found = []
            for entry in approvals_in_timeline(records).values():
                data = self._rest(
                    "GET",
                    f"_apis/pipelines/approvals/{quote(entry.approval_id, safe='')}",
                    params={"$expand": "steps"},
                )
                if isinstance(data, Mapping):
                    found.append(replace_fields(_to_approval(data), stage=entry.stage))
            return found

        return await self._call(f"read the approvals of run {run_id}", run, f"run {run_id}")

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> PipelineRun | None:
        """A run of `pipeline_name` created at or after `since` with these parameters.

        A caller that stopped between queuing a run and recording it finds that run here
        instead of queuing a second one. The run list carries no parameters, so each
        recent run is read (only after such a stop: rare, and few runs are that recent).
        """
        wanted = {str(k): str(v) for k, v in template_parameters.items()}
        floor = _as_utc(since)

        def run() -> PipelineRun | None:
            ref = self._find_pipeline(pipeline_name)
            client = self._sdk("pipelines")
            for item in client.list_runs(self.project, ref.id) or []:
                if item.created_date is not None and _as_utc(item.created_date) < floor:
                    continue
                found = self._to_run(client.get_run(self.project, ref.id, item.id), ref.name)
                if found.template_parameters == wanted:
                    return found
            return None

        return await self._call(f"find a run of {pipeline_name}", run, PIPELINE_SETTINGS)

    async def list_pending_approvals(self) -> list[Approval]:
        def run() -> list[Approval]:
            data = self._rest(
                "GET",
                "_apis/pipelines/approvals",
                params={"state": "pending", "$expand": "steps"},
            )
            approvals = [_to_approval(item) for item in _collection_items(data)]
            try:
                places = self._locate_approvals({a.id for a in approvals}, ())
            except Exception:
                # The list is still worth showing; buttons look the place up again.
                log.warning("could not read where the pending approvals wait", exc_info=True)
                places = {}
            return [_placed(a, places.get(a.id.lower())) for a in approvals]

        return await self._call("list approvals", run, PROJECT_SETTING)

    async def get_build(self, run_id: int) -> PipelineRun:
        """Builds - Get: a run by id alone (a pipeline run id is its build id)."""

        def run() -> PipelineRun:
            found = self._sdk("build").get_build(self.project, run_id)
            definition = found.definition
            return PipelineRun(
                pipeline_id=int(definition.id) if definition is not None else 0,
                pipeline_name=str(getattr(definition, "name", "") or ""),
                run_id=int(found.id),
                name=str(found.build_number or found.id),
                state=run_state_of_build(found.status),
                result=str(found.result) if found.result else None,
                web_url=_web_link(found) or self._web_url_for_run(int(found.id)),
                created_at=found.queue_time,
                finished_at=found.finish_time,
            )

        return await self._call(f"get run {run_id}", run, f"run {run_id}")

    async def get_approval(self, approval_id: str) -> Approval:
        """Approvals - Get, with its steps: who may approve and who decided, by name."""

        def run() -> Approval:
            data = self._rest(
                "GET",
                f"_apis/pipelines/approvals/{quote(approval_id, safe='')}",
                params={"$expand": "steps"},
            )
            if not isinstance(data, Mapping):
                raise AzureResponseError(SERVICE, "read approval", "unexpected answer shape")
            return _to_approval(data)

        return await self._call("read approval", run, f"approval {approval_id}")

    async def locate_approval(
        self, approval_id: str, run_id: int | None = None
    ) -> ApprovalPlace | None:
        """Where the approval waits, from Azure DevOps; None when no run holds it.

        `run_id` (when known, e.g. from the approval's service hook) is looked at first;
        otherwise, or when it does not hold the approval, the runs in progress are.
        """

        def run() -> ApprovalPlace | None:
            hints = (run_id,) if run_id is not None else ()
            return self._locate_approvals({approval_id}, hints).get(approval_id.lower())

        return await self._call("find the approval's run", run, f"approval {approval_id}")

    async def decide_approval(self, approval_id: str, approve: bool, comment: str) -> Approval:
        body = [
            {
                "approvalId": approval_id,
                "status": "approved" if approve else "rejected",
                "comment": comment,
            }
        ]

        def run() -> Approval:
            data = self._rest("PATCH", "_apis/pipelines/approvals", body=body)
            items = _collection_items(data)
            if not items:
                raise AzureResponseError(
                    SERVICE, "decide approval", f"no approval {approval_id} in the answer"
                )
            return _to_approval(items[0])

        # Deciding twice is refused by Azure DevOps, so a retry after a lost answer is safe.
        return await self._call("decide approval", run, f"approval {approval_id}")

    async def get_variable_group(self, name: str) -> dict[str, str]:
        """Non-secret variables of the group (secret values are never returned by the API)."""

        def run() -> dict[str, str]:
            groups = self._sdk("task_agent").get_variable_groups(self.project, group_name=name)
            for group in groups or []:
                if (group.name or "").lower() == name.lower():
                    return {
                        key: value.value
                        for key, value in (group.variables or {}).items()
                        if value is not None and value.value is not None and not value.is_secret
                    }
            raise AzureNotFoundError(
                SERVICE,
                "read variable group",
                f"no variable group {name!r} in project {self.project!r} "
                f"(check {VARIABLE_GROUP_SETTING})",
            )

        return await self._call("read variable group", run, VARIABLE_GROUP_SETTING)

    # --- plumbing -------------------------------------------------------------------------------
    def _single_attempt(self) -> RetryPolicy:
        p = self._policy
        return RetryPolicy(
            attempts=1,
            base_delay_s=p.base_delay_s,
            max_delay_s=p.max_delay_s,
            timeout_s=p.timeout_s,
        )

    async def _call(
        self,
        operation: str,
        fn: Callable[[], T],
        not_found_hint: str,
        *,
        policy: RetryPolicy | None = None,
    ) -> T:
        classifier = functools.partial(
            classify,
            operation=operation,
            auth_setting=self._auth_setting,
            not_found_hint=not_found_hint,
        )
        return await call_blocking(
            lambda: self._guarded(fn, classifier),
            service=SERVICE,
            operation=operation,
            classify=classifier,
            policy=policy or self._policy,
            executor=self._executor,
            sleep=self._sleep,
            rng=self._rng,
        )

    def _guarded(self, fn: Callable[[], T], classifier: Callable[..., AzureCallError]) -> T:
        """Run `fn` in this worker thread, classifying failures with the HTTP facts seen."""
        self._seen.responses = []
        try:
            result = fn()
        except AzureCallError:
            raise
        except Exception as exc:
            raise classifier(exc, response=self._last_response()) from exc
        last = self._last_response()
        if last is not None and last.status == 203:
            raise classifier(RuntimeError("sign-in page"), response=last)
        return result

    def _last_response(self) -> ResponseFacts | None:
        seen: list[ResponseFacts] = getattr(self._seen, "responses", [])
        return seen[-1] if seen else None

    def _record_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """requests response hook: keep the status and Retry-After the SDK discards."""
        facts = ResponseFacts(
            status=int(response.status_code),
            url=str(response.url),
            content_type=str(response.headers.get("Content-Type", "")),
            retry_after_s=_retry_after(response.headers),
        )
        if not hasattr(self._seen, "responses"):
            self._seen.responses = []
        self._seen.responses.append(facts)

    def _credentials(self) -> Any:
        if self._credential is not None:
            return _entra_authentication(self._credential)
        from msrest.authentication import BasicAuthentication

        return BasicAuthentication("", self._pat)

    def _configure(self, config: Any) -> None:
        """Timeouts, no hidden retries, and response capture on an SDK/msrest config."""
        config.connection.timeout = self._policy.timeout_s
        if self._ca_bundle is not None:
            config.connection.verify = self._ca_bundle
        # Our RetryPolicy does the retrying; urllib3's would sleep in the thread unseen.
        # The Retry object is shared with sessions already mounted, so change it in place.
        config.retry_policy.retries = 0
        config.retry_policy.policy.status_forcelist = frozenset()
        config.retry_policy.policy.raise_on_status = False
        config.hooks.append(self._record_response)
        config.add_user_agent(self._user_agent)

    def _sdk(self, kind: str) -> Any:
        """SDK client by kind, created once (in a worker thread) and configured."""
        with self._lock:
            client = self._clients.get(kind)
            if client is not None:
                return client
            ensure_sdk_cache_dir()
            if kind == "rest":
                from azure.devops.client_configuration import ClientConfiguration
                from msrest.service_client import ServiceClient

                config = ClientConfiguration(self.org_url)
                config.credentials = self._credentials()
                self._configure(config)
                client = ServiceClient(None, config)
            else:
                if self._connection is None:
                    from azure.devops.connection import Connection

                    self._connection = Connection(
                        base_url=self.org_url,
                        creds=self._credentials(),
                        user_agent=self._user_agent,
                    )
                factory = self._connection.clients_v7_1
                if kind == "pipelines":
                    client = factory.get_pipelines_client()
                elif kind == "task_agent":
                    client = factory.get_task_agent_client()
                elif kind == "build":
                    client = self._build_client(factory)
                elif kind == "checks":
                    client = factory.get_pipelines_checks_client()
                else:
                    raise ValueError(kind)
                self._configure(client.config)
            self._clients[kind] = client
            return client

    def _build_client(self, factory: Any) -> Any:
        # The build area's location is negotiated while the client is made, before the
        # response hook is installed: a 404 there means the organization is not there.
        try:
            return factory.get_build_client()
        except Exception as exc:
            if _status_from_message(exc) == 404:
                raise AzureNotFoundError(
                    SERVICE,
                    "connect",
                    f"no Azure DevOps organization answers at {self.org_url} (check {ORG_SETTING})",
                ) from exc
            raise

    def _rest(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """A project-scoped REST call the SDK has no client for, on the SDK's session."""
        import json

        client = self._sdk("rest")
        url = f"{self.org_url}/{quote(self.project, safe='')}/{path}"
        query = {"api-version": APPROVALS_API_VERSION, **(params or {})}
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
            # Without this Azure DevOps answers a bad credential with a 203 sign-in page.
            "X-TFS-FedAuthRedirect": "Suppress",
        }
        build = getattr(client, method.lower())  # ServiceClient.get / .patch build the request
        response = client.send(build(url, params=query, headers=headers, content=body))
        status = int(response.status_code)
        if status >= 300 or status == 203:
            message = ""
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                # A plain-text refusal ("Access Denied: … token … has expired") says why.
                is_text = "text/plain" in str(response.headers.get("Content-Type", ""))
                message = response.text[:300] if is_text else ""
            raise _HttpStatusError(status, message)
        return json.loads(response.text)

    def _locate_approvals(
        self, approval_ids: set[str], run_hints: tuple[int, ...]
    ) -> dict[str, ApprovalPlace]:
        """Search run timelines for these approvals (keys: lower-cased approval ids)."""
        wanted = {a.lower() for a in approval_ids}
        found: dict[str, ApprovalPlace] = {}
        if not wanted:
            return found
        build = self._sdk("build")
        builds: list[Any] = []
        for hint in run_hints:
            try:
                builds.append(build.get_build(self.project, hint))
            except Exception:
                # A stale hint (the run was deleted): the runs in progress are searched;
                # a credential problem fails there too and is reported from there.
                log.info("run %s named by an approval hook is not readable", hint)
        searched = {int(b.id) for b in builds}
        for candidate in build.get_builds(self.project, status_filter="inProgress") or []:
            if int(candidate.id) not in searched:
                builds.append(candidate)
        for candidate in builds:
            timeline = build.get_build_timeline(self.project, int(candidate.id))
            records = [
                TimelineEntry(str(r.id), r.parent_id, str(r.type or ""), str(r.name or ""))
                for r in (getattr(timeline, "records", None) or [])
                if r.id
            ]
            for key, entry in approvals_in_timeline(records).items():
                if key in wanted and key not in found:
                    found[key] = ApprovalPlace(
                        run_id=int(candidate.id),
                        run_name=str(candidate.build_number or candidate.id),
                        pipeline_id=_int_or_none(getattr(candidate.definition, "id", None)),
                        pipeline_name=str(getattr(candidate.definition, "name", "") or ""),
                        stage=entry.stage,
                        environments=self._guarded_environments(entry.check_suite_id),
                        web_url=_web_link(candidate) or self._web_url_for_run(int(candidate.id)),
                    )
            if wanted <= found.keys():
                break
        return found

    def _guarded_environments(self, check_suite_id: str) -> tuple[str, ...]:
        suite = self._sdk("checks").get_check_suite(
            self.project, check_suite_id, expand="resources"
        )
        resources = []
        names: dict[str, str] = {}
        for check_run in getattr(suite, "check_runs", None) or []:
            ref = getattr(check_run, "check_configuration_ref", None)
            resource = getattr(ref, "resource", None)
            if resource is None or resource.id is None:
                continue
            resources.append(GuardedResource(str(resource.type or ""), str(resource.id)))
            if resource.name:
                names[str(resource.id)] = str(resource.name)
        environments = []
        for env_id in environment_ids(resources):
            name = names.get(env_id)
            if name is None:
                found = self._sdk("task_agent").get_environment_by_id(self.project, int(env_id))
                name = str(found.name or env_id)
            environments.append(name)
        return tuple(environments)

    def _find_pipeline(self, name: str) -> PipelineRef:
        # Pipelines - List is paged (`x-ms-continuationtoken`) and the SDK's client drops the
        # token, so in a large project the pipeline may be on a later page. Definitions -
        # List filters by name on the server instead; a YAML pipeline's id is its build
        # definition's id.
        found = self._sdk("build").get_definitions(self.project, name=name) or []
        for definition in found:
            if (definition.name or "").lower() == name.lower():
                path = definition.path or "\\"
                return PipelineRef(
                    id=int(definition.id),
                    name=definition.name,
                    folder=path,
                    web_url=self._web_url_for_definition(int(definition.id)),
                )
        raise AzureNotFoundError(
            SERVICE,
            "find pipeline",
            f"no pipeline named {name!r} in project {self.project!r} (check {PIPELINE_SETTINGS})",
        )

    def _web_url_for_definition(self, pipeline_id: int) -> str:
        return f"{self.org_url}/{quote(self.project)}/_build/definition?definitionId={pipeline_id}"

    def _web_url_for_run(self, run_id: int) -> str:
        return f"{self.org_url}/{quote(self.project)}/_build/results?buildId={run_id}"

    def _to_run(self, run: Any, pipeline_name: str) -> PipelineRun:
        pipeline = run.pipeline
        params = run.template_parameters or {}
        return PipelineRun(
            pipeline_id=_pipeline_id(pipeline),
            pipeline_name=(pipeline.name if pipeline is not None else None) or pipeline_name,
            run_id=int(run.id),
            name=run.name or "",
            state=str(run.state or "unknown"),
            result=str(run.result) if run.result else None,
            web_url=_web_link(run) or self._web_url_for_run(int(run.id)),
            created_at=run.created_date,
            finished_at=run.finished_date,
            template_parameters={str(k): str(v) for k, v in params.items()},
        )


# Builds - Get speaks of a build's `status` (BuildStatus) where Runs speak of a `state`
# (RunState); a run that was queued but not started is in progress to the Runs API.
_BUILD_STATUS_AS_RUN_STATE = {
    "inprogress": "inProgress",
    "notstarted": "inProgress",
    "postponed": "inProgress",
    "cancelling": "canceling",
    "completed": "completed",
}
_PIPELINE_URL = re.compile(r"/_apis/pipelines/(?P<id>\d+)(?:[/?#]|$)", re.IGNORECASE)


def run_state_of_build(status: Any) -> str:
    """A build's documented `status` in the Runs API's words (unknown when unknown)."""
    return _BUILD_STATUS_AS_RUN_STATE.get(str(status or "").lower(), "unknown")


def _pipeline_id(pipeline: Any) -> int:
    """The id in the pipeline reference's own url (`…/_apis/Pipelines/{id}`), else its id.

    The published run samples give a pipeline the run's id beside a url naming the right
    pipeline; the url is what Azure DevOps builds from the pipeline itself.
    """
    if pipeline is None:
        return 0
    match = _PIPELINE_URL.search(str(getattr(pipeline, "url", None) or ""))
    if match is not None:
        return int(match["id"])
    return int(pipeline.id) if pipeline.id is not None else 0


class _HttpStatusError(Exception):
    """A non-success answer to one of our own REST calls (approvals)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message or f"Operation returned a {status} status code.")
        self.status = status
        self.message = message


def _web_link(run: Any) -> str:
    reference_links = getattr(run, "_links", None)
    # msrest leaves `_links` entries in additional_properties (the model expects `links`).
    for attr in ("links", "additional_properties"):
        links = getattr(reference_links, attr, None)
        if isinstance(links, Mapping):
            web = links.get("web")
            if isinstance(web, Mapping) and isinstance(web.get("href"), str):
                return str(web["href"])
    return ""


def _collection_items(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping) and isinstance(data.get("value"), list):
        return [item for item in data["value"] if isinstance(item, Mapping)]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, Mapping)]
    raise AzureResponseError(SERVICE, "read approvals", "unexpected answer shape")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _as_utc(moment: datetime) -> datetime:
    """Naive times are read as UTC, as Azure DevOps writes them."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _to_approval(item: Mapping[str, Any]) -> Approval:
    """The documented 7.1 `Approval`: no pipeline, run or environment (see `_placed`)."""
    if not isinstance(item.get("id"), str):
        raise AzureResponseError(SERVICE, "read approvals", "approval without an id")
    steps = [s for s in item.get("steps") or [] if isinstance(s, Mapping)]
    approvers = tuple(
        name for s in steps if (name := _display_name(s.get("assignedApprover"))) is not None
    )
    comment = next((str(s["comment"]) for s in steps if s.get("comment")), "")
    decided_by = next(
        (name for s in steps if (name := _display_name(s.get("actualApprover"))) is not None),
        "",
    )
    return Approval(
        id=item["id"],
        status=str(item.get("status", "")),
        pipeline_id=None,
        pipeline_name="",
        run_id=None,
        run_name="",
        instructions=str(item.get("instructions") or ""),
        approvers=approvers,
        comment=comment,
        decided_by=decided_by,
        created_at=_parse_time(item.get("createdOn")),
    )


def _display_name(identity: Any) -> str | None:
    """An identity's display name; None when it has none (the published samples send null)."""
    if not isinstance(identity, Mapping):
        return None
    name = identity.get("displayName")
    return str(name) if isinstance(name, str) and name else None


def _placed(approval: Approval, place: ApprovalPlace | None) -> Approval:
    if place is None:
        return approval
    return replace_fields(
        approval,
        pipeline_id=place.pipeline_id,
        pipeline_name=place.pipeline_name,
        run_id=place.run_id,
        run_name=place.run_name,
        web_url=place.web_url,
        stage=place.stage,
        environments=place.environments,
    )
