"""notebooks/serve.ipynb runs end to end in a real kernel: serve, call, trace, roll back."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import cell_text, execute, find_cell

import llmops_nb as lo


def test_serve_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("serve.ipynb", tmp_path)

    started = cell_text(find_cell(nb, 'key = create_key("notebook-demo")'))
    assert started.startswith("<llmops_nb server running at http://127.0.0.1:")
    assert "support=support_reply@production" in started
    assert cell_text(find_cell(nb, "app = openai.OpenAI")) == (
        "('support_reply@2', 'echo: v2 How do I reset my password?')"
    )
    assert cell_text(find_cell(nb, "stream = ")) == "'echo: v2 Where is my invoice?'"
    traces = cell_text(find_cell(nb, "served = lo.traces"))
    assert "shape: (2, 4)" in traces and traces.count("serve") >= 2
    attributes = cell_text(find_cell(nb, "t = lo.get_trace"))
    assert "'llmops.serve.route': 'support'" in attributes
    assert "'llmops.prompt.version': 2" in attributes and "'llmops.serve.key_id'" in attributes
    moved = cell_text(find_cell(nb, 'lo.set_alias("support_reply", "production", 1)'))
    assert moved == "'support_reply@production -> v1 (was v2)'"
    assert cell_text(find_cell(nb, 'ask("How do I reset my password?")')) == (
        "('support_reply@1', 'echo: v1 How do I reset my password?')"
    )
    assert "<llmops_nb server stopped at" in cell_text(find_cell(nb, "srv.stop()"))

    # the kernel's requests are traces in the store this process reads
    served = lo.traces(name="serve")
    assert served.height == 3
    assert set(served["status"].to_list()) == {"ok"}
