"""Which settings may change while mlbot runs, and the one view every consumer reads.

Settings are read once at start-up into a frozen object. The settings the Azure DevOps
variable group `mlops-pipeline-settings` carries may change while the bot runs (the
monitoring layer re-reads the group); they are declared here, once, in
`VARIABLE_GROUP_KEYS`, and `LIVE_FIELDS` is their set. Every other setting keeps its
start-up value for the life of the process.

`LiveSettings` is what the composition hands to anything that needs a setting: `now()`
is the settings in effect at this moment. Whatever its source returns, only the live
fields can differ from start-up, so "is this setting live?" has one answer, here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Protocol

from config.settings import Settings

# Variable-group key -> Settings field: the settings that are live.
VARIABLE_GROUP_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "monitoringMaxWaitHours": "monitoring_max_wait_hours",
        "monitoringPollIntervalSeconds": "monitoring_poll_interval_seconds",
        "monitoringLogLevel": "monitoring_log_level",
        "teamsWebhookUrl": "teams_webhook_url",
        "longRunningJobNotificationIntervalHours": "long_running_job_notification_interval_hours",
        "mlEngineersEmail": "ml_engineers_email",
        "circuitOwners": "circuit_owners",
        "manualCircuits": "manual_circuits",
        # The documented auto-rollback block (`enabled: true`, `error_threshold: 5%`,
        # `latency_threshold: 2000ms`, prod), flattened as pipeline variables are.
        "autoRollbackEnabled": "auto_rollback_enabled",
        "autoRollbackErrorThreshold": "auto_rollback_error_threshold_percent",
        "autoRollbackLatencyThreshold": "auto_rollback_latency_threshold_ms",
        "autoRollbackEnvironments": "auto_rollback_environments",
    }
)

LIVE_FIELDS: frozenset[str] = frozenset(VARIABLE_GROUP_KEYS.values())

# Settings that decide who may do what, what is production, and what proves a caller:
# whoever can edit the variable group must not be able to change them, so they come
# from the process environment (or `.env`) only. `docs/configuration.md` lists them.
SECURITY_FIELDS: frozenset[str] = frozenset(
    {
        "microsoft_app_id",
        "microsoft_app_password",
        "microsoft_app_tenant_id",
        "allowed_tenants",
        "operators",
        "approvers",
        "production_environments",
        "non_production_environments",
        "devops_hook_secret",
        "eventgrid_hook_secret",
        "alerts_hook_secret",
        "hook_secret",
        "hook_max_age_seconds",
        "card_signing_key",
        "devops_pat",
        "devops_org_url",
        "smtp_password",
        "database_url",
        "azure_cloud",
        "azure_resource_manager_url",
        "azure_authority_host",
        "azure_credential",
        "ca_bundle",
        "auto_rollback_dry_run",
    }
)


def is_live(field_name: str) -> bool:
    """True when the setting may change while the process runs."""
    return field_name in LIVE_FIELDS


def live_aliases() -> tuple[str, ...]:
    """The live settings as operators write them (`MLBOT_…`), in declaration order."""
    return tuple(Settings.model_fields[name].alias or name for name in VARIABLE_GROUP_KEYS.values())


class SettingsSource(Protocol):
    """Where live values come from (the variable group refresher)."""

    @property
    def current(self) -> Settings: ...

    @property
    def applied_fields(self) -> Collection[str]: ...

    @property
    def problems(self) -> Collection[object]: ...


class LiveSettings:
    """The settings in effect now: start-up values, live fields as last applied."""

    def __init__(self, startup: Settings, source: SettingsSource | None = None) -> None:
        self._startup = startup
        self._source = source
        # `now()` is called on every tick and delivery: rebuild only when the source moved.
        self._seen: Settings = startup
        self._view: Settings = startup

    @property
    def startup(self) -> Settings:
        """The frozen start-up settings (for what is built once: stores, servers, clients)."""
        return self._startup

    def now(self) -> Settings:
        latest = self._source.current if self._source is not None else self._startup
        if latest is not self._seen:
            changed = {
                name: getattr(latest, name)
                for name in LIVE_FIELDS
                if getattr(latest, name) != getattr(self._startup, name)
            }
            self._view = self._startup.model_copy(update=changed) if changed else self._startup
            self._seen = latest
        return self._view

    def group_fields(self) -> frozenset[str]:
        """Live fields whose value in effect comes from the variable group."""
        if self._source is None:
            return frozenset()
        return frozenset(self._source.applied_fields) & LIVE_FIELDS

    def problems(self) -> list[str]:
        """Variable-group values that could not be used (safe to show: no secrets)."""
        return [str(problem) for problem in self._source.problems] if self._source else []
