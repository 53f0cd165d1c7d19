"""Azure clouds: the endpoints every Azure client of mlbot uses, from one setting.

Public Azure, Azure US Government and Azure China differ in their Resource Manager,
Entra ID (authority) and Studio endpoints. `MLBOT_AZURE_CLOUD` names one of them;
`MLBOT_AZURE_RESOURCE_MANAGER_URL` and `MLBOT_AZURE_AUTHORITY_HOST` replace single
endpoints (a private endpoint, a proxy, or the sandbox's stand-ins). The result is a
value the Azure ML, Azure Monitor and azure-identity clients are all built from, so
they can never disagree about the cloud they talk to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class AzureCloud:
    """The endpoints of one Azure cloud (URLs end with a slash)."""

    name: str  # azure-ai-ml's name for it: AzureCloud, AzureUSGovernment, AzureChinaCloud
    resource_manager: str
    authority_host: str
    portal: str
    studio: str
    storage_suffix: str
    registry_discovery: str
    # True when an endpoint was replaced by a setting: azure-ai-ml then needs the whole
    # metadata, and azure-identity must not ask Entra ID's instance discovery about it.
    customized: bool = False

    @property
    def management_audience(self) -> str:
        """The token audience of Resource Manager in this cloud (no trailing slash)."""
        return self.resource_manager.rstrip("/")

    @property
    def authority_known(self) -> bool:
        """Whether the authority is one of Entra ID's own hosts (instance discovery knows it)."""
        host = urlsplit(self.authority_host).hostname or ""
        return host in _ENTRA_HOSTS


KNOWN_CLOUDS: dict[str, AzureCloud] = {
    "AzureCloud": AzureCloud(
        name="AzureCloud",
        resource_manager="https://management.azure.com/",
        authority_host="https://login.microsoftonline.com/",
        portal="https://portal.azure.com/",
        studio="https://ml.azure.com/",
        storage_suffix="core.windows.net",
        registry_discovery="https://eastus.api.azureml.ms/",
    ),
    "AzureUSGovernment": AzureCloud(
        name="AzureUSGovernment",
        resource_manager="https://management.usgovcloudapi.net/",
        authority_host="https://login.microsoftonline.us/",
        portal="https://portal.azure.us/",
        studio="https://ml.azure.us/",
        storage_suffix="core.usgovcloudapi.net",
        registry_discovery="https://usgovarizona.api.ml.azure.us/",
    ),
    "AzureChinaCloud": AzureCloud(
        name="AzureChinaCloud",
        resource_manager="https://management.chinacloudapi.cn/",
        authority_host="https://login.chinacloudapi.cn/",
        portal="https://portal.azure.cn/",
        studio="https://studio.ml.azure.cn/",
        storage_suffix="core.chinacloudapi.cn",
        registry_discovery="https://chinaeast2.api.ml.azure.cn/",
    ),
}

_ENTRA_HOSTS = frozenset(
    urlsplit(cloud.authority_host).hostname or "" for cloud in KNOWN_CLOUDS.values()
)


class CloudSettingError(ValueError):
    """A cloud name or an endpoint override that cannot be used."""


def https_base_url(value: str) -> str:
    """`value` as a base URL ending in a slash; raises CloudSettingError unless https."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise CloudSettingError(f"must be an https:// URL, got {value!r}")
    if parts.query or parts.fragment:
        raise CloudSettingError("must be a base URL without query or fragment")
    return value.strip().rstrip("/") + "/"


def canonical_cloud_name(name: str) -> str:
    """The cloud's name as azure-ai-ml spells it (any case accepted)."""
    spelled = {known.lower(): known for known in KNOWN_CLOUDS}
    canonical = spelled.get(name.strip().lower())
    if canonical is None:
        raise CloudSettingError(
            f"unknown Azure cloud {name!r}: use one of {', '.join(KNOWN_CLOUDS)}"
        )
    return canonical


def resolve_cloud(
    name: str, resource_manager_url: str = "", authority_host: str = ""
) -> AzureCloud:
    """The cloud `name` with the endpoints the settings replace; raises CloudSettingError."""
    cloud = KNOWN_CLOUDS[canonical_cloud_name(name)]
    changes: dict[str, str] = {}
    if resource_manager_url.strip():
        changes["resource_manager"] = https_base_url(resource_manager_url)
    if authority_host.strip():
        changes["authority_host"] = https_base_url(authority_host)
    changed = {key: value for key, value in changes.items() if getattr(cloud, key) != value}
    if not changed:
        return cloud
    return replace(cloud, customized=True, **changed)
