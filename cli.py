"""mlbot's command line: `mlbot serve | check | watch | manifest | cards`.

Parses arguments, reads the settings (the only place besides the composition root that
reads the environment), and runs a command; what the commands run is wired in app.py.
`python app.py` and the `mlbot` console script both end up in `main` here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from app import (
    AzureClients,
    Runtime,
    SandboxOptions,
    azure_clients_from_settings,
    build_runtime,
    sandbox_settings,
    start_sandbox,
    start_sandbox_world_afresh,
    subscribe_sandbox_hooks,
    utc_now,
)
from bot.notifiers import WebhookNotifier
from config.settings import (
    Settings,
    SettingsError,
    describe_validation_error,
    load_settings,
    secret_values,
)
from config.startup_checks import serving_refusals
from domain.destinations import WEBHOOK
from monitoring.engine import EngineConfig
from monitoring.service_check import (
    CheckResult,
    Verdict,
    all_passed,
    check_azureml,
    check_devops,
    render_check_table,
)
from monitoring.watch import WatchExit, WatchOptions, WatchTarget, run_watch, watch_engine
from service.logs import configure_logging, learn_secrets
from store.database import Database
from store.monitoring import EventRecord, MonitoringStore
from store.pipeline_intents import PipelineIntentStore
from store.replica_lock import DatabaseInUseError, SingleReplicaLock

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack

log = logging.getLogger("mlbot")


def _secrets_of(settings: Settings) -> list[str]:
    return secret_values(settings)


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
    """Run the bot until interrupted. Raises SettingsError for an unsafe combination."""
    refusals = serving_refusals(settings)
    if refusals:
        raise SettingsError("; ".join(refusals))
    # Before anything starts: a second process on one SQLite file would repeat all the work.
    with SingleReplicaLock(settings.database_url):
        await _serve(settings, sandbox)


async def _serve(settings: Settings, sandbox: SandboxOptions | None) -> None:
    stack: SandboxStack | None = None
    clock: Callable[[], datetime] = utc_now
    if settings.use_sandbox:
        log.warning("SANDBOX MODE: no Azure settings, starting local Azure emulators")
        stack, clients = await start_sandbox(settings, sandbox or SandboxOptions())
        _announce_sandbox(clients, stack, settings)
        settings = sandbox_settings(settings, stack)
        learn_secrets(secret_values(settings))  # the hook secrets sandbox mode made up
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

            # Before the scheduler starts (at serving): the engine sees only the new world.
            await start_sandbox_world_afresh(runtime.db, stack)

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
        azure.executors.shutdown()
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
        intents=PipelineIntentStore(db),
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
                    await webhook.deliver(event, WEBHOOK)

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
            clients.executors.shutdown()
            await db.dispose()
            if stack is not None:
                await stack.stop()
    return int(outcome.exit_code)


def run_sandbox(scenario: Path | None, speed: float, port: int, env_file: Path | None) -> int:
    """`mlbot sandbox`: serve until interrupted; 2 when the scenario cannot be read."""
    from sandbox.scenario import ScenarioError
    from sandbox.standalone import serve_sandbox

    def emit(text: str) -> None:
        print(text, flush=True)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_sandbox(scenario, speed, port, env_file=env_file, emit=emit))
    except (ScenarioError, OSError) as exc:
        print(f"mlbot sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


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
    sandbox_cmd = commands.add_parser(
        "sandbox",
        help="serve the emulated Azure alone and print the settings a real-mode "
        "`mlbot serve` needs to use it",
    )
    sandbox_cmd.add_argument("--scenario", type=Path, help="scenario file (YAML)")
    sandbox_cmd.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per real second (e.g. 60)",
    )
    sandbox_cmd.add_argument(
        "--port",
        dest="control_port",
        type=int,
        default=0,
        help="port of the /_sandbox/ control API (default: any free port)",
    )
    sandbox_cmd.add_argument(
        "--env-file", type=Path, help="also write the settings to this file (.env format)"
    )
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
        if command == "sandbox":
            return run_sandbox(args.scenario, args.speed, args.control_port, args.env_file)
        if command == "manifest":
            from manifest.package import manifest_command

            return manifest_command(settings, args.out)
        if command == "cards":
            from sandbox.card_catalog import cards_command
            from sandbox.card_pictures import pictures_command

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
    except DatabaseInUseError as exc:
        print(f"mlbot: {exc}", file=sys.stderr)
        return 2
    return 0
