"""Subscriptions: parsing what people type, applying it, and which events reach whom."""

from __future__ import annotations

import json

import pytest

from bot.access import AccessPolicy, Actor, decide
from bot.notifiers import SUBSCRIPTION_KIND
from bot.subscription_commands import conversation_key
from cards.subscriptions import SAVE_VERB, SubscriptionsView, render_subscriptions_card
from domain.subscriptions import (
    CIRCUIT,
    DEFAULT_KINDS,
    ENVIRONMENT,
    EXPERIMENT,
    KIND_NAMES,
    EventFacts,
    Subscription,
    SubscriptionFilters,
    SubscriptionInputError,
    apply_subscribe,
    apply_unsubscribe,
    default_subscription,
    describe,
    event_facts,
    matches,
    parse_subscribe,
    parse_unsubscribe,
    selected,
    subscription_from_inputs,
    toggle_id,
)
from sandbox.card_catalog import SAMPLE_NOW, sample_events

EVENTS = sample_events(SAMPLE_NOW)


def facts_of(name: str, experiment: str | None = None) -> EventFacts:
    record = EVENTS[name]
    return event_facts(
        SUBSCRIPTION_KIND[record.kind],
        record.payload,
        circuit=record.circuit,
        experiment=experiment,
    )


# --- parsing ----------------------------------------------------------------------


def test_kinds_by_word_name_alias_and_group() -> None:
    request = parse_subscribe("failed, reminders approvals Deployment-Failed rollbacks")
    assert request.kinds == (
        "training_failed",
        "long_running",
        "approval_required",
        "deployment_failed",
        "rollback",
    )
    assert request.filters.empty
    assert parse_subscribe("all").kinds == KIND_NAMES
    assert parse_subscribe("training_started").kinds == ("training_started",)
    assert set(parse_subscribe("deployments").kinds) == {
        "deployment_completed",
        "deployment_failed",
        "rollback",
    }


def test_filters_in_any_order_with_several_values() -> None:
    request = parse_subscribe(
        "env = Prod experiment=circuit-training failed circuit=PLANT001/,PLANT002/CIRCUIT0"
    )
    assert request.kinds == ("training_failed",)
    assert request.filters.experiments == ("circuit-training",)
    assert request.filters.circuit_prefixes == ("PLANT001/", "PLANT002/CIRCUIT0")
    assert request.filters.environments == ("prod",)  # normalized like access does


def test_any_or_empty_clears_a_filter_and_unnamed_filters_stay() -> None:
    current = Subscription.of(
        ["training_failed"],
        SubscriptionFilters(experiments=("a",), circuit_prefixes=("PLANT001/",)),
    )
    updated = apply_subscribe(current, parse_subscribe("circuit=any"))
    assert updated.filters.circuit_prefixes == ()
    assert updated.filters.experiments == ("a",)
    assert apply_subscribe(current, parse_subscribe("exp=")).filters.experiments == ()


def test_unknown_kind_lists_the_valid_ones_and_suggests_the_closest() -> None:
    with pytest.raises(SubscriptionInputError) as caught:
        parse_subscribe("faild")
    message = str(caught.value)
    assert "`faild`" in message and "Did you mean `failed`?" in message
    assert "reminders" in message and "deployment-completed" in message
    with pytest.raises(SubscriptionInputError, match="Did you mean `approvals`"):
        parse_subscribe("aprovals")
    with pytest.raises(SubscriptionInputError) as nothing_close:
        parse_subscribe("banana")
    assert "Did you mean" not in str(nothing_close.value)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("circuit=PLANT 1", "event kind `1`"),  # the space ends the value
        ("circuit=../etc", "not a valid circuit filter"),
        ("env=prod!", "not a valid env filter"),
        ("experiment=<b>x</b>", "not a valid experiment filter"),
        ("cirquit=PLANT001/", "Did you mean `circuit=`?"),
        ("color=red", "Filters are experiment=NAME"),
        ("env=prod env=dev", "given twice"),
        ("circuit=" + ",".join(f"P{i}/" for i in range(11)), "At most 10 values"),
    ],
)
def test_bad_filters_are_explained(typed: str, expected: str) -> None:
    with pytest.raises(SubscriptionInputError, match=expected):
        parse_subscribe(typed)


def test_long_typed_text_is_shortened_in_the_answer() -> None:
    with pytest.raises(SubscriptionInputError) as caught:
        parse_subscribe("x" * 5000)
    assert len(str(caught.value)) < 400


def test_subscribe_adds_and_a_bare_subscribe_starts_with_the_defaults() -> None:
    empty = Subscription()
    assert apply_subscribe(empty, parse_subscribe("")).kinds == DEFAULT_KINDS
    narrowed = apply_subscribe(empty, parse_subscribe("circuit=PLANT001/"))
    assert narrowed.kinds == DEFAULT_KINDS and narrowed.filters.circuit_prefixes == ("PLANT001/",)
    some = Subscription.of(["training_failed"])
    added = apply_subscribe(some, parse_subscribe("started failed"))
    assert added.kinds == ("training_started", "training_failed")  # canonical order, once
    assert apply_subscribe(some, parse_subscribe("env=prod")).kinds == ("training_failed",)


def test_unsubscribe_some_or_everything() -> None:
    current = Subscription.of(DEFAULT_KINDS, SubscriptionFilters(environments=("prod",)))
    fewer = apply_unsubscribe(current, parse_unsubscribe("reminders,approvals"))
    assert "long_running" not in fewer.kinds and "approval_required" not in fewer.kinds
    assert "training_failed" in fewer.kinds and fewer.filters.environments == ("prod",)
    for typed in ("", "all", "ALL"):
        assert apply_unsubscribe(current, parse_unsubscribe(typed)) == Subscription()
    with pytest.raises(SubscriptionInputError, match="subscribe circuit=any"):
        parse_unsubscribe("circuit=PLANT001/")
    with pytest.raises(SubscriptionInputError, match="Did you mean"):
        parse_unsubscribe("remiders")


def test_defaults_by_conversation_type() -> None:
    assert default_subscription("personal") == Subscription()
    for kind in ("channel", "groupChat", None):
        assert default_subscription(kind).kinds == DEFAULT_KINDS
    assert "training_started" not in DEFAULT_KINDS
    assert set(KIND_NAMES) - set(DEFAULT_KINDS) == {"training_started"}


def test_stored_json_round_trip_and_lenient_reading() -> None:
    sub = Subscription.of(
        ["rollback", "training_failed"],
        SubscriptionFilters(("exp",), ("PLANT001/",), ("prod",)),
    )
    stored = json.loads(json.dumps(sub.filters.to_json()))
    assert Subscription.from_stored(list(sub.kinds), stored) == sub
    # The shape revision 0001 documented ({"circuit_prefix": "..."}), unknown kinds and keys.
    legacy = Subscription.from_stored(
        ["training_failed", "gone_kind", 3], {"circuit_prefix": "PLANT001/", "colour": "red"}
    )
    assert legacy.kinds == ("training_failed",)
    assert legacy.filters.circuit_prefixes == ("PLANT001/",)
    assert Subscription.from_stored(None, None) == Subscription()
    assert SubscriptionFilters().to_json() == {}


def test_describe() -> None:
    assert describe(Subscription()) == "nothing"
    assert describe(Subscription.of(KIND_NAMES)) == "everything"
    text = describe(Subscription.of(["training_failed"], SubscriptionFilters((), ("PLANT001/",))))
    assert text == "failed (only circuits starting with PLANT001/)"


# --- what events say --------------------------------------------------------------


def test_every_routed_engine_kind_is_a_kind_people_can_choose() -> None:
    assert set(SUBSCRIPTION_KIND.values()) == set(KIND_NAMES)


def test_event_facts_from_the_payloads_production_writes() -> None:
    failed = facts_of("training-failed", experiment="circuit-training")
    assert failed == EventFacts(
        "training_failed", ("circuit-training",), ("PLANT002/CIRCUIT02",), None
    )
    retry = facts_of("retry-queued")
    assert retry.circuits == ("PLANT002/CIRCUIT02", "PLANT002/CIRCUIT04")
    timed_out = facts_of("monitoring-timed-out")
    assert timed_out.kind == "training_timed_out" and timed_out.circuits
    for name in ("deployment-failed", "approval-required", "rollback-queued"):
        assert facts_of(name).environment == "prod" and facts_of(name).circuits == ()
    # A payload that names its experiment wins over the store's guess.
    said = event_facts("training_failed", {"experiment": "own"}, experiment="guess")
    assert said.experiments == ("own", "guess")


# --- matching ---------------------------------------------------------------------


def sub(*kinds: str, exp: str = "", circuit: str = "", env: str = "") -> Subscription:
    filters = SubscriptionFilters(
        tuple(v for v in exp.split(",") if v),
        tuple(v for v in circuit.split(",") if v),
        tuple(v for v in env.split(",") if v),
    )
    return Subscription.of(kinds or KIND_NAMES, filters)


def test_kind_must_be_chosen() -> None:
    assert matches(sub("training_failed"), facts_of("training-failed"))
    assert not matches(sub("training_completed"), facts_of("training-failed"))
    assert not matches(Subscription(), facts_of("training-failed"))
    # Attempt time-outs and queued retries are "failed"; reminders are their own kind.
    assert matches(sub("training_failed"), facts_of("attempt-timed-out"))
    assert matches(sub("training_failed"), facts_of("retry-queued"))
    assert not matches(sub("training_failed"), facts_of("long-running"))


def test_circuit_prefix_is_a_case_insensitive_prefix() -> None:
    plant1 = sub(circuit="PLANT001/")
    assert matches(plant1, facts_of("training-completed"))  # PLANT001/CIRCUIT01
    assert not matches(plant1, facts_of("training-failed"))  # PLANT002/CIRCUIT02
    assert matches(sub(circuit="plant002/circuit0"), facts_of("training-failed"))
    assert not matches(sub(circuit="PLANT002/CIRCUIT1"), facts_of("training-failed"))
    # Several prefixes: any of them; several circuits in the event: any of them.
    assert matches(sub(circuit="PLANT009/,PLANT002/"), facts_of("training-failed"))
    assert matches(sub(circuit="PLANT002/CIRCUIT04"), facts_of("retry-queued"))
    assert not matches(sub(circuit="PLANT003/"), facts_of("retry-queued"))


def test_circuit_filter_does_not_hide_deployment_events() -> None:
    plant1 = sub(circuit="PLANT001/")
    for name in (
        "deployment-completed",
        "deployment-failed",
        "approval-required",
        "rollback-queued",
    ):
        assert matches(plant1, facts_of(name)), name


def test_environment_filter_narrows_deployments_but_not_training() -> None:
    staging = sub(env="staging")
    assert not matches(staging, facts_of("deployment-failed"))
    assert not matches(staging, facts_of("approval-required"))
    assert matches(sub(env="PROD"), facts_of("rollback-queued"))
    assert matches(staging, facts_of("training-failed"))
    # An approval whose stage does not name its environment is shown, not dropped.
    unnamed = event_facts("approval_required", {"environment": None})
    assert matches(staging, unnamed)


def test_experiment_filter_uses_what_is_known() -> None:
    wanted = sub(exp="circuit-training")
    assert matches(wanted, facts_of("training-failed", experiment="Circuit-Training"))
    assert not matches(wanted, facts_of("training-failed", experiment="anomaly-training"))
    # Unknown experiment (job no longer stored) and deployments: shown.
    assert matches(wanted, facts_of("training-failed"))
    assert matches(wanted, facts_of("deployment-failed"))


def test_filters_combine() -> None:
    both = sub("training_failed", "deployment_failed", circuit="PLANT002/", env="prod")
    assert matches(both, facts_of("training-failed"))
    assert matches(both, facts_of("deployment-failed"))
    assert not matches(both, facts_of("training-failed-retries-exhausted"))  # PLANT001
    assert not matches(both, facts_of("long-running"))


def test_selected_keeps_order() -> None:
    subscribers = [
        ("c-all", sub()),
        ("c-plant1", sub(circuit="PLANT001/")),
        ("c-none", Subscription()),
        ("c-plant2", sub(circuit="PLANT002/")),
    ]
    assert selected(subscribers, facts_of("training-failed")) == ["c-all", "c-plant2"]
    assert selected(subscribers, facts_of("deployment-failed")) == [
        "c-all",
        "c-plant1",
        "c-plant2",
    ]


# --- the card and its inputs ------------------------------------------------------


def test_card_inputs_round_trip() -> None:
    current = sub(
        "training_failed",
        "rollback",
        exp="circuit-training",
        circuit="PLANT001/,PLANT002/",
        env="prod",
    )
    save = {"sig": "x"}
    rendered = render_subscriptions_card(SubscriptionsView(current, "channel", save=save))
    inputs = {
        element["id"]: element["value"]
        for element in rendered["body"]
        if element["type"].startswith("Input.")
    }
    assert inputs[toggle_id("training_failed")] == "true"
    assert inputs[toggle_id("training_started")] == "false"
    assert inputs[CIRCUIT] == "PLANT001/, PLANT002/"
    assert subscription_from_inputs(inputs) == current
    assert [a["verb"] for a in rendered["actions"]] == [SAVE_VERB]


def test_card_inputs_are_validated() -> None:
    with pytest.raises(SubscriptionInputError, match="circuit"):
        subscription_from_inputs({CIRCUIT: "PLANT 001"})
    assert subscription_from_inputs({}) == Subscription()
    assert subscription_from_inputs({EXPERIMENT: " ", ENVIRONMENT: "any"}) == Subscription()


def test_read_only_card_has_no_inputs_or_button() -> None:
    rendered = render_subscriptions_card(SubscriptionsView(sub(env="prod"), "channel"))
    assert "actions" not in rendered
    assert not [e for e in rendered["body"] if e["type"].startswith("Input.")]
    assert "environment prod" in json.dumps(rendered)


# --- who may change them ------------------------------------------------------------


def test_changing_needs_an_operator_except_in_ones_own_personal_chat() -> None:
    policy = AccessPolicy(operators=frozenset({"op"}), approvers=frozenset({"ap"}))
    viewer = Actor("someone", None, "Someone", None)
    operator = Actor("op", None, "Op", None)
    approver = Actor("ap", None, "Ap", None)
    for action in ("subscribe", "unsubscribe"):
        refused = decide(policy, viewer, action)
        assert not refused.allowed and "operator" in refused.reason
        assert decide(policy, operator, action).allowed
        assert decide(policy, approver, action).allowed
        assert decide(policy, viewer, action, personal=True).allowed
    assert decide(policy, viewer, "subscriptions").allowed
    # Personal does not widen anything else.
    assert not decide(policy, viewer, "retry", personal=True).allowed
    outsider = AccessPolicy(frozenset(), frozenset(), allowed_tenants=frozenset({"t1"}))
    assert not decide(outsider, Actor("x", None, None, "t2"), "subscribe", personal=True).allowed


def test_channel_threads_share_the_channel_subscription() -> None:
    assert conversation_key("19:abc@thread.tacv2;messageid=1732867200000") == "19:abc@thread.tacv2"
    assert conversation_key("a:1personal") == "a:1personal"
