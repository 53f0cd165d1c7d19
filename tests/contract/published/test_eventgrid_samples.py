"""Azure Machine Learning's Event Grid events, as published, through mlbot's parser.

Source: MicrosoftDocs/azure-docs `articles/event-grid/event-schema-machine-learning.md`
at 0aa2b14aec0e5cae30883a8e96f8eafafc88767f ("Example events", both the Event Grid and the
Cloud event schema tabs). The samples' topic is a template
(`/subscriptions/{subscription-id}/resourceGroups/{resource-group-name}/...`); the tests
fill it the way Azure sends real ids, including lower-cased ones.
"""

from __future__ import annotations

import copy
from typing import Any

from service.eventgrid import parse_eventgrid, resolve_workspace_key

TOPIC = (
    "/subscriptions/{subscription-id}/resourceGroups/{resource-group-name}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace-name}"
)
_RUN = {
    "experimentId": "0fa9dfaa-cba3-4fa7-b590-23e48548f5c1",
    "experimentName": "automl-local-regression",
    "runId": "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5",
    "runType": None,
    "runTags": {},
    "runProperties": {"runTemplate": "automl_child", "iteration": "5"},
}
STATUS_CHANGED: dict[str, Any] = {
    "topic": TOPIC,
    "subject": "experiments/0fa9dfaa-cba3-4fa7-b590-23e48548f5c1/runs/"
    "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5",
    "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
    "eventTime": "2017-06-26T18:41:00.9584103Z",
    "id": "831e1650-001e-001b-66ab-eeb76e069631",
    "data": {**_RUN, "runStatus": "failed"},
    "dataVersion": "",
    "metadataVersion": "1",
}
COMPLETED_CLOUD_EVENT: dict[str, Any] = {
    "source": TOPIC,
    "subject": STATUS_CHANGED["subject"],
    "type": "Microsoft.MachineLearningServices.RunCompleted",
    "time": "2017-06-26T18:41:00.9584103Z",
    "id": "831e1650-001e-001b-66ab-eeb76e069631",
    "data": dict(_RUN),
    "specversion": "1.0",
}
MODEL_REGISTERED: dict[str, Any] = {
    "topic": TOPIC,
    "subject": "models/sklearn_regression_model:20",
    "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
    "eventTime": "2017-06-26T18:41:00.9584103Z",
    "id": "831e1650-001e-001b-66ab-eeb76e069631",
    "data": {"ModelName": "sklearn_regression_model", "ModelVersion": 20},
    "dataVersion": "",
    "metadataVersion": "1",
}


def _in(topic: str, event: dict[str, Any]) -> dict[str, Any]:
    filled = copy.deepcopy(event)
    filled["topic" if "topic" in filled else "source"] = topic
    return filled


def test_run_status_changed_names_the_job_and_its_status() -> None:
    batch = parse_eventgrid([STATUS_CHANGED])
    (run,) = batch.runs
    assert run.job_name == "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"
    assert run.status == "failed"
    assert run.workspace_key == "{subscription-id}/{resource-group-name}/{workspace-name}"


def test_run_completed_in_the_cloud_event_schema() -> None:
    batch = parse_eventgrid([COMPLETED_CLOUD_EVENT])
    (run,) = batch.runs
    assert run.job_name == "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"
    # RunCompleted carries no runStatus: it is raised for successful runs only.
    assert run.status == "Completed"


def test_other_machine_learning_events_are_ignored() -> None:
    batch = parse_eventgrid([MODEL_REGISTERED, STATUS_CHANGED])
    assert batch.ignored == 1 and len(batch.runs) == 1


def test_a_lower_cased_topic_finds_the_configured_workspace() -> None:
    configured = ["0000-AAAA/RG-Training/ws-Prod", "0000-AAAA/RG-Training/ws-Dev"]
    topic = (
        "/subscriptions/0000-aaaa/resourcegroups/rg-training/providers/"
        "microsoft.machinelearningservices/workspaces/ws-prod"
    )
    (run,) = parse_eventgrid([_in(topic, STATUS_CHANGED)]).runs
    assert resolve_workspace_key(run.workspace_key, configured) == "0000-AAAA/RG-Training/ws-Prod"
    assert resolve_workspace_key("other/rg/ws", configured) == "other/rg/ws"
    assert resolve_workspace_key(None, configured) is None
