"""Queries for traces, spans and feedback.

Spans arrive in batches from the tracing exporter: one write transaction inserts them
(Core executemany, no ORM objects), folds their totals into the trace rows, so a trace
row is always consistent with the spans stored for it, and folds the LLM spans into the
monitoring rollups (`monitoring.fold_calls`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .base import StoreBase
from .monitoring import fold_calls, llm_calls, stored_llm_calls

_HEX = re.compile(r"^[0-9a-f]{1,32}$")
_CHUNK = 500  # ids per IN (...) clause

_span_table = m.Span.__table__  # type: ignore[attr-defined]
_trace_table = m.Trace.__table__  # type: ignore[attr-defined]


@dataclass
class TraceDelta:
    """What one batch of spans adds to its trace's row (computed by the exporter).

    `root` says the batch holds the trace's root span: its name, status (`root_status`:
    ok, error or cancelled) and error become the trace's. Until the root arrives, a failed
    child makes the trace's status "error" (`has_error`, `error`), so a trace whose root
    never ends still shows its failure. `eval_run_id` is the eval run the trace's call
    belongs to.
    """

    id: str
    project: str
    name: str
    start_ns: int
    end_ns: int
    n_spans: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    has_error: bool = False
    root: bool = False
    root_error: str | None = None
    root_status: str | None = None  # None: "error" when root_error is set, else "ok"
    notebook_path: str | None = None
    eval_run_id: int | None = None


class TraceQueries(StoreBase):
    """Queries for traces, spans and feedback."""

    # --- writes ------------------------------------------------------------------

    def record_spans(
        self,
        spans: Sequence[Mapping[str, Any]],
        deltas: Sequence[TraceDelta],
        *,
        if_absent: bool = False,
    ) -> None:
        """Insert SPANS (dicts with the span columns) and fold DELTAS into the trace rows.

        One transaction: a reader sees a trace's totals and its spans change together.
        `if_absent` is for a batch retried after an error that may have come after its
        commit (a dropped connection): when its first span is already stored, the whole
        batch is (one transaction), and nothing is written twice. `write`'s own retries
        check the same way.
        """
        project_ids = {d.project: self.project_id(d.project) for d in deltas}
        span_rows = [_span_values(row) for row in spans]
        calls = llm_calls(spans, "sqlite" if self.is_sqlite else "postgresql")
        tries = 0

        def apply(s: Session) -> None:
            nonlocal tries
            tries += 1
            conn = s.connection()
            # `write` runs this again after a lost connection, which may have come after
            # the commit: from the second try on, the batch may be stored already
            if (if_absent or tries > 1) and span_rows:
                stored = conn.execute(
                    sa_select(_span_table.c.id).where(_span_table.c.id == span_rows[0][0])
                ).first()
                if stored is not None:
                    return
            existing: dict[str, dict[str, Any]] = {}
            ids = list(dict.fromkeys(d.id for d in deltas))
            for chunk in _chunks(ids, _CHUNK):
                query = sa_select(_trace_table).where(_trace_table.c.id.in_(chunk))
                if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serializes writers
                    query = query.with_for_update()
                for row in conn.execute(query).mappings():
                    existing[row["id"]] = dict(row)
            inserts: dict[str, dict[str, Any]] = {}
            for d in deltas:
                row = existing.get(d.id) or inserts.get(d.id)
                if row is None:
                    inserts[d.id] = _new_trace_row(d, project_ids[d.project])
                else:
                    _merge(row, d)
            # LLM spans an earlier batch stored before their trace row count from now on
            earlier = stored_llm_calls(conn, list(inserts), conn.dialect.name) if inserts else []
            if span_rows:
                _insert_spans(conn, span_rows)
            if inserts:
                conn.execute(insert(_trace_table), list(inserts.values()))
            changed = [row for tid, row in existing.items() if tid not in inserts]
            if changed:
                conn.execute(
                    update(_trace_table)
                    .where(_trace_table.c.id == bindparam("b_id"))
                    .values(
                        name=bindparam("b_name"),
                        status=bindparam("b_status"),
                        error=bindparam("b_error"),
                        start_ns=bindparam("b_start_ns"),
                        end_ns=bindparam("b_end_ns"),
                        n_spans=bindparam("b_n_spans"),
                        input_tokens=bindparam("b_input_tokens"),
                        output_tokens=bindparam("b_output_tokens"),
                        cost=bindparam("b_cost"),
                        notebook_path=bindparam("b_notebook_path"),
                        eval_run_id=bindparam("b_eval_run_id"),
                    ),
                    [{f"b_{k}": row[k] for k in _UPDATED} for row in changed],
                )
            if calls or earlier:
                project_of = {tid: row["project_id"] for tid, row in existing.items()}
                project_of.update((tid, row["project_id"]) for tid, row in inserts.items())
                unknown = list({call[0] for call in calls} - project_of.keys())
                if unknown:  # spans of traces without a delta in this batch
                    project_of.update(_trace_projects(conn, unknown))
                fold_calls(conn, [*calls, *earlier], project_of)

        self.write(apply)

    def add_feedback(
        self,
        trace_id: str,
        score: int,
        comment: str | None,
        author: str,
        span_id: str | None = None,
    ) -> m.Feedback:
        """Store a thumbs up (+1) or down (-1) on a trace (or one of its spans)."""
        if score not in (1, -1):
            raise ValueError(f"feedback score must be +1 or -1, not {score!r}")
        trace = self._trace_row(trace_id)
        if span_id is not None:
            with self.session() as s:
                found = s.exec(
                    select(m.Span.id).where(m.Span.id == span_id, m.Span.trace_id == trace.id)  # type: ignore[arg-type]
                ).first()
            if found is None:
                raise NotFound(f"trace {trace.id} has no span {span_id!r}")
        row = m.Feedback(
            trace_id=trace.id, span_id=span_id, score=score, comment=comment, author=author
        )

        def add(s: Session) -> m.Feedback:
            s.add(row)
            s.flush()
            return row

        return self.write(add)

    # --- reads -------------------------------------------------------------------

    def list_traces(
        self,
        project: str,
        *,
        limit: int = 50,
        offset: int = 0,
        name: str | None = None,
        status: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        eval_run_id: int | None = None,
        name_contains: str | None = None,
        after: tuple[int, str] | None = None,
    ) -> list[m.Trace]:
        """Traces of PROJECT, latest first (by start), filtered by name, status, time and
        eval run.

        `name` matches exactly; `name_contains` is a case-insensitive substring (the
        sidebar's as-you-type filter). `after` is a keyset cursor, the (start_ns, id) of
        the last trace of the previous page: the page starts right after it, read from
        the (project, start) index however deep it is (OFFSET counts past every row
        before it). `offset` applies on top of it.
        """
        query = self._filtered(
            select(m.Trace), project, name, status, since_ns, until_ns, eval_run_id, name_contains
        )
        if after is not None:
            start_ns, last_id = _clamp(after[0]), after[1]
            query = query.where(
                m.Trace.start_ns <= start_ns,  # the index range: the scan starts at the cursor
                or_(
                    m.Trace.start_ns < start_ns,
                    and_(m.Trace.start_ns == start_ns, m.Trace.id < last_id),
                ),
            )
        query = query.order_by(m.Trace.start_ns.desc(), m.Trace.id.desc())  # type: ignore[attr-defined]
        query = query.offset(max(0, offset)).limit(max(0, limit))
        with self.session() as s:
            return list(s.exec(query))

    def count_traces(
        self,
        project: str,
        *,
        name: str | None = None,
        status: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        eval_run_id: int | None = None,
        name_contains: str | None = None,
    ) -> int:
        """How many traces `list_traces` would page through with the same filters."""
        query = self._filtered(
            sa_select(func.count()).select_from(_trace_table),
            project,
            name,
            status,
            since_ns,
            until_ns,
            eval_run_id,
            name_contains,
        )
        with self.session() as s:
            return int(s.execute(query).scalar_one())

    def get_trace(self, trace_id: str) -> tuple[m.Trace, list[m.Span]]:
        """A trace and its spans (by start time); a unique prefix of the id also works."""
        trace = self._trace_row(trace_id)
        with self.session() as s:
            spans = s.exec(
                select(m.Span)
                .where(m.Span.trace_id == trace.id)
                .order_by(m.Span.start_ns, m.Span.id)  # type: ignore[arg-type]
            ).all()
        return trace, list(spans)

    def trace_feedback(self, trace_id: str) -> list[m.Feedback]:
        """The feedback given on a trace, oldest first."""
        with self.session() as s:
            return list(
                s.exec(
                    select(m.Feedback)
                    .where(m.Feedback.trace_id == trace_id)
                    .order_by(m.Feedback.id)  # type: ignore[arg-type]
                )
            )

    # --- helpers -----------------------------------------------------------------

    def _filtered(
        self,
        query: Any,
        project: str,
        name: str | None,
        status: str | None,
        since_ns: int | None,
        until_ns: int | None,
        eval_run_id: int | None = None,
        name_contains: str | None = None,
    ) -> Any:
        query = query.where(m.Trace.project_id == self.project_id(project))
        if eval_run_id is not None:
            query = query.where(m.Trace.eval_run_id == eval_run_id)
        if name is not None:
            query = query.where(m.Trace.name == name)
        if name_contains:
            query = query.where(
                func.lower(m.Trace.name).contains(name_contains.lower(), autoescape=True)
            )
        if status is not None:
            query = query.where(m.Trace.status == status)
        if since_ns is not None:
            query = query.where(m.Trace.start_ns >= _clamp(since_ns))
        if until_ns is not None:
            query = query.where(m.Trace.start_ns < _clamp(until_ns))
        return query

    def _trace_row(self, trace_id: str) -> m.Trace:
        ref = (trace_id or "").strip().lower()
        if not _HEX.match(ref):
            raise NotFound(
                f"{trace_id!r} is not a trace id (32 hex digits, or a unique prefix of one)"
            )
        with self.session() as s:
            if len(ref) == 32:
                found = s.get(m.Trace, ref)
                rows = [found] if found is not None else []
            else:
                rows = list(
                    s.exec(select(m.Trace).where(m.Trace.id.startswith(ref)).limit(2))  # type: ignore[attr-defined]
                )
        if len(rows) > 1:
            raise NotFound(f"trace id prefix {ref!r} is ambiguous: give more digits")
        if not rows:
            raise NotFound(
                f"no trace {ref!r} in the experiment store at {self.masked_url}; "
                "list recent ones with lo.traces()"
            )
        return rows[0]


_UPDATED = (
    "id",
    "name",
    "status",
    "error",
    "start_ns",
    "end_ns",
    "n_spans",
    "input_tokens",
    "output_tokens",
    "cost",
    "notebook_path",
    "eval_run_id",
)


def _root_status(d: TraceDelta) -> str:
    return d.root_status or ("error" if d.root_error else "ok")


def _new_trace_row(d: TraceDelta, project_id: int) -> dict[str, Any]:
    return {
        "id": d.id,
        "project_id": project_id,
        "name": d.name,
        "status": _root_status(d) if d.root else ("error" if d.has_error else "ok"),
        "error": d.root_error if d.root else d.error,
        "start_ns": d.start_ns,
        "end_ns": d.end_ns,
        "n_spans": d.n_spans,
        "input_tokens": d.input_tokens,
        "output_tokens": d.output_tokens,
        "cost": d.cost,
        "notebook_path": d.notebook_path,
        "eval_run_id": d.eval_run_id,
    }


def _merge(row: dict[str, Any], d: TraceDelta) -> None:
    """Fold a batch's delta into an existing trace row (in place)."""
    row["n_spans"] = (row["n_spans"] or 0) + d.n_spans
    row["input_tokens"] = (row["input_tokens"] or 0) + d.input_tokens
    row["output_tokens"] = (row["output_tokens"] or 0) + d.output_tokens
    row["cost"] = (row["cost"] or 0.0) + d.cost
    row["start_ns"] = min(row["start_ns"], d.start_ns)
    row["end_ns"] = d.end_ns if row["end_ns"] is None else max(row["end_ns"], d.end_ns)
    if d.root:  # the root's outcome is the trace's; failed steps stay visible as spans
        row["name"] = d.name
        row["status"] = _root_status(d)
        row["error"] = d.root_error
    if d.notebook_path and not row["notebook_path"]:
        row["notebook_path"] = d.notebook_path
    if d.eval_run_id is not None and row.get("eval_run_id") is None:
        row["eval_run_id"] = d.eval_run_id


def _clamp(ns: int) -> int:
    """Times far in the future or past still compare (BIGINT is 64-bit)."""
    return max(-(2**63), min(2**63 - 1, int(ns)))


_SPAN_COLUMNS = (
    "id",
    "trace_id",
    "parent_id",
    "name",
    "kind",
    "status",
    "error",
    "start_ns",
    "end_ns",
    "inputs",
    "outputs",
    "attributes",
)
_encode = json.JSONEncoder(allow_nan=False).encode  # one encoder, not one per value


def _span_values(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A span dict as the INSERT's parameters, its JSON columns already encoded."""
    inputs, outputs, attributes = row.get("inputs"), row.get("outputs"), row.get("attributes")
    return (
        row["id"],
        row["trace_id"],
        row.get("parent_id"),
        row["name"],
        row.get("kind", "chain"),
        row.get("status", "ok"),
        row.get("error"),
        row["start_ns"],
        row["end_ns"],
        None if inputs is None else _dumps(inputs),
        None if outputs is None else _dumps(outputs),
        _dumps(attributes) if attributes else "{}",
    )


def _dumps(value: Any) -> str:
    """JSON text as SQLAlchemy's JSON type would write it; NaN/Infinity become strings
    (PostgreSQL's json rejects them)."""
    try:
        return _encode(value)
    except ValueError:
        return _encode(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _insert_spans(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """One executemany straight to the driver, JSON already encoded: spans are the
    store's hottest write (tens of thousands a second), and SQLAlchemy's per-row
    parameter processing would cost more than the insert itself."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO span ({', '.join(_SPAN_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(_SPAN_COLUMNS))})"
    )
    conn.exec_driver_sql(sql, rows)


def _trace_projects(conn: Any, trace_ids: list[str]) -> dict[str, int]:
    """The project of each stored trace among TRACE_IDS."""
    found: dict[str, int] = {}
    for chunk in _chunks(trace_ids, _CHUNK):
        query = sa_select(_trace_table.c.id, _trace_table.c.project_id)
        for trace_id, project_id in conn.execute(query.where(_trace_table.c.id.in_(chunk))):
            found[trace_id] = project_id
    return found


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
