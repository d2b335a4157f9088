"""The notebook's narrative as report HTML: markdown, highlighted code, and outputs.

An llmops_nb panel (a widget view whose bundle also carries text/html) becomes that
text/html: the panel's own static rendering. Other widgets cannot render without a
kernel and are replaced by a note. Every output passes through `clean_html`.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from functools import cache
from typing import Any

from .discover import WIDGET_VIEW, panel_kind, widget_states
from .sanitize import clean_html

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_IMAGES = ("image/png", "image/jpeg", "image/gif")
TEXT_OUTPUT_LIMIT = 20_000
"""Characters kept from one text output (the rest is cut, with a note)."""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def plain(text: str) -> str:
    """Escaped <pre> text, ANSI colours stripped, cut at TEXT_OUTPUT_LIMIT."""
    text = _ANSI.sub("", text)
    note = ""
    if len(text) > TEXT_OUTPUT_LIMIT:
        cut = len(text) - TEXT_OUTPUT_LIMIT
        text, note = text[:TEXT_OUTPUT_LIMIT], f'<p class="lo-note">… {cut} more characters</p>'
    return f"<pre>{_e(text)}</pre>{note}"


# --- markdown --------------------------------------------------------------------------------


@cache
def _markdown() -> Any:
    import mistune

    class Renderer(mistune.HTMLRenderer):
        """Raw HTML is shown as text; links and images never reach the network."""

        attachments: dict[str, Any] = {}

        def link(self, text: str, url: str, title: str | None = None) -> str:
            if url.startswith("#"):
                return f'<a href="{_e(url)}">{text}</a>'
            # a report loads and links nothing outside itself: the address is shown instead
            return f'{text} <span class="lo-url">({_e(url)})</span>'

        def image(self, text: str, url: str, title: str | None = None) -> str:
            if url.startswith("attachment:"):
                bundle = self.attachments.get(url.removeprefix("attachment:")) or {}
                for mime in _IMAGES:
                    if mime in bundle and _is_base64(bundle[mime]):
                        data = _text(bundle[mime]).replace("\n", "")
                        return f'<img src="data:{mime};base64,{data}" alt="{_e(text)}">'
            return f'<span class="lo-note">[image not embedded: {text or _e(url)}]</span>'

    renderer = Renderer(escape=True)
    return renderer, mistune.create_markdown(
        renderer=renderer, plugins=["table", "strikethrough", "task_lists"]
    )


def markdown_html(source: str, attachments: dict[str, Any] | None = None) -> str:
    renderer, render = _markdown()
    renderer.attachments = attachments or {}
    return clean_html(str(render(source)))


def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(_text(value).replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# --- code ------------------------------------------------------------------------------------


@cache
def _highlighter() -> tuple[Any, Any]:
    from pygments.formatters import HtmlFormatter

    try:
        from IPython.lib.lexers import IPython3Lexer as Lexer
    except ImportError:  # pragma: no cover - IPython always ships it today
        from pygments.lexers import PythonLexer as Lexer
    return Lexer(), HtmlFormatter(nowrap=True)


def code_html(source: str) -> str:
    """SOURCE highlighted by pygments (classes styled by `pygments_css`)."""
    from pygments import highlight

    lexer, formatter = _highlighter()
    return f'<pre class="lo-highlight">{highlight(source, lexer, formatter)}</pre>'


def pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs(".lo-highlight"))


# --- outputs ---------------------------------------------------------------------------------


def output_html(output: Any, states: dict[str, dict[str, Any]]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        cls = " lo-stderr" if output.get("name") == "stderr" else ""
        return f'<div class="lo-output lo-stream{cls}">{plain(_text(output.get("text")))}</div>'
    if kind == "error":
        trace = "\n".join(_text(line) for line in output.get("traceback") or [])
        text = trace or f"{output.get('ename')}: {output.get('evalue')}"
        return f'<div class="lo-output lo-error">{plain(text)}</div>'
    data = output.get("data") or {}
    if WIDGET_VIEW in data:
        view = data[WIDGET_VIEW]
        state = states.get(str(view.get("model_id"))) if isinstance(view, dict) else None
        if "text/html" in data:
            cls = "lo-panel" if panel_kind(state) or "lonb-" in _text(data["text/html"]) else ""
            return f'<div class="lo-output {cls}">{clean_html(_text(data["text/html"]))}</div>'
        return (
            '<div class="lo-output lo-note">a live widget was here; it has no static '
            "rendering, so the report leaves it out</div>"
        )
    return f'<div class="lo-output">{_bundle_html(data)}</div>'


def _bundle_html(data: dict[str, Any]) -> str:
    """The richest representation of a mime bundle that a static page can show safely."""
    if "text/html" in data:
        return clean_html(_text(data["text/html"]))
    if "image/svg+xml" in data:
        return clean_html(_text(data["image/svg+xml"]))
    for mime in _IMAGES:
        if mime in data and _is_base64(data[mime]):
            payload = _text(data[mime]).replace("\n", "")
            return f'<img src="data:{mime};base64,{payload}" alt="">'
    vegalite = next((k for k in data if k.startswith("application/vnd.vegalite.")), None)
    if vegalite is not None:
        from . import panels

        try:
            spec = (
                data[vegalite] if isinstance(data[vegalite], dict) else json.loads(data[vegalite])
            )
            return clean_html(panels.svg(spec))
        except Exception as exc:  # a chart that cannot be drawn falls back to its text
            return f'<p class="lo-note">chart unavailable: {_e(exc)}</p>' + plain(
                _text(data.get("text/plain"))
            )
    if "text/markdown" in data:
        return markdown_html(_text(data["text/markdown"]))
    if "application/json" in data:
        return plain(json.dumps(data["application/json"], indent=2, ensure_ascii=False))
    if "text/plain" in data:
        return plain(_text(data["text/plain"]))
    return ""


def cells_html(nb: Any, *, show_code: bool = True) -> str:
    """Every cell of NB in order: markdown rendered, code highlighted, then its outputs."""
    states = widget_states(nb)
    parts = []
    for cell in nb.get("cells") or []:
        source = _text(cell.get("source"))
        kind = cell.get("cell_type")
        if kind == "markdown":
            parts.append(
                '<section class="lo-cell lo-markdown">'
                f"{markdown_html(source, cell.get('attachments'))}</section>"
            )
        elif kind == "raw":
            if source.strip():
                parts.append(f'<section class="lo-cell lo-raw">{plain(source)}</section>')
        elif kind == "code":
            body = []
            if show_code and source.strip():
                count = cell.get("execution_count")
                label = f"[{count}]" if count else "[ ]"
                body.append(
                    f'<div class="lo-input"><span class="lo-prompt">{label}</span>'
                    f"{code_html(source)}</div>"
                )
            body.extend(output_html(o, states) for o in cell.get("outputs") or [])
            if body:
                parts.append(f'<section class="lo-cell lo-code">{"".join(body)}</section>')
    return "".join(parts)
