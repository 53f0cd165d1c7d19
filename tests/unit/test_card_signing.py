"""Signed card actions: round trips, and every kind of change is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.card_signing import (
    BLOCK_KEY,
    EXPIRED_REASON,
    TAMPERED_REASON,
    CardDataError,
    CardDataProblem,
    CardSigner,
    SignedAction,
    ephemeral_key,
)

KEY = b"k" * 32
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def through_teams(payload: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    """What Teams sends back: the same JSON, merged with the card's input values."""
    return {**json.loads(json.dumps(payload)), **inputs}


APPROVAL = {"approval_id": "a-17", "environment": "dev", "run": 4211}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> CardSigner:
    return CardSigner(KEY, clock)


def test_round_trip(signer: CardSigner) -> None:
    payload = signer.sign("approve", APPROVAL)
    assert {k: v for k, v in payload.items() if k != BLOCK_KEY} == APPROVAL
    action = signer.verify("approve", through_teams(payload))
    assert action == SignedAction(
        verb="approve",
        data=APPROVAL,
        nonce=payload[BLOCK_KEY]["nonce"],
        expires_at=START + timedelta(hours=24),
        inputs={},
    )


def test_nonces_are_unique_url_safe_and_128_bits(signer: CardSigner) -> None:
    nonces = {signer.sign("approve", APPROVAL)[BLOCK_KEY]["nonce"] for _ in range(200)}
    assert len(nonces) == 200
    for nonce in nonces:
        assert len(nonce) == 22 and nonce.replace("-", "").replace("_", "").isalnum()


def test_changed_environment_is_refused(signer: CardSigner) -> None:
    payload = through_teams(signer.sign("rollback", {"environment": "dev"}))
    payload["environment"] = "prod"
    with pytest.raises(CardDataError) as caught:
        signer.verify("rollback", payload)
    assert caught.value.reason == TAMPERED_REASON
    assert caught.value.problem is CardDataProblem.TAMPERED


def test_changed_verb_is_refused(signer: CardSigner) -> None:
    payload = through_teams(signer.sign("reject", APPROVAL))
    with pytest.raises(CardDataError) as caught:
        signer.verify("approve", payload)
    assert caught.value.problem is CardDataProblem.TAMPERED


def test_another_key_is_refused(signer: CardSigner, clock: Clock) -> None:
    payload = through_teams(CardSigner(b"other key", clock).sign("approve", APPROVAL))
    with pytest.raises(CardDataError, match="changed"):
        signer.verify("approve", payload)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.pop("run"),
        lambda p: p.update(extra_signed=1) or p[BLOCK_KEY]["keys"].append("extra_signed"),
        lambda p: p[BLOCK_KEY]["keys"].remove("environment"),
        lambda p: p[BLOCK_KEY].update(exp=p[BLOCK_KEY]["exp"] + 3600),
        lambda p: p[BLOCK_KEY].update(nonce="A" * 22),
        lambda p: p[BLOCK_KEY].update(sig="A" * 43),
        lambda p: p.update(run="4211"),
        lambda p: p.update(run=True),
    ],
    ids=["drop", "add", "unsign", "extend", "nonce", "sig", "int-to-str", "int-to-bool"],
)
def test_any_change_to_signed_parts_is_refused(signer: CardSigner, change: Any) -> None:
    payload = through_teams(signer.sign("approve", APPROVAL))
    change(payload)
    with pytest.raises(CardDataError) as caught:
        signer.verify("approve", payload)
    assert caught.value.problem is CardDataProblem.TAMPERED


def test_expired_card_is_refused(signer: CardSigner, clock: Clock) -> None:
    payload = through_teams(signer.sign("approve", APPROVAL, ttl=timedelta(hours=1)))
    clock.now = START + timedelta(minutes=59, seconds=59)
    assert signer.verify("approve", payload).expires_at == START + timedelta(hours=1)
    clock.now = START + timedelta(hours=1)
    with pytest.raises(CardDataError) as caught:
        signer.verify("approve", payload)
    assert caught.value.reason == EXPIRED_REASON == str(caught.value)
    assert caught.value.problem is CardDataProblem.EXPIRED


def test_default_lifetime_is_the_signers(clock: Clock) -> None:
    signer = CardSigner(KEY, clock, ttl=timedelta(minutes=5))
    payload = through_teams(signer.sign("retry", {"circuits": ["P/C"]}))
    clock.now = START + timedelta(minutes=5)
    with pytest.raises(CardDataError, match="expired"):
        signer.verify("retry", payload)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"approval_id": "a-17"},
        {BLOCK_KEY: None},
        {BLOCK_KEY: "sig"},
        {BLOCK_KEY: {"nonce": "n", "exp": 1, "sig": "s", "keys": []}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": "1", "sig": "A" * 43, "keys": []}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": True, "sig": "A" * 43, "keys": []}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 2**60, "sig": "A" * 43, "keys": []}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 1, "sig": "é" * 43, "keys": []}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 1, "sig": "A" * 43, "keys": "a"}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 1, "sig": "A" * 43, "keys": ["a", "a"]}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 1, "sig": "A" * 43, "keys": [BLOCK_KEY]}},
        {BLOCK_KEY: {"nonce": "A" * 22, "exp": 1, "sig": "A" * 43}},
    ],
)
def test_missing_or_malformed_block_is_refused(signer: CardSigner, payload: Any) -> None:
    with pytest.raises(CardDataError) as caught:
        signer.verify("approve", payload)
    assert caught.value.problem is CardDataProblem.MALFORMED
    assert caught.value.reason.endswith(".")


def test_not_a_mapping_is_refused(signer: CardSigner) -> None:
    payloads: list[Any] = [None, [], "data", 7]
    for payload in payloads:
        with pytest.raises(CardDataError):
            signer.verify("approve", payload)


def test_input_values_come_back_separately(signer: CardSigner) -> None:
    payload = through_teams(signer.sign("reject", APPROVAL), comment="Metrics look off", n=3)
    action = signer.verify("reject", payload)
    assert action.data == APPROVAL
    assert action.inputs == {"comment": "Metrics look off", "n": 3}


def test_an_input_cannot_override_a_signed_value(signer: CardSigner) -> None:
    payload = through_teams(signer.sign("reject", APPROVAL), environment="prod")
    with pytest.raises(CardDataError, match="changed"):
        signer.verify("reject", payload)


def test_sign_refuses_what_teams_cannot_carry_back(signer: CardSigner) -> None:
    for data in (
        {BLOCK_KEY: 1},
        {"x": float("nan")},
        {"x": 2**53},
        {"x": object()},
        {"x": {"y": b"bytes"}},
    ):
        with pytest.raises(ValueError):
            signer.sign("approve", data)
    with pytest.raises(ValueError):
        signer.sign("", {})
    with pytest.raises(ValueError):
        signer.sign("approve", {}, ttl=timedelta(0))


def test_numbers_survive_javascript_formatting(signer: CardSigner) -> None:
    payload = signer.sign("retry", {"whole": 2.0, "part": 0.1, "big": 1e15})
    # JavaScript writes 2.0 as 2 and 1e15 as 1000000000000000.
    sent_back = json.loads(
        json.dumps(payload).replace("2.0", "2").replace("1000000000000000.0", "1000000000000000")
    )
    assert sent_back["whole"] == 2 and isinstance(sent_back["whole"], int)
    assert signer.verify("retry", sent_back).data["part"] == 0.1


def test_tuples_are_signed_as_lists_and_callers_data_is_copied(signer: CardSigner) -> None:
    data = {"circuits": ("P1/C1", "P2/C2"), "nested": {"a": [1]}}
    payload = signer.sign("retry", data)
    payload["nested"]["a"].append(2)
    assert data["nested"] == {"a": [1]}
    fresh = through_teams(signer.sign("retry", data))
    assert signer.verify("retry", fresh).data == {
        "circuits": ["P1/C1", "P2/C2"],
        "nested": {"a": [1]},
    }


def test_empty_key_is_refused_and_ephemeral_keys_are_random(clock: Clock) -> None:
    with pytest.raises(ValueError):
        CardSigner(b"", clock)
    first, second = ephemeral_key(), ephemeral_key()
    assert len(first) == 32 and first != second
    payload = through_teams(CardSigner(first, clock).sign("approve", APPROVAL))
    with pytest.raises(CardDataError):
        CardSigner(second, clock).verify("approve", payload)


def test_naive_clock_is_taken_as_utc() -> None:
    signer = CardSigner(KEY, lambda: datetime(2026, 11, 29, 12, 0))
    action = signer.verify("approve", through_teams(signer.sign("approve", APPROVAL)))
    assert action.expires_at == START + timedelta(hours=24)


# --- properties ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
keys = st.text(min_size=1, max_size=12).filter(lambda k: k != BLOCK_KEY)
card_data = st.dictionaries(keys, json_values, max_size=6)
verbs = st.text(min_size=1, max_size=16)


def canonical(value: Any) -> str:
    from bot.card_signing import _canonical

    return _canonical(value).decode()


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(verb=verbs, data=card_data)
def test_any_json_data_round_trips(verb: str, data: dict[str, Any]) -> None:
    signer = CardSigner(KEY, Clock())
    action = signer.verify(verb, through_teams(signer.sign(verb, data)))
    assert action.verb == verb
    assert canonical(action.data) == canonical(data)
    assert action.inputs == {}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(verb=verbs, data=card_data.filter(bool), replacement=json_values, pick=st.integers(0, 100))
def test_any_single_field_change_is_detected(
    verb: str, data: dict[str, Any], replacement: Any, pick: int
) -> None:
    signer = CardSigner(KEY, Clock())
    payload = through_teams(signer.sign(verb, data))
    key = sorted(data)[pick % len(data)]
    if canonical(replacement) == canonical(payload[key]):
        return  # not a change once written as JSON
    payload[key] = replacement
    with pytest.raises(CardDataError) as caught:
        signer.verify(verb, payload)
    assert caught.value.problem is CardDataProblem.TAMPERED


@settings(max_examples=100)
@given(data=card_data, field=st.sampled_from(["verb", "nonce", "exp", "sig", "drop"]))
def test_any_change_to_the_block_or_verb_is_detected(data: dict[str, Any], field: str) -> None:
    signer = CardSigner(KEY, Clock())
    payload = through_teams(signer.sign("approve", data))
    block = payload[BLOCK_KEY]
    verb = "approve"
    if field == "verb":
        verb = "reject"
    elif field == "nonce":
        block["nonce"] = (
            block["nonce"][::-1] if block["nonce"] != block["nonce"][::-1] else "B" * 22
        )
    elif field == "exp":
        block["exp"] -= 1
    elif field == "sig":
        block["sig"] = ("B" if block["sig"][0] != "B" else "C") + block["sig"][1:]
    elif data:
        payload.pop(sorted(data)[0])
    else:
        payload.pop(BLOCK_KEY)
    with pytest.raises(CardDataError):
        signer.verify(verb, payload)


@settings(max_examples=100)
@given(data=card_data, inputs=st.dictionaries(keys, json_values, max_size=3))
def test_unsigned_input_keys_come_back_as_inputs(
    data: dict[str, Any], inputs: dict[str, Any]
) -> None:
    signer = CardSigner(KEY, Clock())
    extra = {k: v for k, v in inputs.items() if k not in data}
    action = signer.verify("reject", through_teams(signer.sign("reject", data), **extra))
    assert action.inputs == json.loads(json.dumps(extra))
    assert set(action.data) == set(data)
