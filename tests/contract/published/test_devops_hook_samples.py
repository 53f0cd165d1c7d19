"""Azure DevOps service hooks, as the published samples send them, through mlbot's parser.

Source: MicrosoftDocs/azure-devops-docs `docs/service-hooks/events.md` at
09dc63ed0e56c9e324f697fd41998b4f2f6e9675, sections "Run stage waiting for approval"
(`ms.vss-pipelinechecks-events.approval-pending`) and "Run stage approval completed"
(`ms.vss-pipelinechecks-events.approval-completed`) ->
examples/devops_hook_approval_pending.json and examples/devops_hook_approval_completed.json.
In both samples `pipeline`, `stage`, `run` and `stageName` are null and the approvers'
`displayName` is null: what mlbot knows comes from the approval and the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.devops_hooks import DevOpsEventKind, event_key, parse_devops_hook

EXAMPLES = Path(__file__).parent / "examples"


def _sample(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def test_the_published_approval_pending_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_approval_pending.json"))

    assert event is not None and event.kind is DevOpsEventKind.APPROVAL_REQUIRED
    assert event.approval_id == "0f027b05-0942-4a35-9218-26fa07d8760a"
    assert event.approval_status == "pending"
    assert event.instructions == "Instructions" and event.min_approvers == 2
    # Run and environment come from the message: the resource leaves them null.
    assert event.run_id == 2
    assert event.environment == "env1"
    assert event.web_url == (
        "https://dev.azure.com/fabfiber/Fabrikam-Fiber-Git/_build/results?buildId=2&view=results"
    )
    # Approvers without display names are not shown as empty names.
    assert event.approvers == ()
    assert event_key(event) == "devops/approval/0f027b05-0942-4a35-9218-26fa07d8760a/pending"


def test_the_published_approval_completed_sample() -> None:
    event = parse_devops_hook(_sample("devops_hook_approval_completed.json"))

    assert event is not None and event.kind is DevOpsEventKind.APPROVAL_DECIDED
    assert event.approval_status == "approved"
    assert event.comment == "Sample comment"
    assert event.environment == "env1" and event.run_id == 2
    # The sample names no `actualApprover`: who decided is unknown, not invented.
    assert event.decided_by is None
    assert event_key(event) == "devops/approval/0f027b05-0942-4a35-9218-26fa07d8760a/approved"


def test_a_published_event_mlbot_does_not_handle_is_ignored() -> None:
    # "Run job state changed" (`ms.vss-pipelines.job-state-changed-event`), same source.
    body = {
        "id": "ac1dd6da-af30-43cb-8434-e1005864b0a3",
        "eventType": "ms.vss-pipelines.job-state-changed-event",
        "publisherId": "pipelines",
        "message": {"text": "Run 20221121.5 stage Build job Compile succeeded."},
        "resource": {
            "job": {"name": "__default", "state": "completed", "result": "succeeded"},
            "run": {"id": 2, "name": "2", "state": "completed", "result": "succeeded"},
            "pipeline": {"id": 2, "name": "TEST-CI", "folder": "\\"},
        },
    }
    assert parse_devops_hook(body) is None
