"""Panels survive a reload: a saved notebook reopened after JupyterLab restarts shows each
panel's static copy where its live widget's model is gone (issue 8, section 4).

Real JupyterLab in Debian's Chromium: run a prompt panel and an eval panel against the
test OpenAI server, save, restart the server (the kernel dies with it), reopen.
Screenshots land in tests/artifacts/reload/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    ARTIFACTS,
    JupyterLab,
    cell,
    chromium_page,
    open_notebook,
    run_cell,
    running_lab,
    save_notebook,
    shot,
    sync_playwright,
    wait_kernel_idle,
    wait_kernel_settled,
    write_notebook,
)

pytestmark = pytest.mark.slow

SHOTS = ARTIFACTS / "reload"
NOTEBOOK = "panels.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = [
    # 0: a stand-in provider
    """%load_ext llmops_nb
import os
import polars as pl
import llmops_nb as lo
from llmops_nb.testing import OpenAIServer

server = OpenAIServer(reply=lambda body: "Open Settings > Security.", latency_ms=0).start()
os.environ["OPENAI_API_BASE"] = server.base_url
os.environ["OPENAI_API_KEY"] = "sk-test"
questions = pl.DataFrame({"question": ["How do I reset my password?", "Where is Security?"]})
print("provider ready")""",
    # 1: a prompt panel
    """%%prompt reset_help --model openai/gpt-4o-mini -m "first cut"
system:
You answer in one sentence.
user:
{{question}}""",
    # 2: an eval panel
    """%%eval reload_check
prompts: [reset_help@1]
models: [openai/gpt-4o-mini]
data: questions
scorers:
  - contains: {value: "Settings"}""",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    sync_playwright()  # skip before starting a server when there is no browser
    workdir = tmp_path_factory.mktemp("reload_lab")
    with running_lab(workdir, workdir / "llmops_home", SHOTS) as lab:
        write_notebook(lab.root / NOTEBOOK, CELLS)
        yield lab


def panel_outputs(path: Path) -> list[dict[str, Any]]:
    """The saved outputs that hold a live widget view (and so need a static copy)."""
    nb = json.loads(path.read_text())
    return [
        o for c in nb["cells"] for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})
    ]


def without_copy(path: Path, index: int) -> list[dict[str, Any]]:
    """Cell INDEX's saved widget outputs that have no static text/html copy."""
    cell = json.loads(path.read_text())["cells"][index]
    return [
        o
        for o in cell.get("outputs", [])
        if WIDGET_VIEW in o.get("data", {}) and "text/html" not in o["data"]
    ]


def test_saved_panels_show_their_static_copy_after_a_restart(lab: JupyterLab) -> None:
    with chromium_page(SHOTS) as page:
        open_notebook(page, lab, NOTEBOOK)
        wait_kernel_settled(page)
        run_cell(page, 0, "provider ready")
        prompt = run_cell(page, 1, "reset_help")
        grid = run_cell(page, 2, "reload_check")
        # Live first: the widgets render (no static copy involved).
        grid.locator(".jp-OutputArea-output", has_text="done").first.wait_for()
        assert prompt.locator(".llmops-static-fallback").count() == 0
        shot(page, SHOTS, "01-live-panels")
        save_notebook(page, lab.root / NOTEBOOK, WIDGET_VIEW)
    # The prompt panel and the eval panel are saved with their static copies (the eval's
    # progress bar is a widget too, with no copy).
    copies = [o for o in panel_outputs(lab.root / NOTEBOOK) if "text/html" in o["data"]]
    assert len(copies) == 2

    lab.restart()

    with chromium_page(SHOTS) as page:
        open_notebook(page, lab, NOTEBOOK)
        wait_kernel_idle(page)
        prompt_copy = cell(page, 1).locator(".llmops-static-fallback")
        grid_copy = cell(page, 2).locator(".llmops-static-fallback")
        # The new kernel has no models for the saved views: once the widget manager says
        # so, the static copies take their place.
        prompt_copy.wait_for(timeout=120_000)
        grid_copy.wait_for()
        assert "reset_help" in prompt_copy.inner_text() and "v1" in prompt_copy.inner_text()
        grid_text = grid_copy.inner_text()
        assert "eval reload_check" in grid_text and "reset_help@1" in grid_text
        assert "Static copy" in grid_text
        # The widget renderer's message is left only on widgets saved without a copy
        # (the eval's progress bar).
        for index in (1, 2):
            outputs = cell(page, index).locator(".jp-OutputArea-output:visible")
            errors = outputs.filter(has_text="Error displaying widget").count()
            assert errors == len(without_copy(lab.root / NOTEBOOK, index))
        shot(page, SHOTS, "02-after-restart-static-copies")
        # The copy is the saved HTML, rendered: the heatmap's SVG, not markup as text.
        assert grid_copy.locator("svg").count() >= 1
        assert "<svg" not in grid_text
