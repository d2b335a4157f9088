"""One notebook in, one self-contained HTML report out: what every report door runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import appendix, document, source
from .discover import notebook_refs


def render(
    nb: Any,
    *,
    notebook: Path | None = None,
    name: str | None = None,
    show_code: bool = True,
    project: str | None = None,
    notes: list[str] | None = None,
) -> str:
    """The report of NB (its saved outputs plus what the store holds about them)."""
    from .. import config

    touched = notebook_refs(nb)
    found = appendix.build(touched, notebook=notebook, project=project)
    for note in found.notes:
        if note.startswith("warning:"):
            print(note, file=sys.stderr)
    title = name or (notebook.stem if notebook else "notebook")
    return document.page(
        nb,
        name=title,
        appendix=found,
        store=config.mask_url(config.store_url()),
        show_code=show_code,
        notes=notes,
    )


def export(
    notebook: str | Path,
    output: str | Path | None = None,
    *,
    no_code: bool = False,
    project: str | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write the report of the notebook file NOTEBOOK to OUTPUT (default NB.report.html)."""
    path = Path(notebook).expanduser()
    nb = source.read_notebook(path)
    target = source.check_output(output if output is not None else source.default_output(path))
    text = render(
        nb,
        notebook=path.resolve(),
        name=path.stem,
        show_code=not no_code,
        project=project,
        notes=notes,
    )
    source.write_atomically(target, text)
    return target
