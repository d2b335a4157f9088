"""Retention: delete old traces, their spans and feedback, and old cache entries, in batches.

Each batch is its own short write transaction, so the kernels writing spans meanwhile wait
for one batch at most (milliseconds), never for the whole prune. Batches walk the trace
index (project, start) with a keyset cursor, so traces that are kept (linked to eval
results) are passed over once, not rescanned by every batch.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select
from sqlmodel import Session

from . import models as m
from .base import StoreBase

PRUNE_BATCH = 500
"""Traces deleted per transaction (with their spans): a few milliseconds of write lock."""

_trace = m.Trace.__table__  # type: ignore[attr-defined]
_span = m.Span.__table__  # type: ignore[attr-defined]
_feedback = m.Feedback.__table__  # type: ignore[attr-defined]
_result = m.EvalResult.__table__  # type: ignore[attr-defined]
_cache = m.CacheEntry.__table__  # type: ignore[attr-defined]


class RetentionQueries(StoreBase):
    """Deleting what is older than a cutoff, a batch at a time."""

    def prune_before(
        self,
        cutoff_ns: int,
        *,
        keep_eval_runs: bool = True,
        project: str | None = None,
        batch_size: int = PRUNE_BATCH,
    ) -> dict[str, int]:
        """Delete traces that ended before CUTOFF_NS (with their spans and feedback), and
        cache entries made before it whose trace is gone; returns the counts.

        keep_eval_runs keeps every trace an eval run's result or cell points to. PROJECT
        limits the traces to one project (cache entries belong to no project: all are
        considered). Eval runs and their results are never deleted.
        """
        counts = {"traces": 0, "spans": 0, "feedback": 0, "cache_entries": 0}
        for project_id in self._prune_projects(project):
            cursor: tuple[int, str] | None = None
            while True:
                started = time.monotonic()
                batch = self.write(
                    lambda s, c=cursor, p=project_id: _prune_trace_batch(
                        s, p, cutoff_ns, c, keep_eval_runs, batch_size
                    )
                )
                for key in ("traces", "spans", "feedback"):
                    counts[key] += batch[key]
                if batch["selected"] < batch_size:
                    break
                cursor = batch["cursor"]
                _yield_to_writers(started)
        cutoff = _ns_to_datetime(cutoff_ns)
        while True:
            started = time.monotonic()
            deleted = self.write(lambda s: _prune_cache_batch(s, cutoff, batch_size))
            counts["cache_entries"] += deleted
            if deleted < batch_size:
                break
            _yield_to_writers(started)
        return counts

    def _prune_projects(self, project: str | None) -> list[int]:
        with self.session() as s:
            query = select(m.Project.id).order_by(m.Project.id)  # type: ignore[arg-type]
            if project is not None:
                query = query.where(m.Project.name == project)  # type: ignore[arg-type]
            return list(s.execute(query).scalars())


def _prune_trace_batch(
    s: Session,
    project_id: int,
    cutoff_ns: int,
    cursor: tuple[int, str] | None,
    keep_eval_runs: bool,
    batch_size: int,
) -> dict[str, Any]:
    """One transaction: the next BATCH_SIZE prunable traces after CURSOR, deleted whole.
    Returns what it selected and deleted, and the cursor for the next batch (`write` may
    run it again after a rolled-back try, so it counts nothing itself)."""
    conn = s.connection()
    query = (
        select(_trace.c.id, _trace.c.start_ns)
        .where(_trace.c.project_id == project_id, _trace.c.start_ns < cutoff_ns)
        .where(or_(_trace.c.end_ns.is_(None), _trace.c.end_ns < cutoff_ns))
        .order_by(_trace.c.start_ns, _trace.c.id)
        .limit(batch_size)
    )
    if cursor is not None:
        start, last_id = cursor
        query = query.where(
            or_(
                _trace.c.start_ns > start,
                and_(_trace.c.start_ns == start, _trace.c.id > last_id),
            )
        )
    if keep_eval_runs:
        query = query.where(
            _trace.c.eval_run_id.is_(None),
            ~exists().where(_result.c.trace_id == _trace.c.id),
        )
    rows = conn.execute(query).all()
    ids = [row.id for row in rows]
    if not ids:
        return {"selected": 0, "traces": 0, "spans": 0, "feedback": 0, "cursor": cursor}
    return {
        "selected": len(ids),
        "spans": conn.execute(delete(_span).where(_span.c.trace_id.in_(ids))).rowcount,
        "feedback": conn.execute(delete(_feedback).where(_feedback.c.trace_id.in_(ids))).rowcount,
        "traces": conn.execute(delete(_trace).where(_trace.c.id.in_(ids))).rowcount,
        "cursor": (rows[-1].start_ns, rows[-1].id),
    }


def _prune_cache_batch(s: Session, cutoff: Any, batch_size: int) -> int:
    """One transaction: delete up to BATCH_SIZE cache entries made before CUTOFF whose
    trace is gone (or that have none); an entry of a kept trace stays with it."""
    conn = s.connection()
    keys = (
        conn.execute(
            select(_cache.c.key)
            .where(_cache.c.created_at < cutoff)
            .where(
                or_(
                    _cache.c.trace_id.is_(None),
                    ~exists().where(_trace.c.id == _cache.c.trace_id),
                )
            )
            .limit(batch_size)
        )
        .scalars()
        .all()
    )
    if not keys:
        return 0
    return int(conn.execute(delete(_cache).where(_cache.c.key.in_(keys))).rowcount)


def _yield_to_writers(started: float) -> None:
    """Rest as long as the batch held the write lock (at most 50 ms), so writers waiting
    for it (SQLite's busy handler polls) get their turn between batches."""
    time.sleep(min(0.05, time.monotonic() - started))


def _ns_to_datetime(ns: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC)
