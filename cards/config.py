"""The `config` card: the effective settings, grouped by area, what matters first.

Problems (bad values in the variable group) come first, then the settings that differ
from their defaults, by area; the full list waits behind a toggle. Each setting is two
lines, its name above its value and where the value came from: a setting name is one
long token (`MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS`) that a two-column
layout would break mid-word, and a value is never clipped, it wraps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cards.common import Card, card, escape_markdown, heading, text

# Which area a setting belongs to: the first rule whose prefix or name matches wins.
_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Access and security",
        (
            "MLBOT_OPERATORS",
            "MLBOT_APPROVERS",
            "MLBOT_ALLOWED_TENANTS",
            "MLBOT_CARD_SIGNING_KEY",
            "MLBOT_LOCAL_ACTIONS",
            "MLBOT_HOOK_",
            "MLBOT_DEVOPS_HOOK_SECRET",
            "MLBOT_EVENTGRID_HOOK_SECRET",
            "MLBOT_ALERTS_HOOK_SECRET",
        ),
    ),
    (
        "Teams",
        ("Microsoft", "MLBOT_BOT_NAME", "MLBOT_SERVICE_URL_HOSTS", "MLBOT_ACTION_ANSWER"),
    ),
    (
        "Server",
        (
            "MLBOT_HOST",
            "MLBOT_PORT",
            "MLBOT_DATABASE_URL",
            "MLBOT_SANDBOX",
            "MLBOT_MAX_REQUEST_BYTES",
            "MLBOT_RETENTION_",  # how long the store keeps what it no longer needs
            "MLBOT_REPLICA_ID",
            "MLBOT_LEADER_",
        ),
    ),
    ("Azure", ("MLBOT_AZURE", "MLBOT_CIRCUIT_TAG", "MLBOT_CA_BUNDLE", "AZURE_")),
    (
        "Azure DevOps",
        (
            "MLBOT_DEVOPS_",
            "MLBOT_TRAINING_PIPELINE",
            "MLBOT_ROLLBACK_PIPELINE",
            "MLBOT_VARIABLE_GROUP",
            "MLBOT_MANUAL_CIRCUITS",
        ),
    ),
    (
        "Monitoring and retries",
        (
            "MLBOT_MONITORING_",
            "MLBOT_LONG_RUNNING_",
            "MLBOT_AUTO_RETRY_",
            "MLBOT_EVENTGRID_SAFETY_NET_",
        ),
    ),
    (
        "Deployments and rollback",
        ("MLBOT_AUTO_ROLLBACK_", "MLBOT_PRODUCTION_", "MLBOT_NON_PRODUCTION_"),
    ),
    (
        "Notifications",
        (
            "MLBOT_SMTP_",
            "MLBOT_ML_ENGINEERS_EMAIL",
            "MLBOT_CIRCUIT_OWNERS",  # who is mentioned about a circuit's failures
            "MLBOT_ONCALL",
            "MLBOT_ESCALATION_",
            "MLBOT_TEAMS_WEBHOOK_URL",
            "MLBOT_GROUP_WAIT",
        ),
    ),
)
OTHER_AREA = "Other"
AREA_ORDER = (*(area for area, _ in _AREAS), OTHER_AREA)
DEFAULT_SOURCE = "default"
ALL_SETTINGS_ID = "all-settings"


@dataclass(frozen=True, slots=True)
class SettingRow:
    name: str
    value: str
    source: str  # environment, .env, variable group …, start-up, default
    default: str | None = None  # the value shown when nothing sets it; None: unknown

    @property
    def is_default(self) -> bool:
        """Left at, or set to, its default value."""
        return self.source == DEFAULT_SOURCE or self.value == self.default


def setting_area(name: str) -> str:
    for area, prefixes in _AREAS:
        if any(name.startswith(prefix) for prefix in prefixes):
            return area
    return OTHER_AREA


def by_area(rows: Sequence[SettingRow]) -> list[tuple[str, list[SettingRow]]]:
    """Rows grouped by area in AREA_ORDER, each group in the given order; no empty group."""
    groups: dict[str, list[SettingRow]] = {area: [] for area in AREA_ORDER}
    for row in rows:
        groups[setting_area(row.name)].append(row)
    return [(area, members) for area, members in groups.items() if members]


# Longer names are shown on several lines, split after an underscore: a phone's card
# holds about this many characters of a small bold name.
NAME_LINE_CHARS = 30


def name_lines(name: str, width: int = NAME_LINE_CHARS) -> list[str]:
    """`name` in lines of at most `width` characters, each ending at an underscore
    (a word longer than `width` is a line of its own): broken between words, never in one.
    """
    lines: list[str] = []
    current = ""
    for word in name.split("_"):
        candidate = f"{current}_{word}" if current else word
        if current and len(candidate) > width:
            lines.append(current + "_")
            current = word
        else:
            current = candidate
    lines.append(current)
    return lines


def _setting(row: SettingRow) -> dict[str, Any]:
    # Each line of the name is kept whole (no wrapping inside a word); a long name is
    # split between its words, so nothing of it is cut off at a narrow card's edge.
    lines = name_lines(row.name)
    return {
        "type": "Container",
        "spacing": "Small",
        "items": [
            *(
                text(
                    escape_markdown(line),
                    wrap=False,
                    weight="Bolder",
                    size="Small",
                    spacing="None",
                )
                for line in lines
            ),
            text(
                f"{escape_markdown(row.value or '(empty)')} · {escape_markdown(row.source)}",
                isSubtle=True,
                spacing="None",
            ),
        ],
    }


def _areas(rows: Sequence[SettingRow]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for area, members in by_area(rows):
        blocks.append(text(area, weight="Bolder", spacing="Medium", separator=True))
        blocks.extend(_setting(row) for row in members)
    return blocks


def render_config_card(
    rows: Sequence[SettingRow], problems: Sequence[str], filter_text: str = ""
) -> Card:
    body: list[dict[str, Any]] = [heading("⚙️ Effective settings")]
    for problem in problems:
        body.append(text(f"⚠️ {escape_markdown(problem)}", color="Warning"))
    if filter_text:
        body.append(
            text(
                f"{len(rows)} setting(s) matching “{escape_markdown(filter_text)}”",
                isSubtle=True,
            )
        )
        body.extend(_areas(rows) or [text("No setting has that in its name.")])
        return card(body)

    changed = [row for row in rows if not row.is_default]
    body.append(
        text(
            f"{len(changed)} of {len(rows)} settings differ from their defaults. "
            "Secrets are masked.",
            isSubtle=True,
        )
    )
    body.extend(_areas(changed))
    body.append(
        {
            "type": "ActionSet",
            "spacing": "Large",
            "actions": [
                {
                    "type": "Action.ToggleVisibility",
                    "title": f"Show all {len(rows)} settings",
                    "targetElements": [ALL_SETTINGS_ID],
                }
            ],
        }
    )
    body.append(
        {
            "type": "Container",
            "id": ALL_SETTINGS_ID,
            "isVisible": False,
            "items": _areas(rows),
        }
    )
    return card(body, fallbackText="mlbot settings")
