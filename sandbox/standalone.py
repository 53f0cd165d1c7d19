"""`mlbot sandbox`: the emulated Azure alone, for a real-mode `mlbot serve` to use.

`serve --sandbox` wires the emulators into the bot in-process. This command instead
serves them as a separate process and prints the settings a user would type for real
Azure, pointed at them: the Resource Manager and Entra ID endpoints of the sandbox's
cloud, its CA bundle, a service principal, the Azure DevOps organization and PAT, the
mail sink. Several `mlbot serve` processes can share one sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from sandbox.arm_front import ArmFront
from sandbox.entra_emulator import EntraEmulator
from sandbox.stack import SandboxEndpoints, SandboxStack

log = logging.getLogger(__name__)

READY_LINE = "# the sandbox is ready"


def real_mode_settings(
    endpoints: SandboxEndpoints,
    front: ArmFront,
    recipients: tuple[str, ...] = ("ml-engineers@sandbox.local",),
) -> dict[str, str]:
    """The environment of a real-mode `mlbot serve` that uses this sandbox (ordered)."""
    principal = front.entra.principal
    settings = {
        "MLBOT_SANDBOX": "false",
        "MLBOT_AZURE_SUBSCRIPTION_ID": endpoints.subscription_id,
        "MLBOT_AZURE_RESOURCE_GROUP": endpoints.resource_group,
        "MLBOT_AZUREML_WORKSPACES": ",".join(
            f"{ws.subscription_id}/{ws.resource_group}/{ws.name}" for ws in endpoints.workspaces
        ),
        "MLBOT_AZURE_RESOURCE_MANAGER_URL": front.base_url,
        "MLBOT_AZURE_AUTHORITY_HOST": front.base_url,
        "MLBOT_AZURE_CREDENTIAL": "environment",
        "MLBOT_CA_BUNDLE": front.ca_path,
        "AZURE_TENANT_ID": principal.tenant_id,
        "AZURE_CLIENT_ID": principal.client_id,
        "AZURE_CLIENT_SECRET": principal.client_secret,
        "MLBOT_DEVOPS_ORG_URL": endpoints.devops_org_url,
        "MLBOT_DEVOPS_PROJECT": endpoints.devops_project,
        "MLBOT_DEVOPS_PAT": endpoints.devops_pat,
        "MLBOT_TRAINING_PIPELINE": endpoints.training_pipeline,
        "MLBOT_ROLLBACK_PIPELINE": endpoints.rollback_pipeline,
    }
    if endpoints.rollback_targets:
        settings["MLBOT_AUTO_ROLLBACK_ENDPOINTS"] = ",".join(endpoints.rollback_targets)
    if endpoints.smtp_port is not None:
        settings |= {
            "MLBOT_SMTP_HOST": "127.0.0.1",
            "MLBOT_SMTP_PORT": str(endpoints.smtp_port),
            "MLBOT_SMTP_SECURITY": "none",
            "MLBOT_ML_ENGINEERS_EMAIL": ",".join(recipients),
        }
    return settings


def settings_text(settings: dict[str, str], control_url: str) -> str:
    """The lines `mlbot sandbox` prints: a .env file a real-mode `mlbot serve` can read."""
    lines = [
        "# mlbot sandbox: emulated Azure ML, Azure Monitor, Entra ID, Azure DevOps and mail.",
        "# Put these lines in the environment (or .env) of `mlbot serve`; they are the",
        "# settings real Azure takes, pointed at 127.0.0.1. Nothing here reaches Azure.",
        f"# control API and emulated state: {control_url}",
    ]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)  # it holds the sandbox's (throwaway) secrets


async def serve_sandbox(
    scenario: Path | None,
    speed: float,
    port: int,
    *,
    env_file: Path | None = None,
    emit: Callable[[str], None] = print,
) -> None:
    """Serve the sandbox until cancelled; print (and optionally write) its settings."""
    from sandbox.control_api import add_sandbox_routes
    from sandbox.scenario import DEFAULT_SCENARIO_PATH, load_scenario

    stack = SandboxStack(load_scenario(scenario or DEFAULT_SCENARIO_PATH), speed=speed)
    endpoints = await stack.start()
    front = ArmFront(stack.azureml, stack.metrics, EntraEmulator())
    runner: web.AppRunner | None = None
    try:
        await front.start()
        control = web.Application()
        add_sandbox_routes(control, stack)
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        control_port = runner.addresses[0][1]
        group = stack.scenario.variable_groups.get("mlops-pipeline-settings", {})
        recipients = tuple(
            part.strip() for part in group.get("mlEngineersEmail", "").split(",") if part.strip()
        )
        settings = real_mode_settings(endpoints, front, recipients or ("ml@sandbox.local",))
        text = settings_text(settings, f"http://127.0.0.1:{control_port}/_sandbox/state")
        if env_file is not None:
            await asyncio.to_thread(_write_private, env_file, text)
        emit(text + READY_LINE)
        stopped = asyncio.Event()
        # SIGTERM (a container stop, a test's terminate) ends as cleanly as Ctrl-C.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await front.stop()
        await stack.stop()
