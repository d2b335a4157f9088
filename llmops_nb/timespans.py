"""Durations ("90s", "15m", "24h", "7d", "2w") and start times ("7d" ago, a date, ISO text).

The one reader behind every since/until/window/every/older_than argument (monitoring,
alerts, audit, drift, splits, retention, traces), so they accept the same spellings and
fail with the same message. A leaf module: it imports nothing above `errors`.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Literal

from .errors import LLMOpsError

__all__ = [
    "MAX_NS",
    "Duration",
    "InvalidDuration",
    "Since",
    "Until",
    "parse_duration",
    "parse_since",
    "parse_until",
    "since_ns",
    "to_ns",
]

Duration = str | _dt.timedelta
"""A duration: "90s", "15m", "1h", "7d", "2w" (also "min"; any case), or a timedelta."""
Since = str | _dt.datetime | _dt.date | _dt.timedelta
"""A start time: a duration back from now, a datetime or date, or ISO text."""
Until = str | _dt.datetime | _dt.date
"""An end time: like Since (a duration is back from now)."""

MAX_NS = 2**63 - 1  # span clocks are 64-bit nanoseconds (up to the year 2262)

_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)\s*$", re.IGNORECASE)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class InvalidDuration(LLMOpsError, ValueError):
    """A since/window/every that is neither a duration ("90s", "15m", "1h", "7d") nor a date."""


def parse_duration(
    value: Duration, *, name: str = "duration", error: type[LLMOpsError] = InvalidDuration
) -> _dt.timedelta:
    """VALUE as a positive timedelta; ERROR (one line naming NAME) when it is not one."""
    if isinstance(value, _dt.timedelta):
        delta = value
    else:
        found = _DURATION.match(value) if isinstance(value, str) else None
        if found is None:
            raise error(
                f"{name}={value!r} is not a duration: use a number and a unit, "
                "like '90s', '15m', '1h', '7d' or '2w'"
            )
        try:
            delta = _dt.timedelta(seconds=float(found[1]) * _UNIT_SECONDS[found[2].lower()])
        except OverflowError:
            raise error(f"{name}={value!r} is too long a duration") from None
    if delta <= _dt.timedelta(0):
        raise error(f"{name}={value!r}: a duration must be longer than zero")
    return delta


def parse_since(
    value: Since,
    now: _dt.datetime,
    *,
    name: str = "since",
    naive: Literal["utc", "local"] = "utc",
    error: type[LLMOpsError] = InvalidDuration,
) -> _dt.datetime:
    """VALUE as an aware UTC datetime: a duration back from NOW, or a datetime, date or
    ISO text, read in NAIVE time (UTC or this machine's zone) when it names no zone."""
    if isinstance(value, _dt.timedelta) or (isinstance(value, str) and _DURATION.match(value)):
        delta = parse_duration(value, name=name, error=error)
        if delta > now - _dt.datetime.min.replace(tzinfo=_dt.UTC):
            raise error(f"{name}={value!r} is too long a duration: it reaches before year 1")
        return now - delta
    when: object = value
    if isinstance(value, str):
        try:
            when = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
    if isinstance(when, _dt.date) and not isinstance(when, _dt.datetime):
        when = _dt.datetime(when.year, when.month, when.day)
    if not isinstance(when, _dt.datetime):
        raise error(
            f"{name}={value!r} is neither a duration ('7d', '12h', '30m', '2w') nor a date, "
            "nor an ISO date or time ('2026-12-01', '2026-12-01T09:30')"
        )
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC) if naive == "utc" else when.astimezone()
    return when.astimezone(_dt.UTC)


def parse_until(value: Until | None, *, name: str = "until") -> _dt.datetime:
    """An end time as `parse_since` reads it (a duration is back from now); None is now."""
    now = _dt.datetime.now(_dt.UTC)
    return now if value is None else parse_since(value, now, name=name)


def since_ns(
    value: Since | int | float,
    *,
    name: str = "since",
    naive: Literal["utc", "local"] = "utc",
    error: type[LLMOpsError] = InvalidDuration,
) -> int:
    """VALUE (what `parse_since` reads, back from now, or already epoch nanoseconds) in
    span-clock nanoseconds, capped at MAX_NS."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(int(value), MAX_NS)
    now = _dt.datetime.now(_dt.UTC)
    when = parse_since(value, now, name=name, naive=naive, error=error)  # type: ignore[arg-type]
    return min(to_ns(when), MAX_NS)


def to_ns(when: _dt.datetime) -> int:
    """An aware datetime as epoch nanoseconds, exactly (no float rounding)."""
    return (when - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
