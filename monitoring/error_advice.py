"""What an operator should fix, read from the error bodies Azure and Azure DevOps send.

`mlbot check` prints one line per failed call; the typed error already says which
setting is involved, but the services' own codes say more: an ARM `AuthorizationFailed`
names the action and scope that are missing, `InvalidAuthenticationTokenTenant` a
tenant mix-up, Azure DevOps' `TF400813` a token that is valid but lacks a scope or a
project membership, `TF200016` a project that is not there. Pure functions of the
message; the codes are the ones the services document and send.
"""

from __future__ import annotations

import re

from monitoring.azure_calls import AzureCallError

# ARM: "… does not have authorization to perform action '{action}' over scope '{scope}' …"
_ACTION = re.compile(r"perform action '(?P<action>[^']+)'(?: over scope '(?P<scope>[^']+)')?")
_PROVIDER_LOCATION = re.compile(r"for location '(?P<location>[^']+)'")

DEVOPS_SCOPES = "Build (Read & execute), Variable Groups (Read), Environment (Read)"


def what_to_fix(exc: AzureCallError) -> str | None:
    """A sentence saying what to change, when the error body says enough; else None."""
    message = exc.message
    for rule in (_arm_advice, _devops_advice):
        advice = rule(message)
        if advice is not None:
            return advice
    return None


def _arm_advice(message: str) -> str | None:
    if "InvalidAuthenticationTokenTenant" in message:
        return (
            "the token comes from another Entra ID tenant than the subscription's: "
            "set AZURE_TENANT_ID to the subscription's tenant"
        )
    if "ExpiredAuthenticationToken" in message:
        return "the Entra ID token has expired: check this machine's clock and the credential"
    if "InvalidAuthenticationToken" in message:
        return (
            "Azure refused the Entra ID token: check AZURE_CLIENT_ID, AZURE_TENANT_ID and "
            "AZURE_CLIENT_SECRET (or the managed identity)"
        )
    if "AuthorizationFailed" in message:
        match = _ACTION.search(message)
        if match is None:
            return "give the identity a role on the workspace (e.g. AzureML Data Scientist)"
        scope = f" on {match['scope']}" if match["scope"] else ""
        return f"give the identity a role that allows {match['action']}{scope}"
    if "SubscriptionNotFound" in message or "InvalidSubscriptionId" in message:
        return (
            "check MLBOT_AZURE_SUBSCRIPTION_ID: that subscription does not exist or this "
            "identity cannot see it"
        )
    if "ResourceGroupNotFound" in message:
        return "check MLBOT_AZURE_RESOURCE_GROUP: no such resource group in the subscription"
    if "NoRegisteredProviderFound" in message:
        match = _PROVIDER_LOCATION.search(message)
        where = f" in {match['location']}" if match else ""
        return (
            f"Azure ML does not answer this API version for the workspace's region{where}: "
            "check the workspace's region and MLBOT_AZURE_RESOURCE_MANAGER_URL (cloud)"
        )
    if "ResourceNotFound" in message or "WorkspaceNotFound" in message:
        return "check MLBOT_AZUREML_WORKSPACES: no such workspace in that resource group"
    return None


def _devops_advice(message: str) -> str | None:
    if "TF400813" in message:
        return (
            "Azure DevOps accepted the token but not for this call: give MLBOT_DEVOPS_PAT "
            f"the scopes {DEVOPS_SCOPES}, and its user access to the project"
        )
    if "TF200016" in message:
        return "check MLBOT_DEVOPS_PROJECT: the organization has no such project"
    if "Personal Access Token used has expired" in message:
        return "MLBOT_DEVOPS_PAT has expired: create a new token with " + DEVOPS_SCOPES
    if "(HTTP 203)" in message:
        return (
            "Azure DevOps answered with its sign-in page: MLBOT_DEVOPS_PAT is not a token "
            "of this organization (or it was revoked)"
        )
    return None
