"""Monitoring: LLM calls, errors, latency, tokens, cost and cache hits over time.

`monitor` answers per time bucket and group (model, prompt or project), `window_stats`
for one recent window (what alert rules and routers read). Both read the store's
per-minute rollup of the LLM spans (`store.monitoring`), so they stay fast over millions
of calls: times are whole UTC minutes, and p50/p95 come from a latency histogram (bins
about 12 % wide, interpolated and clamped to the observed min and max), so they are
exact for one call and within a few percent otherwise.

Prompts are grouped by the `llmops.prompt.name` / `llmops.prompt.version` attributes of
LLM spans ("name@version"); models by `llmops.model`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import config
from .errors import LLMOpsError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["InvalidDuration", "monitor", "parse_duration", "parse_since", "window_stats"]

GROUPS = ("model", "prompt", "project")
STAT_KEYS = (
    "calls", "errors", "error_rate", "p50_ms", "p95_ms", "input_tokens", "output_tokens",
    "cost", "cache_hit_rate",
)  # fmt: skip

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class InvalidDuration(LLMOpsError, ValueError):
    """A since/window/every that is neither a duration ("90s", "15m", "1h", "7d") nor a date."""


class InvalidMonitorQuery(LLMOpsError, ValueError):
    """An unknown grouping, or a time range that ends before it starts."""


def parse_duration(value: str | _dt.timedelta, *, name: str = "duration") -> _dt.timedelta:
    """A duration ("90s", "15m", "1h", "7d", "2w", or a timedelta) as a positive timedelta."""
    if isinstance(value, _dt.timedelta):
        delta = value
    else:
        found = _DURATION.match(value) if isinstance(value, str) else None
        if found is None:
            raise InvalidDuration(
                f"{name}={value!r} is not a duration: use a number and a unit, "
                'like "90s", "15m", "1h" or "7d"'
            )
        delta = _dt.timedelta(seconds=float(found[1]) * _UNITS[found[2]])
    if delta <= _dt.timedelta(0):
        raise InvalidDuration(f"{name}={value!r}: a duration must be longer than zero")
    return delta


def parse_since(
    value: str | _dt.datetime | _dt.date | _dt.timedelta,
    now: _dt.datetime,
    *,
    name: str = "since",
) -> _dt.datetime:
    """A start time: a duration back from NOW ("7d"), or an ISO date/datetime (UTC when
    it names no zone), or a datetime/date."""
    if isinstance(value, (str, _dt.timedelta)) and (
        isinstance(value, _dt.timedelta) or _DURATION.match(value)
    ):
        return now - parse_duration(value, name=name)
    when: Any = value
    if isinstance(value, str):
        try:
            when = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidDuration(
                f'{name}={value!r} is neither a duration (like "90s", "15m", "1h", '
                '"7d") nor an ISO date (like "2026-12-01" or "2026-12-01T09:30")'
            ) from None
    if isinstance(when, _dt.date) and not isinstance(when, _dt.datetime):
        when = _dt.datetime(when.year, when.month, when.day)
    if not isinstance(when, _dt.datetime):
        raise InvalidDuration(f"{name}={value!r} is neither a duration nor a date")
    return when.replace(tzinfo=_dt.UTC) if when.tzinfo is None else when.astimezone(_dt.UTC)


def monitor(
    since: str | _dt.datetime | _dt.date | _dt.timedelta = "7d",
    every: str | _dt.timedelta = "1h",
    by: str = "model",
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: str | _dt.datetime | _dt.date | None = None,
) -> pl.DataFrame:
    """LLM calls per time bucket and group, as polars: bucket (UTC start), the group
    column (`model`, `prompt` or `project`), calls, errors, error_rate, p50_ms, p95_ms,
    input_tokens, output_tokens, cost, cache_hit_rate. Only buckets with calls appear;
    buckets start at whole multiples of EVERY since the epoch (hours on the hour, days at
    midnight UTC), and the first one counts from SINCE's minute.

    `project` defaults to the current project, except with `by="project"`, which
    compares every project. `prompt` "name" covers all its versions, "name@2" one.
    """
    import polars as pl

    if by not in GROUPS:
        raise InvalidMonitorQuery(f"by={by!r}: group by one of {', '.join(GROUPS)}")
    rows = _buckets(since, every, by, model, prompt, project, until, name="since")
    columns: dict[str, list[Any]] = {"bucket": [], by: []}
    for key in STAT_KEYS:
        columns[key] = []
    for row in rows:
        columns["bucket"].append(_utc(row["bucket_ns"]))
        columns[by].append(row["key"] or None)
        for key, value in _stats(row).items():
            columns[key].append(value)
    schema: dict[str, Any] = {
        "bucket": pl.Datetime("us", "UTC"),
        by: pl.String,
        "calls": pl.Int64,
        "errors": pl.Int64,
        "error_rate": pl.Float64,
        "p50_ms": pl.Float64,
        "p95_ms": pl.Float64,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost": pl.Float64,
        "cache_hit_rate": pl.Float64,
    }
    return pl.DataFrame(columns, schema=schema)


def window_stats(
    window: str | _dt.timedelta = "1h",
    *,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: str | _dt.datetime | _dt.date | None = None,
) -> dict[str, float | int | None]:
    """The LLM calls of the last WINDOW (before UNTIL, default now) in one dict: calls,
    errors, error_rate, p50_ms, p95_ms, input_tokens, output_tokens, cost,
    cache_hit_rate. With no calls: zero counts, and None for rates and percentiles."""
    end = _until(until)
    delta = parse_duration(window, name="window")
    rows = _buckets(end - delta, delta * 2, None, model, prompt, project, end, name="window")
    if not rows:
        return _stats(None)
    merged = _merge(rows)
    return _stats(merged)


# --- helpers ---------------------------------------------------------------------------


def _until(until: Any) -> _dt.datetime:
    now = _dt.datetime.now(_dt.UTC)
    return now if until is None else parse_since(until, now, name="until")


def _buckets(
    since: Any,
    every: Any,
    by: str | None,
    model: str | None,
    prompt: str | None,
    project: str | None,
    until: Any,
    *,
    name: str,
) -> list[dict[str, Any]]:
    from .store import get_store
    from .tracing.reading import _flush_for_reader

    end = until if isinstance(until, _dt.datetime) else _until(until)
    start = parse_since(since, end, name=name)
    step = parse_duration(every, name="every")
    if start >= end:
        raise InvalidMonitorQuery(f"the range starts at {start:%Y-%m-%d %H:%M} UTC, after its end")
    if project is None and by != "project":
        project = config.current_project()
    _flush_for_reader()  # spans still in the writer's queue count too
    return get_store().monitor_buckets(
        since_ns=_ns(start),
        until_ns=_ns(end),
        every_ns=int(step.total_seconds() * 1e9),
        by=by,
        project=project,
        model=model,
        prompt=prompt,
    )


def _merge(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several buckets' rows as one (window_stats over a window that spans two)."""
    merged = dict(rows[0])
    merged["bins"] = list(rows[0]["bins"])
    for row in rows[1:]:
        for key in ("calls", "errors", "cache_hits", "input_tokens", "output_tokens", "cost"):
            merged[key] += row[key]
        merged["latency_min_ms"] = min(merged["latency_min_ms"], row["latency_min_ms"])
        merged["latency_max_ms"] = max(merged["latency_max_ms"], row["latency_max_ms"])
        merged["bins"] = [a + b for a, b in zip(merged["bins"], row["bins"], strict=True)]
    return merged


def _stats(row: dict[str, Any] | None) -> dict[str, float | int | None]:
    if row is None or not row["calls"]:
        return {
            "calls": 0, "errors": 0, "error_rate": None, "p50_ms": None, "p95_ms": None,
            "input_tokens": 0, "output_tokens": 0, "cost": 0.0, "cache_hit_rate": None,
        }  # fmt: skip
    calls = row["calls"]
    low, high = row["latency_min_ms"], row["latency_max_ms"]
    return {
        "calls": calls,
        "errors": row["errors"],
        "error_rate": row["errors"] / calls,
        "p50_ms": percentile_ms(row["bins"], 0.50, low, high),
        "p95_ms": percentile_ms(row["bins"], 0.95, low, high),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost": row["cost"],
        "cache_hit_rate": row["cache_hits"] / calls,
    }


def percentile_ms(bins: Sequence[int], q: float, low: float, high: float) -> float | None:
    """The Q-quantile (nearest rank) of a latency histogram: within its bin, placed
    geometrically by rank, and clamped to the observed [LOW, HIGH]."""
    from .store.models import LATENCY_EDGES_MS as edges

    total = sum(bins)
    if total == 0:
        return None
    rank = max(1, min(total, -(-round(q * total * 1e9) // 10**9)))  # ceil, no float noise
    if rank == 1:
        return float(low)
    if rank == total:
        return float(high)
    seen = 0
    for k, n in enumerate(bins):
        if n and seen + n >= rank:
            lo = max(low, edges[k - 1] if k > 0 else 0.0)
            hi = min(high, edges[k] if k < len(edges) else high)
            if hi <= lo:
                return float(lo)
            share = (rank - seen - 0.5) / n
            value = lo * (hi / lo) ** share if lo > 0 else lo + (hi - lo) * share
            return float(min(high, max(low, value)))
        seen += n
    return float(high)


def _ns(when: _dt.datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _utc(ns: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=_dt.UTC)
