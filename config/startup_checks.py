"""Settings that must not be combined when serving, checked before anything starts (pure).

Local mode (no `MicrosoftAppId`) authenticates nobody, so it is only safe where nobody
else can reach the bot and nothing real can be changed from it: a loopback address and
no Azure or Azure DevOps credentials. With an app id, the bot must know whose tenant it
serves: a multi-tenant registration needs an explicit tenant list.
"""

from __future__ import annotations

import ipaddress

from config.settings import Settings


def is_loopback_host(host: str) -> bool:
    """Whether listening on `host` stays on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").casefold()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _credentials_in(settings: Settings) -> list[str]:
    given = {
        "MicrosoftAppPassword": bool(settings.microsoft_app_password.get_secret_value()),
        "MLBOT_DEVOPS_ORG_URL": bool(settings.devops_org_url),
        "MLBOT_DEVOPS_PAT": bool(settings.devops_pat.get_secret_value()),
        "MLBOT_AZUREML_WORKSPACES": bool(settings.azureml_workspaces),
        "MLBOT_AZURE_SUBSCRIPTION_ID": bool(settings.azure_subscription_id),
    }
    return [name for name, present in given.items() if present]


def serving_refusals(settings: Settings) -> list[str]:
    """Every reason `mlbot serve` must not start with these settings; empty when fine."""
    refusals: list[str] = []
    if settings.local_mode:
        if not is_loopback_host(settings.host):
            refusals.append(
                f"MLBOT_HOST {settings.host!r} is not a loopback address: without "
                "MicrosoftAppId nobody is authenticated, so listen on 127.0.0.1 or set "
                "MicrosoftAppId"
            )
        credentials = _credentials_in(settings)
        if credentials:
            refusals.append(
                "without MicrosoftAppId nobody is authenticated, so local mode runs "
                f"without Azure credentials; unset {', '.join(credentials)} or set "
                "MicrosoftAppId"
            )
    elif not settings.tenant_allow_list:
        refusals.append(
            "MLBOT_ALLOWED_TENANTS is empty and MicrosoftAppTenantId is not set: name the "
            "Entra tenants whose users may use mlbot"
        )
    return refusals
