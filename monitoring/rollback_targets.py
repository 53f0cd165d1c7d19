"""Which online endpoints the health watch looks at after a deployment (pure).

A deployment hook says "prod completed" but not which Azure ML online endpoint serves
prod, so operators name them in `MLBOT_AUTO_ROLLBACK_ENDPOINTS`, one entry per endpoint:

    prod=mlw-plants/plant-models            (workspace/endpoint, default subscription/group)
    prod=/subscriptions/…/onlineEndpoints/plant-models@green   (ARM id, one deployment)

`@deployment` narrows the metrics to one deployment of the endpoint (blue/green); without
it the whole endpoint is judged. An environment may list several endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitoring.metrics import online_endpoint_id

SETTING = "MLBOT_AUTO_ROLLBACK_ENDPOINTS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_ARM_ENDPOINT = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/[^/]+/onlineEndpoints/[^/]+$",
    re.IGNORECASE,
)


class RollbackTargetError(ValueError):
    """An entry of MLBOT_AUTO_ROLLBACK_ENDPOINTS cannot be understood."""


@dataclass(frozen=True, slots=True)
class EndpointTarget:
    environment: str  # lower-cased
    endpoint_resource_id: str
    # Empty: the whole endpoint. The watch stores it as the deployment's name.
    deployment: str = ""

    @property
    def endpoint(self) -> str:
        return self.endpoint_resource_id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def label(self) -> str:
        return f"{self.endpoint}@{self.deployment}" if self.deployment else self.endpoint


def parse_target(entry: str, subscription_id: str, resource_group: str) -> EndpointTarget:
    environment, sep, where = entry.partition("=")
    environment = environment.strip().lower()
    where = where.strip()
    if not sep or not environment or not where:
        raise RollbackTargetError(
            f"{entry!r} must be environment=workspace/endpoint[@deployment] "
            "or environment=<online endpoint ARM id>[@deployment]"
        )
    if not _NAME.match(environment):
        raise RollbackTargetError(f"{entry!r}: {environment!r} is not an environment name")
    endpoint, at, deployment = where.partition("@")
    endpoint, deployment = endpoint.strip().rstrip("/"), deployment.strip()
    if at and not _NAME.match(deployment):
        raise RollbackTargetError(f"{entry!r}: {deployment!r} is not a deployment name")
    if endpoint.startswith("/"):
        if not _ARM_ENDPOINT.match(endpoint):
            raise RollbackTargetError(
                f"{entry!r}: an ARM id must end in "
                "/workspaces/<workspace>/onlineEndpoints/<endpoint>"
            )
        resource_id = endpoint
    else:
        parts = [part.strip() for part in endpoint.split("/")]
        if len(parts) != 2 or not all(_NAME.match(part) for part in parts):
            raise RollbackTargetError(f"{entry!r}: write the endpoint as workspace/endpoint")
        if not subscription_id or not resource_group:
            raise RollbackTargetError(
                f"{entry!r} needs MLBOT_AZURE_SUBSCRIPTION_ID and MLBOT_AZURE_RESOURCE_GROUP "
                "(or give the endpoint's ARM id)"
            )
        resource_id = online_endpoint_id(subscription_id, resource_group, parts[0], parts[1])
    return EndpointTarget(environment, resource_id, deployment)


def parse_targets(
    entries: Iterable[str], subscription_id: str, resource_group: str
) -> tuple[EndpointTarget, ...]:
    """Every entry, in order, without duplicates; raises on the first bad one."""
    targets: list[EndpointTarget] = []
    for entry in entries:
        target = parse_target(entry, subscription_id, resource_group)
        if target not in targets:
            targets.append(target)
    return tuple(targets)


def targets_for(targets: Iterable[EndpointTarget], environment: str) -> list[EndpointTarget]:
    wanted = environment.strip().lower()
    return [target for target in targets if target.environment == wanted]
