"""notebooks/prompts.ipynb runs end to end in a real kernel and shows what it promises."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import cell_html, cell_text, execute, find_cell

import llmops_nb as lo


def test_prompts_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("prompts.ipynb", tmp_path)

    assert cell_text(find_cell(nb, "%load_ext")).startswith("llmops_nb ")
    first = find_cell(nb, '%%prompt support_reply -m "first draft"', 0)
    assert "created: support_reply v1" in cell_text(first)
    assert "You are a concise support agent for Acme." in cell_html(first)
    again = find_cell(nb, '%%prompt support_reply -m "first draft"', 1)
    assert "unchanged: support_reply v1" in cell_text(again)
    second = find_cell(nb, '%%prompt support_reply -m "friendlier tone"')
    assert "created: support_reply v2" in cell_text(second)
    assert "support_reply@staging -> v2" in cell_text(second)
    assert "lonb-diff-add" in cell_html(second)

    assert cell_text(find_cell(nb, "support_reply.version")) == "(2, ['product', 'question'])"
    assert "Where is my invoice?" in cell_text(
        find_cell(nb, 'support_reply.render(product="Acme", q')
    )
    assert "support_reply" in cell_text(find_cell(nb, "%prompt list"))
    assert "+You are a friendly" in cell_text(find_cell(nb, "%prompt diff"))
    assert cell_text(find_cell(nb, 'lo.prompt("support_reply@production")', 0)) == "2"
    assert "rolled back: v2 -> v1" in cell_text(find_cell(nb, "%prompt rollback"))
    assert cell_text(find_cell(nb, 'lo.prompt("support_reply@production")', 1)) == "1"

    bad = cell_text(find_cell(nb, "%%prompt support_reply\n---\ntemprature"))
    assert bad.strip() == (
        "PromptSyntaxError: unknown front matter key 'temprature'; allowed keys: "
        "description, model, parameters, sample, inputs"
    )
    missing = cell_text(find_cell(nb, 'support_reply.render(product="Acme")'))
    assert "missing variable 'question'" in missing
    assert cell_text(find_cell(nb, 'lo.prompt_history("support_reply").height')) == "2"

    # the kernel wrote to the same store this process reads
    assert lo.prompt("support_reply@production").version == 1
    assert lo.prompt("support_reply@staging").version == 2
