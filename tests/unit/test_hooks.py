from __future__ import annotations

import base64

import pytest

from service.eventgrid import parse_eventgrid, workspace_key_from_topic
from service.hook_auth import HookAccess, check_hook_secret

TOPIC = (
    "/subscriptions/sub-1/resourceGroups/rg-ml/providers/"
    "Microsoft.MachineLearningServices/workspaces/mlw-plants"
)


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"devops:{password}".encode()).decode()


def test_hook_secret_by_query_or_basic_auth() -> None:
    assert check_hook_secret("s3cret", "s3cret", None) is HookAccess.ALLOWED
    assert check_hook_secret("s3cret", None, basic("s3cret")) is HookAccess.ALLOWED
    assert check_hook_secret("s3cret", "nope", None) is HookAccess.WRONG
    assert check_hook_secret("s3cret", None, basic("nope")) is HookAccess.WRONG
    assert check_hook_secret("s3cret", None, None) is HookAccess.MISSING
    assert check_hook_secret("s3cret", None, "Basic !!!not-base64") is HookAccess.MISSING
    assert check_hook_secret("", "anything", None) is HookAccess.NOT_CONFIGURED


def test_topic_to_workspace_key() -> None:
    assert workspace_key_from_topic(TOPIC) == "sub-1/rg-ml/mlw-plants"
    assert workspace_key_from_topic("/subscriptions/x/other") is None


def test_validation_handshake() -> None:
    batch = parse_eventgrid(
        [
            {
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": "abc-123"},
            }
        ]
    )
    assert batch.validation_code == "abc-123"


def test_run_events_and_ignored_ones() -> None:
    batch = parse_eventgrid(
        [
            {
                "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
                "topic": TOPIC,
                "data": {"runId": "train-1", "runStatus": "Failed", "experimentName": "e"},
            },
            {
                "eventType": "Microsoft.MachineLearningServices.RunCompleted",
                "topic": TOPIC,
                "data": {"runId": "train-2"},
            },
            {
                "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                "topic": TOPIC,
                "data": {},
            },
        ]
    )
    assert [(r.workspace_key, r.job_name, r.status) for r in batch.runs] == [
        ("sub-1/rg-ml/mlw-plants", "train-1", "Failed"),
        # RunCompleted is raised for successful runs only: its status is implied.
        ("sub-1/rg-ml/mlw-plants", "train-2", "Completed"),
    ]
    assert batch.ignored == 1


def test_cloudevents_shape_is_understood() -> None:
    batch = parse_eventgrid(
        {
            "type": "Microsoft.MachineLearningServices.RunCompleted",
            "source": TOPIC,
            "specversion": "1.0",
            "data": {"runId": "train-3"},
        }
    )
    assert batch.runs[0].job_name == "train-3"


@pytest.mark.parametrize(
    "body",
    [
        [1],
        [{"data": {}}],
        [{"eventType": 5}],
        [{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent"}],
    ],
)
def test_malformed_deliveries_are_refused(body: object) -> None:
    with pytest.raises(ValueError):
        parse_eventgrid(body)
