"""One cloud setting decides every Azure endpoint; overrides are https base URLs."""

from __future__ import annotations

import pytest

from app import azureml_options_for, metrics_options_for
from config.clouds import KNOWN_CLOUDS, CloudSettingError, resolve_cloud
from config.settings import Settings
from monitoring.credentials import credential_options


def _settings(**values: str) -> Settings:
    return Settings.model_validate(values)


def test_public_azure_is_the_default_and_uses_azure_ml_s_own_cloud() -> None:
    settings = _settings()
    assert settings.cloud == KNOWN_CLOUDS["AzureCloud"]
    options = azureml_options_for(settings)
    assert options.cloud is None and options.cloud_name == "AzureCloud"
    metrics = metrics_options_for(settings)
    assert metrics.endpoint is None and metrics.audience is None
    assert credential_options(settings.cloud) == {"authority": "https://login.microsoftonline.com/"}


@pytest.mark.parametrize(
    ("spelling", "resource_manager", "authority"),
    [
        (
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net/",
            "https://login.microsoftonline.us/",
        ),
        (
            "azurechinacloud",
            "https://management.chinacloudapi.cn/",
            "https://login.chinacloudapi.cn/",
        ),
    ],
)
def test_a_sovereign_cloud_moves_every_client(
    spelling: str, resource_manager: str, authority: str
) -> None:
    settings = _settings(MLBOT_AZURE_CLOUD=spelling)
    cloud = settings.cloud
    assert (cloud.resource_manager, cloud.authority_host) == (resource_manager, authority)
    assert azureml_options_for(settings).cloud_name == cloud.name
    assert azureml_options_for(settings).cloud is None  # azure-ai-ml knows it by name
    metrics = metrics_options_for(settings)
    assert metrics.endpoint == resource_manager
    assert metrics.audience == resource_manager.rstrip("/")
    # Entra ID's own hosts need no instance discovery switch.
    assert "disable_instance_discovery" not in credential_options(cloud)


def test_replaced_endpoints_give_the_whole_metadata_and_skip_instance_discovery() -> None:
    settings = _settings(
        MLBOT_AZURE_RESOURCE_MANAGER_URL="https://127.0.0.1:8443",
        MLBOT_AZURE_AUTHORITY_HOST="https://127.0.0.1:8443/",
        MLBOT_CA_BUNDLE=__file__,  # any readable file stands for a PEM bundle here
    )
    cloud = settings.cloud
    assert cloud.customized and cloud.resource_manager == "https://127.0.0.1:8443/"
    options = azureml_options_for(settings)
    assert options.cloud is not None
    assert options.cloud.metadata()["resource_manager"] == "https://127.0.0.1:8443/"
    assert options.connection_verify == __file__
    metrics = metrics_options_for(settings)
    assert metrics.endpoint == "https://127.0.0.1:8443/"
    assert metrics.audience == "https://management.azure.com"  # still public Azure's tokens
    assert credential_options(cloud, __file__) == {
        "authority": "https://127.0.0.1:8443/",
        "disable_instance_discovery": True,
        "connection_verify": __file__,
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"MLBOT_AZURE_CLOUD": "AzureGermanCloud"}, "MLBOT_AZURE_CLOUD"),
        (
            {"MLBOT_AZURE_RESOURCE_MANAGER_URL": "http://127.0.0.1:8080"},
            "MLBOT_AZURE_RESOURCE_MANAGER_URL",
        ),
        ({"MLBOT_AZURE_AUTHORITY_HOST": "login.example"}, "MLBOT_AZURE_AUTHORITY_HOST"),
        ({"MLBOT_CA_BUNDLE": "/nonexistent/ca.pem"}, "MLBOT_CA_BUNDLE"),
    ],
)
def test_bad_cloud_settings_are_refused_naming_the_setting(
    values: dict[str, str], named: str
) -> None:
    from pydantic import ValidationError

    from config.settings import describe_validation_error

    with pytest.raises(ValidationError) as refused:
        Settings.model_validate(values)
    assert named in describe_validation_error(refused.value)


def test_resolving_an_unknown_cloud_lists_the_known_ones() -> None:
    with pytest.raises(CloudSettingError, match="AzureUSGovernment"):
        resolve_cloud("moon")
