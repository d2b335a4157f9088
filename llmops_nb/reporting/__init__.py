"""Notebook-to-report export: one self-contained HTML file per notebook.

`lo.report()` here, `%llmops report` in magics and `llmops-nb report` in cli call
`build.export`; `jupyter nbconvert --to llmops-report` is `exporter.LLMOpsReportExporter`;
all four render through `build.render`. (The package is not called `report`: a submodule
of that name would shadow the function `lo.report`.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .source import ReportError

__all__ = ["ReportError", "report"]


def report(
    notebook: str | Path | None = None,
    path: str | Path | None = None,
    *,
    no_code: bool = False,
    project: str | None = None,
) -> Path:
    """Export NOTEBOOK (default: the one this kernel runs, as last saved) to PATH
    (default: NB.report.html beside it) and return PATH."""
    from . import source
    from .build import export

    notes: list[str] = []
    if notebook is None:
        shell = _shell()
        namespace = shell.user_ns if shell is not None else {}
        notebook = source.current_notebook(namespace)
        nb = source.read_notebook(notebook)
        unsaved = source.unsaved_note(nb, getattr(shell, "execution_count", None))
        if unsaved:
            notes.append(unsaved)
            print(f"note: {unsaved}", file=sys.stderr)
    return export(notebook, path, no_code=no_code, project=project, notes=notes)


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()
