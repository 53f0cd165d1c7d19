"""Every card mlbot sends, filled with realistic sample data: for tests, reviews and docs.

`mlbot cards --out DIR` writes them as JSON so reviewers can paste one into the Adaptive
Cards designer, and the test suite checks each against the official schema of its
version, Teams' size limit and the verbs of its buttons. Bot messages are card 1.5;
`webhook-*` cards are the 1.4 versions that go to Workflows webhooks.

The samples are built by the real renderers from the same payloads production writes
(events go through `monitoring.engine.event_payload`), so a renderer change shows up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cards.actions import (
    ApprovalDecision,
    ApprovalLine,
    execute,
    render_action_done,
    render_action_refused,
    render_action_working,
    render_approvals,
    render_retry_confirmation,
    render_rollback_confirmation,
)
from cards.attention import attention_actions, render_silences, with_attention
from cards.common import Card
from cards.config import SettingRow, render_config_card
from cards.events import render_event_card
from cards.help import CommandHelp, render_help_card
from cards.status import render_status_card
from cards.subscriptions import SAVE_VERB, SUBSCRIPTION_COMMANDS, subscription_sample_cards
from cards.welcome import render_welcome_card
from domain.attention import ACKNOWLEDGE_VERB, SNOOZE_VERB, Acknowledgement, Silence
from domain.jobs import JobState, TrainingJob
from domain.monitoring import EventRecord
from domain.status import JobPage, build_status_report
from domain.subscriptions import SubscriptionFilters
from monitoring.deployment_watch import check_to_json, thresholds_to_json, watch_key
from monitoring.engine import RETRY_QUEUED, event_payload
from monitoring.health import HealthPolicy, MetricPoint, MetricsSample, evaluate
from monitoring.lifecycle import (
    AttemptTimedOut,
    JobEvent,
    LongRunning,
    MonitoringTimedOut,
    TrainingCanceled,
    TrainingCompleted,
    TrainingFailed,
    TrainingStarted,
)
from monitoring.metrics import online_endpoint_id

__all__ = [
    "KNOWN_VERBS",
    "SAMPLE_COMMANDS",
    "SAMPLE_NOW",
    "cards_command",
    "execute_verbs",
    "sample_cards",
    "sample_events",
    "write_cards",
]

# Every Action.Execute verb the sample cards carry. Each must have a handler in the bot's
# action registry, or pressing the button answers with an error.
KNOWN_VERBS: frozenset[str] = frozenset(
    {
        "retry.confirm",
        "rollback.confirm",
        "rollback.cancel",
        "action.cancel",
        "approval.approve",
        "approval.reject",
        SAVE_VERB,
        ACKNOWLEDGE_VERB,
        SNOOZE_VERB,
    }
)
# A fixed moment, so `mlbot cards` writes the same files each run and pictures don't churn.
SAMPLE_NOW = datetime(2026, 3, 17, 14, 30, tzinfo=UTC)
# What `help` lists for someone allowed to run everything (the bot filters by permission).
SAMPLE_COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp(
        "status [filter]",
        "Every watched training job: circuit, state, elapsed time, attempt. "
        "Add a circuit, experiment or job name to narrow it down.",
    ),
    CommandHelp(
        "history <circuit> [count]",
        "A circuit's last attempts (10 unless you say, at most 30): outcome, "
        "run time, who retried, as a chart and a table.",
    ),
    CommandHelp(
        "retry <circuits>",
        "Queue the training pipeline again for these circuits "
        "(e.g. PLANT001/CIRCUIT01,PLANT002/CIRCUIT02), after a confirmation.",
    ),
    CommandHelp("watch <job>", "Watch an Azure ML job by name and post its changes here."),
    CommandHelp("unwatch <job>", "Stop posting changes of a watched job."),
    CommandHelp(
        "rollback <environment> [reason]",
        "Queue rollback-pipeline for an environment, after a confirmation "
        "(prod needs an approver).",
    ),
    CommandHelp("approvals", "Pending Azure DevOps approvals, with Approve and Reject buttons."),
    CommandHelp("config", "The effective settings and where each came from (secrets masked)."),
    *SUBSCRIPTION_COMMANDS,
    CommandHelp(
        "digest [daily at HH:MM Zone | off]",
        "A card every day at that local time: trainings per circuit against their "
        "median, deployments, rollbacks, open approvals.",
    ),
    CommandHelp(
        "notify me [off]",
        "In your personal chat: the failures of the jobs you submit and of the "
        "circuits you own, here too.",
    ),
    CommandHelp(
        "silence [circuit=P] [experiment=E] [env=N] [kinds=K] for <30m|2h|1d> [reason]",
        "Hold back matching events for a while (recorded, not posted; "
        "nothing held is posted late).",
    ),
    CommandHelp(
        "silences",
        "The active silences: what each holds, until when, by whom, how many it held.",
    ),
    CommandHelp("unsilence <id>", "End a silence now."),
    CommandHelp("help", "What I can do for you."),
)

_WORKSPACE = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b/rg-mlops-prod/mlw-circuits"
_STUDIO = (
    "https://ml.azure.com/runs/{job}?wsid=/subscriptions/3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
    "/resourcegroups/rg-mlops-prod/providers/Microsoft.MachineLearningServices"
    "/workspaces/mlw-circuits"
)
_EXPERIMENT = "circuit-training"
_DEVOPS_RUN = "https://dev.azure.com/contoso-ml/mlops/_build/results?buildId={run}"


def _job(
    now: datetime,
    circuit: str,
    name: str,
    state: JobState,
    status: str,
    *,
    started_minutes_ago: float | None,
    ran_minutes: float | None = None,
    attempt: int = 1,
) -> TrainingJob:
    started = now - timedelta(minutes=started_minutes_ago) if started_minutes_ago else None
    ended = started + timedelta(minutes=ran_minutes) if started and ran_minutes else None
    return TrainingJob(
        workspace=_WORKSPACE,
        name=name,
        display_name=f"train {circuit.lower().replace('/', '-')}",
        experiment=_EXPERIMENT,
        circuit=circuit,
        status=status,
        state=state,
        created_at=(started or now) - timedelta(minutes=4),
        started_at=started,
        ended_at=ended,
        studio_url=_STUDIO.format(job=name),
        attempt=attempt,
    )


def _status_jobs(now: datetime) -> list[TrainingJob]:
    running, waiting = JobState.RUNNING, JobState.WAITING
    failed, completed = JobState.FAILED, JobState.COMPLETED
    return [
        _job(
            now,
            "PLANT001/CIRCUIT01",
            "brave_kettle_4x8",
            running,
            "Running",
            started_minutes_ago=272,
            attempt=1,
        ),
        _job(
            now,
            "PLANT002/CIRCUIT02",
            "quiet_lamp_q7m2",
            running,
            "Running",
            started_minutes_ago=38,
            attempt=2,
        ),
        _job(
            now,
            "PLANT003/CIRCUIT01",
            "amber_river_k2p9",
            waiting,
            "Queued",
            started_minutes_ago=None,
        ),
        _job(
            now,
            "PLANT001/CIRCUIT03",
            "tidy_owl_z81c",
            failed,
            "Failed",
            started_minutes_ago=95,
            ran_minutes=41,
            attempt=3,
        ),
        _job(
            now,
            "PLANT002/CIRCUIT01",
            "lucid_fern_0ha3",
            completed,
            "Completed",
            started_minutes_ago=180,
            ran_minutes=126,
        ),
    ]


def _status_cards(now: datetime) -> dict[str, Card]:
    jobs = _status_jobs(now)
    # 14 jobs matched, 5 fit on the card: the rest are counted, as with a busy pipeline.
    counts = {
        JobState.RUNNING: 6,
        JobState.WAITING: 3,
        JobState.FAILED: 1,
        JobState.COMPLETED: 4,
    }
    full = build_status_report(JobPage(jobs, counts), now)
    empty = build_status_report(JobPage([], {}), now)
    filtered = build_status_report(JobPage([], {}), now, "PLANT009")
    return {
        "status": render_status_card(full),
        "status-empty": render_status_card(empty),
        "status-filtered-empty": render_status_card(filtered),
    }


def _record(kind: str, payload: dict[str, Any], now: datetime, circuit: str | None) -> EventRecord:
    return EventRecord(
        id=1,
        key=f"sample/{kind}",
        kind=kind,
        payload=payload,
        session_id=1,
        workspace=payload.get("workspace"),
        job_name=payload.get("job_name"),
        circuit=circuit,
        created_at=now,
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


def _from_event(event: JobEvent | MonitoringTimedOut, now: datetime, **extra: Any) -> EventRecord:
    # The payload the engine stores, so the samples read exactly what production writes.
    payload = event_payload(event) | extra
    return _record(event.kind.value, payload, now, getattr(event, "circuit", None))


def _job_fields(now: datetime, circuit: str, job: str, status: str, attempt: int) -> dict[str, Any]:
    return {
        "workspace": _WORKSPACE,
        "job_name": job,
        "display_name": f"train {circuit.lower().replace('/', '-')}",
        "circuit": circuit,
        "status": status,
        "studio_url": _STUDIO.format(job=job),
        "attempt": attempt,
        "max_attempts": 3,
        "at": now,
    }


def sample_events(now: datetime) -> dict[str, EventRecord]:
    """One stored event per kind the engine, the DevOps hooks and the health watch raise.

    Plus the variants people meet often: a failure with no retry left, an auto-rollback.
    """
    started = now - timedelta(hours=2, minutes=14)
    circuit = "PLANT001/CIRCUIT01"
    job = "brave_kettle_4x8"
    oom = (
        "UserError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total "
        "capacity; 13.12 GiB already allocated). See the job's std_log.txt for details."
    )
    return {
        "training-started": _from_event(
            TrainingStarted(**_job_fields(now, circuit, job, "Running", 1), started_at=started),
            now,
        ),
        "training-completed": _from_event(
            TrainingCompleted(
                **_job_fields(now, circuit, job, "Completed", 1),
                started_at=started,
                ended_at=now,
                duration=now - started,
            ),
            now,
        ),
        "training-failed": _from_event(
            TrainingFailed(
                **_job_fields(now, "PLANT002/CIRCUIT02", "quiet_lamp_q7m2", "Failed", 1),
                error_summary=oom,
                retries_exhausted=False,
                duration=timedelta(minutes=42),
                error_code="UserError",
                error_category="user",
                log_name="user_logs/std_log.txt",
                log_tail=(
                    "epoch 7/20 loss=0.2113 val_loss=0.2480",
                    "epoch 8/20 loss=0.2051 val_loss=0.2466",
                    "Traceback (most recent call last):",
                    '  File "train.py", line 88, in <module>',
                    "    main()",
                    '  File "train.py", line 61, in main',
                    "    loss = trainer.step(batch)",
                    "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                ),
            ),
            now,
        ),
        "training-failed-retries-exhausted": _from_event(
            TrainingFailed(
                **_job_fields(now, "PLANT001/CIRCUIT03", "tidy_owl_z81c", "Failed", 3),
                error_summary="ModuleNotFoundError: No module named 'circuitlib.features'",
                retries_exhausted=True,
                duration=timedelta(minutes=41),
                error_code="UserError",
                error_category="user",
                details_unavailable="the log could not be read (HTTPError)",
            ),
            now,
        ),
        "training-canceled": _from_event(
            TrainingCanceled(
                **_job_fields(now, "PLANT003/CIRCUIT02", "amber_river_k2p9", "Canceled", 1),
                duration=timedelta(minutes=7),
            ),
            now,
        ),
        "attempt-timed-out": _from_event(
            AttemptTimedOut(
                **_job_fields(now, "PLANT002/CIRCUIT04", "lucid_fern_0ha3", "Running", 2),
                running_for=timedelta(seconds=3640),
                timeout=timedelta(seconds=3600),
                retries_exhausted=False,
            ),
            now,
        ),
        "long-running": _from_event(
            LongRunning(
                **_job_fields(now, circuit, job, "Running", 1),
                reminder=2,
                running_for=timedelta(hours=8, minutes=3),
            ),
            now,
        ),
        "monitoring-timed-out": _from_event(
            MonitoringTimedOut(
                session=f"experiment:{_WORKSPACE}:{_EXPERIMENT}",
                started_at=now - timedelta(hours=3),
                at=now,
                waited=timedelta(hours=3),
                unfinished=tuple(_status_jobs(now)[:3]),
            ),
            now,
            title=_EXPERIMENT,
        ),
        "retry-queued": _record(
            RETRY_QUEUED,
            {
                "circuits": ["PLANT002/CIRCUIT02", "PLANT002/CIRCUIT04"],
                "manualCircuits": "PLANT002/CIRCUIT02,PLANT002/CIRCUIT04",
                "attempt": 2,
                "next_attempts": {"PLANT002/CIRCUIT02": 2, "PLANT002/CIRCUIT04": 2},
                "max_attempts": 3,
                "pipeline": "training-pipeline",
                "run_id": 20417,
                "run_url": _DEVOPS_RUN.format(run=20417),
                "session": _EXPERIMENT,
            },
            now,
            circuit=None,
        ),
        **_devops_events(now),
        **_health_events(now),
        **_escalation_events(now),
    }


def _escalation_events(now: datetime) -> dict[str, EventRecord]:
    """What nobody took in time, posted again (`monitoring.escalation`)."""
    failure = {
        "workspace": _WORKSPACE,
        "job_name": "tidy_owl_z81c",
        "circuit": "PLANT001/CIRCUIT03",
        "attempt": 3,
        "studio_url": _STUDIO.format(job="tidy_owl_z81c"),
        "original_event_id": 41,
        "original_kind": "training_failed",
        "level": 1,
        "waited": 31 * 60.0,
        "summary": "❌ PLANT001/CIRCUIT03 failed (attempt 3 of 3, retries exhausted)",
    }
    approval = {
        "approval_id": "6b1f0c7e-2d4a-4c1b-9e3f-8a7d5c4b3a21",
        "environment": "prod",
        "pipeline": "deployment-pipeline",
        "run_id": 20231,
        "web_url": _DEVOPS_RUN.format(run=20231),
        "original_event_id": 42,
        "original_kind": "approval_required",
        "level": 1,
        "waited": 45 * 60.0,
        "summary": "🔐 Approval required: deployment to prod (deployment-pipeline #20231)",
    }
    digest = {
        "conversation_id": "19:team-general@thread.tacv2",
        "day": "2026-03-17",
        "zone": "Europe/Berlin",
        "circuits": [
            {
                "circuit": "PLANT002/CIRCUIT03",
                "completed": 0,
                "failed": 3,
                "retried": 2,
                "last_duration": 62.0,
                "median": 2400.0,
            },
            {
                "circuit": "PLANT002/CIRCUIT02",
                "completed": 1,
                "failed": 1,
                "retried": 1,
                "last_duration": 5520.0,
                "median": 2460.0,
            },
            {
                "circuit": "PLANT001/CIRCUIT01",
                "completed": 2,
                "failed": 0,
                "retried": 0,
                "last_duration": 2700.0,
                "median": 2640.0,
            },
        ],
        "hidden_circuits": 0,
        "deployments": [
            "staging: deployment-pipeline succeeded",
            "prod: deployment-pipeline succeeded",
        ],
        "rollbacks": [],
        "open_approvals": ["prod: deployment-pipeline Deploy_Prod"],
    }
    return {
        "failure-escalated": _record("failure_escalated", failure, now, "PLANT001/CIRCUIT03"),
        "approval-escalated": _record("approval_escalated", approval, now, None),
        "daily-digest": _record("daily_digest", digest, now, None),
    }


def _devops(kind: str, now: datetime, **fields: Any) -> EventRecord:
    """A stored Azure DevOps hook event: every field `DevOpsHookEvent.payload()` writes.

    Spelled out rather than imported: cards stay free of the web layer, and a test checks
    these keys against the hook's own payload so the two cannot drift apart.
    """
    payload: dict[str, Any] = {
        "event_type": "ms.vss-pipelines.stage-state-changed-event",
        "kind": kind,
        "event_id": f"sample-{kind}",
        "pipeline": "deployment-pipeline",
        "pipeline_id": 12,
        "run_id": 20231,
        "run_name": "20260317.4",
        "stage": "Deploy_Prod",
        "environment": "prod",
        "state": "completed",
        "result": None,
        "finished_at": None,
        "web_url": _DEVOPS_RUN.format(run=20231),
        "requested_for": "Dana Whitfield",
        "rollback": False,
        "approval_id": None,
        "approval_status": None,
        "approvers": [],
        "min_approvers": None,
        "instructions": None,
        "decided_by": None,
        "comment": None,
        "message": None,
        "at": now.isoformat(),
    }
    payload.update(fields)
    return _record(kind, payload, now, circuit=None)


def _devops_events(now: datetime) -> dict[str, EventRecord]:
    finished = (now - timedelta(minutes=2)).isoformat()
    approval = "6b1f0c7e-2d4a-4c1b-9e3f-8a7d5c4b3a21"
    return {
        "deployment-completed": _devops(
            "deployment_completed", now, result="succeeded", finished_at=finished
        ),
        "deployment-rollback-completed": _devops(
            "deployment_completed",
            now,
            pipeline="rollback-pipeline",
            run_id=20233,
            run_name="20260317.6",
            web_url=_DEVOPS_RUN.format(run=20233),
            result="succeeded",
            rollback=True,
            requested_for="mlbot (auto-rollback: error rate 7.4% > 5%)",
            finished_at=finished,
        ),
        "deployment-failed": _devops(
            "deployment_failed", now, result="failed", finished_at=finished
        ),
        "approval-required": _devops(
            "approval_required",
            now,
            event_type="ms.vss-pipelinechecks-events.approval-pending",
            state=None,
            approval_id=approval,
            approval_status="pending",
            approvers=["Dana Whitfield", "Rui Okafor"],
            min_approvers=1,
            instructions="Check the staging error rate on the dashboard before approving.",
        ),
        "approval-decided": _devops(
            "approval_decided",
            now,
            event_type="ms.vss-pipelinechecks-events.approval-completed",
            state=None,
            approval_id=approval,
            approval_status="approved",
            decided_by="Dana Whitfield",
            comment="Staging has been clean for 24 h.",
        ),
    }


# --- the deployment health watch (monitoring.deployment_watch) -----------------------------

_HEALTH_POLICY = HealthPolicy()  # the documented defaults: 5 %, 2000 ms P95, 3 in a row
# One minute of prod traffic per entry: (requests, 5xx errors, P95 latency in ms). Quiet
# noise after the 14:00 deployment, then the new model starts failing at 14:22.
_HEALTHY_MINUTES = (
    (118, 1, 182.0),
    (124, 0, 175.0),
    (131, 1, 196.0),
    (122, 0, 188.0),
    (127, 1, 204.0),
    (119, 0, 171.0),
    (133, 2, 213.0),
    (125, 0, 190.0),
)
_DEGRADING_MINUTES = ((126, 3, 1310.0), (122, 9, 2150.0), (129, 15, 2480.0), (124, 20, 2710.0))


def _window(first: datetime, minutes: Sequence[tuple[float, float, float]]) -> list[MetricPoint]:
    return [MetricPoint(first + timedelta(minutes=n), *m) for n, m in enumerate(minutes)]


def _point_json(point: MetricPoint) -> dict[str, Any]:
    """One chart point as `DeploymentWatcher` stores it (`points`)."""
    rate = 100.0 * point.errors_5xx / point.requests if point.requests > 0 else None
    return {
        "at": point.at.isoformat(),
        "requests": round(point.requests, 2),
        "errors_5xx": round(point.errors_5xx, 2),
        "error_rate_percent": round(rate, 2) if rate is not None else None,
        "latency_ms": round(point.latency_ms, 2) if point.latency_ms is not None else None,
    }


def _check(point: MetricPoint) -> dict[str, Any]:
    """The watcher's verdict on one minute, judged by the real rules (`evaluate`)."""
    end = point.at + timedelta(minutes=1)
    sample = MetricsSample(
        point.at, end, point.requests, point.errors_5xx, point.latency_ms, points=(point,)
    )
    return check_to_json(evaluate(sample, _HEALTH_POLICY, at=end))


def _thresholds() -> dict[str, Any]:
    return thresholds_to_json(_HEALTH_POLICY)


def _endpoint_id(endpoint: str) -> str:
    subscription, group, workspace = _WORKSPACE.split("/")
    return online_endpoint_id(subscription, group, workspace, endpoint)


def _health(
    kind: str,
    at: datetime,
    watched: tuple[str, str, str, datetime],
    **fields: Any,
) -> EventRecord:
    """A stored health-watch event: the watch (endpoint, deployment, deployment run, start),
    then the kind's own fields.

    Spelled out like the DevOps samples; a test runs the real watcher and compares keys.
    """
    endpoint, deployment, run, started = watched
    resource = _endpoint_id(endpoint)
    payload: dict[str, Any] = {
        "watch_key": watch_key("prod", resource, deployment, run),
        "environment": "prod",
        "endpoint": endpoint,
        "endpoint_resource_id": resource,
        "deployment": deployment,
        "deployment_run_id": run,
        "started_at": started.isoformat(),
        **fields,
        "at": at.isoformat(),
    }
    return _record(kind, payload, at, circuit=None)


def _health_events(now: datetime) -> dict[str, EventRecord]:
    """One sample per kind the health watch records, around one degrading prod deployment.

    `circuits-prod / blue` was deployed at 14:00 by run 20231; from 14:22 its errors and
    latency climb, the third failed check in a row (14:28) makes the rollback due, and it
    is queued when the two-minute grace ends at 14:30.
    """
    deployed = now.replace(minute=0, second=0, microsecond=0)
    due = now - timedelta(minutes=2)
    # Each check measures the minute that ended two minutes earlier (Azure publishes late),
    # so at 14:28 the points run from 13:58 (before the deployment) to 14:25.
    quiet = [_HEALTHY_MINUTES[n % len(_HEALTHY_MINUTES)] for n in range(24)]
    points = _window(deployed - timedelta(minutes=2), [*quiet, *_DEGRADING_MINUTES])
    failed = [_check(p) for p in points[-3:]]
    reason = f"automatic rollback: 3 failed health checks in a row; last: {failed[-1]['reason']}"
    chart = [_point_json(p) for p in points]
    evidence = {"checks": failed, "thresholds": _thresholds(), "points": chart}
    grace = 120.0
    pending = {
        "reason": reason,
        **evidence,
        "dry_run": False,
        "grace_seconds": grace,
        "rollback_at": (due + timedelta(seconds=grace)).isoformat(),
    }
    queued = {"reason": reason, "pipeline": "rollback-pipeline", **evidence}
    parameters = {
        "environment": "prod",
        "endpoint": "circuits-prod",
        "deployment": "blue",
        "reason": reason,
    }
    prod = ("circuits-prod", "blue", "20231", deployed)
    # An earlier deployment that stayed healthy for its whole window.
    earlier = deployed - timedelta(hours=1)
    healthy_points = _window(
        earlier - timedelta(minutes=2),
        [_HEALTHY_MINUTES[n % len(_HEALTHY_MINUTES)] for n in range(32)],
    )
    return {
        "rollback-pending": _health("rollback_pending", due, prod, **pending),
        "rollback-queued": _health(
            "rollback_queued",
            now,
            prod,
            **queued,
            run_id=20233,
            web_url=_DEVOPS_RUN.format(run=20233),
        ),
        "rollback-dry-run": _health(
            "rollback_dry_run",
            now,
            prod,
            **queued,
            template_parameters=parameters,
            why="dry run",
        ),
        "rollback-cancelled": _health(
            "rollback_cancelled",
            now - timedelta(minutes=1),
            prod,
            **evidence,
            cancelled_by="Dana Whitfield",
        ),
        "rollback-skipped": _health(
            "rollback_skipped",
            due,
            ("circuits-prod-eu", "blue", "20232", deployed),
            **pending,
            blocking_watch=watch_key("prod", _endpoint_id("circuits-prod"), "blue", "20231"),
            blocking_run_id=20233,
        ),
        "rollback-failed": _health(
            "rollback_failed",
            now,
            prod,
            **queued,
            error="Azure DevOps answered 503 Service Unavailable (3 attempts)",
        ),
        "health-inconclusive": _health(
            "health_inconclusive",
            deployed + timedelta(minutes=9),
            prod,
            inconclusive_checks=4,
            reason="metrics unavailable: Azure Monitor answered 503 Service Unavailable",
            window_ends_at=(deployed + _HEALTH_POLICY.window).isoformat(),
        ),
        "deployment-healthy": _health(
            "deployment_healthy",
            earlier + _HEALTH_POLICY.window + timedelta(minutes=2),
            ("circuits-prod", "green", "20229", earlier),
            checks=30,
            failed_checks=0,
            inconclusive_checks=0,
            low_traffic_checks=0,
            watched_seconds=_HEALTH_POLICY.window.total_seconds(),
            thresholds=_thresholds(),
            points=[_point_json(p) for p in healthy_points],
        ),
    }


def _with_cancel_button(card: Card, record: EventRecord) -> Card:
    """The "rollback pending" card as Teams shows it: with the bot's signed Cancel button
    (`bot.notifiers.with_cancel_button`; a test checks the two agree)."""
    data = {"watch_key": record.payload["watch_key"], "environment": "prod"}
    button = execute(
        "Cancel the rollback",
        "rollback.cancel",
        _signed("rollback.cancel", data),
        style="destructive",
    )
    return {**card, "actions": [button, *card.get("actions", [])]}


def _signed(verb: str, data: dict[str, Any]) -> dict[str, Any]:
    # Stands in for the bot's signed action data; the card only carries it back.
    return {"verb": verb, "data": data, "sig": "sample-signature"}


def _action_cards(now: datetime) -> dict[str, Card]:
    circuits = ("PLANT002/CIRCUIT02", "PLANT002/CIRCUIT04")
    approvals = [
        ApprovalLine(
            approval_id="6b1f0c7e-2d4a-4c1b-9e3f-8a7d5c4b3a21",
            pipeline="deploy-model",
            run="20231.3",
            stage="Deploy to prod",
            environment="prod",
            instructions="Check the staging error rate on the dashboard before approving.",
            approve=_signed("approval.approve", {"approval_id": "6b1f0c7e", "environment": "prod"}),
            reject=_signed("approval.reject", {"approval_id": "6b1f0c7e", "environment": "prod"}),
            url=_DEVOPS_RUN.format(run=20231),
        ),
        ApprovalLine(
            approval_id="0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70",
            pipeline="deploy-model",
            run="20229.1",
            stage="Deploy to staging",
            environment="staging",
            instructions="",
            approve=_signed(
                "approval.approve", {"approval_id": "0d9e8f7a", "environment": "staging"}
            ),
            reject=_signed(
                "approval.reject", {"approval_id": "0d9e8f7a", "environment": "staging"}
            ),
            url=_DEVOPS_RUN.format(run=20229),
        ),
    ]
    return {
        "retry-confirmation": render_retry_confirmation(
            circuits,
            "training-pipeline",
            _signed("retry.confirm", {"circuits": list(circuits)}),
            _signed("action.cancel", {"for": "retry"}),
            "Dana Whitfield",
        ),
        "rollback-confirmation": render_rollback_confirmation(
            "prod",
            "error rate 7.4% since the 14:05 deployment",
            "rollback-pipeline",
            _signed("rollback.confirm", {"environment": "prod", "reason": "error rate 7.4%"}),
            _signed("action.cancel", {"for": "rollback", "environment": "prod"}),
            "Dana Whitfield",
        ),
        "approvals": render_approvals(approvals),
        # After Reject on the prod row: that row says who and when, the other keeps its buttons.
        "approvals-one-decided": render_approvals(
            [
                replace(
                    approvals[0],
                    approve=None,
                    reject=None,
                    instructions="",
                    decision=ApprovalDecision(False, "Dana Whitfield", now, "rejected"),
                ),
                approvals[1],
            ]
        ),
        "approvals-none": render_approvals([]),
        "action-done": render_action_done(
            "Retry queued",
            [("Circuits", ", ".join(circuits)), ("Pipeline", "training-pipeline run #20417")],
            "Dana Whitfield",
            now,
        ),
        "action-refused": render_action_refused(
            "Only approvers for prod may do this. Ask someone in MLBOT_APPROVERS_PROD."
        ),
        "action-working": render_action_working("Dana Whitfield", now),
    }


# A few settings as `config` lists them: some set, most at their defaults.
SAMPLE_SETTINGS = (
    SettingRow("MicrosoftAppId", "00000000-0000-0000-0000-00000000b07a", "environment"),
    SettingRow("MicrosoftAppPassword", "********", "environment"),
    SettingRow("MLBOT_HOST", "0.0.0.0", "environment"),
    SettingRow("MLBOT_PORT", "3978", "default"),
    SettingRow("MLBOT_DATABASE_URL", "postgresql+asyncpg://mlbot:********@db/mlbot", ".env"),
    SettingRow("MLBOT_OPERATORS", "ml-operators@contoso.com", "environment"),
    SettingRow("MLBOT_APPROVERS", "(none)", "default"),
    SettingRow("MLBOT_CARD_SIGNING_KEY", "********", "environment"),
    SettingRow("MLBOT_AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-00000000a11e", ".env"),
    SettingRow("MLBOT_AZUREML_WORKSPACES", "mlw-plants-prod", ".env"),
    SettingRow("MLBOT_DEVOPS_ORG_URL", "https://dev.azure.com/contoso", ".env"),
    SettingRow("MLBOT_TRAINING_PIPELINE", "training-pipeline", "default"),
    SettingRow(
        "MLBOT_MONITORING_POLL_INTERVAL_SECONDS", "60", "variable group mlops-pipeline-settings"
    ),
    SettingRow("MLBOT_MONITORING_MAX_WAIT_HOURS", "3.0", "default"),
    SettingRow("MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS", "4.0", "default"),
    SettingRow("MLBOT_AUTO_RETRY_MAX_RETRIES", "2", "default"),
    SettingRow("MLBOT_AUTO_ROLLBACK_ERROR_THRESHOLD_PERCENT", "5.0", "default"),
    SettingRow("MLBOT_SMTP_HOST", "smtp.contoso.com", "environment"),
    SettingRow(
        "MLBOT_ML_ENGINEERS_EMAIL",
        "ml-engineers@contoso.com",
        "variable group mlops-pipeline-settings",
    ),
)
SAMPLE_SETTING_PROBLEMS = (
    "variable group mlops-pipeline-settings: autoRetryMaxRetries 'two' is not a whole "
    "number; keeping 2",
)


def sample_cards(
    now: datetime = SAMPLE_NOW,
    *,
    commands: Sequence[CommandHelp] = SAMPLE_COMMANDS,
    bot_name: str = "mlbot",
) -> dict[str, Card]:
    """Every card the bot sends, by file name (without `.json`), in a stable order.

    `event-*` are bot messages (1.5), `webhook-*` the same events for Workflows (1.4).
    """
    cards: dict[str, Card] = {}
    cards.update(_status_cards(now))
    cards["help"] = render_help_card(list(commands), bot_name)
    cards["config"] = render_config_card(SAMPLE_SETTINGS, SAMPLE_SETTING_PROBLEMS)
    for kind, label in (
        ("channel", "channel"),
        ("groupChat", "group-chat"),
        ("personal", "personal"),
    ):
        cards[f"welcome-{label}"] = render_welcome_card(bot_name, kind)
    cards.update(_action_cards(now))
    cards.update(subscription_sample_cards(now))
    events = sample_events(now)
    for name, record in events.items():
        cards[f"event-{name}"] = render_event_card(record, version="1.5")
    cards["event-rollback-pending-with-cancel"] = _with_cancel_button(
        cards["event-rollback-pending"], events["rollback-pending"]
    )
    cards.update(_attention_cards(cards, events, now))
    for name, record in events.items():
        cards[f"webhook-{name}"] = render_event_card(record, version="1.4")
    return cards


def _attention_cards(
    cards: Mapping[str, Card], events: Mapping[str, EventRecord], now: datetime
) -> dict[str, Card]:
    """Acknowledge / Snooze buttons, a card someone took, and the silences list."""
    out: dict[str, Card] = {}
    for name in ("training-failed", "long-running"):
        record = events[name]
        job = f"{record.workspace}/{record.job_name}"
        buttons = attention_actions(record.kind, record.id, job, _signed, None)
        out[f"event-{name}-with-buttons"] = with_attention(
            cards[f"event-{name}"], None, None, buttons
        )
    failed = events["training-failed"]
    taken = Acknowledgement(f"{failed.workspace}/{failed.job_name}", "Dana Whitfield", now)
    out["event-training-failed-acknowledged"] = with_attention(
        cards["event-training-failed"], taken, None, []
    )
    silence = Silence(
        id=3,
        kinds=("training_failed",),
        filters=SubscriptionFilters(circuit_prefixes=("PLANT002/",)),
        starts_at=now - timedelta(minutes=20),
        ends_at=now + timedelta(hours=1, minutes=40),
        created_by="Dana Whitfield",
        reason="disk maintenance on the PLANT002 cluster",
        held=4,
    )
    out["silences"] = render_silences([silence], now)
    out["silences-none"] = render_silences([], now)
    return out


def execute_verbs(card: Mapping[str, Any]) -> list[str]:
    """The verb of every Action.Execute anywhere in the card (body, ActionSets, actions)."""
    verbs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("type") == "Action.Execute":
                verbs.append(str(node.get("verb", "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return verbs


def write_cards(out_dir: Path, cards: Mapping[str, Card] | None = None) -> list[Path]:
    """Write each card as `<name>.json` into `out_dir` (created if needed); return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in (sample_cards() if cards is None else cards).items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written


def cards_command(out: Path) -> int:
    """`mlbot cards --out DIR`: write every sample card and list the files."""
    written = write_cards(out)
    for path in written:
        print(path)
    print(f"wrote {len(written)} cards to {out}")
    return 0
