"""Reading traces back: get_trace, last_trace, traces (a polars frame), feedback, show.

Readers first let the model calls of the trace they ask for end (bounded, see
`calls.settle`) and store what the writer still holds, so they see a trace that just
finished. A store that cannot be reached makes them fail with the store's own one-line
message, never wait on the writer's retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import LLMOpsError, NotFound
from . import pipeline
from .calls import settle
from .records import Trace, utc

if TYPE_CHECKING:
    import polars as pl

    from ..store import models as m

__all__ = ["InvalidFeedback", "feedback", "get_trace", "last_trace", "show", "traces"]

_READ_FLUSH = 2.0  # seconds a reader lets the writer retry a failing store before reading


class InvalidFeedback(LLMOpsError, ValueError):
    """A feedback score that is not thumbs up (+1) or thumbs down (-1)."""


def _flush_for_reader() -> None:
    pipe = pipeline.current()
    if pipe is not None:  # the store only: a slow OTLP collector must not block a reader
        pipe.processor.flush(_READ_FLUSH)


def _load(trace_id: str) -> Trace:
    from ..store import get_store

    store = get_store()
    row, spans = store.get_trace(trace_id)
    return Trace.from_rows(row, spans, store.trace_feedback(row.id))


def get_trace(trace_id: str) -> Trace:
    """The stored trace with this id (or a unique prefix of it), with its spans."""
    ref = (trace_id or "").strip().lower()
    if pipeline.current() is not None:
        if len(ref) == 32:
            try:
                settle(int(ref, 16))
            except ValueError:
                pass
        else:
            settle(None)
        _flush_for_reader()
    return _load(ref)


def last_trace() -> Trace:
    """The trace that this process started last (else the current project's latest)."""
    pipe = pipeline.current()
    if pipe is not None and pipe.processor.last_root is not None:
        tid = pipe.processor.last_root
        settle(tid)
        _flush_for_reader()
        return _load(f"{tid:032x}")
    from ..store import get_store

    rows = get_store().list_traces(config.current_project(), limit=1)
    if not rows:
        raise NotFound(
            f"no traces yet in project {config.current_project()!r}: call a model or a "
            "function decorated with @lo.trace first"
        )
    return _load(rows[0].id)


def _since_ns(since: Any) -> int | None:
    """A duration back from now, a date or time (naive is the user's local time) or epoch ns."""
    from ..timespans import since_ns

    return None if since is None else since_ns(since, naive="local")


def _run_id(run: Any) -> int | None:
    """An eval run given as its id or as the EvalRun itself."""
    if run is None:
        return None
    value = getattr(run, "id", run)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LLMOpsError(f"run must be an eval run or its id (an integer), not {run!r}")
    return value


def traces(
    limit: int = 50,
    name: str | None = None,
    since: Any = None,
    *,
    status: str | None = None,
    project: str | None = None,
    run: Any = None,
) -> pl.DataFrame:
    """Recent traces of the project, latest first, as a polars DataFrame.

    `since` is a datetime, a timedelta (that long ago) or an ISO string; `run` (an eval
    run or its id) keeps the traces of that run's calls.
    """
    import polars as pl

    from ..store import get_store

    _flush_for_reader()
    rows = get_store().list_traces(
        project or config.current_project(),
        limit=limit,
        name=name,
        status=status,
        since_ns=_since_ns(since),
        eval_run_id=_run_id(run),
    )
    schema = {
        "id": pl.String,
        "name": pl.String,
        "status": pl.String,
        "error": pl.String,
        "start": pl.Datetime("us", "UTC"),
        "latency_ms": pl.Float64,
        "n_spans": pl.Int64,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "tokens": pl.Int64,
        "cost": pl.Float64,
        "notebook_path": pl.String,
        "run_id": pl.Int64,
    }
    return pl.DataFrame(
        [
            {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "error": r.error,
                "start": utc(r.start_ns),
                "latency_ms": None if r.end_ns is None else (r.end_ns - r.start_ns) / 1e6,
                "n_spans": r.n_spans,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "tokens": r.input_tokens + r.output_tokens,
                "cost": r.cost,
                "notebook_path": r.notebook_path,
                "run_id": r.eval_run_id,
            }
            for r in rows
        ],
        schema=schema,
        orient="row",
    )


def _score(score: Any) -> int:
    if isinstance(score, bool):
        return 1 if score else -1
    if isinstance(score, str):
        table = {"up": 1, "+1": 1, "1": 1, "down": -1, "-1": -1}
        if score.strip().lower() in table:
            return table[score.strip().lower()]
    elif isinstance(score, (int, float)) and score in (1, -1):
        return int(score)
    raise InvalidFeedback(
        f"feedback score must be +1 (thumbs up) or -1 (thumbs down), not {score!r}"
    )


def feedback(
    trace_id: str, score: Any, comment: str | None = None, *, span_id: str | None = None
) -> m.Feedback:
    """Store a thumbs up (+1) or down (-1), with an optional comment, on a trace."""
    from ..store import get_store

    value = _score(score)
    _flush_for_reader()
    store = get_store()
    row, _ = store.get_trace(trace_id)  # a clear error for an unknown id; resolves prefixes
    return store.add_feedback(row.id, value, (comment or None), config.author(), span_id=span_id)


def show(ref: str | None = None) -> Trace:
    """The trace for `%trace` (the last trace) or `%trace ID`; the face displays it."""
    return last_trace() if ref is None or not str(ref).strip() else get_trace(str(ref))
