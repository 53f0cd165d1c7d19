"""End-to-end fixtures: mlbot in sandbox mode and the Agents Playground, as real processes.

Both run in their own process group on free loopback ports, in a temporary directory, and
are stopped (group and all) however the test ends. Their logs go to the temporary
directory; when a test fails they are copied next to its screenshots, in
`artifacts/e2e/<test module without test_>/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts" / "e2e"
NODE_MODULES = ROOT / "node_modules"
PLAYGROUND_CLI = NODE_MODULES / "@microsoft" / "m365agentsplayground" / "cli.js"
LOOPBACK_PRELOAD = E2E_DIR / "loopback.cjs"
PLAYGROUND_CONFIG = E2E_DIR / "playground.yml"
MLBOT = Path(sys.executable).with_name("mlbot")  # the console script of this environment
# What a developer's shell may carry that would change what the processes under test do.
# Settings of ours and of the tools, kept from the child processes. AZUREML_* too: the
# Azure ML SDK records the cloud it used (AZUREML_CURRENT_CLOUD) in this process's
# environment when earlier tests ran it, and that emulator's cloud is unknown to the bot.
_OWN_SETTING = re.compile(
    r"^(MLBOT_|Microsoft|AZURE_|AZUREML_|ARM_CLOUD_METADATA_URL$|M365_AGENTS_PLAYGROUND_"
    r"|TEAMSAPPTESTER_|NODE_OPTIONS$)"
)
_PLAYGROUND_PORT = re.compile(r"Listening on (\d+)")

T = TypeVar("T")


class StepTimeout(AssertionError):
    """A step did not reach its condition in time; the message names the step."""


@dataclass
class Service:
    """A process started for the test, with where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    more_logs: tuple[Path, ...] = ()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def exited(self) -> str | None:
        """None while running; else a sentence with the exit code and the log's tail."""
        code = self.process.poll()
        if code is None:
            return None
        tail = "\n".join(self.log_text().splitlines()[-15:])
        return f"{self.name} exited with code {code}:\n{tail}"


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open together, so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_until(
    step: str,
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    service: Service | None = None,
    interval_s: float = 0.2,
) -> T:
    """Poll `probe` until it returns a value; fail naming `step` on timeout or early exit."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if service is not None and (exit_reason := service.exited()):
            raise StepTimeout(f"step '{step}' failed: {exit_reason}")
        if time.monotonic() > deadline:
            raise StepTimeout(f"step '{step}' timed out after {timeout_s:g} s")
        time.sleep(interval_s)


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes] | None:
    """(status, body) of a GET to a loopback URL, or None if nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except (OSError, ValueError):
        return None


def get_json(url: str) -> Any:
    answer = http_get(url)
    if answer is None or answer[0] != 200:
        raise AssertionError(f"GET {url} answered {answer[0] if answer else 'nothing'}")
    return json.loads(answer[1])


def start_service(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path
) -> Service:
    with log.open("wb") as sink:
        # A session of its own, so stopping it reaches every child (node, workers).
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, log)


def stop_service(service: Service, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`."""
    pid = service.process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        try:
            service.process.wait(timeout=grace_s)
            # The leader is gone; children that ignored SIGTERM still get SIGKILL.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
    service.process.wait(timeout=grace_s)


def base_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not _OWN_SETTING.match(key)}


@dataclass(frozen=True)
class Tools:
    node: str
    chromium: str


@pytest.fixture(scope="session")
def e2e_tools() -> Tools:
    """Node, the npm packages and Chromium; `make pytest` installs all three."""
    node = shutil.which("node")
    chromium = os.environ.get("MLBOT_CHROMIUM") or "/usr/bin/chromium"
    missing = []
    if node is None:
        missing.append("Node.js (`node` on PATH)")
    if not PLAYGROUND_CLI.is_file() or not (NODE_MODULES / "playwright-core").is_dir():
        missing.append("the npm dev packages (make node_modules/.installed)")
    if not Path(chromium).is_file():
        missing.append(f"Chromium at {chromium} (Debian package chromium, or set MLBOT_CHROMIUM)")
    if not MLBOT.is_file():
        missing.append(f"the mlbot command at {MLBOT} (make .venv/.installed)")
    if missing:
        pytest.fail("the end-to-end test needs " + "; ".join(missing), pytrace=False)
    assert node is not None
    return Tools(node=node, chromium=chromium)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """`artifacts/e2e/<test module>/`, emptied first so every picture in it is from this run.

    One folder per module, so a failed test's pictures and logs outlive the tests after it.
    """
    folder = ARTIFACTS / request.path.stem.removeprefix("test_")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class PlaygroundWorld:
    """What the playground simulates (tests/e2e/playground.yml): the bot and the user."""

    bot_name: str
    user_aad_object_id: str
    user_name: str
    team_id: str  # also the conversation id of the team's first channel

    @classmethod
    def load(cls, path: Path = PLAYGROUND_CONFIG) -> PlaygroundWorld:
        config = yaml.safe_load(path.read_text())
        user = config["currentUser"]
        return cls(config["bot"]["name"], user["aadObjectId"], user["name"], config["team"]["id"])


@dataclass
class Playground:
    url: str
    world: PlaygroundWorld
    service: Service


@dataclass
class Bot:
    url: str
    service: Service


@pytest.fixture
def services(
    request: pytest.FixtureRequest, tmp_path: Path, artifacts: Path
) -> Iterator[list[Service]]:
    """Every process the test starts; stopped at the end, logs kept when the test failed."""
    started: list[Service] = []
    yield started
    for service in reversed(started):
        stop_service(service)
    if request.node.stash.get(_FAILED, False):
        for service in started:
            for log in (service.log, *service.more_logs):
                if log.is_file() and log.parent != artifacts:
                    shutil.copy(log, artifacts / log.name)


@dataclass(frozen=True)
class Ports:
    bot: int
    playground: int


@pytest.fixture
def ports() -> Ports:
    bot, playground = free_ports(2)
    return Ports(bot=bot, playground=playground)


@pytest.fixture(scope="session")
def world() -> PlaygroundWorld:
    return PlaygroundWorld.load()


@pytest.fixture
def sandbox_speed() -> float | None:
    """`--speed` of the sandbox; None plays the scenario in real time.

    A test chooses its own by parametrizing this name.
    """
    return None


@pytest.fixture
def sandbox_scenario() -> Path | None:
    """`--scenario` of the sandbox; None plays the default one. Override it to choose."""
    return None


@pytest.fixture
def bot_environment() -> dict[str, str]:
    """Settings a test adds for the bot (e.g. MLBOT_APPROVERS). Override it to choose."""
    return {}


@pytest.fixture
def sandbox_bot(
    world: PlaygroundWorld,
    tmp_path: Path,
    services: list[Service],
    ports: Ports,
    sandbox_speed: float | None,
    sandbox_scenario: Path | None,
    bot_environment: dict[str, str],
) -> Bot:
    """`mlbot serve --sandbox` where the playground sends activities, with a fresh database.

    The playground's signed-in user is an operator, so a card action that changes
    something (a retry) is allowed.
    """
    workdir = tmp_path / "bot"
    workdir.mkdir()  # no .env here: only the settings below apply
    env = {
        **base_env(),
        "MLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'mlbot.db'}",
        "MLBOT_OPERATORS": world.user_aad_object_id,
        "MLBOT_CARD_SIGNING_KEY": os.urandom(24).hex(),
        **bot_environment,
    }
    argv = [str(MLBOT), "serve", "--sandbox", "--host", "127.0.0.1", "--port", str(ports.bot)]
    if sandbox_speed is not None:
        argv += ["--speed", f"{sandbox_speed:g}"]
    if sandbox_scenario is not None:
        argv += ["--scenario", str(sandbox_scenario)]
    service = start_service("mlbot", argv, cwd=workdir, env=env, log=tmp_path / "mlbot.log")
    services.append(service)
    url = f"http://127.0.0.1:{ports.bot}"

    def ready() -> bool | None:
        answer = http_get(f"{url}/readyz")
        return True if answer and answer[0] == 200 else None

    wait_until("start mlbot in sandbox mode (/readyz)", ready, timeout_s=60, service=service)

    def knows_jobs() -> bool | None:
        # The first monitoring pass has stored the scenario's jobs, so `status` lists them
        # (a busy machine may take a few seconds after /readyz).
        answer = http_get(f"{url}/metrics")
        if not answer or answer[0] != 200:
            return None
        jobs = sum(
            float(line.rsplit(" ", 1)[1])
            for line in answer[1].decode().splitlines()
            if line.startswith("mlbot_watched_jobs{")
        )
        return True if jobs > 0 else None

    wait_until("the first monitoring pass (/metrics)", knows_jobs, timeout_s=60, service=service)
    return Bot(url=url, service=service)


@pytest.fixture
def playground(
    e2e_tools: Tools,
    world: PlaygroundWorld,
    sandbox_bot: Bot,
    tmp_path: Path,
    services: list[Service],
    ports: Ports,
) -> Playground:
    """The Agents Playground on loopback, sending activities to the bot (started first)."""
    workdir = tmp_path / "playground"
    workdir.mkdir()
    activity_log = tmp_path / "playground-activities.log"
    env = {
        **base_env(),
        "TEAMSAPPTESTER_BROWSER": "none",  # serve the page only; the test brings a browser
        "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(PLAYGROUND_CONFIG),
        "M365_AGENTS_PLAYGROUND_LOGFILE": str(activity_log),
    }
    argv = [
        e2e_tools.node,
        "--require",
        str(LOOPBACK_PRELOAD),
        str(PLAYGROUND_CLI),
        "--app-endpoint",
        f"{sandbox_bot.url}/api/messages",
        "--channel-id",
        "msteams",
        "--port",
        str(ports.playground),
        "--disable-telemetry",
    ]
    log = tmp_path / "playground.log"
    service = start_service("playground", argv, cwd=workdir, env=env, log=log)
    service.more_logs = (activity_log,)
    services.append(service)

    # It takes another port if the asked one is taken meanwhile: trust what it prints.
    def listening_port() -> int | None:
        found = _PLAYGROUND_PORT.search(service.log_text())
        return int(found.group(1)) if found else None

    port = wait_until("start the playground", listening_port, timeout_s=20, service=service)
    url = f"http://127.0.0.1:{port}"

    def page_served() -> bool | None:
        answer = http_get(f"{url}/")
        return True if answer and answer[0] == 200 and b'<div id="root">' in answer[1] else None

    wait_until("load the playground's web page", page_served, timeout_s=20, service=service)
    return Playground(url=url, world=world, service=service)


def run_browser_script(
    tools: Tools,
    script: str,
    request: dict[str, Any],
    *,
    artifacts: Path,
    services: list[Service],
    timeout_s: float,
) -> dict[str, Any]:
    """Run one of the browser scripts next to this file (see playground_browser.mjs).

    Its last stdout line is the outcome, earlier lines the steps; returns the outcome
    with `steps`, the names of the steps in order. Fails naming the step that failed.
    """
    argv = [
        tools.node,
        "--require",
        str(LOOPBACK_PRELOAD),
        str(E2E_DIR / script),
        json.dumps({**request, "modules": str(NODE_MODULES.parent)}),
    ]
    log = artifacts / "driver.log"
    # pw:browser copies Chromium's own output into the log: a crash says why there.
    env = {**base_env(), "DEBUG": "pw:browser"}
    driver = start_service("browser", argv, cwd=artifacts, env=env, log=log)
    services.append(driver)
    try:
        driver.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_service(driver)
        raise StepTimeout(
            f"step 'drive the playground page' timed out after {timeout_s:g} s; "
            f"steps finished: {[line.get('step') for line in _json_lines(driver.log_text())]}"
        ) from None
    lines = _json_lines(driver.log_text())
    if not lines or "ok" not in lines[-1]:
        raise AssertionError(
            f"the browser script gave no outcome (exit {driver.process.returncode}):\n"
            f"{driver.log_text()[-3000:]}"
        )
    outcome: dict[str, Any] = lines[-1]
    if not outcome["ok"]:
        raise AssertionError(
            f"step '{outcome['step']}' failed in the browser: {outcome['error']}\n"
            f"(screenshots, failure.png, page.html and logs in {artifacts})"
        )
    outcome["steps"] = [line["step"] for line in lines[:-1]]
    return outcome


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"')]
