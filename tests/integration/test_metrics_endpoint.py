"""GET /metrics over HTTP: Prometheus text with what the store holds, nothing secret."""

from __future__ import annotations

import re

from service.prometheus import render_metrics
from store.gauges import StoreGauges
from tests.conftest import StartSandboxBot

LINE = re.compile(r'^(#.*|[a-z_]+(\{([a-z_]+="(\\.|[^"\\])*",?)*\})? -?[0-9.e+]+)$')


def test_the_text_format_is_well_formed_and_escapes_labels() -> None:
    text = render_metrics(
        StoreGauges(jobs_by_state={'odd"state': 2, "running": 3}),
        version="1.2.3",
        revision=None,
    )
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    assert 'mlbot_watched_jobs{state="odd\\"state"} 2' in lines
    assert 'mlbot_info{schema_revision="none",version="1.2.3"} 1' in lines
    assert "mlbot_deployment_watches" in text  # families are there before any sample
    assert text.endswith("\n")


async def test_metrics_count_the_sandbox_jobs_and_events(
    start_sandbox_bot: StartSandboxBot,
) -> None:
    bot = await start_sandbox_bot({"MLBOT_DEVOPS_HOOK_SECRET": "not-in-the-metrics"})
    bot.stack.tick(bot.clock.advance(120))
    assert bot.runtime.engine is not None
    await bot.runtime.engine.tick()
    async with bot.session.get(f"{bot.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }
    jobs = sum(v for k, v in values.items() if k.startswith("mlbot_watched_jobs{"))
    assert jobs == len(bot.stack.state()["jobs"]) > 0
    assert values["mlbot_events"] >= 1
    assert values["mlbot_events_undelivered"] == values["mlbot_events"]  # nothing sent yet
    assert "not-in-the-metrics" not in text
