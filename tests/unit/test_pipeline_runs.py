"""The rules of `queue_once`: when to post, when to look for the run, when to wait."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.azure_calls import (
    AzureAuthError,
    AzureCallError,
    AzureNotFoundError,
    AzureResponseError,
    TransientAzureError,
)
from monitoring.pipeline_runs import (
    CLOCK_SLACK,
    DEFAULT_SETTLE,
    Step,
    after_miss,
    first_step,
    lookup_since,
    outcome_is_uncertain,
)
from store.pipeline_intents import FAILED, PENDING, POSTING, QUEUED, UNKNOWN, PipelineIntent

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SERVICE = "Azure DevOps"

FRESH = PipelineIntent(
    key="card:q2v7HxYk3T0bq9Jd1uR5aw",
    pipeline="training-pipeline",
    parameters={"manualCircuits": "PLANT001/CIRCUIT01"},
    status=PENDING,
    run_id=None,
    run_url=None,
    posts=0,
    posted_at=None,
    error=None,
    event_id=None,
    created_at=NOW,
    updated_at=NOW,
)


def test_a_fresh_intent_is_posted() -> None:
    assert first_step(FRESH) is Step.POST


def test_a_known_run_is_answered_without_any_call() -> None:
    queued = replace(FRESH, status=QUEUED, run_id=42, run_url="https://runs/42", posts=1)
    assert first_step(queued) is Step.KNOWN


def test_a_refused_intent_is_posted_again_when_asked_again() -> None:
    failed = replace(FRESH, status=FAILED, posts=1, posted_at=NOW, error="HTTP 403")
    assert first_step(failed) is Step.POST


@pytest.mark.parametrize("status", [POSTING, UNKNOWN])
def test_an_unanswered_post_is_looked_for_before_anything_else(status: str) -> None:
    sent = replace(FRESH, status=status, posts=1, posted_at=NOW)
    assert first_step(sent) is Step.LOOK_UP


def test_an_intent_noted_as_maybe_posted_is_looked_for_first() -> None:
    noted = replace(FRESH, posted_at=NOW - timedelta(minutes=1))
    assert first_step(noted) is Step.LOOK_UP
    # Nothing found: the process that noted it stopped before its POST left.
    assert after_miss(noted, NOW, DEFAULT_SETTLE) is Step.POST


def test_a_missing_run_waits_while_the_post_can_still_create_it() -> None:
    sent = replace(FRESH, status=UNKNOWN, posts=1, posted_at=NOW)
    assert after_miss(sent, NOW + timedelta(seconds=30), DEFAULT_SETTLE) is None
    assert after_miss(sent, NOW + DEFAULT_SETTLE - timedelta(seconds=1), DEFAULT_SETTLE) is None


def test_a_missing_run_is_posted_again_once_settled() -> None:
    sent = replace(FRESH, status=UNKNOWN, posts=1, posted_at=NOW)
    assert after_miss(sent, NOW + DEFAULT_SETTLE, DEFAULT_SETTLE) is Step.POST
    stopped = replace(FRESH, status=POSTING, posts=1, posted_at=NOW)
    assert after_miss(stopped, NOW + timedelta(hours=1), DEFAULT_SETTLE) is Step.POST


@pytest.mark.parametrize(
    ("error", "uncertain"),
    [
        (TransientAzureError(SERVICE, "queue", "no answer within 30 s"), True),
        (TransientAzureError(SERVICE, "queue", "Azure DevOps HTTP 503"), True),
        (TransientAzureError(SERVICE, "queue", "could not connect to Azure DevOps"), True),
        (AzureResponseError(SERVICE, "queue", "Azure DevOps answered with malformed JSON"), True),
        (AzureResponseError(SERVICE, "queue", "HTTP 400: Unexpected parameter 'x'"), False),
        (AzureAuthError(SERVICE, "queue", "refused", "MLBOT_DEVOPS_PAT"), False),
        (AzureNotFoundError(SERVICE, "queue", "no pipeline named 'x'"), False),
    ],
)
def test_which_failures_leave_the_outcome_open(error: AzureCallError, uncertain: bool) -> None:
    assert outcome_is_uncertain(error) is uncertain


def test_runs_are_looked_for_from_the_first_possible_post_with_clock_slack() -> None:
    assert lookup_since(FRESH, CLOCK_SLACK) == NOW - CLOCK_SLACK
    earlier = replace(FRESH, posted_at=NOW - timedelta(minutes=2))
    assert lookup_since(earlier, CLOCK_SLACK) == NOW - timedelta(minutes=2) - CLOCK_SLACK
