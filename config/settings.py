"""mlbot's settings: one frozen object read once at start-up.

Precedence (highest first): process environment, `.env`, the Azure DevOps variable
group (applied later by the monitoring layer), then the defaults below.
Bot Framework settings keep Bot Framework's own names; everything else is `MLBOT_*`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from config.clouds import (
    AzureCloud,
    CloudSettingError,
    canonical_cloud_name,
    https_base_url,
    resolve_cloud,
)
from domain.owners import parse_owner_rules
from domain.retention import (
    DEFAULT_AUDIT_DAYS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_HISTORY_DAYS,
    DEFAULT_INTENT_DAYS,
    DEFAULT_NONCE_DAYS,
    RetentionPolicy,
    RetentionPolicyError,
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
CommaList = Annotated[tuple[str, ...], NoDecode]
HookName = Literal["devops", "eventgrid", "alerts"]
HOOK_NAMES: tuple[HookName, ...] = ("devops", "eventgrid", "alerts")
MIN_CARD_SIGNING_KEY_LENGTH = 32
# Bot Connector hosts of public Teams, then GCC, GCC High and DoD.
TEAMS_SERVICE_HOSTS: tuple[str, ...] = (
    "smba.trafficmanager.net",
    "smba.infra.gcc.teams.microsoft.com",
    "smba.infra.gov.teams.microsoft.us",
    "smba.infra.dod.teams.microsoft.us",
)


def _split_commas(value: Any) -> Any:
    """Accept `a,b , c` (as env vars carry lists) as well as real sequences."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    return value


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    """Every setting mlbot knows. Field aliases are the names operators type."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        case_sensitive=True,
    )

    # --- Bot Framework (its own names) -------------------------------------------
    microsoft_app_id: str = Field("", alias="MicrosoftAppId")
    microsoft_app_password: SecretStr = Field(SecretStr(""), alias="MicrosoftAppPassword")
    microsoft_app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        "MultiTenant", alias="MicrosoftAppType"
    )
    microsoft_app_tenant_id: str = Field("", alias="MicrosoftAppTenantId")

    # --- Server ------------------------------------------------------------------------
    host: str = Field("127.0.0.1", alias="MLBOT_HOST")
    port: int = Field(3978, alias="MLBOT_PORT", ge=1, le=65535)
    database_url: str = Field("sqlite+aiosqlite:///.mlbot/mlbot.db", alias="MLBOT_DATABASE_URL")
    sandbox: bool | None = Field(None, alias="MLBOT_SANDBOX")
    max_request_bytes: int = Field(
        256 * 1024, alias="MLBOT_MAX_REQUEST_BYTES", ge=4 * 1024, le=16 * 1024 * 1024
    )
    bot_display_name: str = Field("mlbot", alias="MLBOT_BOT_NAME", min_length=1)
    # Teams waits about 15 s for a button's answer; slower work answers "working on it"
    # after this long and updates the card when done.
    action_answer_seconds: float = Field(8.0, alias="MLBOT_ACTION_ANSWER_SECONDS", gt=0, le=12)

    # --- Access ------------------------------------------------------------------------
    # Bot Connector hosts replies may go to (public Teams and the government clouds).
    service_url_hosts: CommaList = Field(TEAMS_SERVICE_HOSTS, alias="MLBOT_SERVICE_URL_HOSTS")
    allowed_tenants: CommaList = Field((), alias="MLBOT_ALLOWED_TENANTS")
    operators: CommaList = Field((), alias="MLBOT_OPERATORS")
    approvers: CommaList = Field((), alias="MLBOT_APPROVERS")
    # One secret per hook, so a leaked Event Grid URL cannot post deployments or alerts.
    devops_hook_secret: SecretStr = Field(SecretStr(""), alias="MLBOT_DEVOPS_HOOK_SECRET")
    eventgrid_hook_secret: SecretStr = Field(SecretStr(""), alias="MLBOT_EVENTGRID_HOOK_SECRET")
    alerts_hook_secret: SecretStr = Field(SecretStr(""), alias="MLBOT_ALERTS_HOOK_SECRET")
    # Deprecated fallback for any hook without its own secret (start-up warns it is shared).
    hook_secret: SecretStr = Field(SecretStr(""), alias="MLBOT_HOOK_SECRET")
    # Hook notifications older than this (by their own timestamps) are refused as replays.
    hook_max_age_seconds: int = Field(900, alias="MLBOT_HOOK_MAX_AGE_SECONDS", ge=30, le=86400)
    card_signing_key: SecretStr = Field(SecretStr(""), alias="MLBOT_CARD_SIGNING_KEY")
    # Local mode authenticates nobody: approving, rolling back and retrying are refused
    # there unless this says otherwise (sandbox mode sets it; nothing real is at stake).
    local_actions: bool = Field(False, alias="MLBOT_LOCAL_ACTIONS")

    # --- Azure Machine Learning ---------------------------------------------------------
    azure_subscription_id: str = Field("", alias="MLBOT_AZURE_SUBSCRIPTION_ID")
    azure_resource_group: str = Field("", alias="MLBOT_AZURE_RESOURCE_GROUP")
    # Workspace names, or `subscription/resource-group/workspace` for other groups.
    azureml_workspaces: CommaList = Field((), alias="MLBOT_AZUREML_WORKSPACES")
    circuit_tag: str = Field("circuit", alias="MLBOT_CIRCUIT_TAG", min_length=1)

    # --- Azure DevOps -------------------------------------------------------------------
    devops_org_url: str = Field("", alias="MLBOT_DEVOPS_ORG_URL")
    devops_project: str = Field("", alias="MLBOT_DEVOPS_PROJECT")
    devops_pat: SecretStr = Field(SecretStr(""), alias="MLBOT_DEVOPS_PAT")
    training_pipeline: str = Field("training-pipeline", alias="MLBOT_TRAINING_PIPELINE")
    rollback_pipeline: str = Field("rollback-pipeline", alias="MLBOT_ROLLBACK_PIPELINE")
    variable_group: str = Field("mlops-pipeline-settings", alias="MLBOT_VARIABLE_GROUP")
    variable_group_refresh_seconds: int = Field(
        300, alias="MLBOT_VARIABLE_GROUP_REFRESH_SECONDS", ge=10
    )

    # --- Email (long-running reminders to the ML engineers) ---------------------------
    smtp_host: str = Field("", alias="MLBOT_SMTP_HOST")
    smtp_port: int = Field(587, alias="MLBOT_SMTP_PORT", ge=1, le=65535)
    # "starttls" upgrades a plain connection (port 587), "tls" is implicit TLS (465).
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", alias="MLBOT_SMTP_SECURITY"
    )
    smtp_username: str = Field("", alias="MLBOT_SMTP_USERNAME")
    smtp_password: SecretStr = Field(SecretStr(""), alias="MLBOT_SMTP_PASSWORD")
    smtp_sender: str = Field("mlbot@localhost", alias="MLBOT_SMTP_SENDER")
    smtp_timeout_seconds: float = Field(30.0, alias="MLBOT_SMTP_TIMEOUT_SECONDS", gt=0, le=600)
    # How long the first failure of a session waits for others to join its Teams reply.
    group_wait_seconds: float = Field(30.0, alias="MLBOT_GROUP_WAIT_SECONDS", ge=0, le=3600)

    # --- Monitoring strategy (variable group `mlops-pipeline-settings`) ------------------
    monitoring_poll_interval_seconds: int = Field(
        30, alias="MLBOT_MONITORING_POLL_INTERVAL_SECONDS", ge=1, le=3600
    )
    monitoring_max_delay_seconds: int = Field(
        300, alias="MLBOT_MONITORING_MAX_DELAY_SECONDS", ge=1, le=86400
    )
    monitoring_backoff_multiplier: float = Field(
        2.0, alias="MLBOT_MONITORING_BACKOFF_MULTIPLIER", ge=1.0, le=10.0
    )
    monitoring_max_wait_hours: float = Field(
        3.0, alias="MLBOT_MONITORING_MAX_WAIT_HOURS", gt=0, le=24 * 14
    )
    # With an Event Grid subscription pushing the ends of runs: how often running jobs
    # (and idle workspaces) are still listed, as a safety net. 0: no subscription.
    eventgrid_safety_net_seconds: int = Field(
        0, alias="MLBOT_EVENTGRID_SAFETY_NET_SECONDS", ge=0, le=86400
    )
    monitoring_log_level: LogLevel = Field("INFO", alias="MLBOT_MONITORING_LOG_LEVEL")
    teams_webhook_url: SecretStr = Field(SecretStr(""), alias="MLBOT_TEAMS_WEBHOOK_URL")
    long_running_job_notification_interval_hours: float = Field(
        4.0, alias="MLBOT_LONG_RUNNING_JOB_NOTIFICATION_INTERVAL_HOURS", gt=0, le=24 * 7
    )
    ml_engineers_email: CommaList = Field((), alias="MLBOT_ML_ENGINEERS_EMAIL")
    # Whom failure, timeout and long-running cards @mention, by circuit prefix:
    # `PLANT001/=ada@contoso.com|bob@contoso.com, PLANT002/CIRCUIT03=<Entra object id>`.
    circuit_owners: CommaList = Field((), alias="MLBOT_CIRCUIT_OWNERS")
    # Who is told when nobody acted in time (UPNs or Entra object ids), with the approvers.
    on_call: CommaList = Field((), alias="MLBOT_ONCALL")
    # A final failure nobody acknowledged, or an approval nobody decided, is posted again
    # after this many minutes, mentioning on-call and approvers; 0 turns it off.
    escalation_minutes: int = Field(30, alias="MLBOT_ESCALATION_MINUTES", ge=0, le=7 * 24 * 60)
    manual_circuits: CommaList = Field((), alias="MLBOT_MANUAL_CIRCUITS")
    auto_retry_max_retries: int = Field(2, alias="MLBOT_AUTO_RETRY_MAX_RETRIES", ge=0, le=10)
    auto_retry_timeout_seconds: int = Field(
        3600, alias="MLBOT_AUTO_RETRY_TIMEOUT_SECONDS", ge=60, le=7 * 86400
    )
    auto_rollback_enabled: bool = Field(True, alias="MLBOT_AUTO_ROLLBACK_ENABLED")
    auto_rollback_error_threshold_percent: float = Field(
        5.0, alias="MLBOT_AUTO_ROLLBACK_ERROR_THRESHOLD_PERCENT", ge=0, le=100
    )
    auto_rollback_latency_threshold_ms: float = Field(
        2000.0, alias="MLBOT_AUTO_ROLLBACK_LATENCY_THRESHOLD_MS", gt=0
    )
    auto_rollback_environments: CommaList = Field(
        ("prod",), alias="MLBOT_AUTO_ROLLBACK_ENVIRONMENTS"
    )
    # Production for access control: only the process environment sets it (never the
    # variable group), and environments nobody named here or below count as production.
    production_environments: CommaList = Field(("prod",), alias="MLBOT_PRODUCTION_ENVIRONMENTS")
    # Environments known not to be production (`dev,staging`); any other name is production.
    non_production_environments: CommaList = Field(
        ("dev", "test", "qa", "staging", "uat"), alias="MLBOT_NON_PRODUCTION_ENVIRONMENTS"
    )
    # What to watch when a deployment to an environment completes:
    # `env=workspace/endpoint[@deployment]` or `env=<online endpoint ARM id>[@deployment]`.
    auto_rollback_endpoints: CommaList = Field((), alias="MLBOT_AUTO_ROLLBACK_ENDPOINTS")
    auto_rollback_latency_percentile: Literal["P50", "P90", "P95", "P99"] = Field(
        "P95", alias="MLBOT_AUTO_ROLLBACK_LATENCY_PERCENTILE"
    )
    # Below this many requests in an interval a check cannot fail (1 error in 2 is not 50 %).
    auto_rollback_min_requests: int = Field(
        20, alias="MLBOT_AUTO_ROLLBACK_MIN_REQUESTS", ge=0, le=1_000_000
    )
    auto_rollback_failure_threshold: int = Field(
        3, alias="MLBOT_AUTO_ROLLBACK_FAILURE_THRESHOLD", ge=1, le=100
    )
    auto_rollback_inconclusive_limit: int = Field(
        4, alias="MLBOT_AUTO_ROLLBACK_INCONCLUSIVE_LIMIT", ge=1, le=100
    )
    auto_rollback_window_minutes: float = Field(
        30.0, alias="MLBOT_AUTO_ROLLBACK_WINDOW_MINUTES", gt=0, le=24 * 60
    )
    auto_rollback_interval_seconds: int = Field(
        60, alias="MLBOT_AUTO_ROLLBACK_INTERVAL_SECONDS", ge=60, le=3600
    )
    # An approver may cancel a due rollback for this long; 0 queues it at once.
    auto_rollback_grace_seconds: int = Field(
        120, alias="MLBOT_AUTO_ROLLBACK_GRACE_SECONDS", ge=0, le=3600
    )
    auto_rollback_cooldown_minutes: float = Field(
        60.0, alias="MLBOT_AUTO_ROLLBACK_COOLDOWN_MINUTES", ge=0, le=7 * 24 * 60
    )
    # Azure Monitor publishes platform metrics late; a check reads the minute that ended
    # this long ago.
    auto_rollback_metrics_delay_seconds: int = Field(
        120, alias="MLBOT_AUTO_ROLLBACK_METRICS_DELAY_SECONDS", ge=0, le=3600
    )
    # Post what would be done without queuing the rollback pipeline.
    auto_rollback_dry_run: bool = Field(False, alias="MLBOT_AUTO_ROLLBACK_DRY_RUN")
    # The Azure cloud of every Azure client (Azure ML, Azure Monitor, Entra ID sign-in).
    azure_cloud: str = Field("AzureCloud", alias="MLBOT_AZURE_CLOUD")
    # Replace the cloud's Resource Manager / Entra ID endpoints (https; empty keeps them).
    azure_resource_manager_url: str = Field("", alias="MLBOT_AZURE_RESOURCE_MANAGER_URL")
    azure_authority_host: str = Field("", alias="MLBOT_AZURE_AUTHORITY_HOST")
    # Which azure-identity credential signs in: the default chain, or one of its members.
    azure_credential: Literal["default", "environment", "managed-identity", "cli"] = Field(
        "default", alias="MLBOT_AZURE_CREDENTIAL"
    )
    # A PEM bundle of CAs to trust for Azure, Azure DevOps and webhook HTTPS (a private CA
    # in front of Azure, or the sandbox's); empty trusts the system store.
    ca_bundle: str = Field("", alias="MLBOT_CA_BUNDLE")
    # --- Retention (docs/retention.md): days kept once no longer needed; 0 keeps forever.
    retention_history_days: int = Field(
        DEFAULT_HISTORY_DAYS, alias="MLBOT_RETENTION_HISTORY_DAYS", ge=0, le=36500
    )
    retention_nonce_days: int = Field(
        DEFAULT_NONCE_DAYS, alias="MLBOT_RETENTION_NONCE_DAYS", ge=0, le=36500
    )
    retention_intent_days: int = Field(
        DEFAULT_INTENT_DAYS, alias="MLBOT_RETENTION_INTENT_DAYS", ge=0, le=36500
    )
    retention_audit_days: int = Field(
        DEFAULT_AUDIT_DAYS, alias="MLBOT_RETENTION_AUDIT_DAYS", ge=0, le=36500
    )
    retention_interval_minutes: float = Field(
        60.0, alias="MLBOT_RETENTION_INTERVAL_MINUTES", gt=0, le=7 * 24 * 60
    )
    retention_batch_size: int = Field(
        DEFAULT_BATCH_SIZE, alias="MLBOT_RETENTION_BATCH_SIZE", ge=1, le=10000
    )
    # Replicas (PostgreSQL): this process's name in the leader lease, and the lease terms.
    replica_id: str = Field("", alias="MLBOT_REPLICA_ID", max_length=200)
    leader_lease_seconds: float = Field(20.0, alias="MLBOT_LEADER_LEASE_SECONDS", ge=2, le=600)
    leader_renew_seconds: float = Field(5.0, alias="MLBOT_LEADER_RENEW_SECONDS", gt=0, le=300)

    _split = field_validator(
        "allowed_tenants",
        "service_url_hosts",
        "operators",
        "approvers",
        "azureml_workspaces",
        "ml_engineers_email",
        "circuit_owners",
        "on_call",
        "manual_circuits",
        "auto_rollback_environments",
        "production_environments",
        "non_production_environments",
        "auto_rollback_endpoints",
        mode="before",
    )(_split_commas)

    @field_validator("circuit_owners")
    @classmethod
    def _owner_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_owner_rules(value)  # a ValueError names the entry that is wrong
        return value

    @field_validator("monitoring_log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("card_signing_key")
    @classmethod
    def _long_enough_key(cls, value: SecretStr) -> SecretStr:
        # HMAC-SHA256 keys shorter than its output weaken the card signatures.
        length = len(value.get_secret_value())
        if 0 < length < MIN_CARD_SIGNING_KEY_LENGTH:
            raise ValueError(
                f"use at least {MIN_CARD_SIGNING_KEY_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @field_validator("auto_rollback_error_threshold_percent", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        # The documented spelling is `5%`.
        return value.strip().removesuffix("%").strip() if isinstance(value, str) else value

    @field_validator("auto_rollback_latency_threshold_ms", mode="before")
    @classmethod
    def _milliseconds(cls, value: Any) -> Any:
        # The documented spelling is `2000ms`.
        return value.strip().removesuffix("ms").strip() if isinstance(value, str) else value

    @field_validator("auto_rollback_latency_percentile", mode="before")
    @classmethod
    def _upper_percentile(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ca_bundle")
    @classmethod
    def _readable_bundle(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("azure_cloud")
    @classmethod
    def _known_cloud(cls, value: str) -> str:
        try:
            return canonical_cloud_name(value)
        except CloudSettingError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("azure_resource_manager_url", "azure_authority_host")
    @classmethod
    def _https_endpoint(cls, value: str) -> str:
        try:
            return https_base_url(value) if value.strip() else ""
        except CloudSettingError as exc:
            raise ValueError(str(exc)) from None

    @property
    def cloud(self) -> AzureCloud:
        """The Azure cloud every Azure client is built for (endpoints replaced as set)."""
        return resolve_cloud(
            self.azure_cloud, self.azure_resource_manager_url, self.azure_authority_host
        )

    @field_validator("devops_org_url", mode="after")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw and not raw.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("teams_webhook_url", mode="after")
    @classmethod
    def _https_webhook(cls, value: SecretStr) -> SecretStr:
        # Cards carry run details and the URL itself is a credential: only over TLS,
        # except to a stand-in on this machine.
        raw = value.get_secret_value()
        if raw and not (raw.startswith("https://") or _is_loopback_http(raw)):
            raise ValueError("must be an https:// URL")
        return value

    @model_validator(mode="after")
    def _retention_horizons(self) -> Settings:
        try:
            self.retention_policy()
        except RetentionPolicyError as exc:
            raise ValueError(str(exc)) from None
        return self

    # --- Derived -----------------------------------------------------------------------
    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            history_days=self.retention_history_days,
            nonce_days=self.retention_nonce_days,
            intent_days=self.retention_intent_days,
            audit_days=self.retention_audit_days,
            batch_size=self.retention_batch_size,
        )

    def _own_hook_secrets(self) -> dict[HookName, str]:
        return {
            "devops": self.devops_hook_secret.get_secret_value(),
            "eventgrid": self.eventgrid_hook_secret.get_secret_value(),
            "alerts": self.alerts_hook_secret.get_secret_value(),
        }

    def secret_of_hook(self, hook: HookName) -> str:
        """The secret a hook must present: its own, else the shared fallback."""
        return self._own_hook_secrets()[hook] or self.hook_secret.get_secret_value()

    def hooks_sharing_the_fallback(self) -> tuple[HookName, ...]:
        """Hooks without a secret of their own that accept `MLBOT_HOOK_SECRET`."""
        if not self.hook_secret.get_secret_value():
            return ()
        return tuple(name for name, own in self._own_hook_secrets().items() if not own)

    @property
    def local_mode(self) -> bool:
        """No app id: inbound traffic is not authenticated (development only)."""
        return not self.microsoft_app_id

    @property
    def tenant_allow_list(self) -> tuple[str, ...]:
        """The tenants admitted: the explicit list, else the bot's own tenant."""
        if self.allowed_tenants:
            return self.allowed_tenants
        return (self.microsoft_app_tenant_id,) if self.microsoft_app_tenant_id else ()

    @property
    def azure_configured(self) -> bool:
        return bool(self.azureml_workspaces or self.devops_org_url)

    @property
    def use_sandbox(self) -> bool:
        """Sandbox when forced, or by default when no Azure service is configured."""
        if self.sandbox is not None:
            return self.sandbox
        return not self.azure_configured


class SettingsError(Exception):
    """A setting has a bad value; the message names the setting and the problem."""


def _alias_of(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    return field.alias if field is not None and field.alias else field_name


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting, naming it as operators write it; no secret values."""
    lines = []
    for item in error.errors():
        loc = item.get("loc")
        message = item.get("msg", "invalid value")
        if not loc:  # a rule across settings: the message names them
            lines.append(f"invalid settings: {message}")
            continue
        lines.append(f"invalid setting {_alias_of(str(loc[0]))}: {message}")
    return "; ".join(lines)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Read settings from `environ` (default: the process environment) and `.env`.

    Raises SettingsError with a one-line message naming each bad setting.
    """
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]
        return Settings.model_validate(dict(environ))
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def settings_from_mapping(values: Mapping[str, Any]) -> Settings:
    """Build settings from explicit values only (tests, tools): no environment, no .env."""
    try:
        return Settings.model_validate(dict(values))
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


SECRET_MASK = "********"  # noqa: S105 - the mask, not a secret


def url_password(url: str) -> str:
    """The password inside `scheme://user:password@host/...`, or empty."""
    try:
        return make_url(url).password or ""
    except (ArgumentError, ValueError):
        return ""


def mask_url_password(url: str) -> str:
    """The URL as it may be shown: its password, if any, replaced by the mask."""
    password = url_password(url)
    if not password:
        return url
    try:
        hidden = make_url(url).render_as_string(hide_password=True)  # `user:***@host`
    except (ArgumentError, ValueError):
        return SECRET_MASK
    return hidden.replace(":***@", f":{SECRET_MASK}@", 1)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value the settings hold (what logs must never print)."""
    return [
        *(
            value.get_secret_value()
            for name in Settings.model_fields
            if isinstance(value := getattr(settings, name), SecretStr)
        ),
        url_password(settings.database_url),
        # As it appears inside the URL itself, when it has characters that need quoting.
        quote(url_password(settings.database_url), safe=""),
    ]


def _env_file_names(path: str | None) -> frozenset[str]:
    if not path or not os.path.isfile(path):
        return frozenset()
    return frozenset(dotenv_values(path))


def settings_report(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    group_fields: Collection[str] = (),
    env_file: str | None = ".env",
) -> list[tuple[str, str, str]]:
    """(name, shown value, source) for every setting; secrets are masked.

    Sources follow the precedence: environment, .env, the variable group, default.
    """
    env = os.environ if environ is None else environ
    given = settings.model_fields_set  # from the environment, .env, or set at start-up
    in_env_file = _env_file_names(env_file)
    rows: list[tuple[str, str, str]] = []
    for field_name, field in Settings.model_fields.items():
        name = field.alias or field_name
        value = getattr(settings, field_name)
        if isinstance(value, SecretStr):
            shown = SECRET_MASK if value.get_secret_value() else "(not set)"
        elif field_name == "database_url":
            shown = mask_url_password(value)
        elif isinstance(value, tuple):
            shown = ",".join(value) if value else "(none)"
        else:
            shown = "(auto)" if value is None else str(value)
        if name in env:
            source = "environment"
        elif field_name in group_fields:
            source = f"variable group {settings.variable_group}"
        elif name in in_env_file:
            source = ".env"
        elif field_name in given:
            # The command line (--host, --port, --sandbox) or sandbox mode set it.
            source = "start-up"
        else:
            source = "default"
        rows.append((name, shown, source))
    return rows
