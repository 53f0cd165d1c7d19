"""The `config` card: problems first, then what differs from the defaults by area, the
full list behind a toggle; names kept whole, values wrapped rather than clipped."""

from __future__ import annotations

import json
from typing import Any

from cards.config import (
    ALL_SETTINGS_ID,
    AREA_ORDER,
    NAME_LINE_CHARS,
    OTHER_AREA,
    SettingRow,
    by_area,
    name_lines,
    render_config_card,
    setting_area,
)
from config.settings import settings_from_mapping, settings_report
from tests.unit.test_event_cards import assert_valid

ROWS = [
    SettingRow("MLBOT_PORT", "3978", "default"),
    SettingRow("MLBOT_SMTP_HOST", "smtp.contoso.com", "environment"),
    SettingRow("MLBOT_OPERATORS", "ops@contoso.com", ".env"),
    SettingRow("MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS", "4.0", "default"),
    SettingRow("MLBOT_MONITORING_POLL_INTERVAL_SECONDS", "60", "variable group g"),
    SettingRow("MicrosoftAppId", "", "default"),
    # Set, but to the value it would have anyway: not among what differs.
    SettingRow("MLBOT_MONITORING_MAX_WAIT_HOURS", "3.0", "variable group g", "3.0"),
]
PROBLEM = "variable group g: autoRetryMaxRetries 'two' is not a whole number; keeping 2"


def texts(elements: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for element in elements:
        if element.get("type") == "TextBlock":
            found.append(element["text"])
        found.extend(texts(element.get("items", [])))
    return found


def test_problems_first_then_what_differs_by_area_then_everything_behind_a_toggle() -> None:
    card = render_config_card(ROWS, [PROBLEM])
    body = card["body"]
    shown = texts([el for el in body if el.get("id") != ALL_SETTINGS_ID])
    assert shown[0] == "⚙️ Effective settings"
    assert shown[1].startswith("⚠️ variable group g")  # problems before any setting
    assert shown[2] == "3 of 7 settings differ from their defaults. Secrets are masked."
    # Only the changed ones are on show, grouped by area in AREA_ORDER.
    assert shown[3:] == [
        "Access and security",
        "MLBOT\\_OPERATORS",
        "ops@contoso.com · .env",
        "Monitoring and retries",
        "MLBOT\\_MONITORING\\_POLL\\_INTERVAL\\_",  # a long name, split between words
        "SECONDS",
        "60 · variable group g",
        "Notifications",
        "MLBOT\\_SMTP\\_HOST",
        "smtp.contoso.com · environment",
    ]
    [toggle_set] = [el for el in body if el["type"] == "ActionSet"]
    [toggle] = toggle_set["actions"]
    assert toggle["type"] == "Action.ToggleVisibility"
    assert toggle["targetElements"] == [ALL_SETTINGS_ID] and "all 7" in toggle["title"]
    [hidden] = [el for el in body if el.get("id") == ALL_SETTINGS_ID]
    assert hidden["isVisible"] is False
    every = texts(hidden["items"])
    joined = "".join(every)
    for row in ROWS:
        assert row.name.replace("_", "\\_") in joined
    assert "(empty) · default" in every  # an empty value is said, not a blank line
    assert_valid(card, "1.5")


def test_names_stay_on_one_line_and_values_wrap() -> None:
    card = render_config_card(ROWS, [])

    def blocks(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for element in elements:
            items = element.get("items", [])
            if element.get("type") == "Container" and items and "·" in items[-1].get("text", ""):
                out.append(element)
            out.extend(blocks(element.get("items", [])))
        return out

    settings = [
        b for b in blocks(card["body"]) if b["items"][0]["text"].startswith(("MLBOT", "Micro"))
    ]
    assert len(settings) == 3 + len(ROWS)  # the changed ones, then all of them
    for setting in settings:
        *name, value = setting["items"]
        assert all(line["wrap"] is False for line in name)
        assert value["wrap"] is True
    shown = {"".join(line["text"] for line in s["items"][:-1]) for s in settings}
    assert shown == {row.name.replace("_", "\\_") for row in ROWS}


def test_a_long_name_is_split_between_its_words_never_inside_one() -> None:
    name = "MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS"
    assert name_lines(name) == ["MLBOT_LONG_RUNNING_JOB_", "NOTIFICATION_INTERVAL_HOURS"]
    assert name_lines("MLBOT_PORT") == ["MLBOT_PORT"]
    assert name_lines("A" * 40 + "_B") == ["A" * 40 + "_", "B"]  # a long word stays whole
    for setting in settings_report(settings_from_mapping({}), {}, env_file=None):
        lines = name_lines(setting[0])
        assert "".join(lines) == setting[0]
        assert all(len(line) <= NAME_LINE_CHARS + 1 for line in lines), lines


def test_every_real_setting_has_an_area_and_the_real_card_fits_teams() -> None:
    rows = [
        SettingRow(*row) for row in settings_report(settings_from_mapping({}), {}, env_file=None)
    ]
    assert [row.name for row in rows if setting_area(row.name) == OTHER_AREA] == []
    assert [area for area, _ in by_area(rows)] == [a for a in AREA_ORDER if a != OTHER_AREA]
    card = render_config_card(rows, [PROBLEM])
    # A bot reply may carry about 100 KB (the 28 KB limit is the Workflows webhook's,
    # which never gets this card); keep it far below, so it loads fast on a phone.
    assert len(json.dumps(card).encode()) < 40 * 1024
    assert_valid(card, "1.5")


def test_a_filter_lists_what_matches_without_a_toggle() -> None:
    card = render_config_card([r for r in ROWS if "SMTP" in r.name], [], "smtp")
    shown = texts(card["body"])
    assert "1 setting(s) matching “smtp”" in shown and "MLBOT\\_SMTP\\_HOST" in shown
    assert not any(el["type"] == "ActionSet" for el in card["body"])
    empty = texts(render_config_card([], [], "nothing")["body"])
    assert "No setting has that in its name." in empty
