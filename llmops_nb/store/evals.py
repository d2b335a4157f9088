"""Queries for eval runs and their results.

Results arrive in batches from the grid runner: one Core executemany per batch with
INSERT ... ON CONFLICT on (run_id, prompt_ref, model_label, row_index), so a resumed
run, or a batch written twice, never duplicates a cell; a stored cell is replaced only
when it recorded an error (the retry of a resumed run). Reads page through a run's
results by id, so a 100,000-row run never sits in memory as ORM objects.

A running run records its owner (host, pid and process start time); a run whose owner
on this host is gone (killed, crashed kernel) reads as 'interrupted', never 'running'
forever.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .base import StoreBase
from .models import utcnow

_result_table = m.EvalResult.__table__  # type: ignore[attr-defined]
_run_table = m.EvalRun.__table__  # type: ignore[attr-defined]
_CELL_KEY = ["run_id", "prompt_ref", "model_label", "row_index"]
FINAL_STATUSES = ("done", "incomplete", "failed", "interrupted")

RESULT_COLUMNS = (
    "prompt_ref",
    "prompt_version_id",
    "model",
    "model_label",
    "row_index",
    "inputs",
    "expected",
    "output",
    "error",
    "scores",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cached",
    "trace_id",
)
"""The columns `eval_result_chunks` yields, in order."""


class EvalQueries(StoreBase):
    """Eval runs (one per grid) and their results (one per prompt x model x data row)."""

    # --- runs ----------------------------------------------------------------------

    def create_eval_run(self, project: str, name: str, **fields: Any) -> m.EvalRun:
        """A new run (status 'running', owned by this process); fields: spec,
        dataset_version_id, n_cells, ..."""
        project_id = self.project_id(project)

        def add(s: Session) -> m.EvalRun:
            row = m.EvalRun(project_id=project_id, name=name, owner=process_owner(), **fields)
            s.add(row)
            s.flush()
            return row

        return self.write(add)

    def get_eval_run(self, run_id: int) -> m.EvalRun:
        with self.session() as s:
            row = s.get(m.EvalRun, run_id)
        if row is None:
            raise NotFound(f"no eval run with id {run_id}")
        return self._settle(row)

    def update_eval_run(self, run_id: int, **fields: Any) -> None:
        """Set status, finished_at, baseline_run_id...; finished_at defaults to now when
        the status becomes final, and a run set running again is owned by this process."""
        if fields.get("status") in FINAL_STATUSES:
            fields.setdefault("finished_at", utcnow())
        if fields.get("status") == "running":
            fields.setdefault("owner", process_owner())

        def apply(s: Session) -> None:
            s.exec(  # type: ignore[call-overload]
                update(m.EvalRun).where(m.EvalRun.id == run_id).values(**fields)  # type: ignore[arg-type]
            )

        self.write(apply)

    def latest_eval_run(
        self,
        project: str,
        name: str,
        *,
        status: str | None = None,
        before_id: int | None = None,
    ) -> m.EvalRun | None:
        """The newest run called NAME (with STATUS, older than run BEFORE_ID), or None."""
        project_id = self.project_id(project)
        query = select(m.EvalRun).where(m.EvalRun.project_id == project_id, m.EvalRun.name == name)
        if status is not None:
            query = query.where(m.EvalRun.status == status)
        if before_id is not None:
            query = query.where(m.EvalRun.id < before_id)  # type: ignore[operator]
        with self.session() as s:
            row = s.exec(query.order_by(m.EvalRun.id.desc()).limit(1)).first()  # type: ignore[union-attr]
        if row is None or status is not None:
            return row
        return self._settle(row)

    def _settle(self, row: m.EvalRun) -> m.EvalRun:
        """ROW, marked 'interrupted' first when it is running and its owner is gone."""
        if row.status == "running" and row.owner and owner_gone(row.owner):
            self._mark_interrupted([(row.id, row.owner)])  # type: ignore[list-item]
            row.status = "interrupted"
        return row

    def _mark_interrupted(self, runs: list[tuple[int, str]]) -> None:
        def apply(s: Session) -> None:
            for run_id, owner in runs:
                s.exec(  # type: ignore[call-overload]
                    update(m.EvalRun)
                    .where(m.EvalRun.id == run_id)  # type: ignore[arg-type]
                    .where(m.EvalRun.status == "running")  # type: ignore[arg-type]
                    .where(m.EvalRun.owner == owner)  # type: ignore[arg-type]
                    .values(status="interrupted", finished_at=utcnow())
                )

        self.write(apply)

    def settle_eval_runs(self, project: str) -> int:
        """Mark the project's runs whose owning process is gone 'interrupted'; how many."""
        project_id = self.project_id(project)
        t = _run_table
        query = sa_select(t.c.id, t.c.owner).where(
            t.c.project_id == project_id,
            t.c.status == "running",
            t.c.owner.like(f"{_host()}:%"),
        )
        with self.session() as s:
            dead = [(i, o) for i, o in s.connection().execute(query) if owner_gone(o)]
        if dead:
            self._mark_interrupted(dead)
        return len(dead)

    def list_eval_runs(
        self, project: str, name: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first: id, name, status, n_cells, done (results stored), author, times."""
        self.settle_eval_runs(project)
        project_id = self.project_id(project)
        done = (
            sa_select(_result_table.c.run_id, func.count().label("done"))
            .group_by(_result_table.c.run_id)
            .subquery()
        )
        query = (
            sa_select(
                _run_table.c.id,
                _run_table.c.name,
                _run_table.c.status,
                _run_table.c.n_cells,
                func.coalesce(done.c.done, 0).label("done"),
                _run_table.c.author,
                _run_table.c.created_at,
                _run_table.c.finished_at,
                _run_table.c.baseline_run_id,
            )
            .outerjoin(done, done.c.run_id == _run_table.c.id)
            .where(_run_table.c.project_id == project_id)
        )
        if name is not None:
            query = query.where(_run_table.c.name == name)
        query = query.order_by(_run_table.c.id.desc()).limit(limit)
        with self.session() as s:
            return [dict(r) for r in s.connection().execute(query).mappings()]

    # --- results -------------------------------------------------------------------

    def add_eval_results(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert result rows (dicts with run_id and the RESULT_COLUMNS); a cell already
        stored is never duplicated: it is kept, or replaced when it recorded an error."""
        if not rows:
            return
        now = utcnow()
        payload = [{**row, "created_at": row.get("created_at", now)} for row in rows]
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        insert = dialect_insert(_result_table)
        statement = insert.on_conflict_do_update(
            index_elements=_CELL_KEY,
            set_={name: insert.excluded[name] for name in (*RESULT_COLUMNS, "created_at")},
            where=_result_table.c.error.is_not(None),
        )

        def apply(s: Session) -> None:
            s.connection().execute(statement, payload)

        self.write(apply)

    def eval_done_keys(self, run_id: int) -> set[tuple[str, str, int]]:
        """(prompt_ref, model_label, row_index) of every cell of a run stored without an
        error: what a resumed run skips (an errored cell is tried again)."""
        t = _result_table
        query = sa_select(t.c.prompt_ref, t.c.model_label, t.c.row_index).where(
            t.c.run_id == run_id, t.c.error.is_(None)
        )
        with self.session() as s:
            return {(p, ml, r) for p, ml, r in s.connection().execute(query)}

    def eval_result_count(self, run_id: int) -> int:
        t = _result_table
        with self.session() as s:
            return int(
                s.connection()
                .execute(sa_select(func.count()).select_from(t).where(t.c.run_id == run_id))
                .scalar()
                or 0
            )

    def eval_result_chunks(
        self,
        run_id: int,
        *,
        prompt_ref: str | None = None,
        model_label: str | None = None,
        columns: Sequence[str] = RESULT_COLUMNS,
        chunk: int = 10_000,
        limit: int | None = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """A run's results as lists of tuples (COLUMNS order), paged by id; with LIMIT,
        the first rows in data-row order (what a panel shows), in one chunk."""
        t = _result_table
        selected = [t.c[name] for name in columns]
        if limit is not None:
            query = sa_select(*selected).where(t.c.run_id == run_id)
            if prompt_ref is not None:
                query = query.where(t.c.prompt_ref == prompt_ref)
            if model_label is not None:
                query = query.where(t.c.model_label == model_label)
            with self.session() as s:
                rows = (
                    s.connection().execute(query.order_by(t.c.row_index, t.c.id).limit(limit)).all()
                )
            if rows:
                yield [tuple(r) for r in rows]
            return
        last_id = 0
        while True:
            query = sa_select(t.c.id, *selected).where(t.c.run_id == run_id, t.c.id > last_id)
            if prompt_ref is not None:
                query = query.where(t.c.prompt_ref == prompt_ref)
            if model_label is not None:
                query = query.where(t.c.model_label == model_label)
            with self.session() as s:
                rows = s.connection().execute(query.order_by(t.c.id).limit(chunk)).all()
            if not rows:
                return
            last_id = rows[-1][0]
            yield [tuple(r[1:]) for r in rows]
            if len(rows) < chunk:
                return

    # --- cell summaries ----------------------------------------------------------------

    def eval_cell_stats(
        self, run_id: int, pass_at: dict[str, float]
    ) -> list[dict[str, Any]] | None:
        """Per prompt x model cell, in the order cells were first stored, computed in SQL so
        a 100,000-row run never has its scores decoded row by row in Python.

        PASS_AT maps each scorer to the score a row needs to pass it. Per cell: n, errors,
        the mean of each scorer (a failed call scores 0 on every scorer it has no score
        for), pass_rate (no error, and every score the row has at its pass mark), linear
        p50/p95 latency of real calls and p50 of cache hits, token and cost sums, cache
        hits. These are `EvalRun.summary()`'s rules. None when a scorer name cannot be
        written as a SQLite JSON path (it contains a double quote or a backslash).
        """
        names = list(pass_at)
        if self.is_sqlite and any('"' in n or "\\" in n for n in names):
            return None
        params: dict[str, Any] = {"run": run_id}
        values, passes = [], []
        for i, name in enumerate(names):
            if self.is_sqlite:
                params[f"k{i}"], params[f"ks{i}"] = f'$."{name}"', f'$."{name}".score'
            else:
                params[f"k{i}"] = name
            params[f"t{i}"] = pass_at[name] - 1e-12  # the comparison EvalRun makes
            values.append(f"{self._score_sql(i)} AS s{i}")
            passes.append(f"(NOT {self._has_score_sql(i)} OR COALESCE(s{i} >= :t{i}, FALSE))")
        rows_sql = (
            "SELECT id, prompt_ref, model_label, error, input_tokens, output_tokens, cost, "
            "CASE WHEN COALESCE(cached, FALSE) THEN 1 ELSE 0 END AS hit, scores"
            f"{''.join(', ' + v for v in values)} FROM eval_result WHERE run_id = :run"
        )
        passed = " AND ".join(["error IS NULL", *passes])
        means = "".join(f", AVG(s{i}) AS s{i}" for i in range(len(names)))
        cells_sql = (
            f"WITH r AS ({rows_sql}) SELECT prompt_ref, model_label, MIN(id), COUNT(*), "
            f"COUNT(error), AVG(CASE WHEN {passed} THEN 1.0 ELSE 0.0 END), "
            "SUM(input_tokens), SUM(output_tokens), SUM(cost), SUM(hit)"
            f"{means} FROM r GROUP BY prompt_ref, model_label ORDER BY MIN(id)"
        )
        with self.session() as s:
            conn = s.connection()
            cells = conn.execute(text(cells_sql), params).all()
            latencies = conn.execute(text(_QUANTILE_ROWS_SQL), {"run": run_id}).all()
        points: dict[tuple[str, str, int], tuple[int, dict[int, float]]] = {}
        for prompt, model, hit, count, index, latency in latencies:
            points.setdefault((prompt, model, int(hit)), (int(count), {}))[1][int(index)] = latency
        out = []
        for row in cells:
            prompt, model, _first, n, errors, pass_rate, tok_in, tok_out, cost, hits = row[:10]
            real, cached = points.get((prompt, model, 0)), points.get((prompt, model, 1))
            out.append(
                {
                    "prompt": prompt,
                    "model": model,
                    "n": int(n),
                    "errors": int(errors),
                    **{name: _float(v) for name, v in zip(names, row[10:], strict=True)},
                    "pass_rate": _float(pass_rate),
                    "latency_p50_ms": _quantile(real, 0.5),
                    "latency_p95_ms": _quantile(real, 0.95),
                    "cached_latency_p50_ms": _quantile(cached, 0.5),
                    "input_tokens": int(tok_in or 0),
                    "output_tokens": int(tok_out or 0),
                    "cost": float(cost or 0.0),
                    "cached": int(hits or 0),
                }
            )
        return out

    def _score_sql(self, i: int) -> str:
        """The row's value of scorer I as a float, `_score_value`'s rules: true/false are
        1/0, a number is itself, {"score": x} is x; a missing score of a failed call is 0."""
        if self.is_sqlite:
            return (
                f"CASE json_type(scores, :k{i}) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 "
                f"WHEN 'integer' THEN CAST(json_extract(scores, :k{i}) AS REAL) "
                f"WHEN 'real' THEN json_extract(scores, :k{i}) "
                f"WHEN 'object' THEN CASE json_type(scores, :ks{i}) "
                f"WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 "
                f"WHEN 'integer' THEN CAST(json_extract(scores, :ks{i}) AS REAL) "
                f"WHEN 'real' THEN json_extract(scores, :ks{i}) END "
                f"ELSE CASE WHEN json_type(scores, :k{i}) IS NULL AND error IS NOT NULL "
                "THEN 0.0 END END"
            )
        v, sv = f"(scores -> CAST(:k{i} AS text))", f"(scores -> CAST(:k{i} AS text) -> 'score')"
        return (
            f"CASE json_typeof({v}) "
            f"WHEN 'boolean' THEN CASE WHEN ({v}::text)::boolean THEN 1.0::float8 ELSE 0.0 END "
            f"WHEN 'number' THEN ({v}::text)::float8 "
            f"WHEN 'object' THEN CASE json_typeof({sv}) "
            f"WHEN 'boolean' THEN CASE WHEN ({sv}::text)::boolean THEN 1.0::float8 ELSE 0.0 END "
            f"WHEN 'number' THEN ({sv}::text)::float8 END "
            f"ELSE CASE WHEN {v} IS NULL AND error IS NOT NULL THEN 0.0::float8 END END"
        )

    def _has_score_sql(self, i: int) -> str:
        """Whether the row has a score (even null) for scorer I."""
        if self.is_sqlite:
            return f"(json_type(scores, :k{i}) IS NOT NULL)"
        return f"((scores -> CAST(:k{i} AS text)) IS NOT NULL)"


# Latencies at the ranks the p50 and p95 need (floor(q(c-1)) and the next: exact integer
# arithmetic, which is where the float index floors to), per cell and per kind of call
# (hit = 1 for cache hits), ranked in SQL.
_QUANTILE_ROWS_SQL = """
WITH h AS (
  SELECT prompt_ref, model_label, latency_ms,
         CASE WHEN COALESCE(cached, FALSE) THEN 1 ELSE 0 END AS hit
  FROM eval_result WHERE run_id = :run AND latency_ms IS NOT NULL
), ranked AS (
  SELECT prompt_ref, model_label, hit, latency_ms,
         ROW_NUMBER() OVER (PARTITION BY prompt_ref, model_label, hit ORDER BY latency_ms) - 1
           AS i,
         COUNT(*) OVER (PARTITION BY prompt_ref, model_label, hit) AS c
  FROM h
)
SELECT prompt_ref, model_label, hit, c, i, latency_ms FROM ranked
WHERE i IN ((c - 1) / 2, (c - 1) / 2 + 1, (19 * (c - 1)) / 20, (19 * (c - 1)) / 20 + 1)
"""


def _quantile(points: tuple[int, dict[int, float]] | None, q: float) -> float | None:
    """The quantile Q of a ranked sample, interpolated as polars' "linear" does (its float
    index and arithmetic, so the figure is the same to the last bit)."""
    if points is None:
        return None
    count, at = points
    index = (count - 1) * q
    base = math.floor(index)
    lower = float(at[base])
    if base == index:
        return lower
    return (index - base) * (float(at[base + 1]) - lower) + lower


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- run owners ----------------------------------------------------------------------


def _host() -> str:
    return socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is
    not mistaken for the owner; None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def process_owner() -> str:
    """This process, as 'host:pid:start'."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_ticks(pid) or ''}"


def owner_gone(owner: str) -> bool:
    """True when OWNER ran on this host and that process no longer exists (another host's
    process cannot be checked: its runs are left as they are)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return False
    pid, start = int(parts[1]), parts[2]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return bool(start) and _start_ticks(pid) not in (None, start)
