"""Notebook panels: anywidget classes with hand-written ESM beside them in static/,
each with a static HTML fallback for reports and frontends without widgets."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"


@cache
def stylesheet(*names: str) -> str:
    """The CSS files NAMES from static/, joined: read once, inlined in every static panel."""
    return "\n".join((STATIC / name).read_text() for name in names)
