"""The one way mlbot queues an Azure DevOps pipeline run: `queue_once`.

Every caller (card buttons, the engine's retries, the deployment watch's rollback) names
what it queues with a key. The intent is stored under that key before the POST and
completed with the run id after it. When the POST ends without saying whether a run was
queued (a timeout, a 5xx, a connection dropped after the request left), the intent is
`unknown`: the next call with the same key looks for the run with `find_run` instead of
posting again, and posts again only once no earlier POST can still create a run
(`settle`). A key that already has its run never posts: a double press, a retry after a
restart or a second replica all get the same run back.

The state rules are pure functions (`first_step`, `after_miss`, `outcome_is_uncertain`);
`PipelineRuns` does the I/O around them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from domain.pipeline_intents import FAILED, PENDING, QUEUED, UNKNOWN, PipelineIntent, StoredEvent
from monitoring.azure_calls import AzureCallError, AzureResponseError, TransientAzureError

log = logging.getLogger(__name__)


class IntentRepository(Protocol):
    """Where intents are kept (`store.pipeline_intents.PipelineIntentStore` is one)."""

    async def open(
        self,
        key: str,
        pipeline: str,
        parameters: Mapping[str, str],
        now: datetime,
        *,
        event_id: int | None = None,
        posted_at: datetime | None = None,
        run_id: int | None = None,
        run_url: str | None = None,
    ) -> tuple[PipelineIntent, bool]: ...

    async def get(self, key: str) -> PipelineIntent | None: ...

    async def begin_post(self, intent: PipelineIntent, now: datetime) -> bool: ...

    async def mark_queued(self, key: str, run_id: int, run_url: str, now: datetime) -> None: ...

    async def mark_unsettled(self, key: str, status: str, error: str, now: datetime) -> None: ...

    async def unresolved(self, key_prefix: str, limit: int) -> list[PipelineIntent]: ...

    async def run_taken(self, pipeline: str, run_id: int, other_than: str) -> bool: ...

    async def new_events(
        self, cursor: str, kind: str, limit: int
    ) -> tuple[list[StoredEvent], int]: ...

    async def event_payload(self, event_id: int) -> dict[str, Any] | None: ...

    async def move_cursor(self, cursor: str, position: int, now: datetime) -> None: ...


# A POST that left this long ago and whose run cannot be found queued nothing: Azure
# DevOps creates the run while it answers, and mlbot gives up on an answer after 30 s.
DEFAULT_SETTLE = timedelta(minutes=5)
# A run created this long before the intent still counts as its run: the pipeline
# service's clock may be a little behind ours.
CLOCK_SLACK = timedelta(minutes=5)
_CLIENT_ERROR = re.compile(r"^HTTP 4\d\d\b")


class QueuedRun(Protocol):
    @property
    def run_id(self) -> int: ...

    @property
    def web_url(self) -> str: ...


class RunPipelines(Protocol):
    """What queuing needs from `monitoring.devops.AzureDevOpsPipelines`."""

    async def queue_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str]
    ) -> QueuedRun: ...

    async def find_run(
        self, pipeline_name: str, template_parameters: Mapping[str, str], since: datetime
    ) -> QueuedRun | None: ...


# --- outcomes ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunRef:
    run_id: int
    web_url: str


@dataclass(frozen=True, slots=True)
class Queued:
    """This call's POST queued the run."""

    key: str
    run: RunRef


@dataclass(frozen=True, slots=True)
class AlreadyQueued:
    """An earlier call with the same key had queued the run (found now, or known)."""

    key: str
    run: RunRef


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """Whether a run was queued is not known yet; calling again with the key resolves it."""

    key: str
    reason: str


QueueOutcome = Queued | AlreadyQueued | OutcomeUnknown


# --- the pure rules ------------------------------------------------------------------------
class Step(StrEnum):
    KNOWN = "known"  # the run is recorded: answer with it
    POST = "post"  # nothing can have been queued: post
    LOOK_UP = "look_up"  # a POST may have queued it: look for the run first


def first_step(intent: PipelineIntent) -> Step:
    if intent.status == QUEUED and intent.run_id is not None:
        return Step.KNOWN
    if intent.status == FAILED:
        return Step.POST  # refused before: asking again is a new attempt
    if intent.status == PENDING and intent.posted_at is None:
        return Step.POST
    return Step.LOOK_UP


def after_miss(intent: PipelineIntent, now: datetime, settle: timedelta) -> Step | None:
    """`find_run` found nothing: POST when no earlier POST can still queue the run,
    None (still unknown) while one might."""
    if intent.status == PENDING:
        # Noted as maybe posted by a process that stopped: nothing found means not posted.
        return Step.POST
    if intent.posted_at is None or now - intent.posted_at >= settle:
        return Step.POST
    return None


def outcome_is_uncertain(exc: AzureCallError) -> bool:
    """Whether a failed POST may still have queued a run.

    Throttling, 5xx, timeouts, connection errors and answers we could not read may come
    after Azure DevOps acted; a refusal (401/403/404, other 4xx) never does.
    """
    if isinstance(exc, TransientAzureError):
        return True
    if isinstance(exc, AzureResponseError):
        return not _CLIENT_ERROR.match(exc.message)
    return False


def lookup_since(intent: PipelineIntent, slack: timedelta) -> datetime:
    """The oldest creation time a run of this intent can have."""
    first = intent.created_at
    if intent.posted_at is not None and intent.posted_at < first:
        first = intent.posted_at
    return first - slack


# --- the service ---------------------------------------------------------------------------
class PipelineRuns:
    """Queues pipeline runs once per key; see the module docstring."""

    def __init__(
        self,
        pipelines: RunPipelines,
        intents: IntentRepository,
        clock: Callable[[], datetime],
        *,
        settle: timedelta = DEFAULT_SETTLE,
        clock_slack: timedelta = CLOCK_SLACK,
    ) -> None:
        self._pipelines = pipelines
        self.intents = intents
        self._clock = clock
        self._settle = settle
        self._slack = clock_slack

    async def queue_once(
        self, key: str, pipeline: str, parameters: Mapping[str, str]
    ) -> QueueOutcome:
        """Queue `pipeline` with `parameters` unless `key` already queued it.

        Raises `AzureCallError` when Azure DevOps refused the run (nothing was queued;
        calling again with the key tries again).
        """
        intent, _ = await self.intents.open(key, pipeline, parameters, self._clock())
        return await self.resolve(intent)

    async def resolve(self, intent: PipelineIntent) -> QueueOutcome:
        """Carry a stored intent one step on: answer, look for its run, or post it."""
        step = first_step(intent)
        if step is Step.KNOWN:
            assert intent.run_id is not None
            return AlreadyQueued(intent.key, RunRef(intent.run_id, intent.run_url or ""))
        if step is Step.LOOK_UP:
            try:
                found = await self._pipelines.find_run(
                    intent.pipeline, intent.parameters, lookup_since(intent, self._slack)
                )
            except AzureCallError as exc:
                return OutcomeUnknown(intent.key, f"could not look for the run: {exc.message}")
            if found is not None and not await self.intents.run_taken(
                intent.pipeline, found.run_id, intent.key
            ):
                await self.intents.mark_queued(
                    intent.key, found.run_id, found.web_url, self._clock()
                )
                log.info(
                    "pipeline run %s of %s found for %s", found.run_id, intent.pipeline, intent.key
                )
                return AlreadyQueued(intent.key, RunRef(found.run_id, found.web_url))
            if after_miss(intent, self._clock(), self._settle) is None:
                return OutcomeUnknown(
                    intent.key,
                    intent.error or "Azure DevOps has not confirmed the run yet",
                )
        return await self._post(intent)

    async def _post(self, intent: PipelineIntent) -> QueueOutcome:
        now = self._clock()
        if not await self.intents.begin_post(intent, now):
            current = await self.intents.get(intent.key)
            if current is not None and current.status == QUEUED and current.run_id is not None:
                return AlreadyQueued(current.key, RunRef(current.run_id, current.run_url or ""))
            return OutcomeUnknown(intent.key, "another request is queuing this run")
        try:
            run = await self._pipelines.queue_run(intent.pipeline, intent.parameters)
        except AzureCallError as exc:
            if outcome_is_uncertain(exc):
                await self.intents.mark_unsettled(intent.key, UNKNOWN, str(exc), self._clock())
                log.warning(
                    "queuing %s for %s: outcome unknown: %s", intent.pipeline, intent.key, exc
                )
                return OutcomeUnknown(intent.key, exc.message)
            await self.intents.mark_unsettled(intent.key, FAILED, str(exc), self._clock())
            raise
        await self.intents.mark_queued(intent.key, run.run_id, run.web_url, self._clock())
        return Queued(intent.key, RunRef(run.run_id, run.web_url))
