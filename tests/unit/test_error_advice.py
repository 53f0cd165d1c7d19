"""What to fix, from the codes Azure Resource Manager and Azure DevOps send (pure)."""

from __future__ import annotations

import pytest

from monitoring.azure_calls import AzureAuthError, AzureCallError, AzureNotFoundError
from monitoring.error_advice import what_to_fix

DENIED = (
    "permission denied: AuthorizationFailed: The client 'a1b2' with object id 'a1b2' does not "
    "have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/jobs/"
    "read' over scope '/subscriptions/s/resourceGroups/rg/providers/Microsoft."
    "MachineLearningServices/workspaces/ws' or the scope is invalid."
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            DENIED,
            "allows Microsoft.MachineLearningServices/workspaces/jobs/read on /subscriptions/s",
        ),
        (
            "authentication refused: InvalidAuthenticationTokenTenant: The access token is from "
            "the wrong issuer.",
            "AZURE_TENANT_ID",
        ),
        ("authentication refused: ExpiredAuthenticationToken: expired", "clock"),
        (
            "not found: SubscriptionNotFound: The subscription 's' could not be found.",
            "SUBSCRIPTION",
        ),
        (
            "not found: ResourceGroupNotFound: Resource group 'rg' could not be found.",
            "RESOURCE_GROUP",
        ),
        (
            "HTTP 400: NoRegisteredProviderFound: No registered resource provider found for "
            "location 'westeurope' and API version '2024-01-01-preview' for type 'workspaces'.",
            "in westeurope",
        ),
        (
            "Azure DevOps refused the credentials (HTTP 401): TF400813: The user 'x' is not "
            "authorized to access this resource.",
            "Variable Groups (Read)",
        ),
        ("TF200016: The following project does not exist: mlops.", "MLBOT_DEVOPS_PROJECT"),
        (
            "Azure DevOps refused the credentials (HTTP 203) (check MLBOT_DEVOPS_PAT)",
            "sign-in page",
        ),
    ],
)
def test_the_error_code_says_what_to_fix(message: str, expected: str) -> None:
    advice = what_to_fix(AzureCallError("Azure", "call", message))
    assert advice is not None and expected in advice


def test_an_error_without_a_known_code_leaves_the_setting_hint() -> None:
    assert what_to_fix(AzureAuthError("Azure ML", "list", "401 Unauthorized", "X")) is None
    assert what_to_fix(AzureNotFoundError("Azure DevOps", "find", "no pipeline named 'p'")) is None
