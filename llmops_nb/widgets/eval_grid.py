"""The eval grid panel: a heatmap per scorer, pass rate, latency, tokens, cost, regression
marks, the rows of a clicked cell, and a row's trace.

It renders `views.evals.eval_view` (the same data the sidebar serves). The widget view
is `static/eval_grid.js`; it asks Python for a cell's rows, and for a row's trace, by
custom message. `static_html` is the escaped fallback (summary table and inline SVG
heatmaps) that reports, non-widget frontends and a reopened notebook show.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..views.evals import ROWS_PAGE, cell_rows, eval_view
from ..views.evals import number as _num
from . import esm, stylesheet

if TYPE_CHECKING:
    from ..evals.run import EvalRun

__all__ = ["EvalGrid", "static_html", "summary_text"]


class EvalGrid(anywidget.AnyWidget):
    """A live view of one eval run (data from `views.evals.eval_view`)."""

    _esm = esm("trace_view.js", "eval_grid.js")
    _css = stylesheet("panel.css", "eval_grid.css", "trace_viewer.css")
    data = traitlets.Dict().tag(sync=True)

    def __init__(self, run: EvalRun, **kwargs: Any) -> None:
        super().__init__(data=eval_view(run), **kwargs)
        self._run = run
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The JS asks for the rows of a clicked cell, or for the trace of a row."""
        if not isinstance(content, dict):
            return
        if content.get("type") == "rows":
            prompt, model = str(content.get("prompt")), str(content.get("model"))
            rows = cell_rows(self._run, prompt, model, ROWS_PAGE)
            self.send({"type": "rows", "prompt": prompt, "model": model, "rows": rows})
        elif content.get("type") == "trace":
            self.send(trace_message(content.get("trace_id")))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = static_html(self.data)
        data["text/plain"] = summary_text(self.data)
        return data, meta


def trace_message(trace_id: Any) -> dict[str, Any]:
    """The reply to a click on a row's trace: the trace view, or why there is none."""
    from .. import tracing
    from ..errors import LLMOpsError
    from ..views.traces import trace_view

    if not isinstance(trace_id, str) or not trace_id:
        return {"type": "trace_error", "trace_id": None, "message": "this row has no trace"}
    try:
        return {
            "type": "trace",
            "trace_id": trace_id,
            "trace": trace_view(tracing.get_trace(trace_id)),
        }
    except LLMOpsError as exc:
        return {"type": "trace_error", "trace_id": trace_id, "message": str(exc)}


# --- text and static HTML ---------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}f}"


def pass_rule(data: dict[str, Any]) -> str:
    """What pass rate counts: a row passes when every scorer reaches its threshold."""
    thresholds = data.get("thresholds") or {}
    if not thresholds:
        return "no error"
    return ", ".join(f"{s} ≥ {_fmt(t, 2)}" for s, t in thresholds.items())


def baseline_label(data: dict[str, Any]) -> str:
    name = data.get("baseline_name")
    return f"{name} #{data.get('baseline_id')}" if name else f"#{data.get('baseline_id')}"


def summary_text(data: dict[str, Any]) -> str:
    """The plain-text view: one line per cell."""
    head = (
        f"eval {data.get('name')} #{data.get('id')}: {data.get('status')}, "
        f"{data.get('done')}/{data.get('n_cells')} cells"
    )
    if data.get("baseline_id"):
        head += f", baseline {baseline_label(data)}"
    lines = [head, f"  pass: {pass_rule(data)}"]
    for c in data.get("cells") or []:
        scores = " ".join(f"{s}={_fmt(v)}" for s, v in (c.get("scores") or {}).items())
        marks = [
            f"{s} {f['flag']}" for s, f in (c.get("flags") or {}).items()
            if f.get("flag") in ("regression", "improvement")
        ]  # fmt: skip
        line = (
            f"  {c['prompt']} x {c['model']}: {scores} pass={_fmt(c.get('pass_rate'))} "
            f"errors={c.get('errors')} p50={_fmt(c.get('latency_p50_ms'), 0)}ms"
        )
        if c.get("cached"):
            line += f" cached={c['cached']} (p50 {_fmt(c.get('cached_latency_p50_ms'), 0)}ms)"
        lines.append(line + (f"  [{'; '.join(marks)}]" if marks else ""))
    return "\n".join(lines)


def score_color(value: float | None) -> str:
    """Red (0) through yellow (0.5) to green (1); grey for no score."""
    v = _num(value)
    if v is None:
        return "#e5e5e5"
    v = min(1.0, max(0.0, v))
    if v < 0.5:
        r, g, b = 230, int(90 + 2 * v * 130), 80
    else:
        r, g, b = int(230 - (v - 0.5) * 2 * 150), 210 - int((v - 0.5) * 2 * 30), 90
    return f"#{r:02x}{g:02x}{b:02x}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def heatmap_svg(data: dict[str, Any], scorer: str) -> str:
    """One scorer's heatmap as inline SVG (prompts down, models across)."""
    prompts, models = data.get("prompts") or [], data.get("models") or []
    cells = {(c["prompt"], c["model"]): c for c in data.get("cells") or []}
    left, top, cw, ch = 150, 40, 120, 30
    width, height = left + cw * len(models) + 10, top + ch * len(prompts) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lonb-heatmap" width="{width}" '
        f'height="{height}" role="img" aria-label="{_e(scorer)} heatmap">',
        f'<text x="4" y="16" font-size="13" font-weight="600">{_e(scorer)}</text>',
    ]
    for j, model in enumerate(models):
        parts.append(
            f'<text x="{left + j * cw + cw / 2}" y="{top - 6}" font-size="11" '
            f'text-anchor="middle">{_e(_short(model))}</text>'
        )
    for i, prompt in enumerate(prompts):
        y = top + i * ch
        parts.append(
            f'<text x="{left - 6}" y="{y + ch / 2 + 4}" font-size="11" '
            f'text-anchor="end">{_e(_short(prompt))}</text>'
        )
        for j, model in enumerate(models):
            cell = cells.get((prompt, model)) or {}
            value = (
                (cell.get("scores") or {}).get(scorer)
                if scorer != "pass_rate"
                else cell.get("pass_rate")
            )
            flag = ((cell.get("flags") or {}).get(scorer) or {}).get("flag")
            stroke = {"regression": "#b00020", "improvement": "#1b7f3b"}.get(flag or "", "#fff")
            mark = {"regression": " ▼", "improvement": " ▲"}.get(flag or "", "")
            x = left + j * cw
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                f'fill="{score_color(value)}" stroke="{stroke}" stroke-width="2">'
                f"<title>{_e(prompt)} × {_e(model)}: {_e(scorer)} {_fmt(value, 3)}"
                f"{_e(' ' + flag) if flag else ''}</title></rect>"
            )
            parts.append(
                f'<text x="{x + cw / 2}" y="{y + ch / 2 + 4}" font-size="12" '
                f'text-anchor="middle">{_fmt(value)}{mark}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def static_html(data: dict[str, Any]) -> str:
    """Self-contained, escaped HTML: header, SVG heatmaps, summary table, comparison."""
    css = stylesheet("panel.css", "eval_grid.css")
    scorers = list(data.get("scorers") or []) or ["pass_rate"]
    status = _e(data.get("status"))
    info = f"{_e(data.get('done'))}/{_e(data.get('n_cells'))} cells"
    if data.get("baseline_id"):
        info += f" · baseline {_e(baseline_label(data))}"
    source = data.get("data") or {}
    if source.get("name"):
        info += f" · data {_e(source.get('name'))} v{_e(source.get('version'))}"
    head = (
        f'<div class="lonb-head"><span class="lonb-title">eval {_e(data.get("name"))}</span>'
        f' <span class="lonb-badge">#{_e(data.get("id"))}</span>'
        f' <span class="lonb-status lonb-status-{status}">{status}</span>'
        f'<span class="lonb-muted"> {info}</span></div>'
    )
    maps = "".join(heatmap_svg(data, s) for s in scorers)
    header = "".join(f"<th>{_e(s)}</th>" for s in data.get("scorers") or [])
    rows = []
    for c in data.get("cells") or []:
        tds = []
        for s in data.get("scorers") or []:
            flag = ((c.get("flags") or {}).get(s) or {}).get("flag")
            cls = f' class="lonb-{flag}"' if flag in ("regression", "improvement") else ""
            mark = {"regression": " ▼", "improvement": " ▲"}.get(flag or "", "")
            tds.append(f"<td{cls}>{_fmt((c.get('scores') or {}).get(s), 3)}{mark}</td>")
        cost = _num(c.get("cost"))
        rows.append(
            f"<tr><td>{_e(c['prompt'])}</td><td>{_e(c['model'])}</td><td>{_e(c['n'])}</td>"
            f"<td>{_e(c['errors'])}</td>{''.join(tds)}<td>{_fmt(c.get('pass_rate'), 3)}</td>"
            f"<td>{_fmt(c.get('latency_p50_ms'), 0)}</td>"
            f"<td>{_fmt(c.get('latency_p95_ms'), 0)}</td>"
            f"<td>{_e(c.get('cached'))} · {_fmt(c.get('cached_latency_p50_ms'), 0)}</td>"
            f"<td>{_e(c.get('input_tokens'))} / {_e(c.get('output_tokens'))}</td>"
            f"<td>{'–' if cost is None else f'${cost:.6f}'}</td></tr>"
        )
    table = (
        '<table class="lonb-table lonb-grid-summary"><tr><th>prompt</th><th>model</th><th>rows</th>'
        f"<th>errors</th>{header}<th>pass rate</th><th>p50 ms</th><th>p95 ms</th>"
        "<th>cache hits · p50 ms</th>"
        f"<th>tokens in / out</th><th>cost</th></tr>{''.join(rows)}</table>"
        f'<p class="lonb-muted lonb-pass-rule">pass rate: rows where {_e(pass_rule(data))}; '
        "latency of real calls, cache hits apart</p>"
    )
    parts = [head, f'<div class="lonb-heatmaps">{maps}</div>', "<h4>Summary</h4>", table]
    flagged = [
        (c, s, f) for c in data.get("cells") or [] for s, f in (c.get("flags") or {}).items()
        if f.get("flag") in ("regression", "improvement")
    ]  # fmt: skip
    if data.get("baseline_id"):
        parts.append(f"<h4>Against baseline {_e(baseline_label(data))}</h4>")
        if data.get("comparison_error"):
            parts.append(f'<div class="lonb-error">{_e(data["comparison_error"])}</div>')
        elif not flagged:
            parts.append(
                '<p class="lonb-muted">no significant change '
                "(paired bootstrap 95% CI and permutation test)</p>"
            )
        else:
            items = "".join(
                f'<li class="lonb-{_e(f["flag"])}">{_e(f["flag"])}: '
                f"{_e(c['prompt'])} × {_e(c['model'])} "
                f"{_e(s)} {_fmt(f.get('baseline'), 3)} → {_fmt(f.get('current'), 3)} "
                f"(Δ {_fmt(f.get('delta'), 3)}, "
                f"95% CI [{_fmt(f.get('ci_low'), 3)}, {_fmt(f.get('ci_high'), 3)}], "
                f"p={_fmt(f.get('p_value'), 4)}, n={_e(f.get('n_shared'))})</li>"
                for c, s, f in flagged
            )
            parts.append(f"<ul>{items}</ul>")
    if data.get("rows"):
        for key, cell_rows_ in data["rows"].items():
            prompt, _, model = key.partition("\x1f")
            body = "".join(
                f"<tr><td>{_e(r['row'])}</td><td><pre>{_e(r['input'])}</pre></td>"
                f"<td><pre>{_e(r['expected'])}</pre></td>"
                f"<td><pre>{_e(r['output'] if r['error'] is None else r['error'])}</pre></td>"
                f"<td>{_e(', '.join(f'{s}={_fmt(v)}' for s, v in r['scores'].items()))}</td>"
                f"<td>{_trace_link(r['trace_id'])}</td></tr>"
                for r in cell_rows_
            )
            parts.append(
                f'<h4>{_e(prompt)} × {_e(model)}</h4><table class="lonb-table"><tr><th>#</th>'
                f"<th>input</th><th>expected</th><th>output</th><th>scores</th><th>trace</th></tr>{body}</table>"
            )
    return f'<div class="lonb-panel lonb-eval-grid"><style>{css}</style>{"".join(parts)}</div>'


def _trace_link(trace_id: str | None) -> str:
    if not trace_id:
        return ""
    return f'<a class="lonb-trace" href="#trace-{_e(trace_id)}">{_e(trace_id[:12])}</a>'
