"""Durations now live in the domain (`domain.durations`)."""

from domain.durations import format_duration

__all__ = ["format_duration"]
