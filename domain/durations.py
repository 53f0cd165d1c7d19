"""How mlbot writes a duration, the same in cards, emails and the terminal."""

from __future__ import annotations

from datetime import timedelta


def format_duration(value: timedelta | None) -> str:
    """`2h 05m`, `4m 10s`, `12s`; `—` when unknown."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
