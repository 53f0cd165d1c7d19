"""Which Azure ML workspaces mlbot watches, from settings (pure)."""

from __future__ import annotations

from domain.jobs import Workspace


class WorkspaceSettingError(ValueError):
    """A workspace entry cannot be understood; the message says which and why."""


def parse_workspaces(
    entries: tuple[str, ...], subscription_id: str, resource_group: str
) -> list[Workspace]:
    """`name` uses the default subscription and group; `sub/rg/name` names all three."""
    workspaces: list[Workspace] = []
    for entry in entries:
        parts = [part.strip() for part in entry.split("/")]
        if len(parts) == 3 and all(parts):
            workspace = Workspace(parts[0], parts[1], parts[2])
        elif len(parts) == 1 and parts[0]:
            if not subscription_id or not resource_group:
                raise WorkspaceSettingError(
                    f"workspace {entry!r} needs MLBOT_AZURE_SUBSCRIPTION_ID and "
                    "MLBOT_AZURE_RESOURCE_GROUP (or write it as subscription/group/workspace)"
                )
            workspace = Workspace(subscription_id, resource_group, parts[0])
        else:
            raise WorkspaceSettingError(
                f"workspace {entry!r} must be a name or subscription/resource-group/workspace"
            )
        if workspace not in workspaces:
            workspaces.append(workspace)
    return workspaces
