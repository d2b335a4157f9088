"""Run a notebook from notebooks/ with nbclient in a real kernel, and read its outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def execute(name: str, workdir: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute notebooks/NAME in WORKDIR (the kernel inherits os.environ: LLMOPS_NB_HOME...)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return nb


def cell_text(cell: Any) -> str:
    """Everything a user sees under a code cell, as plain text (ANSI stripped)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            parts.append(out.get("data", {}).get("text/plain", ""))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def cell_html(cell: Any) -> str:
    return "\n".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []))


def find_cell(nb: nbformat.NotebookNode, source_start: str, nth: int = 0) -> Any:
    matches = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    return matches[nth]
