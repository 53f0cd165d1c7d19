"""What commands and card buttons do in Azure DevOps: retry, roll back, approve.

The same functions serve chat commands, card actions (and later the scheduler), so
validation, audit wording and error messages are shared. Runs are queued only through
`monitoring.pipeline_runs.queue_once`, under the key the caller names (a button's
nonce): asking again with the same key answers with the same run.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.commands import CommandError, OutcomePending
from bot.echoed_text import echoed
from monitoring.azure_calls import AzureAuthError, AzureCallError, AzureNotFoundError
from monitoring.devops import Approval, AzureDevOpsPipelines, decision_note
from monitoring.pipeline_runs import OutcomeUnknown, PipelineRuns, RunRef
from monitoring.retries import CircuitListError, format_manual_circuits, parse_circuits


def explain_azure_error(exc: AzureCallError) -> str:
    """An Azure failure as a sentence for the channel (details stay in the log)."""
    if isinstance(exc, AzureAuthError):
        return (
            f"Azure DevOps refused mlbot's credentials ({exc.setting}). An admin needs to fix it."
        )
    if isinstance(exc, AzureNotFoundError):
        return f"Azure DevOps could not find it: {exc.message}"
    return f"Azure DevOps did not answer properly ({exc.message}). Try again in a minute."


@dataclass(frozen=True, slots=True)
class Operations:
    pipelines: AzureDevOpsPipelines | None
    training_pipeline: Callable[[], str]
    rollback_pipeline: Callable[[], str]
    known_circuits: Callable[[], Awaitable[set[str]]]
    # `manualCircuits` of the variable group: what `retry` alone proposes to retrain.
    default_circuits: Callable[[], tuple[str, ...]] = tuple
    # Queues runs once per key; None when Azure DevOps is not configured.
    runs: PipelineRuns | None = None

    def _require_pipelines(self) -> AzureDevOpsPipelines:
        if self.pipelines is None:
            raise CommandError(
                "Azure DevOps is not configured for this bot (MLBOT_DEVOPS_ORG_URL, "
                "MLBOT_DEVOPS_PROJECT), so it cannot queue or approve anything."
            )
        return self.pipelines

    async def validate_circuits(self, text: str) -> tuple[str, ...]:
        """Parse `PLANT001/CIRCUIT01, PLANT002/CIRCUIT02`; unknown circuits are named.

        No text means the circuits the variable group's `manualCircuits` names, if any.
        """
        if not text.strip():
            text = ",".join(self.default_circuits())
        if not text.strip():
            raise CommandError(
                "Which circuits? For example: `retry PLANT001/CIRCUIT01,PLANT002/CIRCUIT02`."
            )
        try:
            circuits = parse_circuits(text)
        except CircuitListError as exc:
            if exc.invalid:
                # Typed words go back as inert code spans, never as the user wrote them.
                names = ", ".join(f"`{echoed(item)}`" for item in exc.invalid[:10])
                noun = "is not a circuit" if len(exc.invalid) == 1 else "are not circuits"
                raise CommandError(
                    f"{names} {noun}: expected <PLANT>/<CIRCUIT> using letters, digits, "
                    "'_' or '-', e.g. PLANT001/CIRCUIT01. Nothing was queued."
                ) from None
            raise CommandError(f"{exc} Nothing was queued.") from None
        known = await self.known_circuits()
        unknown = [c for c in circuits if known and c not in known]
        if unknown:
            names = ", ".join(f"`{echoed(c)}`" for c in unknown)
            raise CommandError(
                f"I don't know {names}: no training job of that circuit has been seen. "
                "Check the spelling (`status` lists the circuits). Nothing was queued."
            )
        return circuits

    async def queue_retry(self, circuits: tuple[str, ...], key: str) -> RunRef:
        """Queue the training pipeline for `circuits` once per `key`."""
        return await self._queue_once(
            key,
            self.training_pipeline(),
            {"manualCircuits": format_manual_circuits(circuits)},
            "retry",
        )

    async def queue_rollback(self, environment: str, reason: str, actor: str, key: str) -> RunRef:
        """Queue the rollback pipeline for `environment` once per `key`."""
        return await self._queue_once(
            key,
            self.rollback_pipeline(),
            {"environment": environment, "reason": reason or f"Requested in Teams by {actor}"},
            "rollback",
        )

    async def _queue_once(
        self, key: str, pipeline: str, parameters: dict[str, str], what: str
    ) -> RunRef:
        self._require_pipelines()
        if self.runs is None:
            raise CommandError("Azure DevOps is not configured for this bot, so it cannot queue.")
        try:
            outcome = await self.runs.queue_once(key, pipeline, parameters)
        except AzureCallError as exc:
            raise CommandError(explain_azure_error(exc)) from None
        if isinstance(outcome, OutcomeUnknown):
            raise OutcomePending(
                f"Azure DevOps did not confirm whether the {what} was queued "
                f"({outcome.reason}). I am checking: press the button again in a minute to "
                f"see its run. It will not queue a second {pipeline} run."
            )
        return outcome.run

    async def pending_approvals(self) -> list[Approval]:
        pipelines = self._require_pipelines()
        try:
            return await pipelines.list_pending_approvals()
        except AzureCallError as exc:
            raise CommandError(explain_azure_error(exc)) from None

    async def approval_environment(self, approval_id: str, run_id: int | None) -> str | None:
        """The environment whose check the approval is, as Azure DevOps says; None when
        Azure DevOps does not say (no run holds it, or it guards several environments)."""
        pipelines = self._require_pipelines()
        try:
            place = await pipelines.locate_approval(approval_id, run_id)
        except AzureCallError as exc:
            raise CommandError(
                "I could not check which environment this approval is for, so nothing was "
                f"decided. {explain_azure_error(exc)}"
            ) from None
        return place.environment if place is not None else None

    async def decide(self, approval_id: str, approve: bool, actor: str, comment: str) -> Approval:
        pipelines = self._require_pipelines()
        # The decision is recorded under mlbot's identity; the comment names the person.
        note = decision_note(approve, actor, comment)
        try:
            return await pipelines.decide_approval(approval_id, approve, note)
        except AzureCallError as exc:
            raise CommandError(explain_azure_error(exc)) from None


ENVIRONMENT_NAME = r"[A-Za-z0-9_-]{1,40}"


def parse_rollback(args: str) -> tuple[str, str]:
    """`rollback prod model drifted` -> ("prod", "model drifted")."""
    environment, _, reason = args.strip().partition(" ")
    if not environment:
        raise CommandError("Which environment? For example: `rollback prod latency doubled`.")
    if not re.fullmatch(ENVIRONMENT_NAME, environment):
        raise CommandError(
            f"`{echoed(environment)}` is not an environment name (letters, digits, '-' and '_')."
        )
    return environment.lower(), reason.strip()[:300]
