"""The handlers of the chat commands and card buttons in `bot.command_catalog`.

Access is checked before any of them runs (`bot.authorization`); they only do the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.access import AccessPolicy
from bot.attention_commands import AttentionServices, register_attention
from bot.authorization import Authorization
from bot.card_actions import ActionRegistry, ActionTurn
from bot.card_signing import CardSigner
from bot.chat import ChatTurn
from bot.command_catalog import CARD_ACTIONS, COMMANDS
from bot.commands import CommandError, CommandRegistry
from bot.digest_command import register_digest_command
from bot.history_command import register_history_command
from bot.notify_command import register_notify_command
from bot.operations import Operations, parse_rollback
from bot.subscription_commands import register_subscription_commands
from cards.actions import (
    STOPPED_ICON,
    ApprovalDecision,
    ApprovalLine,
    render_action_done,
    render_approvals,
    render_retry_confirmation,
    render_rollback_confirmation,
)
from cards.common import Card, text
from cards.config import SettingRow, render_config_card
from cards.events import health_evidence
from cards.help import CommandHelp, render_help_card
from cards.status import render_status_card
from monitoring.azure_calls import AzureCallError
from monitoring.deployment_watch import CancelOutcome, DeploymentWatcher
from monitoring.devops import Approval
from monitoring.engine import MonitoringEngine
from monitoring.status_report import StatusFilterError, StatusService
from store.audit import AuditTrail
from store.conversations import ConversationStore
from store.digests import DigestStore
from store.history import CircuitHistoryStore
from store.personal_alerts import PersonalAlertStore


@dataclass(frozen=True, slots=True)
class ChatServices:
    status: StatusService
    bot_name: str
    operations: Operations
    signer: CardSigner
    policy: Callable[[], AccessPolicy]
    audit: AuditTrail
    settings_rows: Callable[[], list[tuple[str, str, str]]]
    # Bad values found in the variable group (the previous value is kept for each).
    settings_problems: Callable[[], list[str]] = list
    # Each setting's default as `config` shows it (name -> shown value).
    settings_defaults: Callable[[], dict[str, str]] = dict
    # The monitoring engine, looked up when used (it is built after the handlers);
    # None when no Azure ML workspace is configured.
    engine: Callable[[], MonitoringEngine | None] = lambda: None
    # The deployment health watch (its Cancel button); None when no endpoint is watched.
    watcher: Callable[[], DeploymentWatcher | None] = lambda: None
    # Where the bot is installed and what each conversation is subscribed to.
    conversations: ConversationStore | None = None
    # Past attempts of each circuit (`history`).
    history: CircuitHistoryStore | None = None
    # Silences, acknowledgements and snoozes.
    attention: AttentionServices | None = None
    # Which conversations get a daily digest.
    digests: DigestStore | None = None
    # Who asked for their own failures in their personal chat.
    personal_alerts: PersonalAlertStore | None = None


@dataclass(frozen=True, slots=True)
class Handlers:
    commands: CommandRegistry[ChatTurn]
    actions: ActionRegistry

    def __post_init__(self) -> None:
        # A catalog entry without a handler would be listed, offered and never answered.
        unhandled = self.commands.unhandled() + self.actions.unhandled()
        if unhandled:
            raise LookupError(f"no handler for {', '.join(unhandled)}")


def button_key(turn: ActionTurn) -> str:
    """The `queue_once` key of a button: its signed card action, one per button."""
    return f"card:{turn.action.nonce}"


def _rollback_environment(args: str) -> str:
    """The environment `rollback` is about, for the access check (same parse as its handler)."""
    return parse_rollback(args)[0]


def build_handlers(services: ChatServices) -> Handlers:
    authorization = Authorization(services.policy, services.audit)
    registry: CommandRegistry[ChatTurn] = CommandRegistry(authorization.command)
    actions = ActionRegistry()
    ops = services.operations
    signer = services.signer

    @registry.handles(COMMANDS.status)
    async def status(turn: ChatTurn, args: str) -> None:
        try:
            report = await services.status.report(turn.now, args)
        except StatusFilterError as exc:
            raise CommandError(str(exc)) from None
        summary = f"Training status: {report.total} job(s)"
        await turn.reply_card(render_status_card(report), summary=summary)

    @registry.handles(COMMANDS.retry)
    async def retry(turn: ChatTurn, args: str) -> None:
        circuits = await ops.validate_circuits(args)
        confirm = signer.sign("retry.confirm", {"circuits": list(circuits)})
        cancel = signer.sign("action.cancel", {"for": "retry"})
        await turn.reply_card(
            render_retry_confirmation(
                circuits, ops.training_pipeline(), confirm, cancel, turn.actor.display_name
            ),
            summary="Confirm the retry",
        )

    @actions.handles(CARD_ACTIONS.retry_confirm)
    async def retry_confirmed(turn: ActionTurn) -> Card:
        circuits = tuple(str(c) for c in turn.action.data.get("circuits", []))
        run = await ops.queue_retry(circuits, button_key(turn))
        return render_action_done(
            "Retry queued",
            [
                ("Circuits", ", ".join(circuits)),
                ("Pipeline", f"{ops.training_pipeline()} run #{run.run_id}"),
            ],
            turn.actor.display_name,
            turn.now,
        )

    def _engine() -> MonitoringEngine:
        engine = services.engine()
        if engine is None:
            raise CommandError(
                "Monitoring is not configured for this bot (no Azure ML workspace), "
                "so I cannot watch jobs."
            )
        return engine

    def _job_name(args: str, command: str) -> str:
        name = args.strip()
        if not name or len(name.split()) != 1:
            raise CommandError(f"Which job? For example: `{command} <job name>`.")
        return name

    @registry.handles(COMMANDS.watch)
    async def watch(turn: ChatTurn, args: str) -> None:
        name = _job_name(args, "watch")
        engine = _engine()
        try:
            job = await engine.watch_job(name, turn.actor.display_name)
        except LookupError:
            raise CommandError(
                f"I can't find a job named `{name}` in the workspaces I watch. "
                "Check the name in Azure ML studio."
            ) from None
        except AzureCallError as exc:
            raise CommandError(
                f"Azure ML did not answer properly ({exc.message}). Try again in a minute."
            ) from None
        circuit = job.circuit or "no circuit"
        await turn.reply_text(
            f"Watching {job.name} ({circuit}, {job.state.value}) — I'll post its changes here."
        )

    @registry.handles(COMMANDS.unwatch)
    async def unwatch(turn: ChatTurn, args: str) -> None:
        name = _job_name(args, "unwatch")
        if not await _engine().unwatch_job(name):
            raise CommandError(f"I'm not watching a job named `{name}`, so nothing changed.")
        await turn.reply_text(f"Stopped watching {name}.")

    @registry.handles(COMMANDS.rollback, environment=_rollback_environment)
    async def rollback(turn: ChatTurn, args: str) -> None:
        environment, reason = parse_rollback(args)
        confirm = signer.sign("rollback.confirm", {"environment": environment, "reason": reason})
        cancel = signer.sign("action.cancel", {"for": "rollback", "environment": environment})
        await turn.reply_card(
            render_rollback_confirmation(
                environment,
                reason,
                ops.rollback_pipeline(),
                confirm,
                cancel,
                turn.actor.display_name,
            ),
            summary=f"Confirm the rollback of {environment}",
        )

    @actions.handles(CARD_ACTIONS.rollback_confirm)
    async def rollback_confirmed(turn: ActionTurn) -> Card:
        environment = str(turn.action.data.get("environment", ""))
        reason = str(turn.action.data.get("reason", ""))
        watcher = services.watcher()
        busy = await watcher.rollback_in_progress(environment) if watcher is not None else None
        if busy is not None:
            run_no = f"run #{busy.rollback_run_id}" if busy.rollback_run_id else "being queued"
            return render_action_done(
                f"Not queued: an automatic rollback of {environment} is already under way",
                [("Pipeline", f"{ops.rollback_pipeline()} {run_no}"), ("Deployment", busy.key)],
                turn.actor.display_name,
                turn.now,
                ok=False,
            )
        run = await ops.queue_rollback(environment, reason, turn.actor.signature, button_key(turn))
        if watcher is not None:
            # The deployment being judged is gone: no automatic rollback may follow.
            await watcher.supersede(environment, f"{turn.actor.display_name} (manual rollback)")
        return render_action_done(
            f"Rollback of {environment} queued",
            [
                ("Pipeline", f"{ops.rollback_pipeline()} run #{run.run_id}"),
                ("Reason", reason or "—"),
            ],
            turn.actor.display_name,
            turn.now,
        )

    @actions.handles(CARD_ACTIONS.rollback_cancel)
    async def automatic_rollback_cancelled(turn: ActionTurn) -> Card:
        data = turn.action.data
        environment = str(data.get("environment") or "—")
        watcher = services.watcher()
        outcome = (
            await watcher.cancel_rollback(str(data.get("watch_key", "")), turn.actor.display_name)
            if watcher is not None
            else CancelOutcome.NOT_FOUND
        )
        title, ok = _CANCEL_OUTCOMES[outcome]
        key = str(data.get("watch_key", ""))
        evidence = await watcher.evidence(key) if watcher is not None and key else {}
        return render_action_done(
            title.format(environment=environment),
            [("Environment", environment)],
            turn.actor.display_name,
            turn.now,
            ok=ok,
            # Cancelled is a decision to stop, not a success; the figures stay in view.
            icon=STOPPED_ICON if outcome is CancelOutcome.CANCELLED else None,
            evidence=health_evidence(evidence, turn.now),
        )

    @actions.handles(CARD_ACTIONS.action_cancel)
    async def cancelled(turn: ActionTurn) -> Card:
        what = str(turn.action.data.get("for", "action"))
        environment = str(turn.action.data.get("environment") or "")
        if what == "rollback" and environment:
            return render_action_done(
                f"Rollback of {environment} cancelled: nothing was queued",
                [("Environment", environment)],
                turn.actor.display_name,
                turn.now,
                icon=STOPPED_ICON,
            )
        return render_action_done(
            f"{what.title()} cancelled: nothing was queued",
            [],
            turn.actor.display_name,
            turn.now,
            icon=STOPPED_ICON,
        )

    def _approval_lines(pending: list[Approval]) -> list[ApprovalLine]:
        lines = []
        for position, approval in enumerate(pending):
            # Shown only: who may press the buttons is decided from Azure DevOps when pressed.
            environment = approval.environment or ""
            run = approval.run_name or str(approval.run_id or "")
            shared: dict[str, str | int] = {
                "approval_id": approval.id,
                "environment": environment,
                "pipeline": approval.pipeline_name or "",
                # The row's place on the list card: a decision redraws that row only.
                "position": position,
                "stage": approval.stage,
                "run": run,
            }
            if approval.run_id is not None:
                shared["run_id"] = approval.run_id
            lines.append(
                ApprovalLine(
                    approval_id=approval.id,
                    pipeline=approval.pipeline_name or "?",
                    run=run,
                    stage=approval.stage,
                    environment=environment,
                    instructions=approval.instructions or "",
                    approve=signer.sign("approval.approve", shared),
                    reject=signer.sign("approval.reject", shared),
                    url=approval.web_url,
                )
            )
        return lines

    @registry.handles(COMMANDS.approvals)
    async def approvals(turn: ChatTurn, args: str) -> None:
        lines = _approval_lines(await ops.pending_approvals())
        await turn.reply_card(render_approvals(lines), summary=f"{len(lines)} pending approval(s)")

    async def _list_after_decision(turn: ActionTurn, decided: ApprovalLine, position: int) -> Card:
        """The approvals card again: the decided row in its place, the others as Azure
        DevOps has them now, each with fresh buttons."""
        try:
            others = [
                line
                for line in _approval_lines(await ops.pending_approvals())
                if line.approval_id.lower() != decided.approval_id.lower()
            ]
        except CommandError as exc:
            return render_approvals([decided]) | {
                "body": [
                    *render_approvals([decided])["body"],
                    text(
                        f"The other approvals could not be listed again ({exc}). "
                        "Ask for `approvals` to see them.",
                        isSubtle=True,
                    ),
                ]
            }
        others.insert(min(max(position, 0), len(others)), decided)
        return render_approvals(others)

    async def _decided(turn: ActionTurn, approve: bool) -> Card:
        data = turn.action.data
        comment = str(turn.action.inputs.get("comment", "") or "")[:500]
        approval = await ops.decide(
            str(data["approval_id"]), approve, turn.actor.signature, comment
        )
        verb = "Approved" if approve else "Rejected"
        looked_up = turn.environment.name if turn.environment is not None else None
        position = data.get("position")
        if isinstance(position, int) and not isinstance(position, bool):
            decided = ApprovalLine(
                approval_id=str(data["approval_id"]),
                pipeline=str(data.get("pipeline") or "?"),
                run=str(data.get("run") or data.get("run_id") or ""),
                stage=str(data.get("stage") or ""),
                environment=looked_up or str(data.get("environment") or ""),
                instructions="",
                approve=None,
                reject=None,
                decision=ApprovalDecision(
                    approve, turn.actor.display_name, turn.now, approval.status
                ),
            )
            return await _list_after_decision(turn, decided, position)
        return render_action_done(
            f"{verb}: {data.get('pipeline') or 'approval'}",
            [("Environment", looked_up or "unknown"), ("Status", approval.status)],
            turn.actor.display_name,
            turn.now,
            ok=approve,
        )

    async def approval_environment(data: dict[str, Any]) -> str | None:
        run_id = data.get("run_id")
        return await ops.approval_environment(
            str(data.get("approval_id") or ""), run_id if isinstance(run_id, int) else None
        )

    @actions.handles(CARD_ACTIONS.approval_approve, environment=approval_environment)
    async def approve(turn: ActionTurn) -> Card:
        return await _decided(turn, True)

    @actions.handles(CARD_ACTIONS.approval_reject, environment=approval_environment)
    async def reject(turn: ActionTurn) -> Card:
        return await _decided(turn, False)

    @registry.handles(COMMANDS.config)
    async def config(turn: ChatTurn, args: str) -> None:
        wanted = " ".join(args.split())
        defaults = services.settings_defaults()
        rows = [
            SettingRow(name, value, source, defaults.get(name))
            for name, value, source in services.settings_rows()
        ]
        if wanted:
            rows = [row for row in rows if wanted.lower() in row.name.lower()]
        await turn.reply_card(
            render_config_card(rows, services.settings_problems(), wanted[:100]),
            summary="mlbot settings",
        )

    register_subscription_commands(registry, actions, services)
    register_history_command(registry, services.history)
    register_attention(registry, actions, services.attention)
    register_digest_command(registry, services.digests)
    register_notify_command(registry, services.personal_alerts)

    @registry.handles(COMMANDS.help)
    async def help_(turn: ChatTurn, args: str) -> None:
        allowed = [s for s in registry.specs() if authorization.may_run(s, turn)]
        commands = [CommandHelp(spec.usage, spec.summary) for spec in allowed]
        name = turn.facts.bot_name or services.bot_name  # the name it was addressed by
        await turn.reply_card(render_help_card(commands, name), summary=f"{name} help")

    return Handlers(registry, actions)


# What the person who pressed Cancel on a pending automatic rollback is told.
_CANCEL_OUTCOMES: dict[CancelOutcome, tuple[str, bool]] = {
    CancelOutcome.CANCELLED: ("Automatic rollback of {environment} cancelled", True),
    CancelOutcome.TOO_LATE: ("Too late: the rollback of {environment} is already queued", False),
    CancelOutcome.NOT_PENDING: ("No rollback of {environment} is waiting to be cancelled", False),
    CancelOutcome.NOT_FOUND: ("This deployment of {environment} is no longer watched", False),
}
