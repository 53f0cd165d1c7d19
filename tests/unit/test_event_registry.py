"""The event registry: one spec per kind, payloads checked on write and typed on read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cards.events import SUPPORTED_KINDS
from domain.events import (
    ANNOUNCED_KINDS,
    REGISTRY,
    EventKind,
    EventPayloadError,
    LivingCard,
    RetryQueuedPayload,
    Source,
    SubscriptionKind,
    TrainingFailedPayload,
    checked_payload,
    kinds_where,
    read_payload,
    spec_of,
    subscription_of,
)
from domain.subscriptions import KIND_NAMES


def test_every_kind_has_exactly_one_spec() -> None:
    assert set(REGISTRY) == set(EventKind)
    assert all(spec.kind is kind for kind, spec in REGISTRY.items())


def test_every_announced_kind_has_its_own_card() -> None:
    assert ANNOUNCED_KINDS == SUPPORTED_KINDS


def test_subscription_kinds_are_what_people_choose_from() -> None:
    assert set(KIND_NAMES) == {kind.value for kind in SubscriptionKind}
    # Every subscription receives at least one kind of event.
    assert {spec.subscription for spec in REGISTRY.values() if spec.subscription} == set(
        SubscriptionKind
    )


def test_delivery_meaning_is_declared_with_the_kind() -> None:
    assert kinds_where(emailed=True) == {"long_running"}
    assert kinds_where(grouped=True) == {
        "training_failed",
        "training_canceled",
        "attempt_timed_out",
    }
    assert kinds_where(living=LivingCard.RUN) == {
        "approval_required",
        "approval_decided",
        "deployment_completed",
        "deployment_failed",
    }
    # "Started" is chatty: never sent to the webhook, and progress hooks are never announced.
    assert "training_started" not in kinds_where(webhook=True)
    assert subscription_of("stage_state_changed") is None
    assert subscription_of("retry_queued") is SubscriptionKind.TRAINING_FAILED
    assert kinds_where(webhook=True) <= ANNOUNCED_KINDS


def test_unannounced_kinds_come_only_from_service_hooks() -> None:
    quiet = {spec.kind for spec in REGISTRY.values() if not spec.announced}
    assert quiet and all(REGISTRY[kind].source is Source.DEVOPS for kind in quiet)


def test_a_payload_of_the_wrong_shape_is_refused_on_write() -> None:
    with pytest.raises(EventPayloadError, match="training_failed"):
        checked_payload("training_failed", {"attempt": "second", "circuit": "PLANT001/C01"})
    with pytest.raises(EventPayloadError, match="unknown event kind"):
        checked_payload("training_exploded", {})


def test_a_checked_payload_is_stored_as_given() -> None:
    payload = {"circuit": "PLANT001/CIRCUIT01", "attempt": 2, "at": "2026-12-07T10:00:00+00:00"}
    assert checked_payload("training_failed", payload) == payload


def test_payloads_are_typed_on_read() -> None:
    payload = read_payload(
        "training_failed",
        {
            "circuit": "PLANT001/CIRCUIT01",
            "attempt": 2,
            "max_attempts": 3,
            "error_summary": "CUDA out of memory",
            "at": "2026-12-07T10:00:00+00:00",
            "future_field": "kept",
        },
    )
    assert isinstance(payload, TrainingFailedPayload)
    assert payload.attempt == 2 and payload.error_summary == "CUDA out of memory"
    assert payload.at == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert payload.model_extra == {"future_field": "kept"}


def test_an_old_row_with_a_broken_field_is_still_read() -> None:
    payload = read_payload("retry_queued", {"circuits": ["PLANT001/C01"], "attempt": "two"})
    assert isinstance(payload, RetryQueuedPayload)
    assert payload.circuits == ["PLANT001/C01"] and payload.attempt is None


def test_unknown_kinds_have_no_spec_but_can_be_read() -> None:
    assert spec_of("something_new") is None
    assert read_payload("something_new", {"x": 1}).model_extra == {"x": 1}
