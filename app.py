"""mlbot's composition root: Settings -> Azure, store, engine, Teams, delivery, bot, web app.

Everything is built here, once, in dependency order (`build_runtime` calls one
`build_*` step per layer), from the start-up Settings and the live view of the settings
the variable group may change (config/live.py). The command line is in cli.py;
`python app.py` is the same as `mlbot serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import secrets
import socket
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
from pydantic import SecretStr

from bot.access import AccessPolicy
from bot.activity_handler import MlbotActivityHandler
from bot.attention_commands import AttentionServices
from bot.auth import (
    CachingBotFrameworkAuthentication,
    TokenValidationEndpoints,
    build_authentication,
    service_url_policy,
)
from bot.card_actions import CardActionProcessor
from bot.card_signing import CardSigner, ephemeral_key
from bot.chat_commands import ChatServices, build_handlers
from bot.endpoint import MessagesEndpoint
from bot.event_mentions import CircuitOwners, Mentions, mentions_of_group
from bot.living_cards import LivingCards
from bot.notifiers import TeamsNotifier, WebhookNotifier
from bot.operations import Operations
from bot.personal_alerts import PersonalRouting
from bot.proactive import ProactiveMessenger
from cards.events import event_summary
from config.clouds import KNOWN_CLOUDS
from config.live import LiveSettings
from config.settings import HOOK_NAMES, HookName, Settings, SettingsError, settings_report
from domain.jobs import Workspace
from domain.leadership import Leadership, LeaseTerms
from domain.monitoring import EventRecord
from monitoring.azureml import AzureMLJobSource, AzureMLOptions, CloudEndpoints
from monitoring.credentials import credential_factory
from monitoring.deployment_watch import DeploymentWatcher, environments_from_settings
from monitoring.devops import AzureDevOpsPipelines
from monitoring.digests import DigestPass
from monitoring.dispatch import DEFAULT_CLAIM_TTL, EventDispatcher
from monitoring.email_delivery import EmailSender, SmtpSettings
from monitoring.email_notifier import EmailNotifier
from monitoring.engine import EngineConfig, MonitoringEngine
from monitoring.escalation import EscalationPass
from monitoring.executors import ServiceExecutors
from monitoring.health import HealthPolicy
from monitoring.holds import EventHolds, HoldingNotifier
from monitoring.leader_election import Leader, LeaderElection, SoleReplica
from monitoring.metrics import EndpointMetrics, MetricsOptions
from monitoring.notifier import Notifier
from monitoring.pacing import SendPacer
from monitoring.pipeline_runs import PipelineRuns
from monitoring.retention import RetentionPass
from monitoring.rollback_targets import (
    EndpointTarget,
    RollbackTargetError,
    parse_targets,
    targets_for,
)
from monitoring.scheduler import EngineScheduler, TimedGroup
from monitoring.send_gate import SendGate
from monitoring.status_report import StatusService
from monitoring.variable_group import VariableGroupRefresher
from monitoring.workspaces import WorkspaceSettingError, parse_workspaces
from service.alerts_hook import AlertsHook
from service.devops_hook_details import hook_completer, with_approval_details
from service.devops_hooks import DevOpsEventKind, DevOpsHook, store_recorder
from service.eventgrid import EventGridHook
from service.health import HealthRoutes
from service.hook_auth import HookGuard
from service.hook_verification import HookVerifier
from service.logs import learn_secrets
from service.prometheus import MetricsRoute
from service.training_metrics import TrainingMetrics
from store.attention import AttentionStore, EventLookup
from store.audit import AuditTrail
from store.card_actions import CardActionStore
from store.conversations import ConversationStore
from store.database import Database
from store.deliveries import DeliveryStore
from store.deployment_watches import DeploymentWatchStore
from store.digests import DigestStore
from store.escalation import EscalationReader
from store.gauges import GaugeReader
from store.group_commit import GroupCommit
from store.history import CircuitHistoryStore
from store.leader_lease import LeaseLostError, LeaseStore, fence_check
from store.monitoring import MonitoringStore, NewEvent
from store.personal_alerts import PersonalAlertStore
from store.pipeline_intents import PipelineIntentStore
from store.posted_activities import PostedActivityStore
from store.retention import RetentionStore
from store.sandbox_world import ClearedWorld, ForeignDataError, clear_sandbox_world
from store.training_stats import TrainingStatsReader
from store.watched_jobs import WatchedJobStore

if TYPE_CHECKING:
    from sandbox.clock import SandboxClock
    from sandbox.stack import SandboxStack

log = logging.getLogger("mlbot")


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
    # The adapters' thread pools, one per service; shut down with the process.
    executors: ServiceExecutors = field(default_factory=ServiceExecutors.create)


def azureml_options_for(settings: Settings) -> AzureMLOptions:
    """Azure ML client options for the configured cloud (and CA bundle)."""
    cloud = settings.cloud
    return AzureMLOptions(
        circuit_tag=settings.circuit_tag,
        connection_verify=settings.ca_bundle or None,
        cloud=CloudEndpoints.of(cloud) if cloud.customized else None,
        cloud_name=cloud.name,
        token_scope=KNOWN_CLOUDS[cloud.name].management_audience + "/.default",
    )


def metrics_options_for(settings: Settings) -> MetricsOptions:
    """Azure Monitor client options for the configured cloud (and CA bundle)."""
    cloud = settings.cloud
    public = cloud.name == "AzureCloud" and not cloud.customized
    return MetricsOptions(
        endpoint=None if public else cloud.resource_manager,
        # A replaced Resource Manager still issues tokens for its cloud's audience.
        audience=None if public else KNOWN_CLOUDS[cloud.name].management_audience,
        connection_verify=settings.ca_bundle or None,
    )


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
    credentials = credential_factory(settings.cloud, settings.azure_credential, settings.ca_bundle)
    executors = ServiceExecutors.create()
    job_source = (
        AzureMLJobSource(
            credentials, workspaces, azureml_options_for(settings), executor=executors.azureml
        )
        if workspaces
        else None
    )
    pipelines = None
    if settings.devops_org_url and settings.devops_project:
        credential = None if settings.devops_pat.get_secret_value() else credentials()
        pipelines = AzureDevOpsPipelines.from_settings(
            settings, credential=credential, executor=executors.devops
        )
    metrics = None
    if settings.auto_rollback_endpoints:
        metrics = EndpointMetrics(
            credentials, metrics_options_for(settings), executor=executors.metrics
        )
    described = "Azure" if job_source or pipelines else "not configured"
    if described == "Azure" and (settings.cloud.name != "AzureCloud" or settings.cloud.customized):
        described = (
            f"Azure ({settings.cloud.name}, Resource Manager {settings.cloud.resource_manager})"
        )
    return AzureClients(job_source, workspaces, pipelines, described, metrics, executors)


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
    # The settings in effect (start-up values, live ones as the variable group has them).
    live: LiveSettings
    # Re-reads the variable group; None without Azure DevOps.
    refresher: VariableGroupRefresher | None = None
    # The deployment health watch; None without endpoints to watch or a metrics client.
    watcher: DeploymentWatcher | None = None
    # Re-posts what nobody acknowledged or decided in time (driven by the scheduler).
    escalations: EscalationPass | None = None
    # Records daily digests (driven by the scheduler).
    digests: DigestPass | None = None


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


# --- The composition, in dependency order ----------------------------------------------
# Each step takes what earlier steps built and returns what it built. Values fixed at
# start-up are read from `live.startup`; anything read at each use asks `live.now()`,
# so a setting the variable group changes reaches every consumer (see config/live.py).


@dataclass(frozen=True, slots=True)
class AzureParts:
    clients: AzureClients
    rollback_targets: tuple[EndpointTarget, ...]
    live: LiveSettings
    # Re-reads the variable group; None without Azure DevOps.
    refresher: VariableGroupRefresher | None


def build_azure(settings: Settings, clients: AzureClients) -> AzureParts:
    """The Azure adapters, the endpoints to watch, and the settings the variable group keeps live.

    Raises SettingsError before anything is opened when the endpoints are malformed.
    """
    rollback_targets = rollback_targets_from(settings)
    refresher: VariableGroupRefresher | None = None
    pipelines = clients.pipelines
    if pipelines is not None:
        group = settings.variable_group

        async def fetch_group() -> dict[str, str]:
            return await pipelines.get_variable_group(group)

        refresher = VariableGroupRefresher(settings, fetch_group)
    return AzureParts(clients, rollback_targets, LiveSettings(settings, refresher), refresher)


@dataclass(frozen=True, slots=True)
class StoreParts:
    db: Database
    conversations: ConversationStore
    jobs: WatchedJobStore
    audit: AuditTrail
    monitoring: MonitoringStore
    deliveries: DeliveryStore
    # Delivery rows, posted activities and idempotency keys share commits (one writer).
    delivery_writes: GroupCommit
    # Silences, acknowledgements and snoozes; single events by id.
    attention: AttentionStore
    event_lookup: EventLookup


async def build_store(settings: Settings) -> StoreParts:
    """Open the store, migrating it."""
    db = Database(settings.database_url)
    await db.migrate()
    delivery_writes = GroupCommit(db)
    deliveries = DeliveryStore(db, delivery_writes)
    if db.dialect == "sqlite":
        # A SQLite file serves one process (`mlbot serve` holds its lock): claims found
        # now were left by a process that died, and need not wait for their expiry.
        await deliveries.release_all()
    return StoreParts(
        db=db,
        conversations=ConversationStore(db),
        jobs=WatchedJobStore(db),
        audit=AuditTrail(db),
        monitoring=MonitoringStore(db),
        deliveries=deliveries,
        delivery_writes=delivery_writes,
        attention=AttentionStore(db),
        event_lookup=EventLookup(db),
    )


def replica_id_of(settings: Settings) -> str:
    """This process's name among the replicas: MLBOT_REPLICA_ID, else host and pid."""
    return settings.replica_id.strip() or f"{socket.gethostname()}-{os.getpid()}"


def lease_terms_of(settings: Settings) -> LeaseTerms:
    try:
        return LeaseTerms(settings.leader_lease_seconds, settings.leader_renew_seconds)
    except ValueError as exc:
        raise SettingsError(
            f"invalid settings MLBOT_LEADER_LEASE_SECONDS / MLBOT_LEADER_RENEW_SECONDS: {exc}"
        ) from None


def with_replica_id(
    rows: list[tuple[str, str, str]], replica_id: str
) -> list[tuple[str, str, str]]:
    """`config` rows showing the replica id in effect where the setting was left empty."""
    return [
        (name, f"{replica_id} (automatic)", source)
        if name == "MLBOT_REPLICA_ID" and source == "default"
        else (name, shown, source)
        for name, shown, source in rows
    ]


@dataclass(frozen=True, slots=True)
class EngineParts:
    # These serve hooks and chat commands on every replica.
    # None when no Azure ML workspace is configured.
    engine: MonitoringEngine | None
    # The deployment health watch; None without endpoints to watch or a metrics client.
    watcher: DeploymentWatcher | None
    # The one way runs are queued (retries, rollbacks, buttons); None without Azure DevOps.
    runs: PipelineRuns | None = None
    # Who leads; the scheduler runs passes only while this replica does.
    leader: Leader = field(default_factory=lambda: SoleReplica("mlbot"))
    # The lease loop (PostgreSQL); None on SQLite, which is one replica.
    election: LeaderElection | None = None
    # The scheduler's engine and health watch: on PostgreSQL their writes are fenced by
    # the lease (the same objects as above on SQLite).
    leader_engine: MonitoringEngine | None = None
    leader_watcher: DeploymentWatcher | None = None


def build_engine(
    store: StoreParts, azure: AzureParts, clock: Callable[[], datetime]
) -> EngineParts:
    """The monitoring engine and the deployment health watch, and who runs them."""
    startup = azure.live.startup
    replica_id = replica_id_of(startup)
    if store.db.dialect != "postgresql":
        engine, watcher, runs = _engine_and_watcher(store.db, store.monitoring, azure, clock)
        return EngineParts(engine, watcher, runs, SoleReplica(replica_id), None, engine, watcher)
    terms = lease_terms_of(startup)
    election = LeaderElection(LeaseStore(store.db), Leadership(replica_id, terms))
    fenced = store.db.guarded(fence_check(election.fence, idle_timeout_s=terms.duration_s))
    engine, watcher, runs = _engine_and_watcher(store.db, store.monitoring, azure, clock)
    leader_engine, leader_watcher, _ = _engine_and_watcher(
        fenced, MonitoringStore(fenced), azure, clock
    )
    return EngineParts(engine, watcher, runs, election, election, leader_engine, leader_watcher)


def _engine_and_watcher(
    db: Database,
    monitoring: MonitoringStore,
    azure: AzureParts,
    clock: Callable[[], datetime],
) -> tuple[MonitoringEngine | None, DeploymentWatcher | None, PipelineRuns | None]:
    clients, live = azure.clients, azure.live
    startup = live.startup
    runs = (
        PipelineRuns(clients.pipelines, PipelineIntentStore(db), clock)
        if clients.pipelines is not None
        else None
    )
    engine = (
        MonitoringEngine(
            store=monitoring,
            source=clients.job_source,
            workspaces=clients.workspaces,
            runs=runs,
            config=lambda: EngineConfig.from_settings(live.now()),
            clock=clock,
        )
        if clients.job_source is not None
        else None
    )
    watcher = (
        DeploymentWatcher(
            store=DeploymentWatchStore(db),
            metrics=clients.metrics,
            runs=runs,
            events=monitoring,
            policy=lambda: HealthPolicy.from_settings(live.now()),
            clock=clock,
            rollback_pipeline=lambda: live.now().rollback_pipeline,
            dry_run=lambda: live.now().auto_rollback_dry_run,
            grace=timedelta(seconds=startup.auto_rollback_grace_seconds),
            enabled_for=lambda environment: environments_from_settings(live.now())(environment),
            cooldown=timedelta(minutes=startup.auto_rollback_cooldown_minutes),
        )
        if clients.metrics is not None and azure.rollback_targets
        else None
    )
    return engine, watcher, runs


@dataclass(frozen=True, slots=True)
class TeamsParts:
    authentication: CachingBotFrameworkAuthentication
    adapter: CloudAdapter
    messenger: ProactiveMessenger
    # Signs card button data; shared by the bot's cards and the notifiers' cards.
    signer: CardSigner


def build_teams(
    settings: Settings,
    store: StoreParts,
    clock: Callable[[], datetime],
    token_endpoints: TokenValidationEndpoints | None,
    credentials_factory: ServiceClientCredentialsFactory | None,
) -> TeamsParts:
    """The Bot Framework adapter both ways: inbound authentication, proactive sends."""
    authentication = build_authentication(settings, token_endpoints, credentials_factory)
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = _turn_error_handler(settings.bot_display_name)
    signing_key = settings.card_signing_key.get_secret_value().encode()
    if not signing_key:
        log.warning(
            "MLBOT_CARD_SIGNING_KEY is not set: card buttons are signed with a key that "
            "changes at every restart (older cards stop working)"
        )
        signing_key = ephemeral_key()
    messenger = ProactiveMessenger(adapter, settings.microsoft_app_id, store.conversations)
    return TeamsParts(authentication, adapter, messenger, CardSigner(signing_key, clock))


@dataclass(frozen=True, slots=True)
class DeliveryParts:
    dispatcher: EventDispatcher
    # Runs engine ticks, health checks and delivery; None when there is nothing to run.
    scheduler: EngineScheduler | None
    http: _HttpSessionHolder
    # Posts again what nobody acknowledged or decided in time.
    escalations: EscalationPass
    # Records each conversation's daily digest at its time.
    digests: DigestPass


def build_delivery(
    store: StoreParts,
    azure: AzureParts,
    engine: EngineParts,
    teams: TeamsParts,
    clock: Callable[[], datetime],
    speed: float,
    environ: Mapping[str, str] | None = None,
) -> DeliveryParts:
    """Where events go (Teams, the webhook, email) and the timer that drives it all."""
    live = azure.live
    env_snapshot = dict(environ or {})
    owners = CircuitOwners(lambda: live.now().circuit_owners)

    def mentions(events: Sequence[EventRecord]) -> Mentions | None:
        policy = AccessPolicy.from_settings(live.now(), env_snapshot)
        now = live.now()
        return mentions_of_group(events, owners.rules(), policy.approvers_for, now.on_call)

    http = _HttpSessionHolder()
    # Every request to Teams takes a turn under its rate limits (sleeping in sim time).
    gate = SendGate(SendPacer(), clock, sleep=lambda seconds: asyncio.sleep(seconds / speed))
    living = LivingCards(
        teams.messenger,
        store.monitoring,
        PostedActivityStore(store.db, store.delivery_writes),
        clock,
        gate,
    )
    holds = EventHolds(store.attention, store.event_lookup, clock)
    notifiers: list[Notifier] = [
        TeamsNotifier(
            store.conversations,
            living,
            teams.signer,
            mentions=mentions,
            personal=PersonalRouting(PersonalAlertStore(store.db), owners.rules).chats_for,
        ),
        WebhookNotifier(http.get, lambda: live.now().teams_webhook_url.get_secret_value()),
        EmailNotifier(
            EmailSender(
                SmtpSettings.from_settings(live.startup),
                recipients=lambda: live.now().ml_engineers_email,
            ),
            store.monitoring,
            clock,
            lambda: timedelta(hours=live.now().long_running_job_notification_interval_hours),
        ),
    ]
    dispatcher = EventDispatcher(
        events=store.monitoring,
        deliveries=store.deliveries,
        # Silenced, snoozed and acknowledged events are held back for every destination.
        notifiers=[HoldingNotifier(notifier, holds) for notifier in notifiers],
        clock=clock,
        group_wait=lambda: timedelta(seconds=live.now().group_wait_seconds),
        # Claims last a minute of real time, whatever the sandbox's clock speed.
        claim_ttl=DEFAULT_CLAIM_TTL * speed,
        # The replica's id (PostgreSQL): a restarted replica takes its claims back at once.
        owner=engine.leader.view().replica_id if engine.election is not None else None,
    )
    startup = live.startup
    retention = RetentionPass(RetentionStore(store.db), startup.retention_policy(), clock)
    escalations = EscalationPass(
        EscalationReader(store.db),
        store.attention,
        store.monitoring,
        clock,
        after=lambda: (
            timedelta(minutes=live.now().escalation_minutes)
            if live.now().escalation_minutes
            else None
        ),
        summary=event_summary,
    )
    digests = DigestPass(
        DigestStore(store.db), store.monitoring, clock, store.monitoring.pending_approvals
    )
    # Hook events need delivering even when no Azure ML workspace is watched, and the
    # store is pruned whatever is configured (the audit trail and card nonces grow too).
    # With replicas only the leader runs these passes (escalation and digest keys make
    # each of their events happen once anyway).
    scheduler = EngineScheduler(
        engine.leader_engine,
        dispatcher,
        clock=clock,
        speed=speed,
        watcher=TimedGroup(engine.leader_watcher, escalations, digests),
        leader=engine.leader,
        retention=retention,
        retention_interval_s=startup.retention_interval_minutes * 60,
    )
    return DeliveryParts(dispatcher, scheduler, http, escalations, digests)


@dataclass(frozen=True, slots=True)
class BotParts:
    handler: MlbotActivityHandler
    # Card buttons; drained at shutdown so an answered button still records its outcome.
    processor: CardActionProcessor
    endpoint: MessagesEndpoint


def build_bot(
    store: StoreParts,
    azure: AzureParts,
    engine: EngineParts,
    teams: TeamsParts,
    clock: Callable[[], datetime],
    environ: Mapping[str, str] | None,
) -> BotParts:
    """Chat commands, card actions and the `/api/messages` endpoint."""
    live = azure.live
    startup = live.startup
    env_snapshot = dict(environ or {})
    # What `config` compares against: every setting as it is when nothing sets it
    # (model_construct reads no environment and no .env).
    default_settings = {
        name: shown
        for name, shown, _ in settings_report(Settings.model_construct(), {}, env_file=None)
    }

    def access_policy() -> AccessPolicy:
        return AccessPolicy.from_settings(live.now(), env_snapshot)

    operations = Operations(
        pipelines=azure.clients.pipelines,
        training_pipeline=lambda: live.now().training_pipeline,
        rollback_pipeline=lambda: live.now().rollback_pipeline,
        known_circuits=store.jobs.known_circuits,
        default_circuits=lambda: live.now().manual_circuits,
        runs=engine.runs,
    )
    built_engine, built_watcher = engine.engine, engine.watcher
    handlers = build_handlers(
        ChatServices(
            status=StatusService(
                store.jobs,
                store.deliveries,
                store.monitoring,
                # The replica that runs the passes knows whether its first one is done.
                first_check_pending=lambda: (
                    engine.leader_engine is not None
                    and engine.leader.may_act()
                    and not engine.leader_engine.checked_once
                ),
                holds=store.attention,
                leader=engine.leader.view if engine.election is not None else None,
            ),
            bot_name=startup.bot_display_name,
            operations=operations,
            signer=teams.signer,
            policy=access_policy,
            audit=store.audit,
            settings_rows=lambda: with_replica_id(
                settings_report(live.now(), env_snapshot, group_fields=live.group_fields()),
                engine.leader.view().replica_id,
            ),
            settings_problems=live.problems,
            settings_defaults=lambda: default_settings,
            engine=lambda: built_engine,
            watcher=lambda: built_watcher,
            conversations=store.conversations,
            history=CircuitHistoryStore(store.db),
            attention=AttentionServices(store.attention, store.event_lookup, teams.signer),
            digests=DigestStore(store.db),
            personal_alerts=PersonalAlertStore(store.db),
        )
    )
    processor = CardActionProcessor(
        registry=handlers.actions,
        signer=teams.signer,
        policy=access_policy,
        actions=CardActionStore(store.db),
        audit=store.audit,
        answer_within_s=startup.action_answer_seconds,
    )

    def roles_use_upns() -> bool:
        policy = access_policy()
        return any("@" in entry for entry in policy.operators | policy.any_approvers)

    handler = MlbotActivityHandler(
        needs_upn=roles_use_upns,
        commands=handlers.commands,
        actions=processor,
        conversations=store.conversations,
        audit=store.audit,
        clock=clock,
        bot_name=startup.bot_display_name,
    )
    endpoint = MessagesEndpoint(
        adapter=teams.adapter,
        bot=handler,
        authentication=teams.authentication,
        allowed_tenants=startup.tenant_allow_list,
        service_urls=service_url_policy(startup),
        audit=store.audit,
        clock=clock,
    )
    return BotParts(handler, processor, endpoint)


def build_http(
    store: StoreParts,
    azure: AzureParts,
    engine: EngineParts,
    delivery: DeliveryParts,
    bot: BotParts,
    clock: Callable[[], datetime],
    background: bool,
) -> web.Application:
    """The web application: routes, hooks, and what starts and stops with it."""
    live = azure.live
    startup = live.startup
    db = store.db
    leader = engine.leader
    health = HealthRoutes(db, leader.view)
    web_app = web.Application(client_max_size=startup.max_request_bytes)
    web_app.router.add_post("/api/messages", bot.endpoint.handle)
    web_app.router.add_get("/healthz", health.healthz)
    web_app.router.add_get("/readyz", health.readyz)

    async def schema_revision() -> str | None:
        return (await db.readiness()).revision

    training = TrainingMetrics(TrainingStatsReader(db), clock)
    metrics_route = MetricsRoute(
        GaugeReader(db).read, schema_revision, mlbot_version(), leader.view, training=training
    )
    web_app.router.add_get("/metrics", metrics_route.get)

    web_app.cleanup_ctx.append(delivery.http.context)
    scheduler = delivery.scheduler
    if background:
        if azure.refresher is not None:
            web_app.cleanup_ctx.append(_refresh_variable_group(azure.refresher))
        if scheduler is not None:
            web_app.cleanup_ctx.append(_run_scheduler(scheduler, engine.election))

    monitoring_engine, watcher = engine.engine, engine.watcher
    leader_engine = engine.leader_engine

    async def on_push(workspace_key: str | None, job_name: str | None, status: str | None) -> int:
        if monitoring_engine is None:
            return 0
        # The leader's own engine also forgets when it last listed (an unknown job may be
        # new); another replica marks the sessions due in the store for the leader.
        pushed = leader_engine if leader_engine is not None and leader.may_act() else None
        try:
            touched = await (pushed or monitoring_engine).check_now(workspace_key, job_name, status)
        except LeaseLostError:
            touched = await monitoring_engine.check_now(workspace_key, job_name, status)
        if scheduler is not None:
            scheduler.poke()
        return touched

    def guard(hook: HookName) -> HookGuard:
        setting = Settings.model_fields[f"{hook}_hook_secret"].alias or hook
        return HookGuard(
            setting=setting,
            secret=lambda: startup.secret_of_hook(hook),
            clock=clock,
            max_age=lambda: timedelta(seconds=startup.hook_max_age_seconds),
        )

    for hook in startup.hooks_sharing_the_fallback():
        log.warning(
            "the %s hook has no secret of its own and accepts the shared MLBOT_HOOK_SECRET:"
            " set %s so that one leaked hook URL cannot drive the others",
            hook,
            Settings.model_fields[f"{hook}_hook_secret"].alias,
        )

    def workspace_keys() -> list[str]:
        if monitoring_engine is None:
            return []
        return [workspace.key for workspace in monitoring_engine.workspaces]

    eventgrid = EventGridHook(guard("eventgrid"), on_push, workspace_keys)
    web_app.router.add_post("/api/hooks/eventgrid", eventgrid.post)
    web_app.router.add_route("OPTIONS", "/api/hooks/eventgrid", eventgrid.options)

    # New events are delivered now rather than at the scheduler's next timer.
    record_hook_event = store_recorder(
        store.monitoring, clock, scheduler.poke if scheduler is not None else None
    )
    # Approval hooks carry no names nor environment in Microsoft's samples: ask for them.
    record_hook_event = with_approval_details(record_hook_event, azure.clients.pipelines)
    if watcher is not None:
        record_hook_event = _watching_deployments(
            record_hook_event, watcher, azure.rollback_targets
        )
    verifier = HookVerifier(azure.clients.pipelines, lambda: startup.production_environments)
    devops_hook = DevOpsHook(
        guard("devops"),
        record_hook_event,
        verifier=verifier,
        complete=hook_completer(azure.clients.pipelines),
    )
    web_app.router.add_post("/api/hooks/devops", devops_hook.post)
    alerts = AlertsHook(guard("alerts"), watcher.on_alert if watcher is not None else None)
    web_app.router.add_post("/api/hooks/alerts", alerts.post)

    async def finish_actions(_: web.Application) -> None:
        # A button answered "working on it" still records its outcome before we stop.
        await bot.processor.drain()

    web_app.on_shutdown.append(finish_actions)

    async def close_store(_: web.Application) -> None:
        await db.dispose()

    web_app.on_cleanup.append(close_store)

    async def stop_azure_threads(_: web.Application) -> None:
        azure.clients.executors.shutdown()

    web_app.on_cleanup.append(stop_azure_threads)
    return web_app


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
    azure_parts = build_azure(settings, azure or AzureClients())
    store = await build_store(settings)
    engine = build_engine(store, azure_parts, clock)
    teams = build_teams(settings, store, clock, token_endpoints, credentials_factory)
    delivery = build_delivery(store, azure_parts, engine, teams, clock, speed, environ)
    bot = build_bot(store, azure_parts, engine, teams, clock, environ)
    web_app = build_http(store, azure_parts, engine, delivery, bot, clock, background)

    async def stop_token_validation(_: web.Application) -> None:
        teams.authentication.close()

    web_app.on_cleanup.append(stop_token_validation)
    return Runtime(
        settings=settings,
        db=store.db,
        conversations=store.conversations,
        jobs=store.jobs,
        audit=store.audit,
        adapter=teams.adapter,
        messenger=teams.messenger,
        web_app=web_app,
        azure=azure_parts.clients,
        engine=engine.engine,
        dispatcher=delivery.dispatcher,
        monitoring=store.monitoring,
        deliveries=store.deliveries,
        settings_source=azure_parts.live.now,
        live=azure_parts.live,
        refresher=azure_parts.refresher,
        watcher=engine.watcher,
        escalations=delivery.escalations,
        digests=delivery.digests,
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
    scheduler: EngineScheduler, election: LeaderElection | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        if election is not None:
            # A standby that takes over must not spend its first seconds importing the
            # Azure ML SDK (about a second of CPU, stalling its own lease renewals).
            await asyncio.to_thread(_import_quietly, "azure.ai.ml")
            # Becoming the leader starts a pass at once rather than at the next timer.
            election.on_gained(scheduler.poke)
            await election.attempt()
            election.start()
        scheduler.start()
        yield
        await scheduler.stop()
        if election is not None:
            await election.stop()  # after the last pass: a successor starts at once

    return context


def _import_quietly(module: str) -> None:
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def _refresh_variable_group(
    refresher: VariableGroupRefresher,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(_: web.Application) -> AsyncIterator[None]:
        def apply_log_level(old: Settings, new: Settings) -> None:
            if old.monitoring_log_level != new.monitoring_log_level:
                logging.getLogger().setLevel(new.monitoring_log_level)

        def mask_webhook_url(old: Settings, new: Settings) -> None:
            # The webhook URL is a secret wherever it comes from, the group included; the
            # masking set up at start-up only knew the start-up value.
            url = new.teams_webhook_url.get_secret_value()
            if url and url != old.teams_webhook_url.get_secret_value():
                learn_secrets([url])

        refresher.add_listener(apply_log_level)
        refresher.add_listener(mask_webhook_url)
        task = asyncio.create_task(refresher.run())
        yield
        task.cancel()  # it sleeps between refreshes; nothing is lost by stopping it
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


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
    executors = ServiceExecutors.create()
    job_source = AzureMLJobSource(
        endpoints.credential_factory,
        endpoints.workspaces,
        endpoints.azureml_options(circuit_tag=settings.circuit_tag),
        executor=executors.azureml,
    )
    pipelines = AzureDevOpsPipelines(
        org_url, project, pat=endpoints.devops_pat, executor=executors.devops
    )
    metrics = EndpointMetrics(
        endpoints.credential_factory,
        MetricsOptions(
            endpoint=endpoints.metrics_base_url, connection_verify=endpoints.metrics_ca_path
        ),
        executor=executors.metrics,
    )
    description = f"sandbox emulators ({Path(path).name}, speed {options.speed:g}x)"
    return stack, AzureClients(
        job_source, endpoints.workspaces, pipelines, description, metrics, executors
    )


def sandbox_settings(settings: Settings, stack: SandboxStack) -> Settings:
    """What sandbox mode fills in where the operator set nothing: a secret per hook (the
    emulated Azure DevOps posts service hooks), the scenario's online endpoints to watch
    after deployments, the mail sink for email reminders, and approve / rollback / retry
    in local mode (they only reach the emulators)."""
    update: dict[str, Any] = {}
    if "local_actions" not in settings.model_fields_set:
        update["local_actions"] = True
    for hook in HOOK_NAMES:
        # A secret of its own for each hook the operator left without one.
        if not settings.secret_of_hook(hook):
            update[f"{hook}_hook_secret"] = SecretStr(secrets.token_urlsafe(24))
    if "auto_rollback_endpoints" not in settings.model_fields_set:
        update["auto_rollback_endpoints"] = stack.endpoints.rollback_targets
    if update:
        settings = settings.model_copy(update=update)
    from sandbox.smtp_sink import sandbox_email_settings

    emailed = sandbox_email_settings(settings, stack)
    if "ml_engineers_email" in settings.model_fields_set:
        return emailed
    # The sink's recipients stand in for a default: the variable group stays free to
    # change `mlEngineersEmail` while running, as it would without the sandbox.
    return Settings.model_construct(
        _fields_set=emailed.model_fields_set - {"ml_engineers_email"},
        **{name: getattr(emailed, name) for name in Settings.model_fields},
    )


async def start_sandbox_world_afresh(db: Database, stack: SandboxStack) -> ClearedWorld:
    """A sandbox start begins a new emulated world: the store forgets the previous one.

    The emulators replay their scenario from the beginning, so the old records would
    show a wrong world (see store.sandbox_world). Raises SettingsError, clearing
    nothing, for a database holding real Azure data.
    """
    subscriptions = {workspace.subscription_id for workspace in stack.endpoints.workspaces}
    try:
        cleared = await clear_sandbox_world(db, subscriptions)
    except ForeignDataError as exc:
        raise SettingsError(f"sandbox mode: {exc}") from None
    if cleared.anything:
        log.warning(
            "sandbox: the scenario starts again from the beginning, so the previous run's "
            "records were cleared (%d job(s), %d session(s), %d event(s), %d deployment "
            "watch(es)); installations, subscriptions and the audit trail are kept",
            cleared.jobs,
            cleared.sessions,
            cleared.events,
            cleared.watches,
        )
    return cleared


def subscribe_sandbox_hooks(stack: SandboxStack, settings: Settings, base_url: str) -> None:
    """Point the emulated Azure DevOps' service hooks at this bot's `/api/hooks/devops`."""
    key = settings.secret_of_hook("devops")
    stack.service_hooks.subscribe(f"{base_url}/api/hooks/devops?key={key}")


def main(argv: Sequence[str] | None = None) -> int:
    """The `mlbot` command line (cli.py); here so `app:main` and `python app.py` keep working."""
    from cli import main as cli_main  # cli imports this module: import it when called

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
