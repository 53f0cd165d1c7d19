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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cards.actions import (
    ApprovalLine,
    render_action_done,
    render_action_refused,
    render_approvals,
    render_retry_confirmation,
    render_rollback_confirmation,
)
from cards.common import Card
from cards.events import render_event_card
from cards.help import CommandHelp, render_help_card
from cards.status import render_status_card
from cards.welcome import render_welcome_card
from monitoring.engine import RETRY_QUEUED, event_payload
from monitoring.jobs import JobState, TrainingJob
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
from monitoring.status_report import JobPage, build_status_report
from store.monitoring import EventRecord

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
    {"retry.confirm", "rollback.confirm", "action.cancel", "approval.approve", "approval.reject"}
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
    """One stored event per kind the engine and the DevOps hooks raise.

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
            ),
            now,
        ),
        "training-failed-retries-exhausted": _from_event(
            TrainingFailed(
                **_job_fields(now, "PLANT001/CIRCUIT03", "tidy_owl_z81c", "Failed", 3),
                error_summary="ModuleNotFoundError: No module named 'circuitlib.features'",
                retries_exhausted=True,
                duration=timedelta(minutes=41),
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
    }


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
    for kind, label in (
        ("channel", "channel"),
        ("groupChat", "group-chat"),
        ("personal", "personal"),
    ):
        cards[f"welcome-{label}"] = render_welcome_card(bot_name, kind)
    cards.update(_action_cards(now))
    events = sample_events(now)
    for name, record in events.items():
        cards[f"event-{name}"] = render_event_card(record, version="1.5")
    for name, record in events.items():
        cards[f"webhook-{name}"] = render_event_card(record, version="1.4")
    return cards


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
