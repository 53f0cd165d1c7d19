"""mlbot's composition root and command line.

Everything is built here, once, from a frozen Settings object, and handed to the
pieces that need it; nothing else reads the environment.
`python app.py` is the same as `mlbot serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botframework.connector.auth import ServiceClientCredentialsFactory

from bot.activity_handler import MlbotActivityHandler
from bot.auth import TokenValidationEndpoints, build_authentication
from bot.chat_commands import ChatServices, build_commands
from bot.endpoint import MessagesEndpoint
from bot.proactive import ProactiveMessenger
from config.settings import Settings, SettingsError, load_settings
from monitoring.azureml import AzureMLJobSource, AzureMLOptions
from monitoring.devops import AzureDevOpsPipelines
from monitoring.job_sync import JobSync
from monitoring.jobs import Workspace
from monitoring.service_check import (
    CheckResult,
    Verdict,
    all_passed,
    check_azureml,
    check_devops,
    render_check_table,
)
from monitoring.status_report import StatusService
from monitoring.workspaces import WorkspaceSettingError, parse_workspaces
from service.health import HealthRoutes
from service.logs import configure_logging
from store.audit import AuditTrail
from store.conversations import ConversationStore
from store.database import Database
from store.watched_jobs import WatchedJobStore

log = logging.getLogger("mlbot")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AzureClients:
    """The production adapters, pointed at real Azure or at the sandbox emulators."""

    job_source: AzureMLJobSource | None = None
    workspaces: list[Workspace] = field(default_factory=list)
    pipelines: AzureDevOpsPipelines | None = None
    description: str = "not configured"


def _default_credential() -> Any:
    # Managed identity in Azure, a service principal from AZURE_* variables elsewhere.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def azure_clients_from_settings(settings: Settings) -> AzureClients:
    """Adapters for real Azure; raises SettingsError when the workspaces are malformed."""
    try:
        workspaces = parse_workspaces(
            settings.azureml_workspaces,
            settings.azure_subscription_id,
            settings.azure_resource_group,
        )
    except WorkspaceSettingError as exc:
        raise SettingsError(f"invalid setting MLBOT_AZUREML_WORKSPACES: {exc}") from None
    job_source = (
        AzureMLJobSource(
            _default_credential, workspaces, AzureMLOptions(circuit_tag=settings.circuit_tag)
        )
        if workspaces
        else None
    )
    pipelines = None
    if settings.devops_org_url and settings.devops_project:
        credential = None if settings.devops_pat.get_secret_value() else _default_credential()
        pipelines = AzureDevOpsPipelines.from_settings(settings, credential=credential)
    described = "Azure" if job_source or pipelines else "not configured"
    return AzureClients(job_source, workspaces, pipelines, described)


@dataclass
class Runtime:
    """Every long-lived object of one mlbot process (tests may build several)."""

    settings: Settings
    db: Database
    conversations: ConversationStore
    jobs: WatchedJobStore
    audit: AuditTrail
    adapter: CloudAdapter
    messenger: ProactiveMessenger
    web_app: web.Application
    azure: AzureClients
    job_sync: JobSync | None


def _turn_error_handler(bot_name: str) -> Callable[[TurnContext, Exception], object]:
    async def on_turn_error(turn_context: TurnContext, error: Exception) -> None:
        log.error(
            "unhandled error in a %s turn: %s",
            turn_context.activity.type,
            type(error).__name__,
            exc_info=error,
        )
        if turn_context.activity.type == "message":
            try:
                await turn_context.send_activity(
                    f"Sorry, {bot_name} hit an unexpected problem. Please try again."
                )
            except Exception:
                log.warning("could not tell the user about the error", exc_info=True)

    return on_turn_error


async def build_runtime(
    settings: Settings,
    *,
    token_endpoints: TokenValidationEndpoints | None = None,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
    clock: Callable[[], datetime] = utc_now,
    azure: AzureClients | None = None,
) -> Runtime:
    """Open the store (migrating it), wire the bot and return the web application."""
    db = Database(settings.database_url)
    await db.migrate()
    conversations = ConversationStore(db)
    jobs = WatchedJobStore(db)
    audit = AuditTrail(db)

    authentication = build_authentication(settings, token_endpoints, credentials_factory)
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = _turn_error_handler(settings.bot_display_name)

    commands = build_commands(ChatServices(StatusService(jobs), settings.bot_display_name))
    bot = MlbotActivityHandler(
        commands=commands,
        conversations=conversations,
        audit=audit,
        clock=clock,
        bot_name=settings.bot_display_name,
    )
    messenger = ProactiveMessenger(adapter, settings.microsoft_app_id, conversations)
    endpoint = MessagesEndpoint(
        adapter=adapter,
        bot=bot,
        authentication=authentication,
        allowed_tenants=settings.allowed_tenants,
        audit=audit,
        clock=clock,
    )
    health = HealthRoutes(db)

    web_app = web.Application(client_max_size=settings.max_request_bytes)
    web_app.router.add_post("/api/messages", endpoint.handle)
    web_app.router.add_get("/healthz", health.healthz)
    web_app.router.add_get("/readyz", health.readyz)

    clients = azure or AzureClients()
    job_sync = (
        JobSync(clients.job_source, clients.workspaces, jobs, clock)
        if clients.job_source is not None
        else None
    )
    if job_sync is not None:
        web_app.cleanup_ctx.append(_background_sync(job_sync, settings))

    async def close_store(_: web.Application) -> None:
        await db.dispose()

    web_app.on_cleanup.append(close_store)
    return Runtime(
        settings, db, conversations, jobs, audit, adapter, messenger, web_app, clients, job_sync
    )


def _background_sync(
    job_sync: JobSync, settings: Settings
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            job_sync.run(lambda: float(settings.monitoring_poll_interval_seconds), stop)
        )
        yield
        stop.set()
        await task

    return context


def _secrets_of(settings: Settings) -> list[str]:
    return [
        settings.microsoft_app_password.get_secret_value(),
        settings.devops_pat.get_secret_value(),
        settings.hook_secret.get_secret_value(),
        settings.card_signing_key.get_secret_value(),
        settings.teams_webhook_url.get_secret_value(),
    ]


async def serve(settings: Settings) -> None:
    runtime = await build_runtime(settings)
    if settings.local_mode:
        log.warning("=" * 72)
        log.warning("LOCAL MODE: MicrosoftAppId is not set, so inbound activities are NOT")
        log.warning("authenticated. Use this only on your own machine (Agents Playground).")
        log.warning("=" * 72)
        if settings.host not in LOOPBACK_HOSTS:
            log.warning("local mode is listening on %s, beyond this machine", settings.host)
    runner = web.AppRunner(runtime.web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "mlbot listening on http://%s:%d/api/messages (store: %s)",
        settings.host,
        settings.port,
        runtime.db.dialect,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def run_checks(settings: Settings, azure: AzureClients) -> list[CheckResult]:
    """Every row `mlbot check` prints, in order."""
    mode = "local mode (no MicrosoftAppId)" if settings.local_mode else "authenticated"
    results = [CheckResult("settings", "loaded", Verdict.OK, f"{mode}; Azure: {azure.description}")]
    db = Database(settings.database_url)
    try:
        await db.migrate()
        readiness = await db.readiness()
        results.append(
            CheckResult(
                "store",
                db.dialect,
                Verdict.OK if readiness.ready else Verdict.FAIL,
                readiness.detail,
                "check MLBOT_DATABASE_URL",
            )
        )
    except Exception as exc:
        results.append(
            CheckResult(
                "store", "database", Verdict.FAIL, type(exc).__name__, "check MLBOT_DATABASE_URL"
            )
        )
    finally:
        await db.dispose()
    results += await check_azureml(azure.job_source, azure.workspaces)
    results += await check_devops(
        azure.pipelines,
        project=settings.devops_project or "(sandbox)",
        pipeline_names=[
            (settings.training_pipeline, "MLBOT_TRAINING_PIPELINE"),
            (settings.rollback_pipeline, "MLBOT_ROLLBACK_PIPELINE"),
        ],
        variable_group=settings.variable_group,
    )
    return results


async def check(settings: Settings) -> int:
    azure = azure_clients_from_settings(settings)
    results = await run_checks(settings, azure)
    print(render_check_table(results))
    return 0 if all_passed(results) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlbot", description="Microsoft Teams ChatOps for Azure ML training and deployments."
    )
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the bot's web server")
    serve_cmd.add_argument("--host", help="interface to listen on (MLBOT_HOST)")
    serve_cmd.add_argument("--port", type=int, help="port to listen on (MLBOT_PORT)")
    commands.add_parser(
        "check", help="reach every configured service and print what works and what to fix"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = load_settings()
        overrides = {}
        if command == "serve":
            if getattr(args, "host", None):
                overrides["MLBOT_HOST"] = args.host
            if getattr(args, "port", None) is not None:
                overrides["MLBOT_PORT"] = args.port
        if overrides:
            merged = {**settings.model_dump(by_alias=True), **overrides}
            merged = {
                k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
                for k, v in merged.items()
            }
            settings = Settings.model_validate(merged)
    except SettingsError as exc:
        print(f"mlbot: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.monitoring_log_level, _secrets_of(settings))
    if command == "check":
        try:
            return asyncio.run(check(settings))
        except SettingsError as exc:
            print(f"mlbot: {exc}", file=sys.stderr)
            return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
