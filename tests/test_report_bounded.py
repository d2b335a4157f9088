"""A notebook that touched a 100,000-row eval run: the report shows the summary and the
worst rows, not every row, and stays small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_nb.reporting import report

N_ROWS = 100_000
PAYLOAD = '<img src=x onerror="alert(1)">'


def write_big_run(n_rows: int = N_ROWS) -> int:
    """One prompt × one model × N_ROWS rows through the store, as the grid runner writes them;
    every 1,000th row fails, and row 777 carries a payload as its output."""
    from llmops_nb.store import get_store

    store = get_store()
    spec = {
        "prompts": [{"label": "greet@1"}],
        "models": [{"label": "m"}],
        "scorers": [{"name": "exact", "threshold": 1.0}],
    }
    run = store.create_eval_run("default", "big", spec=spec, n_cells=n_rows, status="done")
    batch = []
    for i in range(n_rows):
        failing = i % 1000 == 777
        batch.append(
            {
                "run_id": run.id,
                "prompt_ref": "greet@1",
                "prompt_version_id": None,
                "model": "m",
                "model_label": "m",
                "row_index": i,
                "inputs": {"name": f"user {i}"},
                "expected": f"Hello user {i}",
                "output": PAYLOAD if i == 777 else (f"Bye {i}" if failing else f"Hello user {i}"),
                "error": None,
                "scores": {"exact": not failing},
                "latency_ms": 10.0 + i % 50,
                "input_tokens": 5,
                "output_tokens": 3,
                "cost": 1e-6,
                "cached": False,
                "trace_id": None,
            }
        )
        if len(batch) == 10_000:
            store.add_eval_results(batch)
            batch = []
    store.add_eval_results(batch)
    assert run.id is not None
    return run.id


def output_notebook(path: Path, text: str) -> Path:
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": "run",
        "outputs": [
            {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {"text/plain": text}}
        ],
    }  # fmt: skip
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    return path


@pytest.mark.slow
def test_hundred_thousand_rows_give_a_small_report(tmp_path: Path) -> None:
    run_id = write_big_run()
    nb = output_notebook(tmp_path / "big.ipynb", f"EvalRun #{run_id} 'big': done, {N_ROWS} cells")
    page = report(nb).read_text()
    assert len(page.encode()) < 3_000_000
    assert f"eval big #{run_id}" in page
    assert f"Worst rows (20 of {N_ROWS})" in page
    worst = page[page.index("Worst rows") :]
    assert worst.count("<td>fail</td>") == 20 and "<td>pass</td>" not in worst
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in worst  # row 777, as text
    assert "<td>greet@1</td><td>m</td><td>100000</td>" in page  # the summary counts all rows
    assert "0.999" in page  # exact's mean: 100 of 100,000 rows fail
