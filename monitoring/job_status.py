"""What each Azure ML job status means to people watching the job."""

from __future__ import annotations

from types import MappingProxyType

from domain.jobs import JobState

# Every status Azure ML documents for jobs. Keys are lower-case: the service is not
# consistent about casing across API versions.
_STATES: MappingProxyType[str, JobState] = MappingProxyType(
    {
        "notstarted": JobState.WAITING,
        "starting": JobState.WAITING,
        "provisioning": JobState.WAITING,
        "preparing": JobState.WAITING,
        "queued": JobState.WAITING,
        "running": JobState.RUNNING,
        # User code has finished but outputs are still being uploaded: not done yet.
        "finalizing": JobState.RUNNING,
        # The job may still be running; only "Canceled" means it stopped.
        "cancelrequested": JobState.RUNNING,
        "completed": JobState.COMPLETED,
        "failed": JobState.FAILED,
        "canceled": JobState.CANCELED,
        "cancelled": JobState.CANCELED,  # spelling used by some Azure services
        # No heartbeat: the job may be alive or dead, nobody can tell yet.
        "notresponding": JobState.UNKNOWN,
        # Paused jobs hold their place and resume without a new submission.
        "paused": JobState.WAITING,
        "unknown": JobState.UNKNOWN,
    }
)

AZUREML_STATUSES: tuple[str, ...] = (
    "NotStarted",
    "Starting",
    "Provisioning",
    "Preparing",
    "Queued",
    "Running",
    "Finalizing",
    "CancelRequested",
    "Completed",
    "Failed",
    "Canceled",
    "NotResponding",
    "Paused",
    "Unknown",
)


def job_state(status: str | None) -> JobState:
    """Map an Azure ML status to a `JobState`; anything unrecognised is UNKNOWN."""
    if not status:
        return JobState.UNKNOWN
    return _STATES.get(status.strip().lower(), JobState.UNKNOWN)
