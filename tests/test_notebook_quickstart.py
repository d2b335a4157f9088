"""notebooks/quickstart.ipynb, run the way `make demo` runs it: the whole lifecycle offline on
`local/smollm2` (prompts, eval grid, traced pipeline, LoRA fine-tune, the grid against the
baseline, the report), and the report it ends with.

The kernel reads the converted model from the shared LLMOPS_NB_MODELS_CACHE that
tests/model_fixtures.py sets (the `smollm2` fixture converts it once if it is missing).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from notebook_runner import cell_html, cell_text, find_cell
from test_report_input import parse, unsafe

import llmops_nb as lo
from llmops_nb import cli


def test_quickstart_runs_the_lifecycle_and_ends_in_its_report(
    llmops_home: Path,
    tmp_path: Path,
    smollm2: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # cli.demo sets these for the kernel; monkeypatch puts them back afterwards (a delenv
    # of an unset variable records nothing, so each is set first: the demo's own value
    # leaked into later tests' subprocesses)
    for name in ("LLMOPS_NB_PROJECT", "LLMOPS_NB_NOTEBOOK"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert cli.demo(tmp_path / "out") == 0
    printed = capsys.readouterr().out.strip().splitlines()
    report = Path(printed[-1])
    notebook = tmp_path / "out" / "quickstart.ipynb"
    assert report == notebook.with_name("quickstart.report.html") and report.is_file()

    nb = nbformat.read(notebook, as_version=4)
    assert "'local/smollm2'" in cell_text(find_cell(nb, "import os"))
    assert "created: sentiment v1" in cell_text(find_cell(nb, '%%prompt sentiment -m "first'))
    assert "created: sentiment v2" in cell_text(find_cell(nb, '%%prompt sentiment -m "ask'))
    assert "[step took " in cell_text(find_cell(nb, "%%eval sentiment\n"))
    assert "eval sentiment" in cell_html(find_cell(nb, "%%eval sentiment\n"))
    assert "'triage'" not in cell_text(find_cell(nb, "@lo.trace"))  # it returns a decision
    assert re.search(r"'(escalate|thank)'", cell_text(find_cell(nb, "@lo.trace")))
    trace_view = cell_html(find_cell(nb, "%trace"))
    assert "triage" in trace_view and "normalise" in trace_view
    finished = cell_text(find_cell(nb, "job.wait()"))
    assert finished.startswith("('completed',") and "'local/" in finished
    assert "report written: " + str(report) in cell_text(find_cell(nb, "%llmops report"))

    # the kernel wrote to the store this process reads
    lo.set_project("demo-quickstart")
    assert lo.prompt("sentiment").version == 2
    base = lo.EvalRun.load("sentiment")
    scores = {row["prompt"]: row for row in base.summary().iter_rows(named=True)}
    assert set(scores) == {"sentiment@1", "sentiment@2"}
    assert all(row["n"] == 8 and row["errors"] == 0 for row in scores.values())
    # real, imperfect scores: a model that answers in sentences
    assert all(row["exact"] < 1 for row in scores.values())
    assert any(0 < row["icontains"] for row in scores.values())

    job = lo.finetune_job(lo.finetunes()["name"][0])
    assert job.status == "completed"
    losses = job.metrics["loss"].drop_nulls()
    assert losses.len() >= 2 and losses[-1] < losses[0]

    tuned = lo.EvalRun.load("sentiment-tuned")
    assert tuned.baseline_id == base.id
    compared = {row["scorer"]: row for row in tuned.compare().iter_rows(named=True)}
    exact = compared["exact"]
    assert exact["prompt"] == "sentiment@2" and exact["n_shared"] == 8
    assert exact["current"] > exact["baseline"]  # the fine-tune answers in the format asked
    shown = cell_text(find_cell(nb, "tuned = _"))
    assert str(round(exact["current"], 3)) in shown and "improvement" in shown
    assert lo.traces(name="triage").height == 1

    page = report.read_text()
    assert unsafe(page) == []  # nothing loads from anywhere: no script, no external URL
    text = "".join(parse(page).text)
    assert "sentiment" in text and "sentiment@1" in text and "sentiment@2" in text
    for run in (base, tuned):
        assert f"eval {run.name} #{run.id}" in text
        for row in run.summary().iter_rows(named=True):
            assert f"<td>{row['exact']:.3f}</td>" in page
    assert "triage" in text and re.search(r'padding-left:22px">normalise</td>', page)
    assert page.count("<svg") >= 3  # heatmaps, latency distributions, the loss curve
    assert job.model.removeprefix("local/") in text
