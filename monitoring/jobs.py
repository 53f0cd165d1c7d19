"""Training jobs now live in the domain (`domain.jobs`)."""

from domain.jobs import JobState, TrainingJob, Workspace

__all__ = ["JobState", "TrainingJob", "Workspace"]
