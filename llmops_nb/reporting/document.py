"""One report page: header, the notebook's narrative, the appendix, one inline stylesheet."""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path
from typing import Any

from .appendix import Appendix, Totals
from .cells import cells_html, pygments_css

STYLESHEET = Path(__file__).with_name("report.css")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _totals_html(totals: Totals) -> str:
    return (
        '<div class="lo-totals">'
        f"<div>calls<b>{totals.calls}</b></div>"
        f"<div>tokens<b>{totals.tokens}</b></div>"
        f"<div>cost<b>${totals.cost:.6f}</b></div></div>"
    )


def page(
    nb: Any,
    *,
    name: str,
    appendix: Appendix,
    store: str,
    show_code: bool = True,
    notes: list[str] | None = None,
    now: _dt.datetime | None = None,
) -> str:
    """The whole report as one HTML document (no script, nothing loaded from anywhere)."""
    from .. import __version__

    now = now or _dt.datetime.now(_dt.UTC)
    narrative = cells_html(nb, show_code=show_code)
    notes = [*(notes or []), *appendix.notes]
    if not appendix.sections and not any(n.startswith("warning:") for n in notes):
        notes.append(
            "this notebook has no llmops_nb outputs (prompts, eval runs, traces or fine-tunes): "
            "the report is its narrative alone"
        )
    meta = "".join(
        f"<dt>{label}</dt><dd>{_e(value)}</dd>"
        for label, value in (
            ("notebook", name),
            ("project", appendix.project or "—"),
            ("store", store),
            ("exported", now.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("llmops_nb", __version__),
        )
    )
    warnings = "".join(
        f'<p class="{"lo-warning" if n.startswith("warning:") else "lo-note"}">{_e(n)}</p>'
        for n in notes
    )
    toc_items = [("notebook", "Notebook")] + [(a, t) for a, t, _ in appendix.sections]
    toc = " ".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in toc_items)
    sections = "".join(
        f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'
        for anchor, title, body in appendix.sections
    )
    appendix_html = (
        '<div class="lo-appendix"><h2 class="lo-part">Appendix: from the store</h2>'
        f"{sections}</div>"
        if sections
        else ""
    )
    css = STYLESHEET.read_text(encoding="utf-8") + "\n" + pygments_css()
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(name)} · llmops_nb report</title>"
        f"<style>{css}</style></head>"
        f'<body class="{"" if show_code else "lo-no-code"}">'
        f'<header class="lo-header"><h1>{_e(name)}</h1><dl class="lo-meta">{meta}</dl>'
        f"{_totals_html(appendix.totals)}{warnings}</header>"
        f'<nav class="lo-toc">{toc}</nav>'
        f'<main><section id="notebook"><h2>Notebook</h2>{narrative}</section>'
        f"{appendix_html}</main></body></html>\n"
    )
