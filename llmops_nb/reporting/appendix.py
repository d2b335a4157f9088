"""The report's appendix, read from the store: every prompt version, eval run, trace and
fine-tune the notebook touched, and the totals for the header.

Bounded whatever the store holds: an eval run shows its summary and its worst rows,
traces beyond the first few show as one table row each, charts are pre-aggregated.
A store that cannot be reached leaves a warning, never a failed report.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LLMOpsError
from . import panels
from .discover import Touched
from .sanitize import clean_html

WORST_ROWS = 20
"""Rows shown per eval run: the failing and lowest-scoring ones."""
TRACE_PANELS = 20
"""Traces shown with their whole span tree; the rest get a row in the traces table."""
TRACE_ROWS = 2000
STORE_SCAN = 500
"""How many of the project's newest runs and traces are checked for this notebook's path."""
TEXT_LIMIT = 600


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _clip(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


@dataclass
class Totals:
    """What the notebook's model calls added up to."""

    calls: int = 0
    tokens: int = 0
    cost: float = 0.0


@dataclass
class Appendix:
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, title, html)
    totals: Totals = field(default_factory=Totals)
    notes: list[str] = field(default_factory=list)
    project: str | None = None


def _same_notebook(stored: str | None, notebook: Path | None) -> bool:
    if not stored or notebook is None:
        return False
    path = Path(stored)
    if path.is_absolute():
        try:
            return path.resolve() == notebook.resolve()
        except OSError:
            return False
    return notebook.resolve().parts[-len(path.parts) :] == path.parts


def touched_in_store(store: Any, project: str, notebook: Path | None) -> Touched:
    """What the store records as written from NOTEBOOK (its notebook_path columns)."""
    found = Touched()
    if notebook is None:
        return found
    for entry in store.list_prompts(project):
        for row in store.prompt_versions(project, entry["name"]):
            if _same_notebook(row.notebook_path, notebook):
                found.prompts.setdefault((project, entry["name"], row.version), None)
    for entry in reversed(store.list_eval_runs(project, limit=STORE_SCAN)):
        if _same_notebook(store.get_eval_run(entry["id"]).notebook_path, notebook):
            found.eval_runs.setdefault(int(entry["id"]), None)
    for row in reversed(store.list_traces(project, limit=STORE_SCAN)):
        if _same_notebook(row.notebook_path, notebook):
            found.traces.setdefault(row.id, None)
    return found


def build(touched: Touched, *, notebook: Path | None, project: str | None) -> Appendix:
    """Read everything TOUCHED from the configured store; warnings go into the notes."""
    from .. import config
    from ..errors import StoreUnavailable
    from ..store import get_store

    out = Appendix(project=project or next(iter(touched.projects), None))
    url = config.store_url()
    try:
        store = get_store(url)
        out.project = out.project or config.current_project()
        scanned = touched_in_store(store, out.project, notebook)
    except StoreUnavailable as exc:
        out.notes.append(
            f"warning: the store could not be reached ({exc}); this report shows the "
            "notebook's saved outputs only, without the appendix"
        )
        return out
    touched.merge(scanned)
    eval_trace_ids: set[str] = set()
    if touched.prompts:
        out.sections.append(("prompts", "Prompts", _prompts(touched, out)))
    if touched.eval_runs:
        out.sections.append(("eval-runs", "Eval runs", _eval_runs(touched, out, eval_trace_ids)))
    traces = [t for t in touched.traces if t not in eval_trace_ids]
    if traces:
        out.sections.append(("traces", "Traces", _traces(traces, out)))
    if touched.finetunes:
        out.sections.append(("finetunes", "Fine-tunes", _finetunes(touched, out)))
    return out


# --- prompts --------------------------------------------------------------------------------


def _prompts(touched: Touched, out: Appendix) -> str:
    from .. import prompting

    parts = []
    seen: set[tuple[str, str, int]] = set()
    names: dict[tuple[str, str], None] = {}
    for project, name, version in touched.prompts:
        key = (project or out.project or "default", name, version)
        if key in seen:
            continue
        seen.add(key)
        try:
            found = prompting.prompt(f"{name}@{version}", project=key[0])
        except LLMOpsError as exc:
            out.notes.append(f"prompt {name} v{version}: {exc}")
            continue
        names.setdefault((key[0], name), None)
        parts.append(
            f'<div class="lo-item" id="prompt-{_e(name)}-{version}">'
            f"{clean_html(panels.prompt_html(found))}</div>"
        )
    from ..store import get_store

    store = get_store()
    for project, name in names:
        log = store.alias_log(project, name)
        if not log:
            continue
        rows = "".join(
            f"<tr><td>{_e(e['alias'])}</td><td>{_e(e['action'])}</td>"
            f"<td>{'' if e['from_version'] is None else 'v' + _e(e['from_version'])}</td>"
            f"<td>v{_e(e['to_version'])}</td><td>{_e(e['author'])}</td>"
            f"<td>{_e(_when(e['time']))}</td></tr>"
            for e in log
        )
        parts.append(
            f'<h4>Alias moves of {_e(name)}</h4><table class="lo-table"><tr><th>alias</th>'
            f"<th>action</th><th>from</th><th>to</th><th>who</th><th>when</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)


# --- eval runs ------------------------------------------------------------------------------


def _eval_runs(touched: Touched, out: Appendix, trace_ids: set[str]) -> str:
    from ..evals import EvalRun

    parts = []
    for run_id in touched.eval_runs:
        try:
            run = EvalRun.load(run_id, project=out.project)
            results = run.results
        except LLMOpsError as exc:
            out.notes.append(f"eval run #{run_id}: {exc}")
            continue
        # the calls the run made itself are counted with the run (a cached row links to
        # the trace of an earlier call, which stays a trace of its own)
        own = results.filter(~results["cached"])["trace_id"].drop_nulls()
        trace_ids.update(own.to_list())
        summary = run.summary()
        out.totals.calls += int(summary["n"].sum() - summary["cached"].sum())
        out.totals.tokens += int(summary["input_tokens"].sum() + summary["output_tokens"].sum())
        out.totals.cost += _num(summary["cost"].sum())
        body = [clean_html(panels.eval_html(run))]
        body.append(_chart("Latency per cell", lambda frame=results: _latency_chart(frame)))
        body.append(_worst_rows(run, results))
        parts.append(
            f'<div class="lo-item" id="eval-{run.id}"><h3>eval {_e(run.name)} #{run.id}</h3>'
            f"{''.join(body)}</div>"
        )
    return "".join(parts)


def _chart(title: str, make: Any) -> str:
    """A chart as inline SVG, or a line saying why it is missing (a chart never sinks a report)."""
    try:
        chart = make()
        if chart is None:
            return ""
        svg = panels.svg(chart)
    except Exception as exc:  # vl-convert or altair missing or failing: the tables remain
        return f'<p class="lo-note">chart "{_e(title)}" unavailable: {_e(exc)}</p>'
    return (
        f'<figure class="lo-chart"><figcaption>{_e(title)}</figcaption>{clean_html(svg)}</figure>'
    )


def _histogram(values: list[tuple[str, float]], title: str, bins: int = 24) -> dict[str, Any]:
    """A Vega-Lite spec of pre-binned counts per group: small whatever the number of values."""
    finite = [(g, v) for g, v in values if v is not None and math.isfinite(v)]
    low = min(v for _, v in finite)
    high = max(v for _, v in finite)
    width = (high - low) / bins or 1.0
    counts: dict[tuple[str, int], int] = {}
    for group, value in finite:
        index = min(bins - 1, int((value - low) / width))
        counts[(group, index)] = counts.get((group, index), 0) + 1
    rows = [
        {"group": g, "start": low + i * width, "end": low + (i + 1) * width, "count": n}
        for (g, i), n in sorted(counts.items())
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"values": rows},
        "mark": {"type": "bar", "opacity": 0.75},
        "encoding": {
            "x": {
                "field": "start",
                "type": "quantitative",
                "bin": {"binned": True},
                "title": title,
            },
            "x2": {"field": "end"},
            "y": {"field": "count", "type": "quantitative", "stack": None, "title": "count"},
            "color": {"field": "group", "type": "nominal", "title": None},
        },
        "width": 460,
        "height": 160,
    }


def _latency_chart(results: Any) -> dict[str, Any] | None:
    frame = results.select("prompt", "model", "latency_ms").drop_nulls()
    if frame.height == 0:
        return None
    values = [
        (f"{p} × {m}", float(v))
        for p, m, v in zip(frame["prompt"], frame["model"], frame["latency_ms"], strict=True)
    ]
    return _histogram(values, "latency (ms)")


def _worst_rows(run: Any, results: Any) -> str:
    """The failing and lowest-scoring rows of a run, at most WORST_ROWS of them."""
    import polars as pl

    if results.height == 0:
        return '<p class="lo-note">no results stored</p>'
    scorers = [s for s in run.scorers if s in results.columns]
    mean = pl.mean_horizontal(*[pl.col(s) for s in scorers]) if scorers else pl.lit(0.0)
    worst = (
        results.with_columns(mean.fill_null(0.0).alias("_mean"))
        .sort(["passed", pl.col("error").is_null(), "_mean", "row_index"], nulls_last=False)
        .head(WORST_ROWS)
    )
    rows = []
    for r in worst.iter_rows(named=True):
        inputs = r.get("inputs")
        shown = json.dumps(inputs, ensure_ascii=False, default=str) if inputs is not None else ""
        scores = ", ".join(f"{s}={r[s]:.2f}" if r.get(s) is not None else f"{s}=–" for s in scorers)
        outcome = r["output"] if r.get("error") is None else f"error: {r['error']}"
        trace = r.get("trace_id") or ""
        rows.append(
            f"<tr><td>{_e(r['prompt'])} × {_e(r['model'])}</td><td>{_e(r['row_index'])}</td>"
            f"<td><pre>{_e(_clip(shown))}</pre></td>"
            f"<td><pre>{_e(_clip(r.get('expected')))}</pre></td>"
            f"<td><pre>{_e(_clip(outcome))}</pre></td><td>{_e(scores)}</td>"
            f"<td>{'pass' if r['passed'] else 'fail'}</td>"
            f'<td class="lo-id">{_e(trace[:12])}</td></tr>'
        )
    shown_n = min(WORST_ROWS, results.height)
    return (
        f"<h4>Worst rows ({shown_n} of {results.height})</h4>"
        '<table class="lo-table lo-worst"><tr><th>cell</th><th>row</th><th>input</th>'
        "<th>expected</th><th>output</th><th>scores</th><th>verdict</th><th>trace</th></tr>"
        f"{''.join(rows)}</table>"
    )


# --- traces ---------------------------------------------------------------------------------


def _traces(trace_ids: list[str], out: Appendix) -> str:
    from .. import tracing

    loaded = []
    for trace_id in trace_ids[:TRACE_ROWS]:
        try:
            loaded.append(tracing.get_trace(trace_id))
        except LLMOpsError as exc:
            out.notes.append(f"trace {trace_id[:12]}: {exc}")
    if len(trace_ids) > TRACE_ROWS:
        out.notes.append(f"{len(trace_ids) - TRACE_ROWS} more traces not listed")
    for t in loaded:
        out.totals.calls += sum(1 for s in t.spans if s.kind == "llm")
        out.totals.tokens += int(t.tokens)
        out.totals.cost += _num(t.cost)
    rows = "".join(
        f'<tr><td>{_link(t, i)}</td><td class="lo-id">{_e(t.id)}</td>'
        f'<td class="lo-status-{"error" if t.status == "error" else "ok"}">{_e(t.status)}</td>'
        f"<td>{t.latency_ms:.1f}</td><td>{len(t.spans)}</td><td>{t.tokens}</td>"
        f"<td>{'' if not t.cost else f'${t.cost:.6f}'}</td></tr>"
        for i, t in enumerate(loaded)
    )
    parts = [
        f"<p>{len(loaded)} trace(s); the first {min(TRACE_PANELS, len(loaded))} with their span "
        "tree below.</p>",
        '<table class="lo-table"><tr><th>trace</th><th>id</th><th>status</th><th>ms</th>'
        f"<th>spans</th><th>tokens</th><th>cost</th></tr>{rows}</table>",
    ]
    if len(loaded) > 1:
        values = [(t.name, t.latency_ms) for t in loaded]
        parts.append(_chart("Trace latency", lambda: _histogram(values, "latency (ms)")))
    for t in loaded[:TRACE_PANELS]:
        parts.append(
            f'<div class="lo-item" id="trace-{_e(t.id)}">{clean_html(panels.trace_html(t))}</div>'
        )
    return "".join(parts)


def _link(trace: Any, index: int) -> str:
    if index < TRACE_PANELS:
        return f'<a href="#trace-{_e(trace.id)}">{_e(trace.name)}</a>'
    return _e(trace.name)


# --- fine-tunes -----------------------------------------------------------------------------


def _finetunes(touched: Touched, out: Appendix) -> str:
    if not panels.finetune_available():
        return (
            f'<p class="lo-note">{len(touched.finetunes)} fine-tune job(s) referenced; this '
            "install has no fine-tune service to read them with.</p>"
        )
    parts = []
    for job_id in touched.finetunes:
        try:
            rendered = panels.finetune_html(job_id)
        except LLMOpsError as exc:
            out.notes.append(f"fine-tune #{job_id}: {exc}")
            continue
        if rendered:
            parts.append(
                f'<div class="lo-item" id="finetune-{job_id}">{clean_html(rendered)}</div>'
            )
    return "".join(parts)
