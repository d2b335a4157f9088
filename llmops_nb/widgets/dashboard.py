"""The ops dashboard panel: per-group totals and altair charts over time (calls, error rate,
p95 latency, cost, cache hit rate) of the LLM calls, from `views.ops.ops_view`.

The charts are drawn by altair and rendered to sanitized SVG through vl-convert
(`charts.svg`), so they show offline, in the live panel and in the static fallback alike
(reports, saved notebooks). Model and prompt names are stored text: escaped everywhere.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

from . import STATIC, stylesheet

__all__ = ["OpsDashboard", "chart", "chart_svgs", "format_value", "static_html", "summary_text"]


class OpsDashboard(anywidget.AnyWidget):
    """The dashboard of one ops view; `charts` are the view's charts as SVG."""

    _esm = STATIC / "dashboard.js"
    _css = stylesheet("panel.css", "dashboard.css")
    view = traitlets.Dict().tag(sync=True)
    charts = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, view: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(view=view, charts=chart_svgs(view), **kwargs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = static_html(self.view, self.charts)
        data["text/plain"] = summary_text(self.view)
        return data, meta


def _section(view: dict[str, Any]) -> dict[str, Any]:
    return next((s for s in view.get("sections", []) if s.get("id") == "dashboard"), {})


def format_value(value: Any, kind: str) -> str:
    """How every face writes a metric (the same rule as dashboard.js and ops.ts)."""
    if value is None:
        return "–"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "ms":
        return f"{round(value):d} ms"
    if kind == "usd":
        return f"${value:.4f}"
    return str(value)


COLUMNS = [
    ("calls", "calls", "count"),
    ("errors", "errors", "count"),
    ("error_rate", "error rate", "percent"),
    ("p50_ms", "p50", "ms"),
    ("p95_ms", "p95", "ms"),
    ("input_tokens", "tokens in", "count"),
    ("output_tokens", "tokens out", "count"),
    ("cost", "cost", "usd"),
    ("cache_hit_rate", "cache hits", "percent"),
]
"""The totals table's columns: key, heading, format."""


def chart(view: dict[str, Any]) -> Any:
    """The dashboard's charts over time, one row each, coloured by group (altair)."""
    import altair as alt

    section = _section(view)
    by = section.get("by", "model")
    rows = section.get("series") or []
    data = alt.Data(values=rows)
    charts = []
    for metric in section.get("metrics", []):
        fmt = {"percent": ".0%", "usd": "$.4f", "ms": ",.0f"}.get(metric["format"], ",d")
        charts.append(
            alt.Chart(data, title=metric["title"])
            .mark_line(point=True)
            .encode(
                x=alt.X("bucket:T", title=None),
                y=alt.Y(f"{metric['key']}:Q", title=None, axis=alt.Axis(format=fmt)),
                color=alt.Color("group:N", title=by),
                tooltip=["bucket:T", "group:N", alt.Tooltip(f"{metric['key']}:Q", format=fmt)],
            )
            .properties(width=420, height=110)
        )
    return alt.vconcat(*charts) if charts else alt.Chart(data).mark_point()


def chart_svgs(view: dict[str, Any]) -> list[str]:
    """One sanitized SVG per metric (empty when the range has no calls)."""
    from ..charts import svg

    section = _section(view)
    if not section.get("series"):
        return []
    return [svg(chart(view))]


def summary_text(view: dict[str, Any]) -> str:
    section = _section(view)
    head = (
        f"ops dashboard · {view.get('project')} · {section.get('since')} → "
        f"{section.get('until')} every {section.get('every')} by {section.get('by')}"
    )
    lines = [head]
    for row in section.get("totals", []):
        cells = ", ".join(f"{title} {format_value(row[k], f)}" for k, title, f in COLUMNS)
        lines.append(f"  {row['group']}: {cells}")
    if not section.get("totals"):
        lines.append("  no LLM calls in this range")
    return "\n".join(lines)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def static_html(view: dict[str, Any], charts: list[str] | None = None) -> str:
    """Self-contained, escaped HTML of the panel (no script): reports and saved notebooks."""
    css = stylesheet("panel.css", "dashboard.css")
    section = _section(view)
    by = section.get("by", "model")
    head = (
        '<div class="lonb-head"><span class="lonb-title">Ops dashboard</span>'
        f' <span class="lonb-badge">{_e(view.get("project"))}</span>'
        f'<span class="lonb-muted"> {_e(section.get("since"))} → {_e(section.get("until"))}'
        f" · every {_e(section.get('every'))} · by {_e(by)}</span></div>"
    )
    totals = section.get("totals") or []
    if totals:
        header = f"<th>{_e(by)}</th>" + "".join(f"<th>{_e(t)}</th>" for _, t, _ in COLUMNS)
        body = "".join(
            f'<tr data-group="{_e(r["group"])}"><td>{_e(r["group"])}</td>'
            + "".join(f'<td data-key="{k}">{_e(format_value(r[k], f))}</td>' for k, _, f in COLUMNS)
            + "</tr>"
            for r in totals
        )
        table = f'<table class="lonb-table lonb-ops-totals"><tr>{header}</tr>{body}</table>'
    else:
        table = '<p class="lonb-muted">no LLM calls in this range</p>'
    if charts is None:
        charts = chart_svgs(view)
    figures = "".join(f'<div class="lonb-ops-chart">{c}</div>' for c in charts)
    others = "".join(_plain_html(s) for s in view.get("sections", []) if s.get("id") != "dashboard")
    return (
        f'<div class="lonb-panel lonb-ops"><style>{css}</style>{head}{table}{figures}{others}</div>'
    )


def _plain_html(section: dict[str, Any]) -> str:
    """A plain section (alerts, the audit log) as an escaped table."""
    title = f"<h4>{_e(section.get('title'))}</h4>"
    rows, columns = section.get("rows") or [], section.get("columns") or []
    if not rows:
        return f'{title}<p class="lonb-muted">{_e(section.get("empty"))}</p>'
    head = "".join(f"<th>{_e(c['title'])}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(r.get(c['key']))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return (
        f'{title}<table class="lonb-table lonb-ops-{_e(section.get("id"))}">'
        f"<tr>{head}</tr>{body}</table>"
    )
