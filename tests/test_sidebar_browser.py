"""The sidebar in a real JupyterLab, driven in Debian's Chromium with Playwright.

A notebook in the same Lab writes prompts, an eval run and a trace; the open sidebar
fills by itself (polling) and shows them. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from lab_harness import ARTIFACTS as ALL_ARTIFACTS
from lab_harness import (
    JupyterLab,
    chromium_page,
    open_notebook,
    open_sidebar,
    run_cell,
    running_lab,
    sync_playwright,
    wait_kernel_settled,
    write_notebook,
)

ARTIFACTS = ALL_ARTIFACTS / "sidebar"
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
    # 1: an eval run through the eval service, against a stand-in provider: the kind
    # prompt (v2) answers every row right, v1 only row 0, on both models
    """import os
from llmops_nb.testing import OpenAIServer

def reply(body):
    system, question = body["messages"][0]["content"], body["messages"][-1]["content"]
    return "yes" if "kind" in system or question.endswith("0") else "no"

server = OpenAIServer(reply=reply, latency_ms=0).start()
os.environ["OPENAI_API_BASE"] = server.base_url
os.environ["OPENAI_API_KEY"] = "sk-test"
run = lo.evaluate(
    ["support_reply@1", "support_reply@2"],
    ["openai/gpt-4o-mini", {"model": "openai/support-ft", "label": "support-ft"}],
    data=[{"question": f"question {i}", "expected": "yes"} for i in range(4)],
    scorers=["exact"],
    name="faq",
    progress=False,
)
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
    # 3: a fine-tune's loss curve and its registered model, through the store's fine-tune
    # API (the calls the fine-tune worker makes)
    """from llmops_nb.store import get_store
store, project = get_store(), lo.current_project()
job = store.create_finetune_job(project, "support-ft", base="tiny-llama", method="lora",
                                backend="peft", params={"r": 16, "lr": 2e-4})
store.update_finetune_job(job.id, status="running", only_from=("queued",))
store.add_finetune_metrics(
    job.id, [{"step": step, "loss": 2.5 / step ** 0.5, "lr": 2e-4} for step in range(1, 41)]
)
store.register_model(project, "support-ft", base="tiny-llama", backend="peft", job_id=job.id)
print("fine-tune written")""",
]


FIX_CELLS = [
    # 0: a notebook switches project; a stand-in provider that can get worse
    """%load_ext llmops_nb
%llmops project shop
import os
import polars as pl
import llmops_nb as lo
from llmops_nb.testing import OpenAIServer

GOOD = {"on": True}
server = OpenAIServer(
    reply=lambda body: "Track it under Orders." if GOOD["on"] else "No idea.", latency_ms=0
).start()
os.environ["OPENAI_API_BASE"] = server.base_url
os.environ["OPENAI_API_KEY"] = "sk-test"
questions = pl.DataFrame({"question": [f"Where is order {i}?" for i in range(8)]})
lo.register_prompt("track", "user:\\n{{question}}")
from llmops_nb.store import get_store
get_store().project_id("scratch")  # another project the user can pick in the sidebar
print("shop ready")""",
    # 1: traces with different names
    """import llmops_nb.tracing

@lo.trace(name="answer_question")
def answer(q):
    return "answered"

@lo.trace(name="lookup_order")
def lookup(q):
    return "found"

answer("a"); lookup("b"); answer("c")
llmops_nb.tracing.flush()
print("traces written")""",
    # 2: a first eval run
    """%%eval checkout
prompts: [track@1]
models: [openai/gpt-4o-mini]
data: questions
scorers:
  - contains: {value: "Orders"}""",
    # 3: the provider gets worse: the second run regresses against the first
    """GOOD["on"] = False
print("worse now")""",
    """%%eval checkout --baseline latest --no-cache
prompts: [track@1]
models: [openai/gpt-4o-mini]
data: questions
scorers:
  - contains: {value: "Orders"}""",
    # 5: the notebook chooses its project again
    """%llmops project shop
print("shop again")""",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """One `jupyter lab` for the module, with its own store, config and workspace."""
    sync_playwright()  # skip before starting a server when there is no browser
    workdir = tmp_path_factory.mktemp("sidebar_lab")
    with running_lab(workdir, workdir / "llmops_home", ARTIFACTS) as lab:
        write_notebook(lab.root / "sidebar_demo.ipynb", CELLS)
        write_notebook(lab.root / "sidebar_fixes.ipynb", FIX_CELLS)
        yield lab


@pytest.fixture
def page(lab: JupyterLab) -> Iterator[Any]:
    with chromium_page(ARTIFACTS) as page:
        yield page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_sidebar_fills_as_a_notebook_writes(lab: JupyterLab, page: Any) -> None:
    open_notebook(page, lab, "sidebar_demo.ipynb")
    wait_kernel_settled(page)

    # The sidebar has its own icon in the left bar; it opens on the (empty) Prompts tab.
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="llmops-nb-sidebar"]').click()
    sidebar = page.locator("#llmops-nb-sidebar")
    tab_names = sidebar.locator(".lm-TabBar-tab .lm-TabBar-tabLabel")
    assert tab_names.all_inner_texts() == [
        "Prompts",
        "Evals",
        "Traces",
        "Fine-tunes",
        "Indexes",
        "Ops",
    ]
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
    # latency of real calls, and of cache hits apart
    head = sidebar.locator(".llmops-stats tr").first.locator("th").all_inner_texts()
    assert head[4:8] == ["p50", "p95", "cached", "cached p50"]
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
    assert "step 40" in sidebar.locator(".llmops-view-finetunes .llmops-note").inner_text()
    sidebar.screenshot(path=str(ARTIFACTS / "07-sidebar-loss-curve.png"))


def _bg(page: Any, locator: Any) -> str:
    return locator.evaluate("el => getComputedStyle(el).backgroundColor")


def test_sidebar_follows_filters_marks_and_links(lab: JupyterLab, page: Any) -> None:
    open_notebook(page, lab, "sidebar_fixes.ipynb")
    wait_kernel_settled(page)
    sidebar = open_sidebar(page)
    select = sidebar.locator("select.llmops-project")
    tabs = sidebar.locator(".lm-TabBar-tab .lm-TabBar-tabLabel")
    sidebar.locator(".llmops-status", has_text="updated").wait_for()

    # It follows `%llmops project` in the notebook.
    run_cell(page, 0, "shop ready")
    page.wait_for_function("el => el.value === 'shop'", arg=select.element_handle())

    # Traces: the filter is a substring, applied as you type, and says when nothing matches.
    tabs.get_by_text("Traces", exact=True).click()
    run_cell(page, 1, "traces written")
    items = sidebar.locator(".llmops-view-traces .llmops-item")
    items.nth(2).wait_for(timeout=30_000)
    name_filter = sidebar.get_by_label("trace name")
    name_filter.click()
    page.keyboard.type("ORD", delay=80)  # no Enter; case does not matter
    page.wait_for_function(
        "() => [...document.querySelectorAll('.llmops-view-traces .llmops-item-name')]"
        ".map(e => e.textContent).join() === 'lookup_order'"
    )
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "trace name"
    shot(page, "10-trace-filter-substring")
    page.keyboard.type("zzz", delay=50)
    no_match = sidebar.locator(".llmops-no-match")
    no_match.wait_for()
    assert "No traces match" in no_match.inner_text() and "ORDzzz" in no_match.inner_text()
    assert sidebar.get_by_text("No traces yet").count() == 0
    shot(page, "11-trace-filter-no-match")
    name_filter.fill("")
    items.nth(2).wait_for()

    # Trace detail: drawn thumbs (no emoji font needed) and the feedback given so far.
    sidebar.locator(".llmops-view-traces .llmops-item", has_text="answer_question").first.click()
    good = sidebar.locator(".llmops-feedback button", has_text="Good")
    good.wait_for()
    assert good.locator("svg.llmops-thumb-up").count() == 1
    assert sidebar.locator(".llmops-feedback button", has_text="Bad").locator("svg").count() == 1
    buttons = sidebar.locator(".llmops-feedback").inner_text()
    assert not re.search("[\U0001f44d\U0001f44e]", buttons)
    sidebar.locator(".llmops-feedback input").fill("spot on")
    good.click()
    sidebar.locator(".llmops-feedback .llmops-note", has_text="Saved").wait_for()
    answered = lab.api("traces?project=shop&name_contains=answer")["items"][0]["id"]
    assert [f["comment"] for f in lab.api(f"traces/{answered}")["feedback"]] == ["spot on"]
    given = sidebar.locator(".llmops-feedback-item", has_text="Good: spot on")
    given.wait_for()  # the detail lists the feedback so far, with when it was given
    assert re.search(r"\d{1,2}:\d{2}", given.locator(".llmops-item-meta").inner_text())
    shot(page, "12-trace-feedback")

    # Evals: a run with a baseline; the heatmap, the stats table, rows linking to traces.
    tabs.get_by_text("Evals", exact=True).click()
    run_cell(page, 2, "done")
    run_cell(page, 3, "worse now")
    run_cell(page, 4, "done")
    runs = sidebar.locator(".llmops-view-evals .llmops-item", has_text="checkout")
    runs.nth(1).wait_for(timeout=30_000)
    latest = max(runs.evaluate_all("els => els.map(e => Number(e.dataset.id))"))
    runs = sidebar.locator(f'.llmops-view-evals .llmops-item[data-id="{latest}"]')
    runs.click()
    heat = sidebar.locator('.llmops-heatmap[data-scorer="contains"] td').first
    heat.wait_for()
    colour = _bg(page, heat)
    # the shared eval view: baseline and regression marks
    assert sidebar.locator(".llmops-baseline").inner_text().startswith("baseline: #")
    flags = sidebar.locator(".llmops-flags").inner_text()
    assert "regression: track@1 × openai/gpt-4o-mini contains" in flags
    assert heat.inner_text().endswith("▼")
    heat.click()
    heat = sidebar.locator('.llmops-heatmap[data-scorer="contains"] td.llmops-heat-selected')
    heat.wait_for()
    assert _bg(page, heat) == colour  # the score colour stays; the selection is an outline
    assert heat.evaluate("el => parseFloat(getComputedStyle(el).outlineWidth)") >= 2
    stats = sidebar.locator(".llmops-scroll:has(.llmops-stats)")
    assert stats.evaluate("el => el.scrollWidth > el.clientWidth")
    assert stats.evaluate("el => { el.scrollLeft = 60; return el.scrollLeft; }") > 0
    shot(page, "13-eval-selected-cell-and-scroll")

    link = sidebar.locator(".llmops-results .llmops-trace-link").first
    link.wait_for()
    linked = link.get_attribute("data-trace")
    link.click()
    linked_name = lab.api(f"traces/{linked}")["name"]
    title = sidebar.locator(".llmops-view-traces .llmops-detail h3")
    page.wait_for_function(  # the linked trace replaces the one the tab showed before
        "name => document.querySelector('.llmops-view-traces .llmops-detail h3')"
        "?.textContent.startsWith(name)",
        arg=linked_name,
    )
    assert sidebar.locator(".lm-TabBar-tab.lm-mod-current").inner_text() == "Traces"
    assert title.inner_text().startswith(linked_name)
    shot(page, "14-eval-row-trace-link")

    # The user can pick another project; a notebook choosing again wins it back.
    select.select_option("scratch")
    with page.expect_response(lambda r: "/llmops-nb/api/changes" in r.url):
        pass
    with page.expect_response(lambda r: "/llmops-nb/api/changes" in r.url):
        pass
    assert select.input_value() == "scratch"
    run_cell(page, 5, "shop again")
    page.wait_for_function("el => el.value === 'shop'", arg=select.element_handle())
    shot(page, "15-sidebar-follows-project")
