"""Automatic retries of failed circuits and circuit lists as operators type them (pure)."""

from __future__ import annotations

import pytest

from config.settings import settings_from_mapping
from domain.jobs import JobState
from monitoring.retries import (
    CircuitAttempts,
    CircuitListError,
    RetryPlan,
    format_manual_circuits,
    max_attempts,
    parse_circuits,
    plan_retries,
)

A = "PLANT001/CIRCUIT01"
B = "PLANT002/CIRCUIT02"
C = "PLANT003/CIRCUIT03"
MAX_RETRIES = settings_from_mapping({}).auto_retry_max_retries


def failed(circuit: str, attempts: int = 1) -> CircuitAttempts:
    return CircuitAttempts(circuit, attempts, JobState.FAILED)


# --- Parsing what operators type ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{A},{B}",
        f"{A}, {B}",
        f"{A} {B}",
        f"  {A} ,, {B}\n",
        f"{A}\u00a0{B}",  # Teams' non-breaking space
        f"{A},\t{B},",
        f"{A}, {B}, {A}",
    ],
)
def test_separators_and_repeats(text: str) -> None:
    assert parse_circuits(text) == (A, B)


def test_order_typed_is_kept() -> None:
    assert parse_circuits(f"{B},{A}") == (B, A)


def test_letters_digits_underscore_and_hyphen_are_allowed() -> None:
    assert parse_circuits("plant_1/circuit-02 P-9/C_9") == ("plant_1/circuit-02", "P-9/C_9")


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("PLANT001", ("PLANT001",)),
        (f"{A}, PLANT001/", ("PLANT001/",)),
        (f"/CIRCUIT01 {A}", ("/CIRCUIT01",)),
        ("PLANT001/CIRCUIT01/X", ("PLANT001/CIRCUIT01/X",)),
        ("PLANT001/CIRCUIT;01", ("PLANT001/CIRCUIT;01",)),
        ("PLANT 001/CIRCUIT01", ("PLANT",)),
        ("x, y, x", ("x", "y")),
    ],
)
def test_malformed_circuits_are_named(text: str, bad: tuple[str, ...]) -> None:
    with pytest.raises(CircuitListError) as caught:
        parse_circuits(text)
    assert caught.value.invalid == bad
    for item in bad:
        assert f"'{item}'" in str(caught.value)
    assert "<PLANT>/<CIRCUIT>" in str(caught.value)


@pytest.mark.parametrize("text", ["", "   ", ", ,"])
def test_an_empty_list_is_an_error(text: str) -> None:
    with pytest.raises(CircuitListError, match="No circuits"):
        parse_circuits(text)


def test_circuit_list_error_is_a_value_error() -> None:
    assert issubclass(CircuitListError, ValueError)


# --- The manualCircuits value -------------------------------------------------------------


def test_manual_circuits_are_comma_joined_without_spaces() -> None:
    assert format_manual_circuits([A, B]) == "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02"
    assert format_manual_circuits([f" {A} ", B, A]) == f"{A},{B}"
    assert format_manual_circuits(parse_circuits(f"{A}, {B}")) == f"{A},{B}"


@pytest.mark.parametrize("circuits", [[], [f"{A},{B}"], ["PLANT001"], [A, "a b/c"]])
def test_manual_circuits_refuse_what_would_break_the_variable(circuits: list[str]) -> None:
    with pytest.raises(CircuitListError):
        format_manual_circuits(circuits)


# --- Retry decisions ----------------------------------------------------------------------


def test_defaults_allow_two_retries_three_attempts() -> None:
    assert MAX_RETRIES == 2
    assert max_attempts(MAX_RETRIES) == 3
    with pytest.raises(ValueError):
        max_attempts(-1)


def test_failed_circuits_are_retried_in_one_sorted_batch() -> None:
    plan = plan_retries(
        [
            failed(B),
            CircuitAttempts(C, 1, JobState.COMPLETED),
            failed(A, attempts=2),
        ],
        MAX_RETRIES,
    )
    assert plan == RetryPlan(retry=(A, B), exhausted=(), waiting_for=())
    assert plan.manual_circuits == "PLANT001/CIRCUIT01,PLANT002/CIRCUIT02"


def test_a_circuit_gets_at_most_max_retries() -> None:
    plan = plan_retries([failed(A, 3), failed(B, 2), failed(C, 4)], MAX_RETRIES)
    assert plan.retry == (B,)
    assert plan.exhausted == (A, C)


def test_a_circuit_that_always_fails_makes_exactly_three_attempts() -> None:
    attempts = 1
    while True:
        plan = plan_retries([failed(A, attempts)], MAX_RETRIES)
        if not plan.retry:
            break
        attempts += 1
    assert attempts == 3
    assert plan.exhausted == (A,)


def test_no_retries_configured_means_first_failure_is_final() -> None:
    plan = plan_retries([failed(A)], 0)
    assert plan.retry == () and plan.exhausted == (A,)


@pytest.mark.parametrize("state", [JobState.COMPLETED, JobState.CANCELED])
def test_completed_and_canceled_circuits_are_not_retried(state: JobState) -> None:
    plan = plan_retries([CircuitAttempts(A, 1, state)], MAX_RETRIES)
    assert plan == RetryPlan((), (), ())
    assert plan.manual_circuits == ""


def test_a_timed_out_attempt_counts_as_failed() -> None:
    still_canceling = CircuitAttempts(A, 1, JobState.RUNNING, timed_out=True)
    canceled = CircuitAttempts(B, 3, JobState.CANCELED, timed_out=True)
    plan = plan_retries([still_canceling, canceled], MAX_RETRIES)
    assert plan.retry == (A,) and plan.exhausted == (B,) and plan.waiting_for == ()


def test_a_timed_out_attempt_that_completed_anyway_is_not_retried() -> None:
    plan = plan_retries([CircuitAttempts(A, 1, JobState.COMPLETED, timed_out=True)], MAX_RETRIES)
    assert plan == RetryPlan((), (), ())


@pytest.mark.parametrize("state", [JobState.WAITING, JobState.RUNNING, JobState.UNKNOWN])
def test_the_batch_waits_for_circuits_still_in_flight(state: JobState) -> None:
    plan = plan_retries(
        [failed(A), CircuitAttempts(B, 1, state), failed(C, 3)],
        MAX_RETRIES,
    )
    assert plan.retry == ()
    assert plan.waiting_for == (B,)
    assert plan.exhausted == (C,)  # known now, reported without waiting
    done = plan_retries(
        [failed(A), CircuitAttempts(B, 1, JobState.FAILED), failed(C, 3)], MAX_RETRIES
    )
    assert done.retry == (A, B)


def test_repeated_circuits_are_judged_by_their_latest_attempt() -> None:
    plan = plan_retries(
        [failed(A, 1), CircuitAttempts(A, 2, JobState.COMPLETED), failed(B, 1), failed(B, 2)],
        MAX_RETRIES,
    )
    assert plan.retry == (B,)
    tie = plan_retries([failed(A, 2), CircuitAttempts(A, 2, JobState.COMPLETED)], MAX_RETRIES)
    assert tie.retry == ()


def test_an_empty_session_retries_nothing() -> None:
    assert plan_retries([], MAX_RETRIES) == RetryPlan((), (), ())


def test_a_malformed_circuit_tag_is_refused_rather_than_corrupting_the_variable() -> None:
    plan = plan_retries([failed("PLANT001,PLANT002/X")], MAX_RETRIES)
    with pytest.raises(CircuitListError):
        _ = plan.manual_circuits


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        CircuitAttempts(A, 0, JobState.FAILED)
