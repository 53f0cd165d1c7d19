"""The azure-identity credential every Azure client signs in with, built for one cloud.

Azure ML, Azure Monitor and (without a PAT) Azure DevOps share one credential factory,
so they sign in against the same Entra ID authority and trust the same CA bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from config.clouds import AzureCloud

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

CredentialKind = Literal["default", "environment", "managed-identity", "cli"]


def credential_options(cloud: AzureCloud, ca_bundle: str = "") -> dict[str, Any]:
    """Keyword arguments for azure-identity's Entra ID credentials in `cloud`."""
    options: dict[str, Any] = {"authority": cloud.authority_host}
    if not cloud.authority_known:
        # Instance discovery asks login.microsoftonline.com about the authority, which
        # knows nothing of a private or local one.
        options["disable_instance_discovery"] = True
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    return options


def credential_factory(
    cloud: AzureCloud, kind: CredentialKind = "default", ca_bundle: str = ""
) -> Callable[[], TokenCredential]:
    """A factory (called in a worker thread, when first needed) for the chosen credential."""

    def create() -> TokenCredential:
        import azure.identity as identity  # lazy: only real mode signs in

        options = credential_options(cloud, ca_bundle)
        if kind == "environment":
            # A service principal from AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET.
            return identity.EnvironmentCredential(**options)
        if kind == "managed-identity":
            extra: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
            return identity.ManagedIdentityCredential(**extra)
        if kind == "cli":
            return identity.AzureCliCredential()
        # Managed identity in Azure, a service principal from AZURE_* variables elsewhere.
        return identity.DefaultAzureCredential(**options)

    return create
