"""notebooks/evals.ipynb runs end to end in a real kernel and shows what it promises."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import cell_html, cell_text, execute, find_cell

import llmops_nb as lo


def test_evals_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("evals.ipynb", tmp_path)

    assert "created: dataset faq v1 (20 rows)" in cell_text(find_cell(nb, "faq_df = pl.DataFrame"))
    grid = find_cell(nb, "%%eval faq --concurrency 16")
    text = cell_text(grid)
    assert "eval faq #1: done, 80/80 cells" in text
    assert (
        "support_reply@2 x openai/gpt-4o-mini: contains=1.00 rouge_l=0.82 judge=1.00 pass=1.00"
        in text
    )
    assert "support_reply@1 x openai/gpt-4o-nano: contains=0.50" in text
    page = cell_html(grid)
    assert page.count("<svg") == 3 and "Summary" in page  # a heatmap per scorer
    widget = [
        o for o in grid.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widget, "the eval grid widget is displayed"

    chart = find_cell(nb, "faq_run.chart()")
    assert any("image/svg+xml" in o.get("data", {}) for o in chart.outputs)

    candidate = cell_text(find_cell(nb, "%%eval release --baseline latest"))
    assert "baseline release #2" in candidate and "[contains regression]" in candidate
    compare = cell_text(find_cell(nb, "candidate_run.compare()"))
    assert "regression" in compare and "0.001953" in compare

    assert "one_sentence" in cell_text(find_cell(nb, "@lo.scorer"))
    bad = cell_text(find_cell(nb, "%%eval faq\n"))
    assert bad.strip() == (
        "ScorerError: scorer 'contains': argument 'value' uses {{keywrd}}, but the data has "
        "no column 'keywrd' (columns: question, keyword, answer)"
    )
    assert cell_text(find_cell(nb, "len(lo.EvalRun.list())")).strip() == "4"

    # the kernel wrote to the store this process reads
    run = lo.EvalRun.load("release")
    assert run.status == "done" and run.baseline_id is not None
    assert run.compare()["flag"].to_list() == ["regression"]
