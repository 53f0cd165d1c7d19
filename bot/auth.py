"""Bot Framework authentication: who may talk to the bot, and how the bot signs replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import (
    AuthenticationConfiguration,
    AuthenticationConstants,
    ServiceClientCredentialsFactory,
)

from bot.auth_thread import ThreadedAuthentication
from bot.connector_cache import CachingBotFrameworkAuthentication
from bot.service_urls import ServiceUrlPolicy
from config.settings import Settings

ClaimsValidator = Callable[[Any], Awaitable[None]]


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


def _claims_of(claims: Any) -> Mapping[str, Any]:
    # botbuilder hands validators a dict on its public-cloud path and a one-item list of
    # dicts on its parameterized path.
    if isinstance(claims, Mapping):
        return claims
    if isinstance(claims, Sequence) and len(claims) == 1 and isinstance(claims[0], Mapping):
        return claims[0]
    raise PermissionError("unexpected claims")


def channel_issuer_only(issuer: str) -> ClaimsValidator:
    """A claims validator accepting only tokens the Bot Framework channel issued.

    botbuilder also accepts emulator-shaped tokens (an Entra token naming our app id),
    checking neither `aud` nor the `serviceurl` claim; the bot's own outbound token has
    that shape. Only the channel path checks both, so only its issuer is let through.
    """

    async def validate(claims: Any) -> None:
        if _claims_of(claims).get(AuthenticationConstants.ISSUER_CLAIM) != issuer:
            raise PermissionError("only the Bot Framework channel may send activities")

    return validate


def service_url_policy(settings: Settings) -> ServiceUrlPolicy:
    """Teams' service hosts when authenticated; only this machine in local mode."""
    return ServiceUrlPolicy(settings.service_url_hosts, loopback_only=settings.local_mode)


def build_authentication(
    settings: Settings,
    endpoints: TokenValidationEndpoints | None = None,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> CachingBotFrameworkAuthentication:
    endpoints = endpoints or TokenValidationEndpoints()
    issuer = (
        endpoints.channel_token_issuer or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
    )
    inner = ConfigurationBotFrameworkAuthentication(
        _BotFrameworkConfig(settings, endpoints),
        credentials_factory=credentials_factory,
        auth_configuration=AuthenticationConfiguration(
            claims_validator=channel_issuer_only(issuer)
        ),
    )
    return CachingBotFrameworkAuthentication(
        ThreadedAuthentication(inner), service_urls=service_url_policy(settings)
    )
