"""Operations -> the plain data the dashboard panel, its static HTML and the sidebar's Ops
tab render: a list of sections (the dashboard now; alerts and the audit log add theirs),
so every face shows the same numbers from one computation."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from .. import config, monitoring
from ..timespans import Duration, Since, Until, parse_until

__all__ = ["METRICS", "alerts_section", "audit_section", "dashboard_section", "ops_view"]

METRICS: list[dict[str, str]] = [
    {"key": "calls", "title": "Calls", "format": "count"},
    {"key": "error_rate", "title": "Error rate", "format": "percent"},
    {"key": "p95_ms", "title": "p95 latency", "format": "ms"},
    {"key": "cost", "title": "Cost", "format": "usd"},
    {"key": "cache_hit_rate", "title": "Cache hit rate", "format": "percent"},
]
"""The charts over time, in order, and how their values are written."""

MAX_BUCKETS = 2000  # rows of the series a face receives (a week of hours is 168 per group)
MAX_EVENTS = 50  # audit events and alert firings listed, latest first


def ops_view(
    since: Since = monitoring.DEFAULT_SINCE,
    every: Duration = monitoring.DEFAULT_EVERY,
    by: str = monitoring.DEFAULT_BY,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> dict[str, Any]:
    """What the Ops tab and `lo.dashboard` show: {"kind": "ops", "project", "sections"}."""
    project = project or config.current_project()
    return {
        "kind": "ops",
        "project": project,
        "sections": [
            dashboard_section(since, every, by, model, prompt, project, until),
            alerts_section(project),
            audit_section(project),
        ],
    }


def _table(
    section_id: str, title: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]],
    empty: str,
) -> dict[str, Any]:  # fmt: skip
    """A plain section: rows of text values under titled columns (what the faces list)."""
    return {
        "id": section_id,
        "title": title,
        "columns": [{"key": k, "title": t} for k, t in columns],
        "rows": [{k: _text(row.get(k)) for k, _ in columns} for row in rows],
        "empty": empty,
    }


def _text(value: Any) -> str | int | None:
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, _dt.datetime):
        return _iso(value)
    return str(value)


def alerts_section(project: str) -> dict[str, Any]:
    """The project's alert rules, with how often and when each last fired."""
    from ..alerts import alerts

    rules = alerts(project=project).rows(named=True)
    columns = [
        ("name", "alert"), ("condition", "condition"), ("window", "window"),
        ("model", "model"), ("prompt", "prompt"), ("rollback", "rollback"),
        ("firings", "firings"), ("last_fired", "last fired"),
    ]  # fmt: skip
    empty = 'No alert rules: lo.alert("slow", "p95_ms > 2000", window="1h").'
    return _table("alerts", "Alerts", columns, rules, empty)


def audit_section(project: str) -> dict[str, Any]:
    """The latest entries of the project's audit log (append-only), newest first."""
    from ..audit import audit

    events = audit(project=project).tail(MAX_EVENTS).reverse().rows(named=True)
    columns = [
        ("when", "when"), ("who", "who"), ("action", "action"), ("target", "target"),
        ("from", "from"), ("to", "to"), ("reason", "reason"),
    ]  # fmt: skip
    return _table("audit", "Audit log", columns, events, "No audited changes yet.")


def dashboard_section(
    since: Since = monitoring.DEFAULT_SINCE,
    every: Duration = monitoring.DEFAULT_EVERY,
    by: str = monitoring.DEFAULT_BY,
    model: str | None = None,
    prompt: str | None = None,
    project: str | None = None,
    until: Until | None = None,
) -> dict[str, Any]:
    """Per group totals over the range, and the series per bucket (`lo.monitor`'s rows)."""
    end = parse_until(until)
    start = monitoring.parse_since(since, end)
    step = monitoring.parse_duration(every, name="every")
    scope = {"model": model, "prompt": prompt, "project": project, "until": end}
    series = monitoring.monitor(since=start, every=step, by=by, **scope)
    totals = monitoring.totals(since=start, by=by, **scope)
    rows = [_jsonable(r, by) for r in series.tail(MAX_BUCKETS).rows(named=True)]
    return {
        "id": "dashboard",
        "title": "Dashboard",
        "since": _iso(start),
        "until": _iso(end),
        "every": _every_text(step),
        "by": by,
        "filters": {k: v for k, v in (("model", model), ("prompt", prompt)) if v},
        "groups": sorted({r["group"] for r in rows}, key=str),
        "metrics": METRICS,
        "totals": [_jsonable(r, by) for r in totals.rows(named=True)],
        "series": rows,
        "truncated": series.height > MAX_BUCKETS,
    }


def _jsonable(row: dict[str, Any], by: str) -> dict[str, Any]:
    out: dict[str, Any] = {"group": row.get(by) or "(none)"}
    if "bucket" in row:
        out["bucket"] = _iso(row["bucket"])
    for key in monitoring.STAT_KEYS:
        value = row[key]
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def _iso(when: _dt.datetime) -> str:
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _every_text(step: _dt.timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
