"""Notebook panels: anywidget classes with hand-written ESM beside them in static/,
each rendering a view (`llmops_nb.views`) with a static HTML fallback for reports,
frontends without widgets and notebooks reopened without a kernel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"


@cache
def stylesheet(*names: str) -> str:
    """The CSS files NAMES from static/, joined: read once, inlined in every static panel."""
    return "\n".join((STATIC / name).read_text() for name in names)


@cache
def esm(*names: str) -> str:
    """One ES module from the files NAMES in static/, joined in order: a panel that shows
    a trace puts the shared trace view (trace_view.js) in front of its own module."""
    return "\n".join((STATIC / name).read_text() for name in names)
