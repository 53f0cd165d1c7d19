"""How the cards that list jobs lay them out: whole circuit names, one order everywhere."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cards.session import render_session_card
from cards.status import render_status_card
from domain.jobs import JobState, TrainingJob
from domain.monitoring import JobRecord, SessionRecord
from domain.status import JobPage, build_status_report, status_order
from tests.unit.card_rows import job_rows
from tests.unit.test_event_cards import assert_valid

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

# One of each state, in an order that is none of the orders a card could use.
MIXED = [
    ("PLANT002/CIRCUIT03", JobState.COMPLETED),
    ("PLANT001/CIRCUIT02", JobState.FAILED),
    ("PLANT003/CIRCUIT01", JobState.WAITING),
    ("PLANT001/CIRCUIT01", JobState.RUNNING),
    ("PLANT002/CIRCUIT01", JobState.CANCELED),
    ("PLANT002/CIRCUIT02", JobState.UNKNOWN),
    ("PLANT000/CIRCUIT09", JobState.RUNNING),
]


def training_job(circuit: str, state: JobState) -> TrainingJob:
    return TrainingJob(
        workspace="s/r/w",
        name=f"train-{circuit.lower().replace('/', '-')}-1",
        display_name=f"train-{circuit.lower().replace('/', '-')}-1",
        experiment="circuit-training",
        circuit=circuit,
        status=state.value.title(),
        state=state,
        started_at=NOW - timedelta(minutes=30) if state is not JobState.WAITING else None,
        studio_url="https://ml.azure.com/runs/x",
    )


def record(job: TrainingJob) -> JobRecord:
    return JobRecord(
        job=job,
        session_id=1,
        first_seen_at=NOW,
        observed_at=NOW,
        running_since=None,
        announced_start=True,
        timed_out=False,
        reminders_sent=0,
        cancel_requested_at=None,
    )


SESSION = SessionRecord(
    id=1,
    kind="experiment",
    key="experiment:ws:circuit-training",
    title="circuit-training",
    workspace="s/r/w",
    pipeline_run_id=None,
    status="active",
    started_at=NOW - timedelta(hours=1),
    checks_done=3,
    last_check_at=NOW,
    next_check_at=NOW,
    created_by=None,
)


def status_card(jobs: list[TrainingJob], **report: Any) -> dict[str, Any]:
    counts: dict[JobState, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    built = build_status_report(JobPage(jobs, counts), NOW)
    if report:
        built = dataclasses.replace(built, **report)
    return render_status_card(built)


def test_status_and_living_card_list_jobs_in_the_same_order() -> None:
    jobs = [training_job(circuit, state) for circuit, state in MIXED]
    from_status = [row.circuit for row in job_rows(status_card(jobs))]
    living = render_session_card(SESSION, [record(job) for job in jobs], NOW)
    from_living = [row.circuit for row in job_rows(living)]
    assert (
        from_status
        == from_living
        == [
            "PLANT000/CIRCUIT09",  # running, by circuit
            "PLANT001/CIRCUIT01",
            "PLANT003/CIRCUIT01",  # waiting
            "PLANT002/CIRCUIT02",  # unknown
            "PLANT001/CIRCUIT02",  # failed
            "PLANT002/CIRCUIT01",  # canceled
            "PLANT002/CIRCUIT03",  # completed
        ]
    )
    assert from_status == [j.circuit for j in sorted(jobs, key=status_order)]


def test_circuit_state_and_elapsed_are_never_wrapped() -> None:
    jobs = [training_job(circuit, state) for circuit, state in MIXED]
    for card in (
        status_card(jobs),
        render_session_card(SESSION, [record(job) for job in jobs], NOW),
    ):
        rows = job_rows(card)
        assert len(rows) == len(MIXED)
        for row in rows:
            # Kept on one line: the circuit, the state and the elapsed time.
            assert row.unwrapped == (row.circuit, row.state, row.elapsed)
            # Nothing else shares the circuit's line that could push it to wrap.
            assert row.detail.startswith("attempt 1 · [train-")
        assert not any(el["type"] in ("FactSet", "Table") for el in card["body"])
        assert_valid(card, "1.5")


def test_a_row_puts_the_circuit_beside_its_state_in_two_columns() -> None:
    card = status_card([training_job("PLANT001/CIRCUIT01", JobState.RUNNING)])
    [row_set] = [el for el in card["body"] if el["type"] == "ColumnSet"]
    left, right = row_set["columns"]
    # The circuit takes what the state leaves: on a phone the state stays readable.
    assert (left["width"], right["width"]) == ("stretch", "auto")
    assert [b["horizontalAlignment"] for b in right["items"]] == ["Right", "Right"]


def test_status_before_the_first_check_says_it_is_under_way() -> None:
    waiting = json.dumps(status_card([], first_check_pending=True))
    assert "first check of the watched workspaces is under way" in waiting
    assert "Nothing is being watched" not in waiting
    after = json.dumps(status_card([]))
    assert "Nothing is being watched" in after and "under way" not in after
    # Jobs already in the store (a restart): shown, with a note that a check is running.
    known = json.dumps(
        status_card(
            [training_job("PLANT001/CIRCUIT01", JobState.RUNNING)], first_check_pending=True
        )
    )
    assert "PLANT001/CIRCUIT01" in known and "Checking Azure ML" in known


def _readme_example() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    after = readme.split("A `status` card looks like this in a channel", 1)[1]
    block = after.split("```\n", 2)[1]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_the_readme_shows_what_the_status_card_says() -> None:
    jobs = [
        dataclasses.replace(
            training_job("PLANT002/CIRCUIT02", JobState.FAILED),
            display_name="train PLANT002/CIRCUIT02",
            attempt=2,
            started_at=NOW - timedelta(minutes=30),
            ended_at=NOW - timedelta(minutes=20),
        ),
        dataclasses.replace(
            training_job("PLANT001/CIRCUIT01", JobState.RUNNING),
            display_name="train PLANT001/CIRCUIT01",
            started_at=NOW - timedelta(hours=1, minutes=5),
        ),
        dataclasses.replace(
            training_job("PLANT003/CIRCUIT02", JobState.WAITING),
            display_name="train PLANT003/CIRCUIT02",
        ),
    ]
    card = status_card(jobs)
    shown = [card["body"][0]["text"], card["body"][1]["text"]]
    for row in job_rows(card):
        detail = re.sub(r"\[(.*?)\]\(.*?\)", r"\1", row.detail)  # the link's text
        shown += [f"{row.circuit} {row.state}", f"{detail} {row.elapsed}"]
    shown.append(card["body"][-1]["text"])
    assert [" ".join(line.split()) for line in _readme_example()] == shown
