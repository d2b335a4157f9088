"""The prompt panel: name, version, template, history, a highlighted diff, rendered
messages, response.

It renders `views.prompts.prompt_view`. The widget view is `static/prompt_panel.js`;
`static_html` is the escaped fallback that reports, non-widget frontends and a
reopened notebook show. Both treat every string as untrusted text.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

from ..views.prompts import header_model
from . import STATIC, stylesheet

__all__ = ["DiffView", "PromptPanel", "static_html", "summary_line"]


class PromptPanel(anywidget.AnyWidget):
    """A live view of one prompt version (data from `views.prompts.prompt_view`)."""

    _esm = STATIC / "prompt_panel.js"
    _css = STATIC / "panel.css"
    data = traitlets.Dict().tag(sync=True)

    def __init__(self, data: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(data=data, **kwargs)
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The JS asks for a diff against another version of the same prompt."""
        if not isinstance(content, dict) or content.get("type") != "diff":
            return
        from ..prompting import prompt

        project, name = self.data.get("project"), self.data.get("name")
        this = prompt(f"{name}@{self.data.get('version')}", project=project)
        other = prompt(f"{name}@{int(content['against'])}", project=project)
        self.send({"type": "diff", "against": other.version, "diff": this.diff(other)})

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = static_html(self.data)
        data["text/plain"] = summary_line(self.data)
        return data, meta


def summary_line(data: dict[str, Any]) -> str:
    status = data.get("status")
    head = f"{status}: " if status else ""
    return f"{head}{data.get('name')} v{data.get('version')}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _diff_html(diff: str) -> str:
    if not diff:
        return '<p class="lonb-muted">first version: nothing to compare</p>'
    rows = []
    for line in diff.splitlines():
        cls = ""
        if line.startswith(("+++", "---")):
            cls = "lonb-diff-file"
        elif line.startswith("@@"):
            cls = "lonb-diff-hunk"
        elif line.startswith("+"):
            cls = "lonb-diff-add"
        elif line.startswith("-"):
            cls = "lonb-diff-del"
        rows.append(f'<div class="{cls}">{_e(line) or "&nbsp;"}</div>')
    return f'<pre class="lonb-diff">{"".join(rows)}</pre>'


def _messages_html(messages: list[dict[str, str]]) -> str:
    return "".join(
        f'<div class="lonb-msg lonb-role-{_e(m.get("role"))}"><span class="lonb-role">'
        f"{_e(m.get('role'))}</span><pre>{_e(m.get('content'))}</pre></div>"
        for m in messages
    )


def _response_html(response: dict[str, Any]) -> str:
    if response.get("error"):
        return f'<div class="lonb-error">{_e(response["error"])}</div>'
    stats = " · ".join(
        part
        for part in (
            f"{response['latency_ms']:.0f} ms" if response.get("latency_ms") is not None else "",
            f"{response.get('input_tokens', 0)} in / {response.get('output_tokens', 0)} out tokens",
            f"${response['cost']:.6f}" if response.get("cost") is not None else "",
            "cached" if response.get("cached") else "",
            f"trace {response['trace_id'][:12]}" if response.get("trace_id") else "",
        )
        if part
    )
    return (
        f'<div class="lonb-stats">{_e(response.get("model"))} · {_e(stats)}</div>'
        f'<pre class="lonb-output">{_e(response.get("text"))}</pre>'
    )


def static_html(data: dict[str, Any]) -> str:
    """Self-contained, escaped HTML for one prompt version view."""
    css = stylesheet("panel.css")
    aliases = ", ".join(f"{a}→v{v}" for a, v in (data.get("aliases") or {}).items())
    status = data.get("status")
    head = (
        f'<div class="lonb-head"><span class="lonb-title">{_e(data.get("name"))}</span>'
        f' <span class="lonb-badge">v{_e(data.get("version"))}</span>'
        + (
            f' <span class="lonb-status lonb-status-{_e(status)}">{_e(status)}</span>'
            if status
            else ""
        )
        + f'<span class="lonb-muted"> {_e(header_model(data))}'
        + (f" · aliases: {_e(aliases)}" if aliases else "")
        + f" · {_e((data.get('hash') or '')[:12])}</span></div>"
    )
    if data.get("description"):
        head += f'<div class="lonb-muted">{_e(data["description"])}</div>'
    history = "".join(
        f"<tr><td>v{_e(h['version'])}</td><td>{_e(h['hash'])}</td><td>{_e(h['author'])}</td>"
        f"<td>{_e(h['created'])}</td><td>{_e(h['message'])}</td></tr>"
        for h in data.get("history") or []
    )
    parts = [head, f'<h4>Template</h4><pre class="lonb-template">{_e(data.get("template"))}</pre>']
    if data.get("messages"):
        parts.append(f"<h4>Rendered messages</h4>{_messages_html(data['messages'])}")
    if data.get("response"):
        parts.append(f"<h4>Response</h4>{_response_html(data['response'])}")
    prev = data.get("previous")
    parts.append(f"<h4>Diff against v{_e(prev)}</h4>" if prev else "<h4>Diff</h4>")
    parts.append(_diff_html(data.get("diff") or ""))
    parts.append(
        '<h4>History</h4><table class="lonb-table"><tr><th>version</th><th>hash</th>'
        f"<th>author</th><th>created</th><th>message</th></tr>{history}</table>"
    )
    return f'<div class="lonb-panel"><style>{css}</style>{"".join(parts)}</div>'


class DiffView:
    """`%prompt diff`: the unified diff, highlighted in HTML and plain in text."""

    def __init__(self, diff: str) -> None:
        self.diff = diff

    def _repr_html_(self) -> str:
        css = stylesheet("panel.css")
        return f'<div class="lonb-panel"><style>{css}</style>{_diff_html(self.diff)}</div>'

    def __repr__(self) -> str:
        return self.diff or "(no differences)"
