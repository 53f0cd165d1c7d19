"""How long a watched job may go unlooked-at: never longer than its own backoff would allow.

A session backs off as one unit (`monitoring.backoff`), but its jobs are not all of the
same age: a pipeline run, or discovery, keeps adding fresh jobs to an older session. The
documented loop run for one job alone checks it at its submission, then after 30 s, 90 s,
210 s, 450 s and every 300 s up to the max wait: the *waits* between those checks are the
job's own schedule.

The engine keeps each job inside that schedule without a call per job: a listing of the
workspace looks at every job in it, so a job only asks that at least one listing falls
within each of its own waits. Looked at during one wait, it needs the next look by the end
of the following wait. Listings made for any session count, so young jobs share them and
old ones (at the 300 s cap, like the session) ask for nothing extra.

Pure: time is passed in, and the schedule is a function of the job's submission time.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta

from monitoring.backoff import BackoffPolicy


@functools.lru_cache(maxsize=8)
def _steady(policy: BackoffPolicy) -> tuple[tuple[float, ...], float]:
    """Offsets of the checks while the delay still grows, then the delay that stays.

    The delays grow up to the cap (or stay put with a multiplier of 1) and never change
    again, so an offset later in the schedule is the last of these plus whole steady delays.
    Cached: the engine asks for every job of a session with the same policy.
    """
    offsets = [0.0]
    checks = 1
    while True:
        delay = policy.delay_after(checks)
        offsets.append(offsets[-1] + delay)
        if policy.delay_after(checks + 1) == delay:
            return tuple(offsets), delay
        checks += 1


def _offset(prefix: tuple[float, ...], steady: float, index: int) -> float:
    last = len(prefix) - 1
    return prefix[index] if index <= last else prefix[last] + (index - last) * steady


def next_look_due(
    policy: BackoffPolicy, submitted_at: datetime, looked_at: datetime
) -> datetime | None:
    """The latest time a job looked at `looked_at` must be looked at again.

    That is the end of the wait following the one `looked_at` falls in, in the job's own
    schedule from `submitted_at`; None once the look falls in the last wait before the max
    wait, or after it (the session's max wait and the reminders take over).
    """
    since = (looked_at - submitted_at).total_seconds()
    prefix, steady = _steady(policy)
    # The first scheduled check at or after the look: it closes the wait the look fell in.
    if since <= prefix[-1]:
        index = next(i for i, offset in enumerate(prefix) if offset >= since)
    else:
        index = len(prefix) - 1 + math.ceil((since - prefix[-1]) / steady)
    if _offset(prefix, steady, index) >= policy.max_wait_s:
        return None
    following = min(_offset(prefix, steady, index + 1), policy.max_wait_s)
    return submitted_at + timedelta(seconds=following)
