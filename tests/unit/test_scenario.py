"""Sandbox scenarios (parsing and validation) and the sandbox clocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sandbox.clock import ManualClock, SimClock, describe
from sandbox.scenario import (
    DEFAULT_SCENARIO_PATH,
    AttemptPlan,
    ScenarioError,
    TimedPipelineSpec,
    job_plan_from_dict,
    load_scenario,
    parse_scenario,
    scenario_from_dict,
)

MINIMAL = """
name: tiny
workspaces:
  - name: ws-one
    circuits: [PLANT001/CIRCUIT01, PLANT001/CIRCUIT02]
jobs:
  - circuit: PLANT001/CIRCUIT01
    duration_s: 60
"""


def base(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "workspaces": [{"name": "ws-one", "circuits": ["PLANT001/CIRCUIT01"]}],
    }
    data.update(overrides)
    return data


def error_of(data: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    return caught.value


# --- the default scenario --------------------------------------------------------------


def test_default_scenario_is_found_next_to_the_module_and_loads() -> None:
    assert DEFAULT_SCENARIO_PATH.is_file()
    scenario = load_scenario()
    assert scenario.name == "default"
    assert len(scenario.workspaces) == 1
    assert scenario.circuits[0] == "PLANT001/CIRCUIT01"
    assert scenario.circuits[-1] == "PLANT003/CIRCUIT02"
    assert len(scenario.circuits) == 7
    # One circuit fails on every attempt, to show retries running out.
    exhausted = [p for p in scenario.jobs if p.circuit == "PLANT002/CIRCUIT03"]
    assert [p.attempt(n).outcome for p in exhausted for n in (1, 2, 3)] == ["Failed"] * 3


def test_default_scenario_shows_something_in_the_first_minute() -> None:
    scenario = load_scenario()
    starts = [p for p in scenario.jobs if p.start_after_s is not None]
    # Jobs running within seconds; one finishing within about a minute.
    assert any(p.start_after_s == 0 and p.not_started_s + p.queued_s <= 5 for p in starts)
    assert any(
        p.attempt(1).outcome == "Completed"
        and p.start_after_s is not None
        and p.start_after_s + p.not_started_s + p.queued_s + p.attempt(1).duration_s <= 60
        for p in starts
    )
    # One that fails once and succeeds on retry.
    assert any(
        p.attempt(1).outcome == "Failed" and p.attempt(2).outcome == "Completed" for p in starts
    )
    # One long-running job passing 4 h of run time early on.
    assert any(
        p.start_after_s is not None
        and p.start_after_s + p.not_started_s + p.queued_s + 4 * 3600 <= 60
        and p.attempt(1).duration_s > 4 * 3600
        and p.start_after_s + p.not_started_s + p.queued_s + p.attempt(1).duration_s > 60
        for p in starts
    )
    assert [(a.environment, a.pipeline) for a in scenario.approvals] == [
        ("prod", "deployment-pipeline")
    ]
    settings = scenario.variable_groups["mlops-pipeline-settings"]
    assert settings["monitoringPollIntervalSeconds"] == "30"


# --- parsing ---------------------------------------------------------------------------


def test_minimal_scenario_gets_defaults() -> None:
    scenario = parse_scenario(MINIMAL)
    assert scenario.name == "tiny"
    assert scenario.workspace_of("PLANT001/CIRCUIT02") == "ws-one"
    assert scenario.workspace_of("PLANT009/CIRCUIT01") is None
    plan = scenario.job_plan("PLANT001/CIRCUIT01")
    assert plan is not None
    assert plan.start_after_s == 0
    assert plan.attempts == (AttemptPlan("Completed", 60.0),)
    assert scenario.job_plan("PLANT001/CIRCUIT02") is None
    assert scenario.pipelines.names == (
        "training-pipeline",
        "deployment-pipeline",
        "rollback-pipeline",
    )
    assert scenario.pipelines.training.circuits_parameter == "manualCircuits"
    assert scenario.start is None
    assert scenario.approvals == ()


def test_attempts_follow_the_outcomes_and_repeat_the_last() -> None:
    plan = job_plan_from_dict(
        {
            "circuit": "PLANT001/CIRCUIT01",
            "duration_s": [30, 90],
            "outcomes": ["failed", "Completed"],  # case-insensitive
            "error_message": "boom",
        }
    )
    assert plan.attempt(1) == AttemptPlan("Failed", 30.0, "boom")
    assert plan.attempt(2) == AttemptPlan("Completed", 90.0, None)  # no error on success
    assert plan.attempt(3) == plan.attempt(2)


def test_single_values_stand_for_every_attempt() -> None:
    plan = job_plan_from_dict(
        {"circuit": "A/B", "duration_s": 10, "outcomes": "Failed", "start_after_s": None}
    )
    assert plan.attempts == (AttemptPlan("Failed", 10.0, plan.attempts[0].error_message),)
    assert plan.attempts[0].error_message
    assert plan.start_after_s is None


def test_negative_start_means_submitted_before_the_sandbox_started() -> None:
    plan = job_plan_from_dict({"circuit": "A/B", "duration_s": 10, "start_after_s": -3600})
    assert plan.start_after_s == -3600


def test_start_time_and_variable_values_are_normalised() -> None:
    scenario = scenario_from_dict(
        base(
            start="2026-03-01T08:00:00Z",
            variable_groups={"g": {"n": 30, "flag": True, "empty": None, "text": "x"}},
        )
    )
    assert scenario.start == dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
    assert scenario.variable_groups == {"g": {"n": "30", "flag": "true", "empty": "", "text": "x"}}


def test_pipelines_and_approvals() -> None:
    scenario = scenario_from_dict(
        base(
            pipelines={
                "training": {"name": "train", "submit_after_s": 5},
                "deployment": {
                    "name": "deploy",
                    "duration_s": [10, 20],
                    "result": ["failed", "succeeded"],
                },
                "rollback": {"duration_s": 7},
            },
            approvals=[{"pipeline": "deploy", "environment": "prod"}],
        )
    )
    assert scenario.pipelines.names == ("train", "deploy", "rollback-pipeline")
    assert scenario.pipelines.deployment.run(1) == (10.0, "failed")
    assert scenario.pipelines.deployment.run(5) == (20.0, "succeeded")
    assert scenario.pipelines.rollback.run(1) == (7.0, "succeeded")
    approval = scenario.approvals[0]
    assert (approval.pipeline, approval.stage, approval.environment) == ("deploy", "prod", "prod")


def test_timed_pipeline_repeats_its_last_entry() -> None:
    spec = TimedPipelineSpec("p", (1.0, 2.0), ("succeeded",))
    assert [spec.run(n) for n in (1, 2, 3)] == [(1.0, "succeeded"), (2.0, "succeeded")] * 1 + [
        (2.0, "succeeded")
    ]


# --- validation errors name the field --------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"name": "x"}, "workspaces", "required"),
        (base(workspaces=[]), "workspaces", "empty"),
        (
            base(workspaces=[{"name": "w", "circuits": ["nocircuit"]}]),
            "workspaces[0].circuits[0]",
            "PLANT/CIRCUIT",
        ),
        (
            base(
                workspaces=[{"name": "a", "circuits": ["P/C"]}, {"name": "b", "circuits": ["P/C"]}]
            ),
            "workspaces[1].circuits[0]",
            "already in workspace a",
        ),
        (base(workspaces=[{"name": "a"}, {"name": "A"}]), "workspaces[1].name", "twice"),
        (base(jobs=[{"circuit": "PLANT001/CIRCUIT01"}]), "jobs[0].duration_s", "required"),
        (
            base(jobs=[{"circuit": "PLANT001/CIRCUIT01", "duration": 5}]),
            "jobs[0].duration",
            "unknown field",
        ),
        (
            base(
                jobs=[
                    {
                        "circuit": "PLANT001/CIRCUIT01",
                        "duration_s": 5,
                        "outcomes": ["Failed", "Done"],
                    }
                ]
            ),
            "jobs[0].outcomes[1]",
            "Completed, Failed, Canceled",
        ),
        (
            base(
                jobs=[
                    {
                        "circuit": "PLANT001/CIRCUIT01",
                        "duration_s": [5],
                        "outcomes": ["Failed", "Completed"],
                    }
                ]
            ),
            "jobs[0].duration_s",
            "one per attempt",
        ),
        (
            base(jobs=[{"circuit": "PLANT001/CIRCUIT01", "duration_s": -1}]),
            "jobs[0].duration_s[0]",
            "at least 0",
        ),
        (
            base(jobs=[{"circuit": "PLANT001/CIRCUIT01", "duration_s": True}]),
            "jobs[0].duration_s[0]",
            "boolean",
        ),
        (
            base(jobs=[{"circuit": "PLANT001/CIRCUIT01", "duration_s": "5"}]),
            "jobs[0].duration_s[0]",
            "text",
        ),
        (
            base(jobs=[{"circuit": "PLANT009/CIRCUIT01", "duration_s": 5}]),
            "jobs[0].circuit",
            "not a circuit of any",
        ),
        (
            base(jobs=[{"circuit": "PLANT001/CIRCUIT01", "duration_s": 5}] * 2),
            "jobs[1].circuit",
            "already has a plan",
        ),
        (base(jobs={"circuit": "x"}), "jobs", "list"),
        (base(jobs=["x"]), "jobs[0]", "mapping"),
        (base(start="yesterday"), "start", "ISO-8601"),
        (base(colour="blue"), "colour", "unknown field"),
        (
            base(pipelines={"training": {"name": "p"}, "rollback": {"name": "p"}}),
            "pipelines",
            "distinct",
        ),
        (
            base(pipelines={"rollback": {"result": "ok"}}),
            "pipelines.rollback.result[0]",
            "succeeded",
        ),
        (
            base(approvals=[{"pipeline": "nope", "environment": "prod"}]),
            "approvals[0].pipeline",
            "unknown pipeline",
        ),
        (
            base(approvals=[{"pipeline": "deployment-pipeline"}]),
            "approvals[0].environment",
            "required",
        ),
        (base(variable_groups={"g": {"k": [1, 2]}}), "variable_groups.g.k", "single value"),
        ("not a mapping", "scenario", "mapping"),
    ],
)
def test_errors_name_the_bad_field(data: Any, field: str, words: str) -> None:
    error = error_of(data)
    assert error.field == field
    assert words in str(error)
    assert str(error).startswith(f"{field}: ")


def test_yaml_syntax_error_names_the_source() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("workspaces: [unclosed", source="my.yaml")
    assert caught.value.field == "my.yaml"
    assert "not valid YAML" in str(caught.value)


def test_empty_document_is_refused() -> None:
    with pytest.raises(ScenarioError, match="is empty"):
        parse_scenario("")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(missing)
    assert caught.value.field == str(missing)


# --- clocks ----------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def test_sim_clock_runs_speed_times_faster_than_real_time() -> None:
    real = FakeMonotonic()
    start = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    clock = SimClock(60, start, monotonic=real)
    assert clock.now() == start
    real.value += 3.0  # three real seconds
    assert clock.now() == start + dt.timedelta(minutes=3)
    real.value += 180.0  # three real minutes play three simulated hours
    assert clock.now() == start + dt.timedelta(hours=3, minutes=3)
    assert clock.speed == 60
    assert clock.start == start


def test_sim_clock_defaults_to_now_and_reads_naive_start_as_utc() -> None:
    before = dt.datetime.now(dt.UTC)
    assert SimClock(1).now() >= before
    naive = SimClock(2, dt.datetime(2026, 1, 1), monotonic=FakeMonotonic())
    assert naive.now().tzinfo is dt.UTC


@pytest.mark.parametrize("speed", [0, -1.0, float("nan")])
def test_sim_clock_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed)


def test_manual_clock_moves_only_when_advanced() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    clock = ManualClock(start)
    assert clock.now() == start
    assert clock.advance(90) == start + dt.timedelta(seconds=90)
    assert clock.now() == start + dt.timedelta(seconds=90)
    with pytest.raises(ValueError):
        clock.advance(-1)
    info = describe(clock)
    assert info["elapsed_s"] == 90
    assert info["start"] == start.isoformat()
