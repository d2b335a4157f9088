"""notebooks/rag.ipynb runs in a real kernel: chunk and index the shipped corpus, compare
two retrieval settings, evaluate a RAG pipeline on `local/smollm2`, show the scores.

The kernel reads the converted SmolLM2 from the shared LLMOPS_NB_MODELS_CACHE
(tests/model_fixtures.py; the `smollm2` fixture converts it once if it is missing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
from notebook_runner import NOTEBOOKS, cell_text, execute, find_cell

import llmops_nb as lo


def test_rag_notebook(llmops_home: Path, tmp_path: Path, smollm2: Path) -> None:
    shutil.copytree(NOTEBOOKS / "corpus", tmp_path / "corpus")
    nb = execute("rag.ipynb", tmp_path, timeout=600)

    built = cell_text(find_cell(nb, "small = lo.index"))
    assert "created: index docs-small v1" in built and "created: index docs-large v1" in built
    assert "id='prompts#" in built  # the alias question finds the prompts document
    assert "recall_at_k" in cell_text(find_cell(nb, "questions = pl.DataFrame"))
    assert "answer" in cell_text(find_cell(nb, "%%eval rag-pipeline"))

    # the kernel wrote to the store this process reads
    lo.set_project("demo-rag")
    settings = lo.EvalRun.load("retrieval-settings").summary()
    by_target = {r["prompt"]: r for r in settings.iter_rows(named=True)}
    assert set(by_target) == {"small_k3", "large_k1"}
    assert all(r["n"] == 5 and r["errors"] == 0 for r in by_target.values())
    assert by_target["small_k3"]["recall_at_k"] >= 0.8
    assert 0 < by_target["large_k1"]["context_relevance"] <= 1

    pipeline = lo.EvalRun.load("rag-pipeline")
    results = pipeline.results
    assert results.height == 3 and results["error"].null_count() == 3
    assert all(len(text.strip()) > 0 for text in results["output"])
    assert results["faithfulness"].drop_nulls().len() == 3
    trace = lo.get_trace(results.filter(pl.col("row_index") == 0)["trace_id"][0])
    kinds = {s.kind for s in trace.spans}
    assert {"eval", "chain", "retriever", "embedding", "llm"} <= kinds
    (llm,) = [s for s in trace.spans if s.kind == "llm"]
    (chain,) = [s for s in trace.spans if s.kind == "chain"]
    assert llm.parent_id == chain.id and "smollm2" in llm.attributes["llmops.model"]
