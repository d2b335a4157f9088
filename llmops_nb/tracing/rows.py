"""Ended OpenTelemetry spans as store rows and their trace totals (OTLP copies: `otel`).

Pure conversions (no store, no threads): the writer in `pipeline` prepares each batch
with them once, so a batch that must be retried, or spooled to disk, is kept as rows.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "CANCELLED",
    "EVAL_RUN",
    "add_to_delta",
    "eval_run_of",
    "is_cancellation",
    "new_delta",
    "span_row",
]

CANCELLED = "llmops.cancelled"  # attribute set on a span whose work was cancelled
EVAL_RUN = "llmops.eval.run_id"  # attribute of the span that groups an eval run's call

_ERROR: Any = None  # StatusCode.ERROR, bound on first use (the SDK loads lazily)


def is_cancellation(exc: BaseException) -> bool:
    """Ctrl-C or an asyncio task cancel: the work stopped, it did not fail."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    asyncio = sys.modules.get("asyncio")  # not imported: cannot be its CancelledError
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def span_row(readable: ReadableSpan, payload: list[Any] | None) -> dict[str, Any]:
    """The span table's columns for one ended span; PAYLOAD is [kind, inputs, outputs]."""
    global _ERROR
    if _ERROR is None:
        from opentelemetry.trace import StatusCode

        _ERROR = StatusCode.ERROR
    ctx = readable.context
    parent = readable.parent
    attrs: dict[str, Any] = {}
    raw = readable.attributes
    if raw:
        for key, value in raw.items():
            attrs[key] = list(value) if isinstance(value, tuple) else value
    is_error = readable.status.status_code is _ERROR
    status = "ok"
    if is_error:
        status = "cancelled" if attrs.get(CANCELLED) else "error"
        for event in readable.events:
            if event.name == "exception" and event.attributes:
                stack = event.attributes.get("exception.stacktrace")
                if stack:
                    attrs["exception.stacktrace"] = stack
                break
    return {
        "id": f"{ctx.span_id:016x}",
        "trace_id": f"{ctx.trace_id:032x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": _text(readable.name) or "",
        "kind": payload[0] if payload is not None else "chain",
        "status": status,
        "error": _text(readable.status.description or status) if is_error else None,
        "start_ns": readable.start_time,
        "end_ns": readable.end_time,
        "inputs": payload[1] if payload is not None else None,
        "outputs": payload[2] if payload is not None else None,
        "attributes": attrs,
    }


def new_delta(
    row: dict[str, Any], project: str, notebook: str | None, eval_run: int | None
) -> dict[str, Any]:
    """An empty trace delta (the fields of `store.traces.TraceDelta`) for ROW's trace."""
    return {
        "id": row["trace_id"],
        "project": project,
        "name": row["name"],
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "n_spans": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "error": None,
        "has_error": False,
        "root": False,
        "root_error": None,
        "root_status": None,
        "notebook_path": notebook,
        "eval_run_id": eval_run,
    }


def add_to_delta(d: dict[str, Any], row: dict[str, Any], is_root: bool) -> None:
    """Fold one span row into its trace's delta: count, times, tokens, cost, outcome."""
    d["n_spans"] += 1
    d["start_ns"] = min(d["start_ns"], row["start_ns"])
    d["end_ns"] = max(d["end_ns"], row["end_ns"])
    if row["kind"] == "llm":
        attrs = row["attributes"]
        d["input_tokens"] += _int(attrs.get("gen_ai.usage.input_tokens"))
        d["output_tokens"] += _int(attrs.get("gen_ai.usage.output_tokens"))
        d["cost"] += _float(attrs.get("llmops.cost"))
    if row["status"] != "ok":
        d["has_error"] = True
        d["error"] = d["error"] or row["error"]
    if is_root:
        d["root"] = True
        d["name"] = row["name"]
        d["root_error"] = row["error"]
        d["root_status"] = row["status"]


def eval_run_of(attributes: Any) -> int | None:
    """The eval run id a root span carries (`tracing.eval_span`), else None."""
    if not attributes:
        return None
    value = attributes.get(EVAL_RUN)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        result = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return result if math.isfinite(result) else 0.0


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters."""
    return value.replace("\x00", "\\0") if value and "\x00" in value else value
