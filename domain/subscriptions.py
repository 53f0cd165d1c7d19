"""Subscriptions: which events a conversation receives, narrowed by experiment, circuit or
environment.

Everything here is pure: the kinds people choose from, parsing what they type
(`subscribe failed circuit=PLANT001/`), applying it to a subscription, and the decision
whether one event reaches one subscription. The store keeps one subscription per
conversation; the Teams notifier reads them with one query and filters here.

A filter narrows only the events that say what it filters. Training events name circuits
and (through their job) an experiment but no environment, so an environment filter does
not hide them; deployment, approval and rollback events name an environment but no
circuit, so a circuit filter does not hide them. An event that cannot say (an approval
whose stage does not name its environment, a job the store no longer knows) is shown
rather than silently dropped: one card too many beats a missed failure.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.events import SubscriptionKind


@dataclass(frozen=True, slots=True)
class KindInfo:
    name: str  # as stored and as the notifier routes it
    word: str  # what people type and read
    label: str  # the toggle on the subscriptions card
    aliases: tuple[str, ...] = ()


_S = SubscriptionKind
KINDS: tuple[KindInfo, ...] = (
    KindInfo(_S.TRAINING_STARTED, "started", "Training started"),
    KindInfo(_S.TRAINING_COMPLETED, "completed", "Training completed"),
    KindInfo(
        _S.TRAINING_FAILED,
        "failed",
        "Training failed (also retries and attempts past their timeout)",
        ("failures", "failure"),
    ),
    KindInfo(
        _S.TRAINING_TIMED_OUT,
        "timed-out",
        "Monitoring timed out (jobs still unfinished after the max wait)",
        ("timeout", "timeouts"),
    ),
    KindInfo(_S.LONG_RUNNING, "reminders", "Long-running reminders", ("reminder", "long-running")),
    KindInfo(_S.APPROVAL_REQUIRED, "approvals", "Approval required", ("approval",)),
    KindInfo(
        _S.DEPLOYMENT_COMPLETED,
        "deployment-completed",
        "Deployment completed",
        ("deployed", "deployments-completed"),
    ),
    KindInfo(
        _S.DEPLOYMENT_FAILED,
        "deployment-failed",
        "Deployment failed",
        ("deploy-failed", "deployments-failed"),
    ),
    KindInfo(_S.ROLLBACK, "rollback", "Rollbacks", ("rollbacks",)),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
_BY_NAME = {k.name: k for k in KINDS}
# What the conversation the bot is installed in receives: everything but the chatty "started".
DEFAULT_KINDS: tuple[str, ...] = tuple(k for k in KIND_NAMES if k != _S.TRAINING_STARTED)
# Words that stand for several kinds at once.
GROUPS: dict[str, tuple[str, ...]] = {
    "all": KIND_NAMES,
    "training": (
        _S.TRAINING_STARTED,
        _S.TRAINING_COMPLETED,
        _S.TRAINING_FAILED,
        _S.TRAINING_TIMED_OUT,
        _S.LONG_RUNNING,
    ),
    "deployments": (_S.DEPLOYMENT_COMPLETED, _S.DEPLOYMENT_FAILED, _S.ROLLBACK),
}

MAX_FILTER_VALUES = 10
# Filter fields as stored (JSON keys) and the words people may type for them.
EXPERIMENT, CIRCUIT, ENVIRONMENT = "experiment", "circuit_prefix", "environment"
_FILTER_KEYS = {
    "experiment": EXPERIMENT,
    "experiments": EXPERIMENT,
    "exp": EXPERIMENT,
    "circuit": CIRCUIT,
    "circuits": CIRCUIT,
    "circuit_prefix": CIRCUIT,
    "prefix": CIRCUIT,
    "env": ENVIRONMENT,
    "environment": ENVIRONMENT,
    "environments": ENVIRONMENT,
}
_FILTER_PATTERNS = {
    # Azure ML experiment names: letters, digits, `_`, `-`, `.`; up to 255 characters.
    EXPERIMENT: re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$"),
    CIRCUIT: re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$"),
    ENVIRONMENT: re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,49}$"),
}
_FILTER_WORDS = {EXPERIMENT: "experiment", CIRCUIT: "circuit", ENVIRONMENT: "env"}
_FILTER_EXAMPLES = {
    EXPERIMENT: "experiment=circuit-training",
    CIRCUIT: "circuit=PLANT001/",
    ENVIRONMENT: "env=prod",
}
# Values that clear a filter: `circuit=` or `circuit=any`.
_ANY = frozenset({"", "any", "*"})
_SHOWN_MAX = 40


class SubscriptionInputError(ValueError):
    """What someone typed (or put on the card) is not a subscription; the text says why."""


def _norm(word: str) -> str:
    return word.strip().casefold().replace("-", "_")


_KIND_WORDS: dict[str, tuple[str, ...]] = {}
for _info in KINDS:
    for _word in (_info.name, _info.word, *_info.aliases):
        _KIND_WORDS[_norm(_word)] = (_info.name,)
for _group, _kinds in GROUPS.items():
    _KIND_WORDS[_norm(_group)] = _kinds


def environment_key(environment: str) -> str:
    """Environment names compare case-insensitively, with `-` and `_` alike (as access does)."""
    return _norm(environment)


@dataclass(frozen=True, slots=True)
class SubscriptionFilters:
    """Each field: any of these values passes; empty means no filter."""

    experiments: tuple[str, ...] = ()
    circuit_prefixes: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.experiments or self.circuit_prefixes or self.environments)

    def to_json(self) -> dict[str, list[str]]:
        stored = {
            EXPERIMENT: list(self.experiments),
            CIRCUIT: list(self.circuit_prefixes),
            ENVIRONMENT: list(self.environments),
        }
        return {key: values for key, values in stored.items() if values}

    @classmethod
    def from_json(cls, value: Any) -> SubscriptionFilters:
        """Stored filters, read leniently: a string or a list per key; unknown keys ignored."""
        if not isinstance(value, Mapping):
            return cls()

        def read(key: str) -> tuple[str, ...]:
            raw = value.get(key)
            items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
            return tuple(
                dict.fromkeys(s.strip() for s in items if isinstance(s, str) and s.strip())
            )

        return cls(read(EXPERIMENT), read(CIRCUIT), read(ENVIRONMENT))

    def values(self, key: str) -> tuple[str, ...]:
        return {
            EXPERIMENT: self.experiments,
            CIRCUIT: self.circuit_prefixes,
            ENVIRONMENT: self.environments,
        }[key]


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one conversation receives. `kinds` are kind names, in `KINDS` order."""

    kinds: tuple[str, ...] = ()
    filters: SubscriptionFilters = field(default_factory=SubscriptionFilters)

    @classmethod
    def of(cls, kinds: Iterable[str], filters: SubscriptionFilters | None = None) -> Subscription:
        """Known kinds only, each once, in the canonical order."""
        wanted = set(kinds)
        return cls(tuple(k for k in KIND_NAMES if k in wanted), filters or SubscriptionFilters())

    @classmethod
    def from_stored(cls, kinds: Any, filters: Any) -> Subscription:
        listed = [k for k in kinds if isinstance(k, str)] if isinstance(kinds, list) else []
        return cls.of(listed, SubscriptionFilters.from_json(filters))


def default_subscription(conversation_type: str | None) -> Subscription:
    """A new conversation's subscription: a personal chat starts with nothing until its
    person subscribes; a team channel or group chat gets everything but "started"."""
    if conversation_type == "personal":
        return Subscription()
    return Subscription.of(DEFAULT_KINDS)


# --- what people type --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterUpdate:
    """Filters named in a command: None leaves a field as it is, () clears it."""

    experiments: tuple[str, ...] | None = None
    circuit_prefixes: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return (
            self.experiments is None and self.circuit_prefixes is None and self.environments is None
        )

    def applied_to(self, filters: SubscriptionFilters) -> SubscriptionFilters:
        return SubscriptionFilters(
            filters.experiments if self.experiments is None else self.experiments,
            filters.circuit_prefixes if self.circuit_prefixes is None else self.circuit_prefixes,
            filters.environments if self.environments is None else self.environments,
        )


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    kinds: tuple[str, ...] = ()
    filters: FilterUpdate = field(default_factory=FilterUpdate)


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    kinds: tuple[str, ...]  # every kind when `everything`
    everything: bool


def _shown(value: str) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= _SHOWN_MAX else flat[: _SHOWN_MAX - 1] + "…"


def kind_words() -> str:
    """The words for kinds, for help texts: `started, completed, …`."""
    return ", ".join(k.word for k in KINDS)


def _unknown_kind(word: str) -> SubscriptionInputError:
    close = difflib.get_close_matches(_norm(word), list(_KIND_WORDS), n=1, cutoff=0.6)
    hint = ""
    if close:
        names = _KIND_WORDS[close[0]]
        suggestion = close[0] if len(names) > 1 else _BY_NAME[names[0]].word
        hint = f" Did you mean `{suggestion}`?"
    return SubscriptionInputError(
        f"I don't know the event kind `{_shown(word)}`.{hint} "
        f"Choose from: {kind_words()} — or all, training, deployments."
    )


def parse_kinds(words: Iterable[str]) -> tuple[str, ...]:
    """Kind words (commas or spaces between them) to kind names; unknown words raise."""
    found: list[str] = []
    for chunk in words:
        for word in chunk.split(","):
            if not word.strip():
                continue
            names = _KIND_WORDS.get(_norm(word))
            if names is None:
                raise _unknown_kind(word)
            found.extend(n for n in names if n not in found)
    return tuple(k for k in KIND_NAMES if k in found)


def parse_filter_values(key: str, raw: str) -> tuple[str, ...]:
    """One filter's values (comma-separated); empty, `any` or `*` clears the filter."""
    if raw.strip().casefold() in _ANY:
        return ()
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    if len(values) > MAX_FILTER_VALUES:
        raise SubscriptionInputError(
            f"At most {MAX_FILTER_VALUES} values per filter, please "
            f"({_FILTER_WORDS[key]} has {len(values)})."
        )
    pattern = _FILTER_PATTERNS[key]
    for value in values:
        if not pattern.match(value):
            raise SubscriptionInputError(
                f"`{_shown(value)}` is not a valid {_FILTER_WORDS[key]} filter. "
                f"For example: `{_FILTER_EXAMPLES[key]}` (or `{_FILTER_WORDS[key]}=any` "
                "to remove the filter)."
            )
    if key == ENVIRONMENT:
        values = tuple(dict.fromkeys(environment_key(v) for v in values))
    return values


def _filter_key(word: str) -> str:
    key = _FILTER_KEYS.get(_norm(word))
    if key is None:
        close = difflib.get_close_matches(_norm(word), list(_FILTER_KEYS), n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}=`?" if close else ""
        raise SubscriptionInputError(
            f"I don't know the filter `{_shown(word)}=`.{hint} "
            "Filters are experiment=NAME, circuit=PREFIX and env=ENVIRONMENT."
        )
    return key


def parse_subscribe(args: str) -> SubscribeRequest:
    """`[kinds…] [experiment=X] [circuit=PREFIX] [env=ENV]`, in any order."""
    # `circuit = PLANT001/` is meant as `circuit=PLANT001/`.
    tokens = re.sub(r"\s*=\s*", "=", args.strip()).split()
    words: list[str] = []
    given: dict[str, tuple[str, ...]] = {}
    for token in tokens:
        if "=" not in token:
            words.append(token)
            continue
        name, _, raw = token.partition("=")
        key = _filter_key(name)
        if key in given:
            raise SubscriptionInputError(
                f"`{_FILTER_WORDS[key]}=` is given twice; give several values with commas "
                f"instead, e.g. `{_FILTER_WORDS[key]}=a,b`."
            )
        given[key] = parse_filter_values(key, raw)
    update = FilterUpdate(given.get(EXPERIMENT), given.get(CIRCUIT), given.get(ENVIRONMENT))
    return SubscribeRequest(parse_kinds(words), update)


def parse_unsubscribe(args: str) -> UnsubscribeRequest:
    """`[kinds…|all]`: nothing, or `all`, stops everything."""
    words = args.split()
    if any("=" in w for w in words):
        raise SubscriptionInputError(
            "`unsubscribe` takes event kinds only. To remove a filter, use "
            "`subscribe circuit=any` (or experiment=any, env=any)."
        )
    kinds = parse_kinds(words)
    everything = not kinds or set(kinds) == set(KIND_NAMES)
    return UnsubscribeRequest(KIND_NAMES if everything else kinds, everything)


def apply_subscribe(current: Subscription, request: SubscribeRequest) -> Subscription:
    """Add the kinds and set the filters named. Naming no kind on a conversation that has
    none yet subscribes it to the defaults, so a bare `subscribe` in a personal chat works."""
    kinds: Iterable[str] = (*current.kinds, *request.kinds)
    if not request.kinds and not current.kinds:
        kinds = DEFAULT_KINDS
    return Subscription.of(kinds, request.filters.applied_to(current.filters))


def apply_unsubscribe(current: Subscription, request: UnsubscribeRequest) -> Subscription:
    if request.everything:
        return Subscription()  # filters go too: a later `subscribe` starts afresh
    return Subscription.of((k for k in current.kinds if k not in request.kinds), current.filters)


def subscription_from_inputs(inputs: Mapping[str, Any]) -> Subscription:
    """The subscriptions card's inputs (`kind.<name>` toggles, filter texts) as a subscription."""
    kinds = [name for name in KIND_NAMES if str(inputs.get(toggle_id(name), "")).lower() == "true"]
    filters = SubscriptionFilters(
        parse_filter_values(EXPERIMENT, str(inputs.get(EXPERIMENT) or "")),
        parse_filter_values(CIRCUIT, str(inputs.get(CIRCUIT) or "")),
        parse_filter_values(ENVIRONMENT, str(inputs.get(ENVIRONMENT) or "")),
    )
    return Subscription.of(kinds, filters)


def toggle_id(kind: str) -> str:
    """The id of a kind's toggle on the subscriptions card."""
    return f"kind.{kind}"


def describe(subscription: Subscription) -> str:
    """One line for replies: `completed, failed, … — only circuits PLANT001/; only env prod`."""
    if not subscription.kinds:
        return "nothing"
    kinds = ", ".join(_BY_NAME[k].word for k in subscription.kinds)
    if set(subscription.kinds) == set(KIND_NAMES):
        kinds = "everything"
    limits = describe_filters(subscription.filters)
    return f"{kinds} ({limits})" if limits else kinds


def describe_filters(filters: SubscriptionFilters) -> str:
    parts = []
    if filters.experiments:
        parts.append("experiment " + " or ".join(filters.experiments))
    if filters.circuit_prefixes:
        parts.append("circuits starting with " + " or ".join(filters.circuit_prefixes))
    if filters.environments:
        parts.append("environment " + " or ".join(filters.environments))
    return "only " + "; only ".join(parts) if parts else ""


# --- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What an event says that filters can look at; empty or None when it does not say."""

    kind: str  # the subscription kind
    experiments: tuple[str, ...] = ()
    circuits: tuple[str, ...] = ()
    environment: str | None = None


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def event_facts(
    kind: str,
    payload: Mapping[str, Any],
    *,
    circuit: str | None = None,
    experiment: str | None = None,
) -> EventFacts:
    """Read an event's payload as the engine, the hooks and the deployment watch write it.

    Job events carry `circuit`; a queued retry `circuits`; a monitoring time-out the
    `unfinished` jobs (each with `circuit`); DevOps and deployment-watch events carry
    `environment`. `experiment` comes from the payload when it says, else from the caller
    (the store knows each job's experiment).
    """
    circuits: list[Any] = [payload.get("circuit"), circuit]
    listed = payload.get("circuits")
    if isinstance(listed, list):
        circuits.extend(listed)
    unfinished = payload.get("unfinished")
    if isinstance(unfinished, list):
        circuits.extend(j.get("circuit") for j in unfinished if isinstance(j, Mapping))
    experiments: list[Any] = [payload.get("experiment"), experiment]
    environment = payload.get("environment")
    return EventFacts(
        kind=kind,
        experiments=_strings(experiments),
        circuits=_strings(circuits),
        environment=environment if isinstance(environment, str) and environment else None,
    )


def matches(subscription: Subscription, event: EventFacts) -> bool:
    """Does this event reach this subscription? Filters narrow only events that say."""
    if event.kind not in subscription.kinds:
        return False
    filters = subscription.filters
    if filters.experiments and event.experiments:
        wanted = {e.casefold() for e in filters.experiments}
        if not any(e.casefold() in wanted for e in event.experiments):
            return False
    if filters.circuit_prefixes and event.circuits:
        prefixes = tuple(p.casefold() for p in filters.circuit_prefixes)
        if not any(c.casefold().startswith(prefixes) for c in event.circuits):
            return False
    if filters.environments and event.environment is not None:
        wanted_envs = {environment_key(e) for e in filters.environments}
        if environment_key(event.environment) not in wanted_envs:
            return False
    return True


def selected(subscribers: Sequence[tuple[str, Subscription]], event: EventFacts) -> list[str]:
    """The conversation ids, in the given order, whose subscription the event reaches."""
    return [conversation for conversation, sub in subscribers if matches(sub, event)]
