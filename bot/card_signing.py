"""Signed card actions: a button on a card can only ask for what the bot put there.

An `Action.Execute` button carries a `data` object that Teams sends back when it is
clicked. Anyone able to post to the bot could send any `data`, so the bot signs what it
puts on a card (the verb, the data, a one-time nonce and an expiry) with HMAC-SHA256 and
checks that signature before acting. Changing `environment: dev` to `prod`, pointing an
Approve button at another approval, or reusing a week-old card is refused.

Teams merges the values of the card's inputs (e.g. a comment box) into the same object;
those keys are not signed and come back separately as `SignedAction.inputs`.

The payload looks like `{**data, "_mlbot": {"nonce", "exp", "sig", "keys"}}` where `keys`
lists the signed data keys, so signed data and inputs can be told apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

BLOCK_KEY = "_mlbot"
DEFAULT_TTL = timedelta(hours=24)
# A version tag in the signed bytes keeps these signatures from ever matching anything
# else signed with the same key, and lets the format change later.
_DOMAIN = b"mlbot.card-action.v1\n"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # fits the card_actions primary key
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding
_MAX_SAFE_INT = 2**53 - 1  # Teams' JavaScript rounds larger integers

EXPIRED_REASON = "This card has expired — ask me for a new one: **approvals**."
TAMPERED_REASON = "This card's data was changed; the action was refused."
MALFORMED_REASON = (
    "This card's action data is missing or damaged, so the action was refused. Ask for a new card."
)


class CardDataProblem(StrEnum):
    MALFORMED = "malformed"  # no signature block, or one that cannot be read
    TAMPERED = "tampered"  # the signature does not match the verb and data
    EXPIRED = "expired"  # authentic, but past its expiry


class CardDataError(Exception):
    """A card action that must not run; `reason` can be shown to the user as it is."""

    def __init__(self, reason: str, problem: CardDataProblem) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problem = problem


@dataclass(frozen=True)
class SignedAction:
    verb: str
    data: dict[str, Any]  # exactly what the bot signed
    nonce: str  # one per signed button: the idempotency key of the action
    expires_at: datetime
    inputs: dict[str, Any] = field(default_factory=dict)  # the card's input values, unsigned


def ephemeral_key() -> bytes:
    """A random key for when no signing key is configured.

    Cards signed with it stop working when the process restarts, and replicas cannot
    verify each other's cards: the caller should log a warning.
    """
    return secrets.token_bytes(32)


class CardSigner:
    def __init__(
        self, key: bytes, clock: Callable[[], datetime], ttl: timedelta = DEFAULT_TTL
    ) -> None:
        if not key:
            raise ValueError("the card signing key is empty; use ephemeral_key() instead")
        _check_ttl(ttl)
        self._key = key
        self._clock = clock
        self._ttl = ttl

    def sign(
        self, verb: str, data: Mapping[str, Any], *, ttl: timedelta | None = None
    ) -> dict[str, Any]:
        """The `data` object for an `Action.Execute` with this `verb`.

        `data` must be JSON (str keys; str, int, float, bool, None, lists, objects) and must
        not use the key `_mlbot`. Input ids on the card must differ from its keys.
        """
        if not isinstance(verb, str) or not verb:
            raise ValueError("a card action needs a verb")
        if BLOCK_KEY in data:
            raise ValueError(f"{BLOCK_KEY!r} is reserved for the signature")
        # A JSON copy: the caller's objects are not shared, tuples become lists, and
        # anything that cannot travel through Teams fails here rather than at the click.
        try:
            plain = json.loads(json.dumps(dict(data), allow_nan=False))
        except TypeError as exc:
            raise ValueError(f"card data must be JSON: {exc}") from None
        _canonical(plain)  # rejects what Teams would change on the way back
        lifetime = self._ttl if ttl is None else ttl
        _check_ttl(lifetime)
        nonce = secrets.token_urlsafe(16)  # 128 bits
        exp = math.floor((_aware(self._clock()) + lifetime).timestamp())
        block = {"nonce": nonce, "exp": exp, "sig": self._signature(verb, plain, nonce, exp)}
        block["keys"] = sorted(plain)
        return {**plain, BLOCK_KEY: block}

    def verify(self, verb: str, payload: Mapping[str, Any]) -> SignedAction:
        """The signed action in `payload` (what Teams sent back as the action's data).

        Raises `CardDataError` when the block is missing or malformed, when the verb or any
        signed value differs from what was signed, or when the card has expired.
        """
        if not isinstance(payload, Mapping):
            raise CardDataError(MALFORMED_REASON, CardDataProblem.MALFORMED)
        block = payload.get(BLOCK_KEY)
        nonce, exp, sig, keys = _read_block(block)
        if not isinstance(verb, str) or any(key not in payload for key in keys):
            raise CardDataError(TAMPERED_REASON, CardDataProblem.TAMPERED)
        data = {key: payload[key] for key in keys}
        try:
            expected = self._signature(verb, data, nonce, exp)
        except ValueError:  # values no signer would have produced
            raise CardDataError(TAMPERED_REASON, CardDataProblem.TAMPERED) from None
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii")):
            raise CardDataError(TAMPERED_REASON, CardDataProblem.TAMPERED)
        # Only an authentic expiry is worth judging: a forged one fails above.
        expires_at = datetime.fromtimestamp(exp, UTC)
        if _aware(self._clock()) >= expires_at:
            raise CardDataError(EXPIRED_REASON, CardDataProblem.EXPIRED)
        inputs = {k: v for k, v in payload.items() if k != BLOCK_KEY and k not in data}
        return SignedAction(verb, data, nonce, expires_at, inputs)

    def _signature(self, verb: str, data: Mapping[str, Any], nonce: str, exp: int) -> str:
        message = {"verb": verb, "data": data, "nonce": nonce, "exp": exp}
        digest = hmac.new(self._key, _DOMAIN + _canonical(message), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _read_block(block: Any) -> tuple[str, int, str, list[str]]:
    if not isinstance(block, Mapping):
        raise CardDataError(MALFORMED_REASON, CardDataProblem.MALFORMED)
    nonce, exp, sig, keys = (block.get(name) for name in ("nonce", "exp", "sig", "keys"))
    well_formed = (
        isinstance(nonce, str)
        and _NONCE.fullmatch(nonce) is not None
        and isinstance(exp, int)
        and not isinstance(exp, bool)
        and 0 < exp <= _MAX_SAFE_INT
        and isinstance(sig, str)
        and _SIG.fullmatch(sig) is not None
        and isinstance(keys, list)
        and all(isinstance(key, str) and key != BLOCK_KEY for key in keys)
        and len(set(keys)) == len(keys)
    )
    if not well_formed:
        raise CardDataError(MALFORMED_REASON, CardDataProblem.MALFORMED)
    return nonce, exp, sig, keys  # type: ignore[return-value]


def _canonical(value: Any) -> bytes:
    """Deterministic JSON bytes that survive the trip through Teams and back.

    Keys sorted, no spaces, ASCII only (escaping cannot differ), and numbers written the way
    JavaScript writes them back: a whole float such as `2.0` returns as `2`.
    """
    return json.dumps(
        _normalized(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def _normalized(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError(f"integer {value} is too large to survive JSON in Teams")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("card data cannot hold NaN or infinity")
        if value.is_integer():
            return _normalized(int(value))
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("card data keys must be strings")
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalized(item) for item in value]
    raise ValueError(f"card data cannot hold {type(value).__name__}")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_ttl(ttl: timedelta) -> None:
    if ttl < timedelta(seconds=1):
        raise ValueError("a card's lifetime must be at least one second")
