"""Circuit owners: the rules, who matches, and the mention entities a card carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.event_mentions import CircuitOwners, mentions_for, mentions_of_group
from cards.common import card, text
from cards.mentions import with_mentions
from config.settings import SettingsError, settings_from_mapping
from domain.monitoring import EventRecord
from domain.owners import Person, owners_of, parse_owner_rule, parse_owner_rules

OBJECT_ID = "5F1C2A3B-0000-4000-8000-00000000AB01"


def _event(kind: str, circuit: str | None = None, **payload: Any) -> EventRecord:
    return EventRecord(
        id=1,
        key="k",
        kind=kind,
        payload=dict(payload),
        session_id=None,
        workspace="ws",
        job_name="job",
        circuit=circuit,
        created_at=datetime(2026, 12, 7, tzinfo=UTC),
        delivered_at=None,
        delivery_attempts=0,
        last_error=None,
    )


def test_a_rule_names_people_by_upn_or_object_id() -> None:
    rule = parse_owner_rule(f" plant001/ = ada.lovelace@contoso.com|{OBJECT_ID} bob_smith@x.io")
    assert rule.prefix == "PLANT001/"
    assert rule.people == (
        Person("ada.lovelace@contoso.com", "Ada Lovelace"),
        Person(OBJECT_ID.lower(), "user 5f1c2a3b"),
        Person("bob_smith@x.io", "Bob Smith"),
    )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("ada@contoso.com", "PREFIX=person"),
        ("=ada@contoso.com", "PREFIX=person"),
        ("PLANT001/=", "names nobody"),
        ("PLANT001/=Ada Lovelace", "neither a UPN"),
        ("PLANT001/=<at>x</at>@a.b", "neither a UPN"),
    ],
)
def test_a_bad_rule_says_what_is_wrong(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_owner_rule(entry)


def test_the_setting_refuses_a_bad_rule_at_start_up() -> None:
    with pytest.raises(SettingsError, match=r"MLBOT_CIRCUIT_OWNERS.*names nobody"):
        settings_from_mapping({"MLBOT_CIRCUIT_OWNERS": "PLANT001/="})
    settings = settings_from_mapping({"MLBOT_CIRCUIT_OWNERS": "PLANT001/=a@b.c, P2/=d@e.f"})
    assert settings.circuit_owners == ("PLANT001/=a@b.c", "P2/=d@e.f")


def test_every_matching_prefix_applies_the_most_specific_first() -> None:
    rules = parse_owner_rules(
        ["PLANT001/=plant@x.io", "PLANT001/CIRCUIT01=circuit@x.io|plant@x.io", "PLANT0=all@x.io"]
    )
    found = owners_of(rules, "plant001/circuit01")
    assert [p.id for p in found] == ["circuit@x.io", "plant@x.io", "all@x.io"]
    assert [p.id for p in owners_of(rules, "PLANT002/CIRCUIT01")] == ["all@x.io"]
    assert owners_of(rules, None) == ()
    assert owners_of(rules, "OTHER/X") == ()


def test_mentions_add_a_line_and_one_entity_per_person() -> None:
    base = card([text("❌ failed")])
    ada = Person("ada@x.io", "Ada")
    marked = with_mentions(base, [ada, ada, Person("bo@x.io", "Bo")], "Owners")
    assert marked["body"][-1]["text"] == "Owners: <at>Ada</at>, <at>Bo</at>"
    assert marked["msteams"]["width"] == "Full"
    assert marked["msteams"]["entities"] == [
        {"type": "mention", "text": "<at>Ada</at>", "mentioned": {"id": "ada@x.io", "name": "Ada"}},
        {"type": "mention", "text": "<at>Bo</at>", "mentioned": {"id": "bo@x.io", "name": "Bo"}},
    ]
    assert base["body"] == [text("❌ failed")] and "entities" not in base["msteams"]
    # Mentioning the same people again changes nothing; nobody to mention changes nothing.
    assert with_mentions(marked, [ada], "Owners") is marked
    assert with_mentions(base, [], "Owners") is base


def test_failures_timeouts_and_reminders_mention_owners_and_nothing_else_does() -> None:
    rules = parse_owner_rules(["PLANT001/=ada@x.io"])
    nobody: frozenset[str] = frozenset()
    for kind in ("training_failed", "attempt_timed_out", "long_running"):
        plan = mentions_for(_event(kind, "PLANT001/C1"), rules, lambda env: nobody)
        assert plan is not None and plan.label == "Owners"
        assert [p.id for p in plan.people] == ["ada@x.io"]
    for kind in ("training_started", "training_completed", "retry_queued", "rollback_queued"):
        assert mentions_for(_event(kind, "PLANT001/C1"), rules, lambda env: nobody) is None


def test_an_approval_mentions_the_approvers_of_its_environment() -> None:
    asked: list[str | None] = []

    def approvers_for(environment: str | None) -> frozenset[str]:
        asked.append(environment)
        return frozenset({"lena@x.io", "Release Team"})  # a name Teams cannot mention

    plan = mentions_for(_event("approval_required", environment="prod"), (), approvers_for)
    assert plan is not None and plan.label == "Approvers"
    assert [p.id for p in plan.people] == ["lena@x.io"] and asked == ["prod"]
    mentions_for(_event("approval_required"), (), approvers_for)
    assert asked[-1] is None  # unknown environment: the general approvers


def test_a_grouped_card_mentions_each_owner_once() -> None:
    rules = parse_owner_rules(["PLANT001/=ada@x.io", "PLANT002/=bo@x.io|ada@x.io"])
    events = [_event("training_failed", "PLANT001/C1"), _event("training_failed", "PLANT002/C1")]
    plan = mentions_of_group(events, rules, lambda env: frozenset())
    assert plan is not None and [p.id for p in plan.people] == ["ada@x.io", "bo@x.io"]


def test_owners_follow_the_live_value_and_keep_the_last_good_one() -> None:
    value = ["PLANT001/=ada@x.io"]
    owners = CircuitOwners(lambda: value)
    assert owners.rules()[0].people[0].id == "ada@x.io"
    value = ["PLANT001/=bo@x.io"]
    assert owners.rules()[0].people[0].id == "bo@x.io"
    value = ["PLANT001/="]
    assert owners.rules()[0].people[0].id == "bo@x.io"
