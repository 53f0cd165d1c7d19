"""/metrics tracks training over time, and the Grafana dashboard in docs/ uses only what
/metrics exposes. The sandbox plays its default scenario (completions, a failure and its
automatic retry); the bot runs over real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import SandboxBot, StartSandboxBot
from tests.integration.test_living_cards import install_in_channel, play
from tests.standins.connector import ConnectorStandIn
from tests.unit.test_training_metrics import metric_names

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "mlbot-training.json"
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def _scrape(bot: SandboxBot) -> str:
    async with bot.session.get(f"{bot.url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def _value(text: str, name: str, **labels: str) -> float:
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            have = set((match["labels"] or "").split(",")) if match["labels"] else set()
            if wanted <= have:
                total += float(match["value"])
    return total


async def test_metrics_count_what_the_scenario_did(
    start_sandbox_bot: StartSandboxBot, connector: ConnectorStandIn
) -> None:
    bot = await start_sandbox_bot({"MLBOT_GROUP_WAIT_SECONDS": "0"})
    await install_in_channel(bot, connector)
    before = await _scrape(bot)
    assert _value(before, "mlbot_training_outcomes_total") == 0
    await play(bot, 20 * 60)
    after = await _scrape(bot)

    failed = await bot.runtime.monitoring.events_of_kind("training_failed")
    completed = await bot.runtime.monitoring.events_of_kind("training_completed")
    experiment = "circuit-training"
    assert failed and completed
    assert _value(
        after, "mlbot_training_outcomes_total", experiment=experiment, outcome="failed"
    ) == len(failed)
    assert _value(
        after, "mlbot_training_outcomes_total", experiment=experiment, outcome="completed"
    ) == len(completed)
    assert _value(after, "mlbot_training_retries_total") >= 1
    assert _value(after, "mlbot_training_duration_seconds_count", outcome="completed") == len(
        completed
    )
    assert _value(after, "mlbot_detection_delay_seconds_count") == len(failed) + len(completed)
    assert _value(after, "mlbot_delivery_latency_seconds_count") > 0
    # A second scrape adds nothing that did not happen.
    again = await _scrape(bot)
    assert _value(again, "mlbot_training_outcomes_total") == _value(
        after, "mlbot_training_outcomes_total"
    )


async def test_the_grafana_dashboard_uses_only_metrics_mlbot_exposes(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot()
    exposed = metric_names((await _scrape(bot)).splitlines())
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for expr in exprs for name in re.findall(r"\bmlbot_[a-z_]+", expr)}
    assert used, "the dashboard queries no mlbot metric"
    for name in sorted(used):
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family in exposed, f"{name} is not in /metrics"
        if name != family:
            assert exposed[family] == "histogram", f"{name}: {family} is not a histogram"
    # Quantiles are taken of histograms only, per bucket.
    for expr in exprs:
        for inner in re.findall(r"histogram_quantile\([^,]+,(.*)\)", expr):
            assert "_bucket" in inner
