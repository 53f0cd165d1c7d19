"""The pinned dependencies stay past the advisories known when they were last audited,
and `make audit` checks the lock and the npm tree strictly (it needs the network, so it
is not part of `make test`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).parents[2]

# The first release of each package past its last known advisory.
SAFE_FLOORS = {
    "aiohttp": "3.14.5",
    "cryptography": "50.0.2",
    "pyjwt": "2.15.1",
    "requests": "2.34.2",
    "urllib3": "2.8.0",
}


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = Version(match.group(2))
    return pins


@pytest.mark.parametrize(("package", "floor"), sorted(SAFE_FLOORS.items()))
def test_the_lock_pins_past_known_advisories(package: str, floor: str) -> None:
    pins = _pins()
    assert package in pins, f"{package} is not pinned in requirements.lock"
    assert pins[package] >= Version(floor)


def _target(name: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    recipe: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return [lines[start], *recipe]


def test_make_audit_is_strict_about_the_lock_and_npm() -> None:
    recipe = " ".join(_target("audit"))
    assert "pip-audit" in recipe and "--strict" in recipe
    assert "--requirement requirements.lock" in recipe
    assert "npm audit" in recipe


def test_make_test_does_not_need_the_network_for_an_audit() -> None:
    assert "audit" not in _target("test")[0]
