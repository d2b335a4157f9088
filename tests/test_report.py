"""A real notebook run by nbclient (%%prompt, %%eval, a trace, %llmops report), exported
through every door; the assertions read the report a user would open.

Model output, prompt text and data rows all carry script and handler payloads: the
report shows them as text. A Playwright test opens the report offline in Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_report_input import parse, unsafe

from llmops_nb import cli

PAYLOAD = (
    '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    '<a href="javascript:window.__xss=3">j</a>'
)

CELLS = [
    ("markdown", "# Support bot report\n\nWe compare two **greetings** on three customers."),
    (
        "code",
        f"""%load_ext llmops_nb
import os
import polars as pl
import llmops_nb as lo
from llmops_nb.testing import OpenAIServer

PAYLOAD = {PAYLOAD!r}

def reply(body):
    last = body["messages"][-1]["content"]
    return ("Hello " + last.split()[-1]) if "Hello" in last else PAYLOAD

server = OpenAIServer(reply=reply).start()
os.environ["OPENAI_API_BASE"] = server.base_url
os.environ["OPENAI_API_KEY"] = "sk-test"
MODEL = "openai/gpt-4o-mini\"""",
    ),
    (
        "code",
        """%%prompt greet --model openai/gpt-4o-mini -m "first"
---
sample: {name: Ada}
---
system:
You greet people. Never say <script>alert('prompt')</script>.
user:
Say hi to {{name}}""",
    ),
    (
        "code",
        """%%prompt greet --model openai/gpt-4o-mini -m "second"
---
sample: {name: Ada}
---
user:
Hello {{name}}""",
    ),
    (
        "code",
        """people = pl.DataFrame({"name": ["Ada", "Grace", PAYLOAD]})""",
    ),
    (
        "code",
        """%%eval greetings
prompts: [greet@1, greet@2]
models: [openai/gpt-4o-mini]
data: people
scorers:
  - icontains: {value: "{{name}}"}""",
    ),
    (
        "code",
        """@lo.trace(name="answer_pipeline")
def answer(name):
    with lo.span("lookup", kind="retriever") as s:
        s.set_outputs({"tier": "gold"})
    return lo.complete(MODEL, "say something").text

answer("Ada")""",
    ),
    ("code", "%trace"),
]


@dataclass
class Exported:
    notebook: Path
    report: Path
    page: str
    store_url: str
    nb: nbformat.NotebookNode


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """The notebook, run once in a real kernel and saved, and its report via the CLI."""
    from llmops_nb.store import reset_store

    folder = tmp_path_factory.mktemp("report_nb")
    store_url = f"sqlite:///{folder / 'store.db'}"
    path = folder / "support.ipynb"
    nb = nbformat.v4.new_notebook()
    for kind, source in CELLS:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source))
    nb.cells.append(nbformat.v4.new_code_cell(f"%llmops report {folder / 'from_kernel.html'}"))
    nbformat.write(nb, path)  # saved before it runs: the kernel's report sees this state
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_NB_STORE", store_url)
        mp.setenv("LLMOPS_NB_HOME", str(folder / "home"))
        mp.setenv("LLMOPS_NB_NOTEBOOK", str(path))
        mp.delenv("LLMOPS_NB_PROJECT", raising=False)
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
        nbformat.write(nb, path)
        reset_store()
        out = folder / "support.html"
        assert cli.main(["report", str(path), "-o", str(out)]) == 0
        reset_store()
    yield Exported(path, out, out.read_text(), store_url, nb)


@pytest.fixture
def same_store(exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_nb.store import reset_store

    monkeypatch.setenv("LLMOPS_NB_STORE", exported.store_url)
    reset_store()


def section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start : page.index("</section>", start)]


def test_report_shows_the_lifecycle(exported: Exported, same_store: None) -> None:
    import llmops_nb as lo

    page = exported.page
    assert "<title>support · llmops_nb report</title>" in page
    assert "<h1>Support bot report</h1>" in page and "<strong>greetings</strong>" in page
    header = page[: page.index("</header>")]
    assert "<dt>project</dt><dd>default</dd>" in header
    assert f"<dd>{exported.store_url}</dd>" in header and "<dt>llmops_nb</dt>" in header
    # calls: the two prompt sample runs, the pipeline's call, and 4 of the 6 eval cells
    # (Ada's two were answered from the cache the sample runs filled)
    assert "<div>calls<b>7</b></div>" in header
    assert 'class="lo-highlight"' in page and '<span class="o">%%</span>' not in page[:200]

    prompts = section(page, "prompts")
    assert prompts.count('class="lonb-title">greet</span>') == 2  # v1 and v2, with the diff
    assert '<div class="lonb-diff-add">+Hello {{name}}</div>' in prompts

    run = lo.EvalRun.load("greetings")
    evals = section(page, "eval-runs")
    assert f"eval greetings #{run.id}" in evals
    for row in run.summary().iter_rows(named=True):
        assert f"<td>{row['prompt']}</td><td>{row['model']}</td><td>3</td>" in evals
        assert f"<td>{row['icontains']:.3f}</td>" in evals
    assert "Worst rows (6 of 6)" in evals
    assert evals.count('class="marks"') == 1  # the latency chart, drawn by vl-convert

    traces = section(page, "traces")
    pipeline = lo.traces(name="answer_pipeline")["id"][0]
    assert f'id="trace-{pipeline}"' in traces
    assert re.search(r'padding-left:22px">lookup</td>', traces)  # a child in the span tree
    assert re.search(r'padding-left:22px">chat', traces) or "litellm" in traces
    assert 'class="marks"' in traces  # the trace latency distribution


def test_report_is_self_contained_and_escapes_payloads(exported: Exported) -> None:
    page = exported.page
    assert unsafe(page) == []
    text = "".join(parse(page).text)
    assert PAYLOAD in text  # model output and data rows, shown as text
    assert "Never say <script>alert('prompt')</script>." in text  # the prompt's text
    assert "@import" not in page and "url(http" not in page


def test_kernel_door_exports_the_last_saved_state(exported: Exported) -> None:
    last = exported.nb.cells[-1]
    shown = "".join(o.get("text", "") for o in last.outputs)
    target = exported.notebook.parent / "from_kernel.html"
    assert f"report written: {target}" in shown
    assert "cells run since then are missing" in shown
    page = target.read_text()
    assert "this report shows the notebook as last saved" in page
    # the saved file had no outputs, but the store knows what this notebook wrote
    assert "eval greetings #" in section(page, "eval-runs")


def test_no_code_hides_sources_keeps_outputs(exported: Exported, same_store: None) -> None:
    out = exported.notebook.parent / "nocode.html"
    assert cli.main(["report", str(exported.notebook), "-o", str(out), "--no-code"]) == 0
    page = out.read_text()
    assert 'class="lo-input"' not in page and "lo-no-code" in page
    assert "eval greetings #" in page and "<h1>Support bot report</h1>" in page


def test_nbconvert_to_llmops_report(exported: Exported) -> None:
    env = {**os.environ, "LLMOPS_NB_STORE": exported.store_url}
    done = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "llmops-report", str(exported.notebook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = exported.notebook.with_name("support.report.html")
    page = written.read_text()
    assert "eval greetings #" in section(page, "eval-runs") and unsafe(page) == []


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts" / "report"


@pytest.mark.slow
def test_report_opens_offline_in_chromium(exported: Exported) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(exported.report.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None
        assert page.locator("h1").first.inner_text() == "support"
        assert page.locator("#eval-runs .lonb-grid-summary tr").count() == 3
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        pdf = page.pdf(format="A4")
        browser.close()
    assert errors == []
    assert requests == [exported.report.as_uri()]  # nothing but the file itself
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    (ARTIFACTS / "report.pdf").write_bytes(pdf)
