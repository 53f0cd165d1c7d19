"""mlbot's composition root and command line.

Everything is built here, once, from a frozen Settings object, and handed to the
pieces that need it; nothing else reads the environment.
`python app.py` is the same as `mlbot serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botframework.connector.auth import ServiceClientCredentialsFactory
from pydantic import SecretStr, ValidationError

from bot.access import AccessPolicy
from bot.activity_handler import MlbotActivityHandler
from bot.auth import TokenValidationEndpoints, build_authentication
from bot.card_actions import CardActionProcessor
from bot.card_signing import CardSigner, ephemeral_key
from bot.chat_commands import ChatServices, build_handlers
from bot.endpoint import MessagesEndpoint
from bot.living_cards import LivingCards
from bot.notifiers import WEBHOOK_DESTINATION, TeamsNotifier, WebhookNotifier
from bot.operations import Operations
from bot.proactive import ProactiveMessenger
from config.settings import (
    Settings,
    SettingsError,
    describe_validation_error,
    load_settings,
    settings_report,
)
from monitoring.azureml import AzureMLJobSource, AzureMLOptions
from monitoring.deployment_watch import DeploymentWatcher, environments_from_settings
from monitoring.devops import AzureDevOpsPipelines
from monitoring.dispatch import EventDispatcher, Notifier
from monitoring.email_delivery import EmailSender, SmtpSettings
from monitoring.email_notifier import EmailNotifier
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.health import HealthPolicy
from monitoring.jobs import Workspace
from monitoring.metrics import EndpointMetrics, MetricsOptions
from monitoring.pacing import SendPacer
from monitoring.rollback_targets import (
    EndpointTarget,
    RollbackTargetError,
    parse_targets,
    targets_for,
)
from monitoring.scheduler import EngineScheduler
from monitoring.send_gate import SendGate
from monitoring.service_check import (
    CheckResult,
    Verdict,
    all_passed,
    check_azureml,
    check_devops,
    render_check_table,
)
from monitoring.status_report import StatusService
from monitoring.variable_group import VariableGroupRefresher
from monitoring.watch import WatchExit, WatchOptions, WatchTarget, run_watch, watch_engine
from monitoring.workspaces import WorkspaceSettingError, parse_workspaces
from service.alerts_hook import AlertsHook
from service.devops_hooks import DevOpsEventKind, DevOpsHook, store_recorder
from service.eventgrid import EventGridHook
from service.health import HealthRoutes
from service.logs import configure_logging
from service.prometheus import MetricsRoute
from store.audit import AuditTrail
from store.card_actions import CardActionStore
from store.conversations import ConversationStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.deployment_watches import DeploymentWatchStore
from store.gauges import GaugeReader
from store.group_commit import GroupCommit
from store.monitoring import EventRecord, MonitoringStore, NewEvent
from store.posted_activities import PostedActivityStore
from store.watched_jobs import WatchedJobStore

if TYPE_CHECKING:
    from sandbox.clock import SandboxClock
    from sandbox.stack import SandboxStack

log = logging.getLogger("mlbot")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def mlbot_version() -> str:
    try:
        return importlib.metadata.version("mlbot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class AzureClients:
    """The production adapters, pointed at real Azure or at the sandbox emulators."""

    job_source: AzureMLJobSource | None = None
    workspaces: list[Workspace] = field(default_factory=list)
    pipelines: AzureDevOpsPipelines | None = None
    description: str = "not configured"
    # Azure Monitor metrics of online endpoints, for the deployment health watch.
    metrics: EndpointMetrics | None = None


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
    metrics = None
    if settings.auto_rollback_endpoints:
        metrics = EndpointMetrics(
            _default_credential,
            MetricsOptions(endpoint=settings.azure_resource_manager_url or None),
        )
    described = "Azure" if job_source or pipelines else "not configured"
    return AzureClients(job_source, workspaces, pipelines, described, metrics)


def rollback_targets_from(settings: Settings) -> tuple[EndpointTarget, ...]:
    """The endpoints to watch per environment; raises SettingsError naming the setting."""
    try:
        return parse_targets(
            settings.auto_rollback_endpoints,
            settings.azure_subscription_id,
            settings.azure_resource_group,
        )
    except RollbackTargetError as exc:
        raise SettingsError(f"invalid setting MLBOT_AUTO_ROLLBACK_ENDPOINTS: {exc}") from None


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
    engine: MonitoringEngine | None
    dispatcher: EventDispatcher
    monitoring: MonitoringStore
    deliveries: DeliveryStore
    settings_source: Callable[[], Settings]
    # The deployment health watch; None without endpoints to watch or a metrics client.
    watcher: DeploymentWatcher | None = None


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
    speed: float = 1.0,
    background: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Runtime:
    """Open the store (migrating it), wire the bot and return the web application."""
    clients = azure or AzureClients()
    rollback_targets = rollback_targets_from(settings)
    db = Database(settings.database_url)
    await db.migrate()
    conversations = ConversationStore(db)
    jobs = WatchedJobStore(db)
    audit = AuditTrail(db)

    authentication = build_authentication(settings, token_endpoints, credentials_factory)
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = _turn_error_handler(settings.bot_display_name)

    monitoring = MonitoringStore(db)
    # Delivery rows and idempotency keys share commits (one writer for both).
    delivery_writes = GroupCommit(db)
    deliveries = DeliveryStore(db, delivery_writes)

    # Settings the variable group may change while running (see monitoring.variable_group).
    refresher: VariableGroupRefresher | None = None
    pipelines = clients.pipelines
    if pipelines is not None:
        group = settings.variable_group

        async def fetch_group() -> dict[str, str]:
            assert pipelines is not None
            return await pipelines.get_variable_group(group)

        refresher = VariableGroupRefresher(settings, fetch_group)

    def current_settings() -> Settings:
        return refresher.current if refresher is not None else settings

    signing_key = settings.card_signing_key.get_secret_value().encode()
    if not signing_key:
        log.warning(
            "MLBOT_CARD_SIGNING_KEY is not set: card buttons are signed with a key that "
            "changes at every restart (older cards stop working)"
        )
        signing_key = ephemeral_key()
    signer = CardSigner(signing_key, clock)
    env_snapshot = dict(environ or {})

    def access_policy() -> AccessPolicy:
        return AccessPolicy.from_settings(current_settings(), env_snapshot)

    operations = Operations(
        pipelines=clients.pipelines,
        training_pipeline=lambda: current_settings().training_pipeline,
        rollback_pipeline=lambda: current_settings().rollback_pipeline,
        known_circuits=jobs.known_circuits,
    )
    handlers = build_handlers(
        ChatServices(
            status=StatusService(jobs, deliveries, monitoring),
            bot_name=settings.bot_display_name,
            operations=operations,
            signer=signer,
            policy=access_policy,
            audit=audit,
            settings_rows=lambda: settings_report(
                current_settings(),
                env_snapshot,
                group_fields=refresher.applied_fields if refresher is not None else (),
            ),
            settings_problems=lambda: (
                [str(problem) for problem in refresher.problems] if refresher is not None else []
            ),
            # The engine is built further down; commands look it up when they run.
            engine=lambda: engine,
            watcher=lambda: watcher,
            conversations=conversations,
        )
    )
    processor = CardActionProcessor(
        registry=handlers.actions,
        signer=signer,
        policy=access_policy,
        actions=CardActionStore(db),
        audit=audit,
        answer_within_s=settings.action_answer_seconds,
    )

    def roles_use_upns() -> bool:
        policy = access_policy()
        return any("@" in entry for entry in policy.operators | policy.any_approvers)

    bot = MlbotActivityHandler(
        needs_upn=roles_use_upns,
        commands=handlers.commands,
        actions=processor,
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

    async def schema_revision() -> str | None:
        return (await db.readiness()).revision

    metrics_route = MetricsRoute(GaugeReader(db).read, schema_revision, mlbot_version())
    web_app.router.add_get("/metrics", metrics_route.get)

    engine = (
        MonitoringEngine(
            store=monitoring,
            source=clients.job_source,
            workspaces=clients.workspaces,
            pipelines=clients.pipelines,
            config=lambda: EngineConfig.from_settings(current_settings()),
            clock=clock,
        )
        if clients.job_source is not None
        else None
    )
    watcher = (
        DeploymentWatcher(
            store=DeploymentWatchStore(db),
            metrics=clients.metrics,
            pipelines=clients.pipelines,
            events=monitoring,
            policy=lambda: HealthPolicy.from_settings(current_settings()),
            clock=clock,
            rollback_pipeline=lambda: current_settings().rollback_pipeline,
            dry_run=lambda: current_settings().auto_rollback_dry_run,
            grace=timedelta(seconds=settings.auto_rollback_grace_seconds),
            enabled_for=lambda environment: environments_from_settings(current_settings())(
                environment
            ),
            cooldown=timedelta(minutes=settings.auto_rollback_cooldown_minutes),
        )
        if clients.metrics is not None and rollback_targets
        else None
    )
    http = _HttpSessionHolder()
    # Every request to Teams takes a turn under its rate limits (sleeping in sim time).
    gate = SendGate(SendPacer(), clock, sleep=lambda seconds: asyncio.sleep(seconds / speed))
    living = LivingCards(
        messenger, monitoring, PostedActivityStore(db, delivery_writes), clock, gate
    )
    notifiers: list[Notifier] = [
        TeamsNotifier(conversations, messenger, signer, living=living),
        WebhookNotifier(http.get, lambda: current_settings().teams_webhook_url.get_secret_value()),
        EmailNotifier(
            EmailSender(SmtpSettings.from_settings(settings)),
            monitoring,
            clock,
            lambda: timedelta(
                hours=current_settings().long_running_job_notification_interval_hours
            ),
        ),
    ]
    dispatcher = EventDispatcher(
        events=monitoring,
        deliveries=deliveries,
        notifiers=notifiers,
        clock=clock,
        gate=gate,
        group_wait=lambda: timedelta(seconds=current_settings().group_wait_seconds),
    )
    web_app.cleanup_ctx.append(http.context)
    # Hook events need delivering even when no Azure ML workspace is watched.
    scheduler = (
        EngineScheduler(engine, dispatcher, clock=clock, speed=speed, watcher=watcher)
        if engine is not None or watcher is not None or clients.pipelines is not None
        else None
    )
    if background:
        if refresher is not None:
            web_app.cleanup_ctx.append(_refresh_variable_group(refresher))
        if scheduler is not None:
            web_app.cleanup_ctx.append(_run_scheduler(scheduler))

    async def on_push(workspace_key: str | None, job_name: str | None) -> int:
        if engine is None:
            return 0
        touched = await engine.check_now(workspace_key, job_name)
        if scheduler is not None:
            scheduler.poke()
        return touched

    eventgrid = EventGridHook(lambda: settings.hook_secret.get_secret_value(), on_push)
    web_app.router.add_post("/api/hooks/eventgrid", eventgrid.post)
    web_app.router.add_route("OPTIONS", "/api/hooks/eventgrid", eventgrid.options)

    # New events are delivered now rather than at the scheduler's next timer.
    record_hook_event = store_recorder(
        monitoring, clock, scheduler.poke if scheduler is not None else None
    )
    if watcher is not None:
        record_hook_event = _watching_deployments(record_hook_event, watcher, rollback_targets)
    devops_hook = DevOpsHook(
        lambda: settings.hook_secret.get_secret_value(), record_hook_event, clock
    )
    web_app.router.add_post("/api/hooks/devops", devops_hook.post)
    alerts = AlertsHook(
        lambda: settings.hook_secret.get_secret_value(),
        watcher.on_alert if watcher is not None else None,
    )
    web_app.router.add_post("/api/hooks/alerts", alerts.post)

    async def finish_actions(_: web.Application) -> None:
        # A button answered "working on it" still records its outcome before we stop.
        await processor.drain()

    web_app.on_shutdown.append(finish_actions)

    async def close_store(_: web.Application) -> None:
        await db.dispose()

    web_app.on_cleanup.append(close_store)
    return Runtime(
        settings=settings,
        db=db,
        conversations=conversations,
        jobs=jobs,
        audit=audit,
        adapter=adapter,
        messenger=messenger,
        web_app=web_app,
        azure=clients,
        engine=engine,
        dispatcher=dispatcher,
        monitoring=monitoring,
        deliveries=deliveries,
        settings_source=current_settings,
        watcher=watcher,
    )


def _watching_deployments(
    record: Callable[[NewEvent], Awaitable[bool]],
    watcher: DeploymentWatcher,
    targets: tuple[EndpointTarget, ...],
) -> Callable[[NewEvent], Awaitable[bool]]:
    """Record hook events; a completed deployment also starts its endpoints' health watch.

    Starting is idempotent, so a redelivered hook (or one whose first delivery failed
    after recording) starts nothing twice and misses nothing.
    """

    async def record_and_watch(event: NewEvent) -> bool:
        created = await record(event)
        payload = event.payload
        if event.kind != DevOpsEventKind.DEPLOYMENT_COMPLETED.value or payload.get("rollback"):
            return created
        environment = str(payload.get("environment") or "")
        run = str(payload.get("run_id") or payload.get("event_id") or "")
        for target in targets_for(targets, environment) if environment and run else []:
            try:
                await watcher.start(
                    environment, target.endpoint_resource_id, target.deployment, run
                )
            except Exception:
                log.exception("could not start the health watch of %s", target.label)
                # Azure DevOps redelivers on a 5xx; the recorded event is not repeated.
                raise web.HTTPServiceUnavailable(
                    text='{"error": "the health watch could not be started; retry"}',
                    content_type="application/json",
                ) from None
        return created

    return record_and_watch


class _HttpSessionHolder:
    """One outbound HTTP session for the process, opened on the running loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def context(self, _: web.Application) -> AsyncIterator[None]:
        yield
        if self._session is not None:
            await self._session.close()


def _run_scheduler(
    scheduler: EngineScheduler,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    return context


def _refresh_variable_group(
    refresher: VariableGroupRefresher,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        def apply_log_level(old: Settings, new: Settings) -> None:
            if old.monitoring_log_level != new.monitoring_log_level:
                logging.getLogger().setLevel(new.monitoring_log_level)

        refresher.add_listener(apply_log_level)
        task = asyncio.create_task(refresher.run())
        yield
        task.cancel()  # it sleeps between refreshes; nothing is lost by stopping it
        with contextlib.suppress(asyncio.CancelledError):
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


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    scenario: Path | None = None
    speed: float = 1.0
    # Tests and benchmarks drive the sandbox with their own clock and ticks.
    clock: SandboxClock | None = None
    tick_interval_s: float | None = 0.5


async def start_sandbox(
    settings: Settings, options: SandboxOptions
) -> tuple[SandboxStack, AzureClients]:
    """Start the Azure emulators and point the production adapters at them.

    Settings given explicitly (say MLBOT_DEVOPS_PROJECT) still win over the sandbox's
    own values, so a misconfiguration can be tried out safely.
    """
    from sandbox.scenario import DEFAULT_SCENARIO_PATH, ScenarioError, load_scenario
    from sandbox.stack import SandboxStack

    path = options.scenario or DEFAULT_SCENARIO_PATH
    try:
        scenario = load_scenario(path)
    except (ScenarioError, OSError) as exc:
        raise SettingsError(f"sandbox scenario {path}: {exc}") from None
    stack = SandboxStack(
        scenario, speed=options.speed, clock=options.clock, tick_interval_s=options.tick_interval_s
    )
    endpoints = await stack.start()
    explicit = settings.model_fields_set
    project = settings.devops_project if "devops_project" in explicit else endpoints.devops_project
    org_url = settings.devops_org_url if "devops_org_url" in explicit else endpoints.devops_org_url
    job_source = AzureMLJobSource(
        endpoints.credential_factory,
        endpoints.workspaces,
        endpoints.azureml_options(circuit_tag=settings.circuit_tag),
    )
    pipelines = AzureDevOpsPipelines(org_url, project, pat=endpoints.devops_pat)
    metrics = EndpointMetrics(
        endpoints.credential_factory,
        MetricsOptions(
            endpoint=endpoints.metrics_base_url, connection_verify=endpoints.metrics_ca_path
        ),
    )
    description = f"sandbox emulators ({Path(path).name}, speed {options.speed:g}x)"
    return stack, AzureClients(job_source, endpoints.workspaces, pipelines, description, metrics)


def sandbox_settings(settings: Settings, stack: SandboxStack) -> Settings:
    """What sandbox mode fills in where the operator set nothing: a hook secret (the
    emulated Azure DevOps posts service hooks), the scenario's online endpoints to watch
    after deployments, and the mail sink for email reminders."""
    update: dict[str, Any] = {}
    if not settings.hook_secret.get_secret_value():
        update["hook_secret"] = SecretStr(secrets.token_urlsafe(24))
    if "auto_rollback_endpoints" not in settings.model_fields_set:
        update["auto_rollback_endpoints"] = stack.endpoints.rollback_targets
    if update:
        settings = settings.model_copy(update=update)
    from sandbox.smtp_sink import sandbox_email_settings

    return sandbox_email_settings(settings, stack)


def subscribe_sandbox_hooks(stack: SandboxStack, settings: Settings, base_url: str) -> None:
    """Point the emulated Azure DevOps' service hooks at this bot's `/api/hooks/devops`."""
    key = settings.hook_secret.get_secret_value()
    stack.service_hooks.subscribe(f"{base_url}/api/hooks/devops?key={key}")


def _announce_sandbox(clients: AzureClients, stack: SandboxStack, settings: Settings) -> None:
    endpoints = stack.endpoints
    log.warning("  %s", clients.description)
    log.warning(
        "  Azure ML     %s (workspaces: %s)",
        endpoints.azureml_base_url,
        ", ".join(w.name for w in endpoints.workspaces),
    )
    log.warning("  Azure DevOps %s/%s", endpoints.devops_org_url, endpoints.devops_project)
    log.warning("  inspect with: curl http://%s:%d/_sandbox/state", settings.host, settings.port)


async def serve(settings: Settings, sandbox: SandboxOptions | None = None) -> None:
    stack: SandboxStack | None = None
    clock: Callable[[], datetime] = utc_now
    if settings.use_sandbox:
        log.warning("SANDBOX MODE: no Azure settings, starting local Azure emulators")
        stack, clients = await start_sandbox(settings, sandbox or SandboxOptions())
        _announce_sandbox(clients, stack, settings)
        settings = sandbox_settings(settings, stack)
        # Emulated jobs live on the sandbox's (possibly faster) clock.
        clock = stack.clock.now
    else:
        clients = azure_clients_from_settings(settings)
        log.info("Azure: %s", clients.description)
    try:
        speed = (sandbox or SandboxOptions()).speed if stack is not None else 1.0
        runtime = await build_runtime(
            settings, azure=clients, clock=clock, speed=speed, environ=os.environ
        )
        if stack is not None:
            from sandbox.control_api import add_sandbox_routes

            add_sandbox_routes(runtime.web_app, stack)
            host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
            host = f"[{host}]" if ":" in host else host
            subscribe_sandbox_hooks(stack, settings, f"http://{host}:{settings.port}")
        await _serve_forever(runtime, settings)
    finally:
        if stack is not None:
            await stack.stop()


async def _serve_forever(runtime: Runtime, settings: Settings) -> None:
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
        project=getattr(azure.pipelines, "project", None) or settings.devops_project,
        pipeline_names=[
            (settings.training_pipeline, "MLBOT_TRAINING_PIPELINE"),
            (settings.rollback_pipeline, "MLBOT_ROLLBACK_PIPELINE"),
        ],
        variable_group=settings.variable_group,
    )
    return results


async def check(settings: Settings, sandbox: SandboxOptions | None = None) -> int:
    stack: SandboxStack | None = None
    if settings.use_sandbox:
        stack, azure = await start_sandbox(settings, sandbox or SandboxOptions())
    else:
        azure = azure_clients_from_settings(settings)
    try:
        results = await run_checks(settings, azure)
    finally:
        if stack is not None:
            await stack.stop()
    print(render_check_table(results))
    return 0 if all_passed(results) else 1


async def watch(settings: Settings, target: WatchTarget, sandbox: SandboxOptions | None) -> int:
    """`mlbot watch`: the monitoring engine in the foreground for a pipeline stage."""
    stack: SandboxStack | None = None
    clock: Callable[[], datetime] = utc_now
    try:
        if settings.use_sandbox:
            stack, clients = await start_sandbox(settings, sandbox or SandboxOptions())
            clock = stack.clock.now
        else:
            clients = azure_clients_from_settings(settings)
    except SettingsError as exc:
        print(f"mlbot: {exc}", file=sys.stderr)
        return int(WatchExit.CONFIGURATION_ERROR)
    if clients.job_source is None:
        print(
            "mlbot: invalid setting MLBOT_AZUREML_WORKSPACES: no workspace to watch",
            file=sys.stderr,
        )
        if stack is not None:
            await stack.stop()
        return int(WatchExit.CONFIGURATION_ERROR)
    if clients.pipelines is None:
        # Nothing can queue a retry: the first failure is final.
        settings = settings.model_copy(update={"auto_retry_max_retries": 0})
    db = Database(settings.database_url)
    await db.migrate()
    store = MonitoringStore(db)
    engine, probe = watch_engine(
        store=store,
        source=clients.job_source,
        workspaces=clients.workspaces,
        pipelines=clients.pipelines,
        config=lambda: EngineConfig.from_settings(settings),
        clock=clock,
    )
    speed = stack.clock.speed if stack is not None and stack.clock.speed > 0 else 1.0

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / speed)  # simulated seconds on a fast sandbox clock

    async with aiohttp.ClientSession() as http:
        notify: Callable[[EventRecord], Awaitable[None]] | None = None
        url = settings.teams_webhook_url.get_secret_value()
        if url:
            webhook = WebhookNotifier(lambda: http, lambda: url)

            async def notify_webhook(event: EventRecord) -> None:
                if await webhook.destinations(event):
                    await webhook.deliver(event, WEBHOOK_DESTINATION)

            notify = notify_webhook
        try:
            outcome = await run_watch(
                engine,
                store,
                target,
                clock=clock,
                sleep=sleep,
                out=sys.stdout,
                notify=notify,
                options=WatchOptions.from_settings(settings),
                probe=probe,
            )
        finally:
            await db.dispose()
            if stack is not None:
                await stack.stop()
    return int(outcome.exit_code)


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--sandbox",
        action="store_true",
        default=None,
        help="use the local Azure emulators (default when no Azure service is configured)",
    )
    group.add_argument(
        "--no-sandbox", dest="sandbox", action="store_false", help="never start the emulators"
    )
    parser.add_argument("--scenario", type=Path, help="sandbox scenario file (YAML)")
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per real second in the sandbox (e.g. 60)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlbot", description="Microsoft Teams ChatOps for Azure ML training and deployments."
    )
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the bot's web server")
    serve_cmd.add_argument("--host", help="interface to listen on (MLBOT_HOST)")
    serve_cmd.add_argument("--port", type=int, help="port to listen on (MLBOT_PORT)")
    _add_sandbox_arguments(serve_cmd)
    check_cmd = commands.add_parser(
        "check", help="reach every configured service and print what works and what to fix"
    )
    _add_sandbox_arguments(check_cmd)
    watch_cmd = commands.add_parser(
        "watch",
        help="wait for training jobs in the foreground; exit 0 completed, 1 failed, "
        "2 max wait exceeded, 3 configuration error",
    )
    watch_cmd.add_argument(
        "--job", action="append", default=[], help="a job name to watch (repeatable)"
    )
    watch_cmd.add_argument("--experiment", help="watch the jobs of this experiment")
    watch_cmd.add_argument(
        "--circuit-prefix", help="watch circuits starting with this, e.g. PLANT001/"
    )
    _add_sandbox_arguments(watch_cmd)
    manifest_cmd = commands.add_parser(
        "manifest", help="build the Teams app package (manifest.json + icons) from settings"
    )
    manifest_cmd.add_argument("--out", type=Path, default=Path("mlbot-teams-app.zip"))
    cards_cmd = commands.add_parser(
        "cards",
        help="write every card mlbot can send, with sample data, as JSON (--out) "
        "and/or as pictures drawn by the official renderer (--png)",
    )
    cards_cmd.add_argument(
        "--out", type=Path, help="folder for the JSON files (default cards-out without --png)"
    )
    cards_cmd.add_argument(
        "--png",
        type=Path,
        help="folder for one PNG per card, rendered in Teams' light theme by headless "
        "Chromium (MLBOT_CHROMIUM, default /usr/bin/chromium); exits 1 if a card is rejected",
    )
    return parser


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """Apply command-line values with the same validation as the environment."""
    if not overrides:
        return settings
    try:
        checked = Settings.model_validate(overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    by_alias = {field.alias: name for name, field in Settings.model_fields.items()}
    update = {by_alias[alias]: getattr(checked, by_alias[alias]) for alias in overrides}
    return settings.model_copy(update=update)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["MLBOT_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["MLBOT_PORT"] = args.port
    if getattr(args, "sandbox", None) is not None:
        overrides["MLBOT_SANDBOX"] = args.sandbox
    sandbox = SandboxOptions(getattr(args, "scenario", None), getattr(args, "speed", 1.0))
    # `watch` speaks to pipelines: its configuration errors have their own exit code.
    config_error = int(WatchExit.CONFIGURATION_ERROR) if command == "watch" else 2
    try:
        settings = with_overrides(load_settings(), overrides)
    except SettingsError as exc:
        print(f"mlbot: {exc}", file=sys.stderr)
        return config_error
    configure_logging(settings.monitoring_log_level, _secrets_of(settings))
    try:
        if command == "check":
            return asyncio.run(check(settings, sandbox))
        if command == "manifest":
            from manifest.package import manifest_command

            return manifest_command(settings, args.out)
        if command == "cards":
            from cards.catalog import cards_command
            from cards.pictures import pictures_command

            status = 0
            if args.out is not None or args.png is None:
                status = cards_command(args.out or Path("cards-out"))
            if args.png is not None:
                status = max(status, pictures_command(args.png))
            return status
        if command == "watch":
            try:
                target = WatchTarget(tuple(args.job), args.experiment, args.circuit_prefix)
            except ValueError as exc:
                print(f"mlbot watch: {exc}", file=sys.stderr)
                return config_error
            return asyncio.run(watch(settings, target, sandbox))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, sandbox))
    except SettingsError as exc:
        print(f"mlbot: {exc}", file=sys.stderr)
        return config_error
    return 0


if __name__ == "__main__":
    sys.exit(main())
