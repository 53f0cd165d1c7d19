"""Azure ML run times in the forms Azure ML writes them.

Jobs' `properties.StartTimeUtc` / `EndTimeUtc` are written by the run history service as
`"2026-03-31 18:14:56"` (UTC, no zone, as `az ml job show` prints them); ARM's
`systemData.createdAt` is ISO 8601 with a `Z` and up to seven fractional digits
(Azure/azure-rest-api-specs,
`specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2024-04-01/examples/Job/CommandJob/list.json`
at 96125316b83dfc7039e03c13f5b491df246ff3a3: `"createdAt": "2020-01-01T12:34:56.999Z"`).
"""

from __future__ import annotations

import datetime as dt

import pytest

from monitoring.azureml import parse_time
from sandbox.azureml_emulator import EmulatedJob

UTC = dt.UTC


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2026-03-31 18:14:56", dt.datetime(2026, 3, 31, 18, 14, 56, tzinfo=UTC)),
        ("2020-01-01T12:34:56.999Z", dt.datetime(2020, 1, 1, 12, 34, 56, 999000, tzinfo=UTC)),
        ("2020-11-19T08:14:49.5793622Z", dt.datetime(2020, 11, 19, 8, 14, 49, 579362, tzinfo=UTC)),
        ("2026-03-31T20:14:56+02:00", dt.datetime(2026, 3, 31, 18, 14, 56, tzinfo=UTC)),
    ],
)
def test_run_times_are_read_in_every_written_form(written: str, meant: dt.datetime) -> None:
    assert parse_time(written) == meant


def test_unreadable_times_are_unknown_not_an_error() -> None:
    assert parse_time("yesterday") is None and parse_time("") is None and parse_time(None) is None


def test_the_emulator_writes_run_times_as_azure_ml_does() -> None:
    from domain.jobs import Workspace

    job = EmulatedJob(
        workspace=Workspace("sub", "rg", "ws"),
        name="job-1",
        status="Completed",
        started_at=dt.datetime(2026, 3, 31, 18, 14, 56, 123456, tzinfo=UTC),
        ended_at=dt.datetime(2026, 3, 31, 19, 0, 1, tzinfo=UTC),
    )
    properties = job.to_rest("https://ml.azure.com")["properties"]["properties"]
    assert properties["StartTimeUtc"] == "2026-03-31 18:14:56"
    assert properties["EndTimeUtc"] == "2026-03-31 19:00:01"
