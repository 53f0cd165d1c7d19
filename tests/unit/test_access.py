"""Access control: every action against every role, per-environment approvers, tenants."""

from __future__ import annotations

import re

import pytest

from bot.access import (
    AccessPolicy,
    Actor,
    Decision,
    Role,
    decide,
    decide_any_environment,
    roles_of,
)
from tests.conftest import make_settings

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "99999999-9999-9999-9999-999999999999"


def actor(oid: str, upn: str | None = None, tenant: str | None = TENANT) -> Actor:
    return Actor(aad_object_id=oid, upn=upn, name=oid.title(), tenant_id=tenant)


VIEWER = actor("viewer-oid", "viewer@contoso.com")
OPERATOR = actor("operator-oid", "operator@contoso.com")
APPROVER = actor("approver-oid", "approver@contoso.com")
PROD_APPROVER = actor("prod-oid", "prod.approver@contoso.com")
STRANGER = actor("stranger-oid", "stranger@fabrikam.com", tenant=OTHER_TENANT)


def policy(environ: dict[str, str] | None = None, **settings: str) -> AccessPolicy:
    values = {
        "MLBOT_OPERATORS": "operator-oid",
        "MLBOT_APPROVERS": "Approver@Contoso.com, prod.approver@contoso.com",
        "MLBOT_ALLOWED_TENANTS": TENANT,
        "MLBOT_LOCAL_ACTIONS": "true",
        **settings,
    }
    return AccessPolicy.from_settings(make_settings(**values), environ or {})


PROD_ONLY = {"MLBOT_APPROVERS_PROD": "PROD-OID"}

VIEWER_ACTIONS = ["status", "help", "approvals"]
OPERATOR_ACTIONS = ["retry", "watch", "unwatch", "config"]

# (action, environment) -> which of the four people may do it, under the PROD_ONLY policy:
# prod approvals and prod rollbacks are limited to the prod approver.
MATRIX: list[tuple[str, str | None, Role, set[str]]] = [
    *[(a, None, Role.VIEWER, {"viewer", "operator", "approver", "prod"}) for a in VIEWER_ACTIONS],
    *[(a, None, Role.OPERATOR, {"operator", "approver", "prod"}) for a in OPERATOR_ACTIONS],
    ("rollback", "dev", Role.OPERATOR, {"operator", "approver", "prod"}),
    ("rollback", "staging", Role.OPERATOR, {"operator", "approver", "prod"}),
    ("rollback", "prod", Role.APPROVER, {"prod"}),
    ("rollback", "PROD", Role.APPROVER, {"prod"}),
    ("rollback", None, Role.APPROVER, {"approver", "prod"}),
    ("approve", "prod", Role.APPROVER, {"prod"}),
    ("reject", "prod", Role.APPROVER, {"prod"}),
    ("approve", "dev", Role.APPROVER, {"approver", "prod"}),
    ("reject", "dev", Role.APPROVER, {"approver", "prod"}),
    ("approve", None, Role.APPROVER, {"approver", "prod"}),
    ("reject", None, Role.APPROVER, {"approver", "prod"}),
]
PEOPLE = {"viewer": VIEWER, "operator": OPERATOR, "approver": APPROVER, "prod": PROD_APPROVER}


def assert_polite(sentence: str) -> None:
    assert sentence and sentence[0].isupper() and sentence.endswith("."), sentence
    assert len(sentence) < 250
    lowered = sentence.lower()
    for word in ("denied", "forbidden", "error", "exception", "invalid", "unauthori"):
        assert word not in lowered, sentence


@pytest.mark.parametrize(("action", "environment", "needed", "allowed_for"), MATRIX)
@pytest.mark.parametrize("person", sorted(PEOPLE))
def test_decision_matrix(
    person: str, action: str, environment: str | None, needed: Role, allowed_for: set[str]
) -> None:
    decision = decide(policy(PROD_ONLY), PEOPLE[person], action, environment)
    assert decision.allowed is (person in allowed_for)
    assert decision.role_needed is needed
    assert_polite(decision.reason)


@pytest.mark.parametrize("action", [*VIEWER_ACTIONS, *OPERATOR_ACTIONS, "rollback", "approve"])
def test_stranger_from_another_tenant_is_refused_everything(action: str) -> None:
    decision = decide(policy(), STRANGER, action, "dev")
    assert not decision.allowed
    assert "organizations" in decision.reason
    assert_polite(decision.reason)
    assert roles_of(policy(), STRANGER) == frozenset()


def test_listed_person_from_another_tenant_is_still_refused() -> None:
    listed_elsewhere = actor("operator-oid", tenant=OTHER_TENANT)
    assert not decide(policy(), listed_elsewhere, "retry").allowed
    no_tenant = actor("operator-oid", tenant=None)
    assert not decide(policy(), no_tenant, "status").allowed


def test_no_allowed_tenants_admits_every_tenant() -> None:
    open_policy = policy(MLBOT_ALLOWED_TENANTS="")
    assert decide(open_policy, STRANGER, "status").allowed
    assert not decide(open_policy, STRANGER, "retry").allowed
    assert decide(open_policy, actor("operator-oid", tenant=None), "retry").allowed


def test_tenant_ids_compare_case_insensitively() -> None:
    upper = actor("operator-oid", tenant=TENANT.upper())
    assert decide(policy(MLBOT_ALLOWED_TENANTS=TENANT.upper()), OPERATOR, "retry").allowed
    assert decide(policy(), upper, "retry").allowed


@pytest.mark.parametrize("action", ["deploy", "", "  ", "rm -rf", "status2"])
def test_unknown_actions_are_refused_even_for_approvers(action: str) -> None:
    decision = decide(policy(), APPROVER, action)
    assert not decision.allowed
    assert_polite(decision.reason)


def test_action_names_are_case_insensitive() -> None:
    assert decide(policy(), OPERATOR, " Retry ").allowed
    assert decide(policy(), VIEWER, "STATUS").allowed


def test_roles() -> None:
    p = policy(PROD_ONLY)
    assert roles_of(p, VIEWER) == {Role.VIEWER}
    assert roles_of(p, OPERATOR) == {Role.VIEWER, Role.OPERATOR}
    assert roles_of(p, APPROVER) == {Role.VIEWER, Role.OPERATOR, Role.APPROVER}
    assert roles_of(p, APPROVER, "prod") == {Role.VIEWER, Role.OPERATOR}
    assert roles_of(p, PROD_APPROVER, "prod") == {Role.VIEWER, Role.OPERATOR, Role.APPROVER}
    assert roles_of(p, APPROVER, "dev") == {Role.VIEWER, Role.OPERATOR, Role.APPROVER}


def test_upns_and_object_ids_compare_case_insensitively() -> None:
    p = policy(MLBOT_OPERATORS="Op.Erator@CONTOSO.com, ABCDEF00-0000-0000-0000-00000000000A")
    assert decide(p, actor("x", "op.erator@contoso.com"), "retry").allowed
    assert decide(p, actor("abcdef00-0000-0000-0000-00000000000a"), "retry").allowed
    # The approver was configured as "Approver@Contoso.com".
    assert decide(p, actor("y", "APPROVER@contoso.COM"), "approve", "dev").allowed
    assert not decide(p, actor("z", "someone@contoso.com"), "retry").allowed


def test_identity_matches_on_either_object_id_or_upn() -> None:
    p = policy(MLBOT_OPERATORS="by-oid;by.upn@contoso.com")
    assert decide(p, actor("by-oid", None), "retry").allowed
    assert decide(p, Actor(None, "by.upn@contoso.com", None, TENANT), "retry").allowed
    assert not decide(p, Actor(None, None, "Anonymous", TENANT), "retry").allowed


def test_environment_approvers_replace_the_general_list_for_that_environment() -> None:
    p = policy({"MLBOT_APPROVERS_PROD": "viewer@contoso.com", "MLBOT_APPROVERS_QA": "operator-oid"})
    # Someone listed only for prod approves prod, and is an operator everywhere.
    assert decide(p, VIEWER, "approve", "prod").allowed
    assert decide(p, VIEWER, "rollback", "prod").allowed
    assert decide(p, VIEWER, "retry").allowed
    assert not decide(p, VIEWER, "approve", "dev").allowed
    # The general approvers keep every environment without a list of its own.
    assert not decide(p, APPROVER, "approve", "prod").allowed
    assert decide(p, APPROVER, "approve", "dev").allowed
    assert decide(p, OPERATOR, "approve", "qa").allowed
    assert not decide(p, APPROVER, "approve", "qa").allowed


def test_environment_names_compare_case_insensitively_with_dash_or_underscore() -> None:
    p = policy(
        {"MLBOT_APPROVERS_PRE_PROD": "prod-oid"},
        MLBOT_AUTO_ROLLBACK_ENVIRONMENTS="prod,Pre-Prod",
    )
    for name in ("pre-prod", "PRE_PROD", "Pre-Prod"):
        assert decide(p, PROD_APPROVER, "rollback", name).allowed
        decision = decide(p, APPROVER, "rollback", name)
        assert not decision.allowed and decision.role_needed is Role.APPROVER
    assert decide(p, OPERATOR, "rollback", "dev").allowed


def test_an_empty_environment_list_means_nobody_approves_there() -> None:
    p = policy({"MLBOT_APPROVERS_PROD": ""})
    decision = decide(p, APPROVER, "approve", "prod")
    assert not decision.allowed
    assert "MLBOT_APPROVERS_PROD" in decision.reason
    assert_polite(decision.reason)


def test_no_approvers_configured_says_so() -> None:
    p = policy(MLBOT_APPROVERS="")
    decision = decide(p, OPERATOR, "approve")
    assert not decision.allowed and "none are set up" in decision.reason
    assert_polite(decision.reason)


def test_other_variables_are_ignored() -> None:
    p = policy({"MLBOT_APPROVERS": "viewer-oid", "MLBOT_APPROVERS_": "viewer-oid", "PATH": "/x"})
    assert p.approvers_by_environment == {}
    assert not decide(p, VIEWER, "approve").allowed


def test_production_environments_come_from_settings() -> None:
    p = policy(MLBOT_PRODUCTION_ENVIRONMENTS="prod,staging")
    assert p.production_environments == {"prod", "staging"}
    assert not decide(p, OPERATOR, "rollback", "staging").allowed
    assert decide(policy(), OPERATOR, "rollback", "staging").allowed
    # An environment nobody classified is production.
    assert not decide(policy(), OPERATOR, "rollback", "live").allowed


def test_the_documented_reason_for_a_prod_rollback() -> None:
    decision = decide(policy(), OPERATOR, "rollback", "prod")
    assert decision == Decision(
        False,
        Role.APPROVER,
        "Rolling back prod needs an approver for prod. Ask one of the release approvers, "
        "or the team that runs mlbot to add you to MLBOT_APPROVERS.",
    )


def test_refusals_name_the_setting_that_would_grant_the_right() -> None:
    assert decide(policy(), VIEWER, "retry").reason.endswith("add you to MLBOT_OPERATORS.")
    assert decide(policy(), OPERATOR, "approve").reason.endswith("add you to MLBOT_APPROVERS.")
    # With its own list, an environment's approvers are named by its own setting.
    own = decide(policy(PROD_ONLY), OPERATOR, "approve", "prod").reason
    assert own.endswith("add you to MLBOT_APPROVERS_PROD.")
    staging = decide(policy(PROD_ONLY), VIEWER, "approve", "staging").reason
    assert staging.endswith("add you to MLBOT_APPROVERS.")


def test_reasons_name_the_action_and_the_role() -> None:
    retry = decide(policy(), VIEWER, "retry")
    assert retry.reason.startswith("Retrying training needs an operator.")
    approve = decide(policy(), OPERATOR, "approve", "prod")
    assert approve.reason.startswith("Approving a deployment for prod needs an approver for prod.")
    allowed = decide(policy(), OPERATOR, "retry")
    assert allowed.reason == "Retrying training is allowed for you as an operator."


def test_user_typed_environment_is_kept_short_and_on_one_line() -> None:
    environment = "prod\n" + "x" * 500
    decision = decide(
        policy(MLBOT_AUTO_ROLLBACK_ENVIRONMENTS=environment), OPERATOR, "rollback", environment
    )
    assert not decision.allowed
    assert "\n" not in decision.reason and len(decision.reason) < 250


def test_direct_construction_normalizes_entries() -> None:
    p = AccessPolicy(
        operators=frozenset({" Op@Contoso.com "}),
        approvers=frozenset(),
        approvers_by_environment={"PROD": frozenset({"X@contoso.com"})},
        allowed_tenants=frozenset(),
        production_environments=frozenset({"Prod"}),
    )
    assert p.operators == {"op@contoso.com"}
    assert p.approvers_by_environment == {"prod": frozenset({"x@contoso.com"})}
    assert decide(p, Actor(None, "x@CONTOSO.com", None, None), "rollback", "prod").allowed


@pytest.mark.parametrize(
    ("person", "label"),
    [
        (
            Actor("oid-1", "ada@contoso.com", "Ada Lovelace", TENANT),
            "Ada Lovelace (ada@contoso.com)",
        ),
        (Actor("oid-1", None, "Ada Lovelace", TENANT), "Ada Lovelace (oid-1)"),
        (Actor("oid-1", None, None, TENANT), "oid-1"),
        (Actor(None, None, "Ada", TENANT), "Ada"),
        (Actor(None, None, None, None), "an unknown user"),
    ],
)
def test_actor_label(person: Actor, label: str) -> None:
    assert person.label == label


def test_policy_is_frozen() -> None:
    p = policy(PROD_ONLY)
    with pytest.raises(AttributeError):
        p.operators = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.approvers_by_environment["dev"] = frozenset()  # type: ignore[index]


def test_every_refusal_is_a_polite_sentence() -> None:
    p = policy(PROD_ONLY)
    for action, environment, _, _ in MATRIX:
        for person in (*PEOPLE.values(), STRANGER):
            reason = decide(p, person, action, environment).reason
            assert_polite(reason)
            assert not re.search(r"\b(None|null)\b", reason)


def test_before_the_environment_is_known_the_least_role_any_environment_needs_decides() -> None:
    per_env = policy(PROD_ONLY, MLBOT_APPROVERS="")
    # Someone who approves only prod may approve something; an operator approves nothing.
    assert decide_any_environment(per_env, PROD_APPROVER, "approve").allowed
    refused = decide_any_environment(per_env, OPERATOR, "reject")
    assert not refused.allowed and refused.role_needed is Role.APPROVER
    # Rolling back some (non-production) environment needs an operator.
    assert decide_any_environment(per_env, OPERATOR, "rollback").allowed
    refused = decide_any_environment(per_env, VIEWER, "rollback")
    assert (refused.allowed, refused.role_needed) == (False, Role.OPERATOR)
    assert "operator" in refused.reason
    # Outside the tenant, and for actions without environments, it is `decide` itself.
    assert decide_any_environment(per_env, STRANGER, "rollback") == decide(
        per_env, STRANGER, "rollback"
    )
    assert decide_any_environment(per_env, VIEWER, "retry") == decide(per_env, VIEWER, "retry")
