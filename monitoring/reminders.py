"""Long-running reminders: a nudge every interval (4 h) while a started job is not finished.

Reminder number i is due `i * interval` after the job started (4 h, 8 h, 12 h, ...). They go
on until the job is terminal, also after the monitoring session's max wait: the people who
own the job still want to hear that it is running.

Reminders are numbered by the interval they mark, not counted: if the engine was down across
several intervals it sends one reminder, the latest one due, and the numbering stays aligned
with the job's elapsed time. `reminders_sent` below is therefore the number of the latest
reminder sent (0 when none), which after a catch-up is higher than the messages actually sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings


def reminder_interval(settings: Settings) -> timedelta:
    """The interval configured as `longRunningJobNotificationIntervalHours`."""
    return timedelta(hours=settings.long_running_job_notification_interval_hours)


def _check(reminders_sent: int, interval: timedelta) -> None:
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    if reminders_sent < 0:
        raise ValueError(f"reminders_sent must not be negative, got {reminders_sent}")


def reminder_due(
    started_at: datetime, reminders_sent: int, now: datetime, interval: timedelta
) -> int | None:
    """The number of the reminder due at `now`, or None when no new reminder is due.

    Only the latest due reminder is returned, so a catch-up after downtime is one message.
    """
    _check(reminders_sent, interval)
    if now < started_at:
        return None
    # timedelta // timedelta is exact integer arithmetic on microseconds.
    latest = (now - started_at) // interval
    return latest if latest >= 1 and latest > reminders_sent else None


def next_reminder_at(started_at: datetime, reminders_sent: int, interval: timedelta) -> datetime:
    """When the reminder after the latest one sent becomes due."""
    _check(reminders_sent, interval)
    return started_at + (reminders_sent + 1) * interval
