"""Outbound credentials for tests: a fixed token instead of a call to Entra ID."""

from __future__ import annotations

from botframework.connector.auth import (
    AppCredentials,
    ServiceClientCredentialsFactory,
)

OUTBOUND_TOKEN = "test-outbound-token"


class FixedTokenCredentials(AppCredentials):
    def get_access_token(self, force_refresh: bool = False) -> str:
        return OUTBOUND_TOKEN


class FixedTokenCredentialsFactory(ServiceClientCredentialsFactory):
    def __init__(self, app_id: str) -> None:
        self._app_id = app_id

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self._app_id

    async def is_authentication_disabled(self) -> bool:
        return not self._app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        return FixedTokenCredentials(app_id=app_id, oauth_scope=oauth_scope)
