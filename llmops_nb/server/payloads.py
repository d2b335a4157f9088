"""Store rows -> JSON-ready dicts for the sidebar's lists.

A single run, trace or prompt version is served as its view (`llmops_nb.views`), the
same data the notebook's panels render. JavaScript numbers lose precision past 2**53,
so nanosecond clocks leave as milliseconds. Model output stays a plain JSON string:
the frontend renders it as text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..views.traces import NS_PER_MS


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601; containers recursively; everything else unchanged."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def row(obj: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A SQLModel row's columns as a JSON-ready dict."""
    return {k: jsonable(v) for k, v in obj.model_dump().items() if k not in exclude}


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / NS_PER_MS


def trace_summary(t: Any) -> dict[str, Any]:
    """One line of the traces list."""
    return {
        "id": t.id,
        "name": t.name,
        "status": t.status,
        "error": t.error,
        "start_ms": _ms(t.start_ns),
        "duration_ms": None if t.end_ns is None else (t.end_ns - t.start_ns) / NS_PER_MS,
        "n_spans": t.n_spans,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cost": t.cost,
        "notebook_path": t.notebook_path,
    }
