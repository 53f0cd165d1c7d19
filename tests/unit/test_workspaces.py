from __future__ import annotations

import pytest

from domain.jobs import Workspace
from monitoring.workspaces import WorkspaceSettingError, parse_workspaces


def test_names_use_default_subscription_and_group() -> None:
    parsed = parse_workspaces(("ws-a", "sub2/rg2/ws-b", "ws-a"), "sub1", "rg1")
    assert parsed == [Workspace("sub1", "rg1", "ws-a"), Workspace("sub2", "rg2", "ws-b")]


@pytest.mark.parametrize("entry", ["a/b", "sub//ws", "/"])
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(WorkspaceSettingError, match="must be a name"):
        parse_workspaces((entry,), "s", "r")


def test_bare_name_without_defaults_names_the_settings() -> None:
    with pytest.raises(WorkspaceSettingError, match="MLBOT_AZURE_SUBSCRIPTION_ID"):
        parse_workspaces(("ws",), "", "")
