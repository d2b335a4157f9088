"""notebooks/quickstart.ipynb (what `make demo` runs) works offline end to end."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import cell_html, cell_text, execute, find_cell

import llmops_nb as lo


def test_quickstart_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("quickstart.ipynb", tmp_path)

    assert "config.json" in cell_text(find_cell(nb, "from pathlib import Path"))
    first = find_cell(nb, '%%prompt greet -m "first version"')
    assert "created: greet v1" in cell_text(first)
    assert "Response" in cell_html(first) and "tokens" in cell_html(first)
    call = cell_text(find_cell(nb, "c = lo.complete"))
    assert call.startswith("(True, True, ")
    assert call.endswith("0.0, True)")  # a local model costs nothing; the call is traced
    pipeline = cell_text(find_cell(nb, "@lo.trace"))
    assert pipeline.startswith("('greet_pipeline', 'ok', ")
    assert "'retriever'" in pipeline and "'llm'" in pipeline
    assert "greet_pipeline" in cell_html(find_cell(nb, "%trace"))
    assert "created: greet v2" in cell_text(find_cell(nb, '%%prompt greet -m "shorter"'))
    grid = cell_html(find_cell(nb, "%%eval quickstart"))
    assert "eval quickstart" in grid and "latency_under" in grid
    summary = cell_text(find_cell(nb, "run = _"))
    assert "greet@1" in summary and "greet@2" in summary and "local/tiny-llama" in summary

    # the kernel wrote to the store this process reads
    assert lo.prompt("greet").version == 2
    assert lo.traces(limit=50).height >= 3
