"""Which notebook to report on, reading it, and writing the report: bad input is one line.

In a kernel the current notebook is the one JupyterLab (and jupyter_server) names in
the kernel's environment (JPY_SESSION_NAME, also the `__session__` variable), VS Code
in `__vsc_ipynb_file__`, or LLMOPS_NB_NOTEBOOK. The report reads the file as saved.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import LLMOpsError


class ReportError(LLMOpsError, ValueError):
    """A report that cannot be made: not a notebook, no notebook known, a bad output path."""


def read_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook at PATH as plain JSON (nbformat 4), or a ReportError saying what is wrong.

    Read as JSON, not through nbformat: its schema validator costs seconds to import, and
    a report only reads cells and outputs. Older formats are upgraded by nbformat.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"no notebook at {path}: give the path of an .ipynb file")
    if path.is_dir():
        raise ReportError(f"{path} is a folder, not a notebook: give the path of an .ipynb file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReportError(f"{path} is not a Jupyter notebook (.ipynb is JSON)") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise ReportError(f"{path} is not a Jupyter notebook: it has no list of cells")
    if raw.get("nbformat") == 4:
        return raw
    import nbformat

    try:
        return dict(nbformat.reads(json.dumps(raw), as_version=4))
    except Exception as exc:  # nbformat's own errors vary by version
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReportError(f"{path} is not a readable notebook: {first}") from None


def current_notebook(namespace: dict[str, Any] | None = None) -> Path:
    """The notebook this kernel runs, or a ReportError that says how to name it."""
    namespace = namespace or {}
    candidates = [
        os.environ.get("LLMOPS_NB_NOTEBOOK"),
        namespace.get("__vsc_ipynb_file__"),
        namespace.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ]
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate.endswith(".ipynb"):
            continue
        path = Path(candidate).expanduser()
        for option in (path, Path.cwd() / path, Path.cwd() / path.name):
            if option.is_file():
                return option.resolve()
    raise ReportError(
        "cannot tell which notebook this kernel runs (no JPY_SESSION_NAME from JupyterLab): "
        "name it, lo.report('NB.ipynb') or %llmops report --notebook NB.ipynb"
    )


def unsaved_note(nb: Any, execution_count: int | None) -> str | None:
    """A line when the kernel ran cells after the notebook was last saved."""
    if not execution_count:
        return None
    saved = [
        c.get("execution_count") or 0 for c in nb.get("cells") or [] if c.get("cell_type") == "code"
    ]
    # the cell asking for the report is the kernel's latest; anything between is unsaved
    if max(saved, default=0) < execution_count - 1:
        return (
            "this report shows the notebook as last saved; cells run since then are missing "
            "(save the notebook and export again to include them)"
        )
    return None


def default_output(notebook: Path) -> Path:
    """NB.ipynb -> NB.report.html beside it (so `nbconvert --to html` output is not clobbered)."""
    return notebook.with_name(notebook.stem + ".report.html")


def check_output(path: str | Path) -> Path:
    """The output path, once its folder is known to exist (nothing is created for it)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ReportError(f"{path} is a folder: give a file name for the report, e.g. report.html")
    if not path.parent.is_dir():
        raise ReportError(
            f"cannot write {path}: the folder {path.parent} does not exist (create it first)"
        )
    return path


def write_atomically(path: Path, text: str) -> None:
    """Write the whole report or nothing: a temporary file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
