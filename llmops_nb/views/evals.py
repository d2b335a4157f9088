"""The eval run view: what the grid panel, its static HTML, the sidebar and the report show.

Every number follows `EvalRun.summary()`'s rules (the cells are aggregated in SQL by
`Store.eval_cell_stats`, tested to agree with it) and `EvalRun.compare()`, so a run
reads the same everywhere. Non-finite floats become None
(JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..evals.run import EvalRun

__all__ = ["ROWS_PAGE", "cell_key", "cell_rows", "eval_view", "number", "summary_rows"]

ROWS_PAGE = 50


def number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def cell_key(prompt: str, model: str) -> str:
    """The key of a cell in the view's `rows` mapping."""
    return f"{prompt}\x1f{model}"


def _flags(run: EvalRun) -> tuple[dict[tuple[str, str, str], dict[str, Any]], str | None]:
    from ..errors import LLMOpsError

    flags: dict[tuple[str, str, str], dict[str, Any]] = {}
    if run.baseline_id is None:
        return flags, None
    try:
        comparison = run.compare()
    except LLMOpsError as exc:
        return flags, str(exc)
    for row in comparison.iter_rows(named=True):
        flags[(row["prompt"], row["model"], row["scorer"])] = {
            k: (number(v) if isinstance(v, float) else v)
            for k, v in row.items()
            if k not in ("prompt", "model", "scorer")
        }
    return flags, None


def _baseline_name(run: EvalRun) -> str | None:
    from ..errors import LLMOpsError

    if run.baseline_id is None:
        return None
    try:
        baseline = run.baseline
    except LLMOpsError:
        return None
    return baseline.name if baseline is not None else None


def summary_rows(run: EvalRun) -> list[dict[str, Any]]:
    """`run.summary()`'s rows in the spec's order, aggregated by the store in SQL: a
    100,000-row run's scores are not decoded row by row in Python."""
    from ..store import get_store

    rows = get_store().eval_cell_stats(run.id, run.thresholds)
    if rows is None:  # a scorer name SQLite's JSON paths cannot spell
        return list(run.summary().iter_rows(named=True))
    order_p = {p: i for i, p in enumerate(run.prompts)}
    order_m = {m: i for i, m in enumerate(run.models)}
    return sorted(
        rows,
        key=lambda r: (
            order_p.get(r["prompt"], len(order_p)),
            order_m.get(r["model"], len(order_m)),
        ),
    )


def eval_view(run: EvalRun, *, rows_per_cell: int = 0) -> dict[str, Any]:
    """One eval run as plain JSON-able data: header, thresholds, cells, flags, rows."""
    from ..store import get_store

    flags, comparison_error = _flags(run)
    cells = []
    for row in summary_rows(run):
        prompt, model = row["prompt"], row["model"]
        cells.append(
            {
                "prompt": prompt,
                "model": model,
                "n": row["n"],
                "errors": row["errors"],
                "scores": {s: number(row.get(s)) for s in run.scorers},
                "pass_rate": number(row["pass_rate"]),
                "latency_p50_ms": number(row["latency_p50_ms"]),
                "latency_p95_ms": number(row["latency_p95_ms"]),
                "cached_latency_p50_ms": number(row["cached_latency_p50_ms"]),
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "cost": number(row["cost"]),
                "cached": row["cached"],
                "flags": {
                    s: flags[(prompt, model, s)] for s in run.scorers if (prompt, model, s) in flags
                },
            }
        )
    view: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "project": run.project,
        "n_cells": run.n_cells,
        "done": get_store().eval_result_count(run.id),
        "created": run.created_at.isoformat(timespec="seconds") if run.created_at else None,
        "baseline_id": run.baseline_id,
        "baseline_name": _baseline_name(run),
        "comparison_error": comparison_error,
        "prompts": run.prompts,
        "targets": run.targets,  # rows of the grid that are Python callables (RAG pipelines)
        "models": run.models,
        "scorers": run.scorers,
        "thresholds": run.thresholds,
        "data": run.spec.get("data") or {},
        "cells": cells,
    }
    if rows_per_cell:
        view["rows"] = {
            cell_key(c["prompt"], c["model"]): cell_rows(
                run, c["prompt"], c["model"], rows_per_cell
            )
            for c in cells
        }
    return view


def cell_rows(
    run: EvalRun, prompt: str, model: str, limit: int = ROWS_PAGE
) -> list[dict[str, Any]]:
    """The rows of one cell: input, expected, output, error, verdict, scores, reasons, trace."""
    frame = run.cell_results(prompt, model, limit=limit)
    out = []
    for row in frame.iter_rows(named=True):
        inputs = row.get("inputs")
        out.append(
            {
                "row": row["row_index"],
                "input": ""
                if inputs is None
                else json.dumps(inputs, ensure_ascii=False, default=str),
                "expected": row["expected"],
                "output": row["output"],
                "error": row["error"],
                "passed": row["passed"],
                "scores": {s: number(row.get(s)) for s in run.scorers},
                "reasons": {
                    s: row.get(f"{s}_reason") for s in run.scorers if row.get(f"{s}_reason")
                },
                "latency_ms": number(row["latency_ms"]),
                "cached": row["cached"],
                "trace_id": row["trace_id"],
            }
        )
    return out
