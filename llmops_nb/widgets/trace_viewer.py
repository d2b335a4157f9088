"""The trace viewer: span tree, timing waterfall, inputs/outputs, tokens, cost, errors, feedback.

It renders `views.traces.trace_view` (the same data as the sidebar's trace detail). The
widget view is `static/trace_viewer.js`; thumbs up/down and a comment come back from
it as an anywidget custom message and are stored as feedback. `static_html` is the
escaped fallback (in the mimebundle's text/html) that reports, frontends without
widgets and a reopened notebook show. Both treat every value (model output above all)
as untrusted text.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..views.traces import MAX_COMMENT_CHARS, flatten, trace_view
from . import STATIC, esm, stylesheet

if TYPE_CHECKING:
    from ..tracing import Trace


__all__ = ["TraceViewer", "static_html", "summary_line"]


class TraceViewer(anywidget.AnyWidget):
    """A live view of one trace; data from `views.traces.trace_view`."""

    _esm = esm("trace_view.js", "trace_viewer.js")
    _css = STATIC / "trace_viewer.css"
    data = traitlets.Dict().tag(sync=True)

    def __init__(self, trace: Trace | dict[str, Any], **kwargs: Any) -> None:
        data = trace if isinstance(trace, dict) else trace_view(trace)
        super().__init__(data=data, **kwargs)
        self.on_msg(self._on_message)

    @property
    def trace_id(self) -> str:
        return str(self.data.get("id"))

    def submit_feedback(
        self, score: Any, comment: str | None = None, span_id: str | None = None
    ) -> dict[str, Any]:
        """Store feedback on this trace and refresh the view (what the thumbs buttons do)."""
        from .. import tracing
        from ..errors import LLMOpsError

        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise LLMOpsError(f"a feedback comment is at most {MAX_COMMENT_CHARS:,} characters")
        tracing.feedback(self.trace_id, score, comment, span_id=span_id)
        self.data = trace_view(tracing.get_trace(self.trace_id))
        return self.data["feedback"][-1]  # type: ignore[no-any-return]

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "feedback":
            return
        from ..errors import LLMOpsError

        comment = content.get("comment")
        try:
            saved = self.submit_feedback(
                content.get("score"),
                comment if isinstance(comment, str) else None,
                content.get("span_id") if isinstance(content.get("span_id"), str) else None,
            )
        except LLMOpsError as exc:
            self.send({"type": "feedback_error", "message": str(exc)})
            return
        self.send({"type": "feedback_saved", "feedback": saved})

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = static_html(self.data)
        data["text/plain"] = summary_line(self.data)
        return data, meta


# --- static HTML fallback ---------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt_ms(ms: Any) -> str:
    if ms is None:
        return ""
    ms = float(ms)
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms"


def _fmt_cost(cost: Any) -> str:
    return f"${float(cost):.6f}" if cost else ""


def summary_line(data: dict[str, Any]) -> str:
    parts = [
        f"trace {data.get('name')!s} {data.get('id')!s}",
        str(data.get("status")),
        _fmt_ms(data.get("duration_ms")),
        f"{data.get('n_spans', 0)} spans",
        f"{(data.get('input_tokens') or 0) + (data.get('output_tokens') or 0)} tokens",
    ]
    if data.get("cost"):
        parts.append(_fmt_cost(data["cost"]))
    if data.get("error"):
        parts.append(f"error: {data['error']}")
    return " · ".join(p for p in parts if p)


def _value_html(value: Any) -> str:
    """A recorded value as escaped text: chat messages by role, strings as is, else JSON."""
    if value is None:
        return '<span class="lotv-muted">—</span>'
    if isinstance(value, dict) and isinstance(value.get("messages"), list) and len(value) == 1:
        return "".join(_message_html(m) for m in value["messages"])
    if isinstance(value, dict) and "content" in value and "role" in value:
        return _message_html(value)
    if isinstance(value, str):
        return f"<pre>{_e(value)}</pre>"
    return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def _message_html(message: Any) -> str:
    if not isinstance(message, dict):
        return f"<pre>{_e(message)}</pre>"
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    extra = ""
    if message.get("tool_calls"):
        extra = f"<pre>{_e(json.dumps(message['tool_calls'], indent=2, ensure_ascii=False))}</pre>"
    return (
        f'<div class="lotv-msg"><span class="lotv-role">{_e(message.get("role"))}</span>'
        f"<pre>{_e(text)}</pre>{extra}</div>"
    )


def static_html(data: dict[str, Any]) -> str:
    """Self-contained, escaped HTML for one trace view (no script, no external resources)."""
    css = stylesheet("trace_viewer.css")
    spans = list(flatten(data.get("spans") or []))
    total = max(
        [float(data.get("duration_ms") or 0)]
        + [float(s.get("offset_ms") or 0) + float(s.get("duration_ms") or 0) for s in spans]
        + [1e-6]
    )
    status = str(data.get("status") or "ok")
    tokens = f"{data.get('input_tokens') or 0} in / {data.get('output_tokens') or 0} out tokens"
    stats = " · ".join(
        p
        for p in (
            _fmt_ms(data.get("duration_ms")),
            f"{data.get('n_spans', 0)} spans",
            tokens,
            _fmt_cost(data.get("cost")),
            str(data.get("start") or ""),
        )
        if p
    )
    parts = [
        f'<div class="lotv-head"><span class="lotv-title">{_e(data.get("name"))}</span>'
        f' <span class="lotv-status lotv-status-{"error" if status == "error" else "ok"}">'
        f"{_e(status)}</span>"
        f' <span class="lotv-muted lotv-id">{_e(data.get("id"))}</span></div>'
        f'<div class="lotv-stats">{_e(stats)}</div>'
    ]
    if data.get("error"):
        parts.append(f'<div class="lotv-error">{_e(data["error"])}</div>')
    rows = []
    for s in spans:
        left = max(0.0, min(100.0, 100.0 * float(s.get("offset_ms") or 0) / total))
        width = max(0.3, min(100.0 - left, 100.0 * float(s.get("duration_ms") or 0) / total))
        err = s.get("status") == "error"
        tok = ""
        if s.get("input_tokens") is not None or s.get("output_tokens") is not None:
            tok = f"{s.get('input_tokens') or 0}/{s.get('output_tokens') or 0}"
        rows.append(
            f'<tr class="{"lotv-row-error" if err else ""}">'
            f'<td class="lotv-name" style="padding-left:{8 + 14 * int(s.get("depth") or 0)}px">'
            f"{_e(s.get('name'))}</td>"
            f'<td><span class="lotv-kind lotv-kind-{_e(_kind_class(s.get("kind")))}">'
            f"{_e(s.get('kind'))}</span></td>"
            f'<td class="lotv-wf"><div class="lotv-track"><div class="lotv-bar'
            f'{" lotv-bar-error" if err else ""}" style="margin-left:{left:.2f}%;'
            f'width:{width:.2f}%"></div></div></td>'
            f'<td class="lotv-num">{_e(_fmt_ms(s.get("duration_ms")))}</td>'
            f'<td class="lotv-num">{_e(tok)}</td>'
            f'<td class="lotv-num">{_e(_fmt_cost(s.get("cost")))}</td></tr>'
        )
    parts.append(
        '<table class="lotv-table"><tr><th>span</th><th>kind</th><th>timeline</th>'
        f"<th>duration</th><th>tokens in/out</th><th>cost</th></tr>{''.join(rows)}</table>"
    )
    first = next((s for s in spans if s.get("status") == "error"), None) or next(
        (s for s in spans if s.get("kind") == "llm"), None
    )
    for s in spans:
        body = [
            f'<div class="lotv-section"><h5>inputs</h5>{_value_html(s.get("inputs"))}</div>',
            f'<div class="lotv-section"><h5>outputs</h5>{_value_html(s.get("outputs"))}</div>',
        ]
        if s.get("error"):
            body.insert(0, f'<div class="lotv-error">{_e(s["error"])}</div>')
        attrs = {k: v for k, v in (s.get("attributes") or {}).items()}
        if attrs:
            body.append(
                '<div class="lotv-section"><h5>attributes</h5><table class="lotv-attrs">'
                + "".join(
                    f"<tr><td>{_e(k)}</td><td><pre>{_e(_attr_text(v))}</pre></td></tr>"
                    for k, v in sorted(attrs.items())
                )
                + "</table></div>"
            )
        parts.append(
            f'<details class="lotv-details"{" open" if s is first else ""}>'
            f"<summary>{_e(s.get('name'))} "
            f'<span class="lotv-muted">{_e(s.get("kind"))} · {_e(_fmt_ms(s.get("duration_ms")))}'
            f"</span></summary>{''.join(body)}</details>"
        )
    feedback = data.get("feedback") or []
    if feedback:
        items = "".join(
            f'<li><span class="lotv-fb-{"up" if f.get("score", 0) > 0 else "down"}">'
            f"{'▲ good' if f.get('score', 0) > 0 else '▼ bad'}</span> {_e(f.get('comment') or '')} "
            f'<span class="lotv-muted">{_e(f.get("author"))}</span></li>'
            for f in feedback
        )
        parts.append(f'<div class="lotv-section"><h5>feedback</h5><ul>{items}</ul></div>')
    return f'<div class="lotv-panel"><style>{css}</style>{"".join(parts)}</div>'


def _attr_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _kind_class(kind: Any) -> str:
    return "".join(c for c in str(kind or "chain").lower() if c.isalnum()) or "chain"
