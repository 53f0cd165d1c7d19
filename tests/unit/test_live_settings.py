"""The live-settings view: which settings may change while running, and who reads them how."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from bot.commands import CommandError
from bot.operations import Operations
from config.live import LIVE_FIELDS, VARIABLE_GROUP_KEYS, LiveSettings, is_live, live_aliases
from config.settings import Settings, settings_from_mapping
from monitoring.email_delivery import EmailSender, SmtpSettings
from monitoring.variable_group import GROUP_KEYS, VariableGroupRefresher

ROOT = Path(__file__).parents[2]


class Group:
    """The variable group's variables as the adapter returns them."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    async def __call__(self) -> Mapping[str, str]:
        return self.values


def test_the_live_settings_are_the_variable_groups_keys() -> None:
    assert GROUP_KEYS is VARIABLE_GROUP_KEYS  # one declaration
    assert set(VARIABLE_GROUP_KEYS.values()) == LIVE_FIELDS
    assert set(Settings.model_fields) >= LIVE_FIELDS
    assert is_live("ml_engineers_email") and is_live("teams_webhook_url")
    assert not is_live("smtp_host") and not is_live("hook_secret")
    assert "MLBOT_ML_ENGINEERS_EMAIL" in live_aliases()


def test_without_a_source_the_start_up_settings_are_in_effect() -> None:
    startup = settings_from_mapping({"MLBOT_ML_ENGINEERS_EMAIL": "ada@example.com"})
    live = LiveSettings(startup)
    assert live.now() is startup and live.startup is startup
    assert live.group_fields() == frozenset() and live.problems() == []


async def test_a_group_change_is_seen_at_the_next_read() -> None:
    startup = settings_from_mapping({})
    group = Group({"mlEngineersEmail": "ada@example.com"})
    refresher = VariableGroupRefresher(startup, group)
    live = LiveSettings(startup, refresher)
    await refresher.refresh_once()
    assert live.now().ml_engineers_email == ("ada@example.com",)
    assert live.now() is live.now()  # rebuilt only when the group changed
    assert live.group_fields() == {"ml_engineers_email"}

    group.values = {"mlEngineersEmail": "grace@example.com", "monitoringMaxWaitHours": "nope"}
    await refresher.refresh_once()
    assert live.now().ml_engineers_email == ("grace@example.com",)
    assert [p for p in live.problems() if "monitoringMaxWaitHours" in p]
    assert startup.ml_engineers_email == ()  # the start-up object is never changed


def test_only_live_fields_can_differ_from_start_up() -> None:
    startup = settings_from_mapping({})

    class Drifting:
        """A source that (wrongly) changed a start-up-only setting too."""

        current = startup.model_copy(
            update={"smtp_host": "mail.example.com", "ml_engineers_email": ("ada@example.com",)}
        )
        applied_fields = frozenset({"ml_engineers_email", "smtp_host"})
        problems = ()

    live = LiveSettings(startup, Drifting())
    assert live.now().ml_engineers_email == ("ada@example.com",)
    assert live.now().smtp_host == ""  # frozen at start-up whatever the source says
    assert live.group_fields() == {"ml_engineers_email"}


def test_the_email_sender_asks_for_the_recipients_at_each_send() -> None:
    recipients: tuple[str, ...] = ()
    sender = EmailSender(SmtpSettings(host="mail.example.com"), recipients=lambda: recipients)
    assert not sender.is_configured  # nobody to tell yet
    recipients = ("ada@example.com",)
    assert sender.is_configured and sender.recipients == ("ada@example.com",)


def test_without_a_recipients_source_the_settings_snapshot_is_used() -> None:
    sender = EmailSender(SmtpSettings(host="mail.example.com", recipients=("a@example.com",)))
    assert sender.recipients == ("a@example.com",)


def _operations(default: tuple[str, ...]) -> Operations:
    async def known() -> set[str]:
        return {"PLANT001/CIRCUIT01", "PLANT002/CIRCUIT02"}

    return Operations(
        pipelines=None,
        training_pipeline=lambda: "training-pipeline",
        rollback_pipeline=lambda: "rollback-pipeline",
        known_circuits=known,
        default_circuits=lambda: default,
    )


async def test_retry_alone_proposes_the_groups_manual_circuits() -> None:
    ops = _operations(("PLANT002/CIRCUIT02", "PLANT001/CIRCUIT01"))
    assert await ops.validate_circuits("  ") == ("PLANT002/CIRCUIT02", "PLANT001/CIRCUIT01")
    # Named circuits win over the group's.
    assert await ops.validate_circuits("PLANT001/CIRCUIT01") == ("PLANT001/CIRCUIT01",)


async def test_retry_alone_without_manual_circuits_asks_which() -> None:
    with pytest.raises(CommandError, match="Which circuits"):
        await _operations(()).validate_circuits("")


def _frozen_live_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Live fields read from the start-up settings (`settings.x`, `startup.x`, `….startup.x`).

    A listener's `old` / `new` and `live.now()` are the current values; the start-up
    object is not. (Whole-object reads such as `from_settings(settings)` are out of
    this check's sight; the integration tests cover those consumers.)
    """
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in LIVE_FIELDS:
            continue
        value = node.value
        frozen = (isinstance(value, ast.Name) and value.id in {"settings", "startup"}) or (
            isinstance(value, ast.Attribute) and value.attr == "startup"
        )
        if frozen:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_composition_reads_live_settings_only_through_the_view() -> None:
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    assert _frozen_live_reads(tree) == []


def test_the_guard_sees_a_frozen_read() -> None:
    code = (
        "a = settings.ml_engineers_email\n"
        "b = live.now().ml_engineers_email\n"
        "c = live.startup.manual_circuits\n"
    )
    found = _frozen_live_reads(ast.parse(code))
    assert found == [(1, "settings.ml_engineers_email"), (3, "live.startup.manual_circuits")]


def test_the_configuration_page_marks_exactly_the_live_settings() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    marked = set(re.findall(r"^\| `(MLBOT_[A-Z0-9_]+)` \|[^\n]*\| live \|", page, re.M))
    assert marked == set(live_aliases())
