"""notebooks/tracing.ipynb runs end to end in a real kernel and shows what it promises."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import cell_html, cell_text, execute, find_cell

from llmops_nb.store import get_store


def test_tracing_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("tracing.ipynb", tmp_path)

    assert cell_text(find_cell(nb, "%load_ext")).startswith("llmops_nb ")
    assert cell_text(find_cell(nb, "import litellm")) == (
        "'echo: Context: Reset your password from Settings > Security.\\n"
        "Question: How do I reset my password?'"
    )
    tree = cell_text(find_cell(nb, "t = lo.last_trace()")).splitlines()
    assert tree[0].startswith("answer ok 4 spans ") and tree[0].endswith(" tokens")
    assert [line.split()[0] for line in tree[1:]] == [
        "answer",
        "retrieve",
        "build_prompt",
        "chat",
    ]
    assert "parent=answer" in tree[2] and "parent=answer" in tree[4]
    assert "gen_ai.usage.input_tokens" in cell_text(find_cell(nb, "llm = t.span"))

    viewer = find_cell(nb, "%trace")
    page = cell_html(viewer)
    assert 'class="lotv-panel"' in page and "chat gpt-4o-mini" in page
    assert "Context: Reset your password" in page
    assert any(
        "application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in viewer.outputs
    )

    assert cell_text(find_cell(nb, "t2 = lo.last_trace()")) == (
        "['ask_both', 'chat gpt-4o-mini', 'chat gpt-4o-mini']"
    )
    errors = cell_text(find_cell(nb, "@lo.trace\ndef flaky"))
    assert "raised: the retriever is down" in errors
    assert "('error', 'RuntimeError: the retriever is down')" in errors
    frame = cell_text(find_cell(nb, "lo.traces(limit=5)"))
    assert "flaky" in frame and "ask_both" in frame and "answer" in frame
    assert cell_text(find_cell(nb, "from llmops_nb import tracing")) == (
        "[(1, 'grounded in the docs')]"
    )
    assert "answer" in cell_html(find_cell(nb, "short_id = t.id[:12]"))

    # the kernel wrote to the store this process reads
    store = get_store()
    names = [t.name for t in store.list_traces("default")]
    assert names == ["flaky", "ask_both", "answer"]
    answer = store.list_traces("default", name="answer")[0]
    assert [f.comment for f in store.trace_feedback(answer.id)] == ["grounded in the docs"]
    assert answer.n_spans == 4 and answer.input_tokens > 0
