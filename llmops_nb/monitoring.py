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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import config
from .errors import LLMOpsError
from .timespans import (
    Duration,
    InvalidDuration,
    Since,
    Until,
    parse_duration,
    parse_since,
    parse_until,
    to_ns,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_BY",
    "DEFAULT_EVERY",
    "DEFAULT_SINCE",
    "DEFAULT_WINDOW",
    "InvalidDuration",
    "InvalidMonitorQuery",
    "monitor",
    "parse_duration",
    "parse_since",
    "totals",
    "window_stats",
]

GROUPS = ("model", "prompt", "project")
STAT_KEYS = (
    "calls", "errors", "error_rate", "p50_ms", "p95_ms", "input_tokens", "output_tokens",
    "cost", "cache_hit_rate",
)  # fmt: skip

DEFAULT_SINCE = "7d"
"""How far back monitor, totals, the dashboard and the Ops tab look by default."""
DEFAULT_EVERY = "1h"
"""Their default bucket size."""
DEFAULT_BY = "model"
"""Their default grouping (one of GROUPS)."""
DEFAULT_WINDOW = "1h"
"""The default window of window_stats (what alert rules and routers read)."""


class InvalidMonitorQuery(LLMOpsError, ValueError):
    """An unknown grouping, or a time range that ends before it starts."""


def monitor(
    since: Since = DEFAULT_SINCE,
    every: Duration = DEFAULT_EVERY,
    by: str = DEFAULT_BY,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> pl.DataFrame:
    """LLM calls per time bucket and group, as polars: bucket (UTC start), the group
    column (`model`, `prompt` or `project`), calls, errors, error_rate, p50_ms, p95_ms,
    input_tokens, output_tokens, cost, cache_hit_rate. Only buckets with calls appear;
    buckets start at whole multiples of EVERY since the epoch (hours on the hour, days at
    midnight UTC), and the first one counts from SINCE's minute.

    `project` defaults to the current project, except with `by="project"`, which
    compares every project. `prompt` "name" covers all its versions, "name@2" one.
    """
    if by not in GROUPS:
        raise InvalidMonitorQuery(f"by={by!r}: group by one of {', '.join(GROUPS)}")
    rows = _buckets(since, every, by, model, prompt, project, until, name="since")
    return _frame(rows, by, with_bucket=True)


def totals(
    since: Since = DEFAULT_SINCE,
    by: str = DEFAULT_BY,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> pl.DataFrame:
    """`monitor` over the whole range: one row per group (no bucket column)."""
    if by not in GROUPS:
        raise InvalidMonitorQuery(f"by={by!r}: group by one of {', '.join(GROUPS)}")
    rows = _buckets(since, _WHOLE_RANGE, by, model, prompt, project, until, name="since")
    return _frame(rows, by, with_bucket=False)


_WHOLE_RANGE = _dt.timedelta(days=100_000)  # one bucket from the epoch on


def _frame(rows: list[dict[str, Any]], by: str, *, with_bucket: bool) -> pl.DataFrame:
    import polars as pl

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
    if not with_bucket:
        del columns["bucket"], schema["bucket"]
    return pl.DataFrame(columns, schema=schema)


def window_stats(
    window: Duration = DEFAULT_WINDOW,
    *,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> dict[str, float | int | None]:
    """The LLM calls of the last WINDOW (before UNTIL, default now) in one dict: calls,
    errors, error_rate, p50_ms, p95_ms, input_tokens, output_tokens, cost,
    cache_hit_rate. With no calls: zero counts, and None for rates and percentiles."""
    end = parse_until(until)
    delta = parse_duration(window, name="window")
    rows = _buckets(end - delta, delta * 2, None, model, prompt, project, end, name="window")
    if not rows:
        return _stats(None)
    merged = _merge(rows)
    return _stats(merged)


# --- helpers ---------------------------------------------------------------------------


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

    end = parse_until(until)
    start = parse_since(since, end, name=name)
    step = parse_duration(every, name="every")
    if start >= end:
        raise InvalidMonitorQuery(f"the range starts at {start:%Y-%m-%d %H:%M} UTC, after its end")
    if project is None and by != "project":
        project = config.current_project()
    _flush_for_reader()  # spans still in the writer's queue count too
    return get_store().monitor_buckets(
        since_ns=to_ns(start),
        until_ns=to_ns(end),
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


def _utc(ns: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=_dt.UTC)
