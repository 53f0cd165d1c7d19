"""Who may do what: roles from settings, and one decision before any command or card action.

Everyone in an allowed tenant may look (`status`, `help`, the list of approvals). Operators
may change what the bot does (retry circuits, watch runs, show the configuration, roll back
a non-production environment). Approvers decide deployment approvals and roll back
production; they are operators too. An environment may name its own approvers with
`MLBOT_APPROVERS_<ENV>` (e.g. `MLBOT_APPROVERS_PROD`): for that environment that list alone
decides, so prod can be limited to a few release approvers.

Everything here is pure: the policy is a frozen value built once at start-up, and the
decision is a function of the policy, the actor and the action.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from store.audit import AuditEntry

APPROVERS_PREFIX = "MLBOT_APPROVERS_"
_ENTRY_SEPARATORS = re.compile(r"[,;\s]+")
_SHOWN_MAX = 40  # environment names are typed by users; keep refusal sentences short


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"


@dataclass(frozen=True)
class Actor:
    """The person behind a message or a card click, as Teams identifies them."""

    aad_object_id: str | None
    upn: str | None
    name: str | None
    tenant_id: str | None

    @property
    def label(self) -> str:
        """`Name (upn or id)` for audit lines and approval comments."""
        ident = self.upn or self.aad_object_id
        if self.name and ident:
            return f"{self.name} ({ident})"
        return self.name or ident or "an unknown user"

    @property
    def display_name(self) -> str:
        """How cards name the person: their Teams display name; an id only when Teams
        sent no name (ids are for the audit trail)."""
        return self.name or self.upn or self.aad_object_id or "an unknown user"

    @property
    def signature(self) -> str:
        """`Name (upn)` for what mlbot writes into Azure DevOps on someone's behalf."""
        if self.name and self.upn:
            return f"{self.name} ({self.upn})"
        return self.display_name

    @property
    def identities(self) -> frozenset[str]:
        """The normalized ids this actor can be listed under (object id and UPN)."""
        return frozenset(
            _identity(value) for value in (self.aad_object_id, self.upn) if value and value.strip()
        )

    def audit_entry(
        self,
        *,
        at: datetime,
        action: str,
        outcome: str,
        conversation_id: str | None,
        target: str | None = None,
        detail: str | None = None,
    ) -> AuditEntry:
        """An audit line for something this actor did (or was refused) in a conversation."""
        return AuditEntry(
            at=at,
            action=action,
            outcome=outcome,
            actor_id=self.aad_object_id,
            actor_name=self.name,
            tenant_id=self.tenant_id,
            conversation_id=conversation_id,
            target=target,
            detail=detail,
        )


class AccessSettings(Protocol):
    """The part of `config.settings.Settings` the policy reads."""

    @property
    def operators(self) -> tuple[str, ...]: ...
    @property
    def approvers(self) -> tuple[str, ...]: ...
    @property
    def allowed_tenants(self) -> tuple[str, ...]: ...
    @property
    def production_environments(self) -> tuple[str, ...]: ...
    @property
    def non_production_environments(self) -> tuple[str, ...]: ...
    @property
    def tenant_allow_list(self) -> tuple[str, ...]: ...
    @property
    def local_mode(self) -> bool: ...
    @property
    def local_actions(self) -> bool: ...


@dataclass(frozen=True)
class AccessPolicy:
    """Who holds which role. Entries are Entra object ids or UPNs, stored normalized.

    `approvers_by_environment` is keyed by normalized environment name (see
    `environment_key`); an environment with an entry (even an empty one) uses that list
    instead of `approvers`. An empty `allowed_tenants` admits every tenant.
    `changes_locked` refuses every action that changes Azure (approve, reject, rollback,
    retry) whoever asks: in local mode nobody's identity is checked.
    """

    operators: frozenset[str]
    approvers: frozenset[str]
    approvers_by_environment: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    allowed_tenants: frozenset[str] = frozenset()
    production_environments: frozenset[str] = frozenset({"prod"})
    # Environments known not to be production; any name in neither list is production,
    # so a new spelling (`production`, `prod_eu`) is never less protected than prod.
    non_production_environments: frozenset[str] = frozenset({"dev", "test", "qa", "staging", "uat"})
    changes_locked: bool = False

    def __post_init__(self) -> None:
        # Normalize whatever the caller passed, so direct construction in tests and
        # `from_settings` compare the same way (case-insensitive ids and UPNs).
        object.__setattr__(self, "operators", _identities(self.operators))
        object.__setattr__(self, "approvers", _identities(self.approvers))
        object.__setattr__(
            self,
            "approvers_by_environment",
            MappingProxyType(
                {
                    environment_key(env): _identities(entries)
                    for env, entries in self.approvers_by_environment.items()
                    if environment_key(env)
                }
            ),
        )
        object.__setattr__(self, "allowed_tenants", _identities(self.allowed_tenants))
        object.__setattr__(
            self,
            "production_environments",
            frozenset(environment_key(env) for env in self.production_environments if env.strip()),
        )
        object.__setattr__(
            self,
            "non_production_environments",
            frozenset(
                environment_key(env) for env in self.non_production_environments if env.strip()
            ),
        )

    @classmethod
    def from_settings(cls, settings: AccessSettings, environ: Mapping[str, str]) -> AccessPolicy:
        """The policy from settings plus `MLBOT_APPROVERS_<ENV>` entries found in `environ`.

        `environ` is passed in (not read from `os.environ`) so the composition root decides
        where configuration comes from and tests never touch the process environment.
        A variable that is present but empty means nobody approves for that environment.
        """
        by_env: dict[str, frozenset[str]] = {}
        for name, value in environ.items():
            if not name.upper().startswith(APPROVERS_PREFIX):
                continue
            env = environment_key(name[len(APPROVERS_PREFIX) :])
            if env:
                by_env[env] = _identities(_split_entries(value))
        return cls(
            operators=frozenset(settings.operators),
            approvers=frozenset(settings.approvers),
            approvers_by_environment=by_env,
            allowed_tenants=frozenset(settings.tenant_allow_list),
            # Never the auto-rollback list: the variable group may change that one.
            production_environments=frozenset(settings.production_environments or ("prod",)),
            non_production_environments=frozenset(settings.non_production_environments),
            changes_locked=settings.local_mode and not settings.local_actions,
        )

    def tenant_allowed(self, tenant_id: str | None) -> bool:
        if not self.allowed_tenants:
            return True
        return bool(tenant_id) and _identity(tenant_id or "") in self.allowed_tenants

    def approvers_for(self, environment: str | None) -> frozenset[str]:
        """Who approves for an environment: its own list when it has one, else everyone's."""
        if environment is not None:
            own = self.approvers_by_environment.get(environment_key(environment))
            if own is not None:
                return own
        return self.approvers

    def has_own_approvers(self, environment: str) -> bool:
        """The environment has its own approvers' list (`MLBOT_APPROVERS_<ENV>`)."""
        return environment_key(environment) in self.approvers_by_environment

    @property
    def any_approvers(self) -> frozenset[str]:
        """Approvers of any environment (the general list and every per-environment one)."""
        return self.approvers.union(*self.approvers_by_environment.values())

    def is_production(self, environment: str) -> bool:
        """Listed as production, or simply not known to be anything else."""
        key = environment_key(environment)
        return key in self.production_environments or key not in self.non_production_environments


@dataclass(frozen=True)
class Decision:
    allowed: bool
    role_needed: Role
    reason: str  # a polite sentence that can be shown to the user as it is


def environment_key(environment: str) -> str:
    """Environment names compare case-insensitively, with `-` and `_` alike.

    `pre-prod` and `PRE_PROD` are the same environment, since a variable name such as
    `MLBOT_APPROVERS_PRE_PROD` cannot contain `-`.
    """
    return environment.strip().casefold().replace("-", "_")


def approvers_variable(environment: str) -> str:
    """The setting that names the approvers of one environment, e.g. `MLBOT_APPROVERS_PROD`."""
    return APPROVERS_PREFIX + environment_key(environment).upper()


def roles_of(policy: AccessPolicy, actor: Actor, environment: str | None = None) -> frozenset[Role]:
    """The actor's roles, for one environment when given.

    Outside an allowed tenant nobody has any role. Inside, everyone is a viewer; operators
    and approvers of any environment are operators; approvers for `environment` (or the
    general approvers when no environment is given) are approvers.
    """
    if not policy.tenant_allowed(actor.tenant_id):
        return frozenset()
    ids = actor.identities
    roles = {Role.VIEWER}
    if ids & (policy.operators | policy.any_approvers):
        roles.add(Role.OPERATOR)
    if ids & policy.approvers_for(environment):
        roles.add(Role.APPROVER)
    return frozenset(roles)


# What each action is called in a refusal, so the sentence reads naturally.
_VIEWER_ACTIONS = {
    "status": "Showing the status",
    "history": "Showing a circuit's history",
    "help": "Showing help",
    "approvals": "Listing approvals",
    "subscriptions": "Showing the notification subscriptions",
    "silences": "Listing the silences",
}
_OPERATOR_ACTIONS = {
    "retry": "Retrying training",
    "watch": "Watching a run",
    "unwatch": "Stopping a watch",
    "config": "Showing the configuration",
    "subscribe": "Changing what this conversation is notified of",
    "unsubscribe": "Changing what this conversation is notified of",
    "acknowledge": "Acknowledging an alert",
    "snooze": "Snoozing reminders",
    "silence": "Silencing notifications",
    "unsilence": "Ending a silence",
}
# Someone's personal chat concerns nobody else: there anyone chooses what it receives.
_PERSONAL_ACTIONS = frozenset({"subscribe", "unsubscribe"})
_APPROVAL_ACTIONS = {"approve": "Approving", "reject": "Rejecting"}

KNOWN_ACTIONS = frozenset({*_VIEWER_ACTIONS, *_OPERATOR_ACTIONS, *_APPROVAL_ACTIONS, "rollback"})
# What changes Azure: refused in local mode unless MLBOT_LOCAL_ACTIONS allows it.
CHANGING_ACTIONS = frozenset({"retry", "rollback", *_APPROVAL_ACTIONS})
_LOCKED_REASON = (
    "{what} is switched off: this mlbot runs in local mode, where nobody is signed in. "
    "On a development machine, set MLBOT_LOCAL_ACTIONS=true to allow it."
)


def decide(
    policy: AccessPolicy,
    actor: Actor,
    action: str,
    environment: str | None = None,
    *,
    personal: bool = False,
) -> Decision:
    """May `actor` run `action` (for `environment`, where it matters)? Fails closed.

    A rollback with no environment is treated as a production rollback, and an approval
    with no environment needs one of the general approvers. `personal` says the action
    happens in the actor's own personal chat, where changing subscriptions needs no role.
    """
    name = action.strip().casefold()
    if name not in KNOWN_ACTIONS:
        return Decision(
            False,
            Role.APPROVER,
            f"Sorry, I don't know the action '{_shown(action)}', so I can't run it.",
        )
    if not policy.tenant_allowed(actor.tenant_id):
        return Decision(
            False,
            _role_for(policy, name, environment),
            "Sorry, mlbot only works for the organizations it was set up for. "
            "Ask the team that runs mlbot if you need access.",
        )
    if policy.changes_locked and name in CHANGING_ACTIONS:
        return _locked(policy, name, environment)
    roles = roles_of(policy, actor, environment)
    if personal and name in _PERSONAL_ACTIONS:
        return _granted(Role.VIEWER, roles, _OPERATOR_ACTIONS[name])
    if name in _VIEWER_ACTIONS:
        return _granted(Role.VIEWER, roles, _VIEWER_ACTIONS[name])
    if name in _OPERATOR_ACTIONS:
        return _granted(Role.OPERATOR, roles, _OPERATOR_ACTIONS[name])
    if name == "rollback":
        what = f"Rolling back {_shown(environment)}" if environment else "Rolling back"
        return _granted(_role_for(policy, name, environment), roles, what, policy, environment)
    where = f" for {_shown(environment)}" if environment else ""
    what = f"{_APPROVAL_ACTIONS[name]} a deployment{where}"
    return _granted(Role.APPROVER, roles, what, policy, environment)


def decide_any_environment(
    policy: AccessPolicy, actor: Actor, action: str, *, personal: bool = False
) -> Decision:
    """May `actor` run `action` for at least one environment?

    The check made before an environment is known: for `help`, and before reading
    arguments that may name none (so a usage hint never goes to someone who may not run
    the command anyway). Rolling back some environment needs an operator; deciding an
    approval needs an approver of some environment. Other actions are decided as usual.
    """
    name = action.strip().casefold()
    if name not in {"rollback", *_APPROVAL_ACTIONS} or not policy.tenant_allowed(actor.tenant_id):
        return decide(policy, actor, action, personal=personal)
    if policy.changes_locked:
        return _locked(policy, name, None)
    roles = set(roles_of(policy, actor))
    if actor.identities & policy.any_approvers:
        roles.add(Role.APPROVER)
    if name == "rollback":
        return _granted(Role.OPERATOR, frozenset(roles), "Rolling back")
    return _granted(Role.APPROVER, frozenset(roles), f"{_APPROVAL_ACTIONS[name]} a deployment")


def _locked(policy: AccessPolicy, action: str, environment: str | None) -> Decision:
    if action == "retry":
        what = "Retrying training"
    elif action == "rollback":
        what = "Rolling back"
    else:
        what = f"{_APPROVAL_ACTIONS[action]} a deployment"
    return Decision(False, _role_for(policy, action, environment), _LOCKED_REASON.format(what=what))


def _role_for(policy: AccessPolicy, action: str, environment: str | None) -> Role:
    if action in _VIEWER_ACTIONS:
        return Role.VIEWER
    if action in _OPERATOR_ACTIONS:
        return Role.OPERATOR
    if action == "rollback" and environment and not policy.is_production(environment):
        return Role.OPERATOR
    return Role.APPROVER


def _granted(
    needed: Role,
    roles: frozenset[Role],
    what: str,
    policy: AccessPolicy | None = None,
    environment: str | None = None,
) -> Decision:
    if needed in roles:
        return Decision(True, needed, f"{what} is allowed for you as {_article(needed)}.")
    if needed is Role.VIEWER:
        reason = (
            f"{what} needs access to mlbot. Ask the team that runs mlbot to allow your "
            "organization (MLBOT_ALLOWED_TENANTS)."
        )
    elif needed is Role.OPERATOR:
        reason = (
            f"{what} needs an operator. Ask one of the mlbot operators to do it, or the team "
            "that runs mlbot to add you to MLBOT_OPERATORS."
        )
    elif policy is not None and environment and not policy.approvers_for(environment):
        reason = (
            f"{what} needs an approver for {_shown(environment)}, and none are set up yet. "
            f"Ask the team that runs mlbot to set {approvers_variable(environment)}."
        )
    elif policy is not None and not policy.approvers_for(environment):
        reason = (
            f"{what} needs an approver, and none are set up yet. "
            "Ask the team that runs mlbot to set MLBOT_APPROVERS."
        )
    elif environment:
        # The setting that would grant it: the environment's own list when it has one.
        own = policy is not None and policy.has_own_approvers(environment)
        setting = approvers_variable(environment) if own else "MLBOT_APPROVERS"
        reason = (
            f"{what} needs an approver for {_shown(environment)}. Ask one of the release "
            f"approvers, or the team that runs mlbot to add you to {setting}."
        )
    else:
        reason = (
            f"{what} needs an approver. Ask one of the release approvers, or the team that "
            "runs mlbot to add you to MLBOT_APPROVERS."
        )
    return Decision(False, needed, reason)


def _article(role: Role) -> str:
    return f"an {role.value}" if role.value[0] in "aeiou" else f"a {role.value}"


def _shown(text: str | None) -> str:
    """User-typed text inside a sentence: one line, not too long."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= _SHOWN_MAX else flat[: _SHOWN_MAX - 1] + "…"


def _identity(value: str) -> str:
    # Object ids are GUIDs and UPNs are e-mail-like: both are case-insensitive in Entra.
    return value.strip().casefold()


def _identities(values: Iterable[str]) -> frozenset[str]:
    return frozenset(_identity(value) for value in values if value and value.strip())


def _split_entries(value: str) -> list[str]:
    return [part for part in _ENTRY_SEPARATORS.split(value) if part]
