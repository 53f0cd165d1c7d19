"""Bot Framework authentication: who may talk to the bot, and how the bot signs replies."""

from __future__ import annotations

from dataclasses import dataclass

from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import ServiceClientCredentialsFactory

from bot.connector_cache import CachingBotFrameworkAuthentication
from config.settings import Settings


@dataclass(frozen=True, slots=True)
class TokenValidationEndpoints:
    """Where inbound tokens are checked; None keeps Bot Framework's public-cloud values.

    Sovereign clouds and local test servers point these elsewhere. Overriding any of
    them switches botbuilder to its parameterized mode, where the issuer has no
    default: set `channel_token_issuer` together with the metadata URL.
    """

    channel_openid_metadata_url: str | None = None
    channel_token_issuer: str | None = None
    emulator_openid_metadata_url: str | None = None


class _BotFrameworkConfig:
    """The attribute-style configuration object botbuilder reads (APP_ID, …)."""

    def __init__(self, settings: Settings, endpoints: TokenValidationEndpoints) -> None:
        self.APP_ID = settings.microsoft_app_id
        self.APP_PASSWORD = settings.microsoft_app_password.get_secret_value()
        self.APP_TYPE = settings.microsoft_app_type
        self.APP_TENANTID = settings.microsoft_app_tenant_id
        if endpoints.channel_openid_metadata_url:
            self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = endpoints.channel_openid_metadata_url
        if endpoints.channel_token_issuer:
            self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = endpoints.channel_token_issuer
        if endpoints.emulator_openid_metadata_url:
            self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = endpoints.emulator_openid_metadata_url


def build_authentication(
    settings: Settings,
    endpoints: TokenValidationEndpoints | None = None,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> CachingBotFrameworkAuthentication:
    inner = ConfigurationBotFrameworkAuthentication(
        _BotFrameworkConfig(settings, endpoints or TokenValidationEndpoints()),
        credentials_factory=credentials_factory,
    )
    return CachingBotFrameworkAuthentication(inner)
