"""Every Azure ML job status maps to the state people care about."""

from __future__ import annotations

import pytest

from domain.jobs import JobState
from monitoring.job_status import AZUREML_STATUSES, job_state

EXPECTED = {
    "NotStarted": JobState.WAITING,
    "Starting": JobState.WAITING,
    "Provisioning": JobState.WAITING,
    "Preparing": JobState.WAITING,
    "Queued": JobState.WAITING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "CancelRequested": JobState.RUNNING,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELED,
    "NotResponding": JobState.UNKNOWN,
    "Paused": JobState.WAITING,
    "Unknown": JobState.UNKNOWN,
}


def test_all_fourteen_documented_statuses_are_known() -> None:
    assert len(AZUREML_STATUSES) == 14
    assert set(AZUREML_STATUSES) == set(EXPECTED)


@pytest.mark.parametrize(("status", "state"), sorted(EXPECTED.items()))
def test_status_maps_to_state(status: str, state: JobState) -> None:
    assert job_state(status) is state


@pytest.mark.parametrize("status", ["running", "RUNNING", " Running "])
def test_casing_and_whitespace_do_not_matter(status: str) -> None:
    assert job_state(status) is JobState.RUNNING


@pytest.mark.parametrize("status", ["", None, "Exploded", "Complete", "Scheduled"])
def test_unrecognised_statuses_are_unknown(status: str | None) -> None:
    assert job_state(status) is JobState.UNKNOWN


def test_only_completed_failed_and_canceled_are_terminal() -> None:
    terminal = {s for s in AZUREML_STATUSES if job_state(s).is_terminal}
    assert terminal == {"Completed", "Failed", "Canceled"}
