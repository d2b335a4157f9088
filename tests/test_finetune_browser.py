"""The live fine-tune panel in a real JupyterLab, driven in Debian's Chromium (Playwright).

A notebook cell launches a short LoRA fine-tune of the tiny model; the panel under it
follows the job by itself (status, step and loss moving, then the final state), and its
numbers are the ones the sidebar's Fine-tunes tab and its endpoint give for the same job.
After a page reload the panel is still there, and after JupyterLab restarts (the kernel
gone) the saved notebook shows the panel's static copy. Screenshots go to the test's
temporary folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    JupyterLab,
    cell,
    chromium_page,
    open_notebook,
    open_sidebar,
    run_cell,
    running_lab,
    save_notebook,
    sync_playwright,
    wait_kernel_idle,
    wait_kernel_settled,
    write_notebook,
)

pytestmark = pytest.mark.slow

NOTEBOOK = "finetune_panel.ipynb"
STEPS = 400  # long enough to watch the step move: a minute or less on the tiny model
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def cells(tiny_model: Path) -> list[str]:
    return [
        # 0: data and a prompt
        """%load_ext llmops_nb
import random
import polars as pl
import llmops_nb as lo

WORDS = {"animal": ["cat", "dog", "fox"], "plant": ["tree", "rose", "fern"]}

def rows(n, seed):
    rng = random.Random(seed)
    labels = [list(WORDS)[i % 2] for i in range(n)]
    texts = [f"the {rng.choice(WORDS[label])} is small" for label in labels]
    return pl.DataFrame({"text": texts, "label": labels})

lo.register_prompt("topic", "user:\\ntopic: {{text}}", parameters={"max_tokens": 4})
print("ready")""",
        # 1: the fine-tune; its panel is the cell's output
        f"""job = lo.finetune("local/{tiny_model}", rows(64, 1), "topic", "label",
                  name="panel-ft", eval_data=rows(4, 2), max_steps={STEPS},
                  batch_size=8, lr=5e-3, alpha=32, threads=1)
job""",
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[JupyterLab]:
    sync_playwright()  # skip before starting a server when there is no browser
    workdir = tmp_path_factory.mktemp("finetune_lab")
    with running_lab(workdir, workdir / "llmops_home", workdir / "shots") as lab:
        write_notebook(lab.root / NOTEBOOK, cells(tiny_model))
        yield lab


def _step(stats: str) -> int:
    found = re.search(r"step (\d+)/(\d+)", stats)
    assert found, stats
    assert int(found.group(2)) == STEPS
    return int(found.group(1))


def _loss(text: str) -> float:
    found = re.search(r"(?<!eval )loss ([0-9.e+-]+)", text)
    assert found, text
    return float(found.group(1))


def _points(locator: Any) -> int:
    return len((locator.get_attribute("points") or "").split())


def test_the_panel_follows_the_job_and_agrees_with_the_sidebar(lab: JupyterLab) -> None:
    shots = lab.artifacts
    with chromium_page(shots) as page:
        open_notebook(page, lab, NOTEBOOK)
        wait_kernel_settled(page)
        run_cell(page, 0, "ready")
        output = run_cell(page, 1, "panel-ft")
        panel = output.locator(".lonb-finetune")
        panel.wait_for()
        assert panel.locator(".lonb-title").inner_text() == "fine-tune panel-ft"
        job_id = int(panel.locator(".lonb-badge").inner_text().lstrip("#"))

        # Live: the job runs in its worker; the panel moves without re-running the cell.
        # What it shows is recorded in the page as it changes, so nothing fast is missed.
        panel.evaluate(
            """root => {
                window.__seen = [];
                const note = () => window.__seen.push([
                    root.querySelector('.lonb-status')?.textContent,
                    root.querySelector('.lonb-stats')?.textContent || '',
                    !!root.querySelector('button.lonb-ft-cancel'),
                ]);
                note();
                new MutationObserver(note).observe(root, {childList: true, subtree: true});
            }"""
        )
        status, stats = panel.locator(".lonb-status"), panel.locator(".lonb-stats")
        page.wait_for_function(
            "() => window.__seen.some(([s, text]) => s === 'running' && /step /.test(text))",
            timeout=300_000,
        )
        if status.inner_text() == "running":
            panel.screenshot(path=str(shots / "01-panel-running.png"))

        # Finished: the final state, both loss curves, the samples; no Cancel any more.
        # (The panel redraws its children on each change: ask the root, not old nodes.)
        page.wait_for_function(
            f"""root => root.querySelector('.lonb-status')?.textContent === 'completed' &&
                root.querySelector('.lonb-stats').textContent.includes('{STEPS}/{STEPS}')""",
            arg=panel.element_handle(),
            timeout=300_000,
        )
        assert panel.locator("button.lonb-ft-cancel").count() == 0
        train_line = panel.locator("polyline.lonb-ft-train")
        assert _points(train_line) >= 10
        assert panel.locator("polyline.lonb-ft-eval").count() == 1
        assert panel.get_by_text(f"Samples at step {STEPS}").is_visible()
        assert panel.locator("table.lonb-table tr").count() == 1 + 3  # header + 3 samples
        shot = shots / "02-panel-completed.png"
        panel.screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
        panel_loss = _loss(stats.inner_text())
        seen = page.evaluate("window.__seen")
        running = [
            (_step(text), _loss(text), cancel)
            for st, text, cancel in seen
            if st == "running" and "step " in text
        ]
        steps = [step for step, _, _ in running]
        assert len(set(steps)) >= 2 and steps == sorted(steps), seen  # it moved, forward
        assert all(loss > 0 and cancel for _, loss, cancel in running)
        assert min(steps) < STEPS

        # The sidebar's endpoint for the same job: the panel's view, with its numbers.
        view = lab.api(f"finetunes/{job_id}")
        assert view["status"] == "completed" and view["step"] == view["total_steps"] == STEPS
        assert panel_loss == pytest.approx(view["loss"], rel=1e-3)
        assert _points(train_line) == len(view["train"])

        # The sidebar's Fine-tunes tab shows the job with that status, loss and curve.
        sidebar = open_sidebar(page)
        sidebar.locator(".lm-TabBar-tab .lm-TabBar-tabLabel").get_by_text(
            "Fine-tunes", exact=True
        ).click()
        item = sidebar.locator(f'.llmops-view-finetunes .llmops-item[data-id="{job_id}"]')
        item.wait_for(timeout=30_000)
        assert "completed" in item.inner_text()
        item.click()
        note = sidebar.locator(".llmops-view-finetunes .llmops-note")
        note.wait_for()
        assert f"step {STEPS}/{STEPS}" in note.inner_text()
        assert _loss(note.inner_text()) == pytest.approx(view["loss"], abs=1e-4)
        assert _loss(note.inner_text()) == pytest.approx(panel_loss, rel=1e-3)
        assert _points(sidebar.locator("svg.llmops-loss polyline")) == _points(train_line)
        sidebar.screenshot(path=str(shots / "03-sidebar-same-job.png"))

        # Saved, then the page reloaded (the kernel still runs): the panel is still there.
        save_notebook(page, lab.root / NOTEBOOK, WIDGET_VIEW)
        page.reload()
        page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for()
        wait_kernel_idle(page)
        again = cell(page, 1).locator(".lonb-finetune").first  # live, or its static copy
        again.wait_for(timeout=120_000)
        assert "fine-tune panel-ft" in again.inner_text() and f"#{job_id}" in again.inner_text()
        if cell(page, 1).locator(".llmops-static-fallback").count() == 0:  # the live panel
            again.locator(".lonb-status", has_text="completed").wait_for()
            assert f"step {STEPS}/{STEPS}" in again.locator(".lonb-stats").inner_text()
        again.screenshot(path=str(shots / "04-panel-after-reload.png"))

    # JupyterLab restarts (the kernel dies with it): the saved output shows its static copy.
    lab.restart()
    with chromium_page(shots) as page:
        open_notebook(page, lab, NOTEBOOK)
        wait_kernel_idle(page)
        copy = cell(page, 1).locator(".llmops-static-fallback")
        copy.wait_for(timeout=120_000)
        text = copy.inner_text()
        assert "fine-tune panel-ft" in text and f"#{job_id}" in text
        assert "Static copy" in text
        # Saved at the end, not when the cell displayed the queued job.
        assert "completed" in text and f"step {STEPS}/{STEPS}" in text
        assert "<div" not in text  # rendered HTML, not markup shown as text
        copy.screenshot(path=str(shots / "05-static-copy-after-restart.png"))
