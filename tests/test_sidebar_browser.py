"""The sidebar in a real JupyterLab, driven in Debian's Chromium with Playwright.

A notebook in the same Lab writes prompts, an eval run and a trace; the open sidebar
fills by itself (polling) and shows them. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_core.paths import jupyter_path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts" / "sidebar"
PAYLOAD = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script><b>bold?</b>'

pytestmark = pytest.mark.slow

CELLS = [
    # 0: prompts
    """import llmops_nb as lo
lo.register_prompt("support_reply", "system:\\nYou are a concise agent.\\nuser:\\n{{question}}")
lo.register_prompt(
    "support_reply", "system:\\nYou are a concise, kind agent.\\nuser:\\n{{question}}"
)
lo.set_alias("support_reply", "production", 2)
print("prompts written")""",
    # 1: an eval run (no eval service yet: the rows a grid run writes, through the store)
    """from llmops_nb.store import get_store, models as m
store = get_store()
pid = store.project_id(lo.current_project())
def write(s):
    run = m.EvalRun(project_id=pid, name="faq", status="done", n_cells=4, author="tester")
    s.add(run)
    s.flush()
    for prompt in ["support_reply@1", "support_reply@2"]:
        for model in ["gpt-4o-mini", "support-ft"]:
            for row in range(4):
                ok = prompt.endswith("@2") or row == 0
                s.add(m.EvalResult(run_id=run.id, prompt_ref=prompt, model=model,
                                   model_label=model, row_index=row, output=f"answer {row}",
                                   scores={"exact": ok}, latency_ms=100.0 + 10 * row))
store.write(write)
print("eval written")""",
    # 2: a trace whose model output is an XSS payload
    f"""import llmops_nb.tracing
PAYLOAD = {PAYLOAD!r}

@lo.trace(name="answer_question")
def answer(question):
    with lo.span("retrieve", kind="retriever") as r:
        r.set_outputs(["Reset it from the login page."])
    with lo.span("chat", kind="llm") as s:
        s.set_inputs(messages=[{{"role": "user", "content": question}}])
        s.set_outputs(PAYLOAD)
    return PAYLOAD

answer("How do I reset my password?")
llmops_nb.tracing.flush()
print("trace written")""",
    # 3: a fine-tune's loss curve and its registered model (no fine-tune service yet either)
    """def write_job(s):
    job = m.FinetuneJob(project_id=pid, name="support-ft", base="tiny-llama", method="lora",
                        backend="peft", status="running", params={"r": 16, "lr": 2e-4})
    s.add(job)
    s.flush()
    for step in range(1, 41):
        s.add(m.FinetuneMetric(job_id=job.id, step=step, loss=2.5 / step ** 0.5, lr=2e-4))
    s.add(m.RegisteredModel(project_id=pid, name="support-ft", version=1, base="tiny-llama",
                            job_id=job.id))
store.write(write_job)
print("fine-tune written")""",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sync_playwright() -> Any:
    """Playwright's entry point; skips (saying why) when Chromium or Playwright is missing."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (`make chromium` installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed: {exc}")
    return sync_playwright


@pytest.fixture
def lab(sync_playwright: Any, tmp_path: Path, llmops_home: Path) -> Iterator[dict[str, Any]]:
    """`jupyter lab` on 127.0.0.1 with a token, its own store, config and workspace."""
    if not any(
        Path(d, "llmops_nb", "package.json").exists() for d in jupyter_path("labextensions")
    ):
        pytest.fail("the llmops_nb labextension is not installed: run `make install`")
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "sidebar_demo.ipynb")

    # A user settings dir of its own: no news prompt, no update check.
    settings = tmp_path / "lab_settings"
    notification = (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ)
    env.update(
        LLMOPS_NB_HOME=str(llmops_home),
        LLMOPS_NB_USER="tester",
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter_runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
    )
    env.pop("LLMOPS_NB_STORE", None)
    env.pop("LLMOPS_NB_PROJECT", None)
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip", "127.0.0.1", f"--port={port}", "--LabApp.news_url=None",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "jupyter_lab.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start; see {ARTIFACTS / 'jupyter_lab.log'}")
                time.sleep(0.3)
        yield {"base": base, "token": token}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def page(sync_playwright: Any, lab: dict[str, Any]) -> Iterator[Any]:
    """A Chromium page (Debian's Chromium: Playwright downloads no browser here)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 950})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def run_cell(page: Any, index: int, expect: str) -> None:
    """Select a cell in command mode, run it with Shift+Enter, wait for its printed line."""
    # Keys sent while the kernel is still starting can be lost: wait until it is idle.
    page.locator(
        '.jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status="idle"]'
    ).wait_for(timeout=120_000)
    cell = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-OutputArea-output", has_text=expect).wait_for(timeout=120_000)


def test_sidebar_fills_as_a_notebook_writes(lab: dict[str, Any], page: Any) -> None:
    page.goto(f"{lab['base']}/lab/tree/sidebar_demo.ipynb?token={lab['token']}")
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for()

    # The sidebar has its own icon in the left bar; it opens on the (empty) Prompts tab.
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="llmops-nb-sidebar"]').click()
    sidebar = page.locator("#llmops-nb-sidebar")
    tab_names = sidebar.locator(".lm-TabBar-tab .lm-TabBar-tabLabel")
    assert tab_names.all_inner_texts() == ["Prompts", "Evals", "Traces", "Fine-tunes"]
    sidebar.get_by_text("No prompts yet").wait_for()
    assert sidebar.locator(".llmops-title").inner_text() == "LLMOps"
    assert sidebar.locator("select.llmops-project").input_value() == "default"
    sidebar.locator(".llmops-status", has_text="updated").wait_for()
    shot(page, "01-sidebar-empty")

    # Prompts: the list fills by itself once the cell has run; the detail shows the diff.
    run_cell(page, 0, "prompts written")
    item = sidebar.locator('.llmops-item[data-name="support_reply"]')
    item.wait_for(timeout=30_000)
    assert "v2" in item.inner_text() and "production=v2" in item.inner_text()
    shot(page, "02-prompts")
    item.click()
    added = sidebar.locator(".llmops-diff-add")
    added.first.wait_for()
    assert "+You are a concise, kind agent." in added.all_inner_texts()
    assert "-You are a concise agent." in sidebar.locator(".llmops-diff-del").all_inner_texts()
    shot(page, "03-prompt-diff")

    # Evals: the run appears, and its heatmap shows mean score per prompt x model.
    tab_names.get_by_text("Evals", exact=True).click()
    run_cell(page, 1, "eval written")
    run = sidebar.locator(".llmops-view-evals .llmops-item", has_text="faq")
    run.wait_for(timeout=30_000)
    run.click()
    heatmap = sidebar.locator('.llmops-heatmap[data-scorer="exact"]')
    heatmap.wait_for()
    cells = heatmap.locator("td").all_inner_texts()
    assert cells == ["0.25", "0.25", "1.00", "1.00"]
    shot(page, "04-eval-heatmap")

    # Traces: the trace appears; opening it shows the span tree and the output as text.
    tab_names.get_by_text("Traces", exact=True).click()
    run_cell(page, 2, "trace written")
    trace = sidebar.locator(".llmops-view-traces .llmops-item", has_text="answer_question")
    trace.wait_for(timeout=30_000)
    trace.click()
    spans = sidebar.locator(".llmops-span .llmops-span-name")
    spans.first.wait_for()
    assert [s.strip() for s in spans.all_inner_texts()] == [
        "▾ answer_question",
        "• retrieve",
        "• chat",
    ]
    sidebar.locator(".llmops-span", has_text="chat").click()
    outputs = sidebar.locator(".llmops-span-detail .llmops-field", has_text="outputs")
    outputs.locator("pre").wait_for()
    assert outputs.locator("pre").inner_text() == PAYLOAD  # the markup, shown as text
    assert sidebar.locator("img, script, b").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "05-trace-span-tree")
    sidebar.screenshot(path=str(ARTIFACTS / "06-sidebar-trace.png"))

    # Fine-tunes: the job and its model appear; the detail draws the loss curve.
    tab_names.get_by_text("Fine-tunes", exact=True).click()
    run_cell(page, 3, "fine-tune written")
    job = sidebar.locator(".llmops-view-finetunes .llmops-item", has_text="support-ft").first
    job.wait_for(timeout=30_000)
    assert "local/support-ft" in sidebar.locator(".llmops-view-finetunes").inner_text()
    job.click()
    line = sidebar.locator("svg.llmops-loss polyline")
    line.wait_for()
    assert len(line.get_attribute("points").split()) == 40
    assert "40 steps" in sidebar.locator(".llmops-view-finetunes .llmops-note").inner_text()
    sidebar.screenshot(path=str(ARTIFACTS / "07-sidebar-loss-curve.png"))
