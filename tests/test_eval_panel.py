"""The eval grid panel: its view, the rows of a clicked cell, a row's trace, regression
marks, the pass threshold, the static HTML fallback (escaped), and the offline chart."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb import display
from llmops_nb.testing import serve
from llmops_nb.views.evals import eval_view
from llmops_nb.widgets.eval_grid import EvalGrid, static_html


def reply(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"]
    if body["model"] == "worse" and "<b>" not in text:
        return "no idea"
    return "answer: " + text


@pytest.fixture
def runs() -> Any:
    lo.register_prompt("p", "user:\n{{q}}")
    df = pl.DataFrame(
        {
            "q": [
                f"<script>alert({i})</script>" if i == 0 else f"q{i} <b>" if i < 3 else f"q{i}"
                for i in range(24)
            ]
        }
    )
    with serve(reply=reply) as srv:

        def go(name: str, baseline: Any = None) -> Any:
            m = {"model": f"openai/{name}", "label": "m", "api_base": srv.base_url, "api_key": "k"}
            return lo.evaluate(
                ["p"],
                [m],
                df,
                [{"contains": {"value": "{{q}}"}}, "is_json"],
                name="panel",
                baseline=baseline,
                progress=False,
            )

        good = go("gpt-4o-mini")
        bad = go("worse", baseline="latest")
    return good, bad


def test_view_and_regression_marks(runs: Any) -> None:
    good, bad = runs
    data = eval_view(bad)
    assert (
        data["prompts"] == ["p"]
        and data["models"] == ["m"]
        and data["scorers"] == ["contains", "is_json"]
    )
    assert (data["done"], data["n_cells"], data["baseline_id"]) == (24, 24, good.id)
    assert data["baseline_name"] == "panel"
    assert data["thresholds"] == {"contains": 1.0, "is_json": 1.0}
    cell = data["cells"][0]
    assert cell["scores"]["contains"] == pytest.approx(2 / 24)
    assert cell["flags"]["contains"]["flag"] == "regression"
    assert cell["flags"]["is_json"]["flag"] == "same"
    assert cell["latency_p50_ms"] is not None and cell["input_tokens"] > 0


def test_clicking_a_cell_sends_its_rows(runs: Any) -> None:
    _, bad = runs
    widget = EvalGrid(bad)
    sent: list[Any] = []
    widget.send = sent.append  # type: ignore[method-assign]
    widget._on_message(widget, {"type": "rows", "prompt": "p", "model": "m"}, [])
    message = sent[0]
    assert message["type"] == "rows" and len(message["rows"]) == 24
    first = message["rows"][0]
    assert first["input"] == '{"q": "<script>alert(0)</script>"}'
    assert first["output"] == "no idea" and first["scores"]["contains"] == 0.0
    assert first["trace_id"] and first["passed"] is False


def test_a_rows_trace_opens_in_the_panel(runs: Any) -> None:
    """The trace column is a link: the JS asks for the trace, Python answers with its view."""
    _, bad = runs
    widget = EvalGrid(bad)
    sent: list[Any] = []
    widget.send = sent.append  # type: ignore[method-assign]
    trace_id = bad.results["trace_id"][0]
    widget._on_message(widget, {"type": "trace", "trace_id": trace_id}, [])
    reply = sent[0]
    assert reply["type"] == "trace" and reply["trace_id"] == trace_id
    assert reply["trace"]["id"] == trace_id
    [root] = reply["trace"]["spans"]  # the eval span each cell's call now runs under
    assert root["kind"] == "eval"
    llm, scored = root["children"]  # the call, then the cell's scores
    assert scored["name"] == "eval scores" and scored["kind"] == "evaluator"
    assert llm["kind"] == "llm" and "<script>alert(0)</script>" in json.dumps(llm["inputs"])
    widget._on_message(widget, {"type": "trace", "trace_id": "0" * 32}, [])
    assert sent[1]["type"] == "trace_error" and "no trace" in sent[1]["message"]


def test_static_fallback_is_escaped_and_complete(runs: Any) -> None:
    _, bad = runs
    data = eval_view(bad, rows_per_cell=5)
    page = static_html(data)
    assert "<script>alert" not in page and "&lt;script&gt;alert(0)&lt;/script&gt;" in page
    assert page.count("<svg") == 2  # one heatmap per scorer
    assert "regression: p × m contains 1.000 → 0.083" in page
    assert "▼" in page and f'href="#trace-{bad.results["trace_id"][0]}"' in page
    assert "pass rate: rows where contains ≥ 1.00, is_json ≥ 1.00" in page
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or InteractiveShell.instance()
    assert display.register(shell)  # what `import llmops_nb` and %load_ext do in IPython
    data, _ = shell.display_formatter.format(bad)  # an EvalRun in a cell shows its panel
    assert "application/vnd.jupyter.widget-view+json" in data
    assert (
        data["text/plain"].splitlines()[2].strip().startswith("p x m: contains=0.08 is_json=0.00")
    )
    assert "contains regression" in data["text/plain"]


def test_chart_is_an_altair_heatmap(runs: Any) -> None:
    good, _ = runs
    spec = good.chart().to_dict()
    assert spec["facet"]["column"]["field"] == "scorer"
    marks = [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in spec["spec"]["layer"]
    ]
    assert marks == ["rect", "text"]
    values = next(iter(spec["datasets"].values()))
    assert {(v["scorer"], v["mean"]) for v in values} == {("contains", 1.0), ("is_json", 0.0)}


EVIL = "</script><script>alert(1)</script>"


def test_chart_is_offline_svg_and_labels_are_inert() -> None:
    """A label or scorer name written to the shared store never runs as script when charted
    (issue 9 §2), and the chart needs no CDN (issue 8 §5)."""
    import re

    import altair as alt

    from llmops_nb import charts

    lo.register_prompt("p", "user:\n{{q}}")
    with serve() as srv:
        models = [
            {"model": "openai/a", "label": EVIL, "api_base": srv.base_url, "api_key": "k"},
            {"model": "openai/b", "label": "plain", "api_base": srv.base_url, "api_key": "k"},
        ]
        scorers = [{"contains": {"value": "{{q}}", "name": EVIL}}, "is_json"]
        run = lo.evaluate(
            ["p"], models, pl.DataFrame({"q": ["a", "b"]}), scorers, name="x", progress=False
        )
    bundle = run.chart()._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert alt.renderers.active == charts.RENDERER
    assert set(data) == {"image/svg+xml", "text/plain"}  # no HTML, no <script>, no CDN
    svg = data["image/svg+xml"]
    assert "<script" not in svg and "cdn" not in svg.lower()
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    inline = charts.svg(run.chart())  # what a report embeds
    assert inline.startswith("<svg") and "<script" not in inline and EVIL not in inline
    # Neighbouring cells' value labels are a cell apart, not run together ("1.000.50").
    centres = [
        float(x) for x in re.findall(r'translate\(([\d.]+),[\d.]+\)"[^>]*>1\.00</text>', svg)
    ]
    assert len(centres) == 2 and abs(centres[1] - centres[0]) >= charts.CELL_WIDTH


def test_svg_loses_anything_that_could_run() -> None:
    from llmops_nb.charts import sanitize_svg

    evil = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'onload="alert(1)"><script>alert(2)</script><a xlink:href="javascript:alert(3)">'
        '<text onclick="alert(4)">ok</text></a><foreignObject><div>x</div></foreignObject></svg>'
    )
    clean = sanitize_svg(evil)
    assert "alert" not in clean and "foreignObject" not in clean
    assert ">ok</text>" in clean


GRID_PAGE = """<!doctype html><html><body><div id="root"></div><script type="module">
window.alerted = false;
window.alert = () => { window.alerted = true; };
window.sent = [];
const listeners = {};
const model = {
  get: () => window.DATA,
  on: (event, fn) => { (listeners[event] = listeners[event] || []).push(fn); },
  off: () => {},
  send: (msg) => window.sent.push(msg),
};
window.emit = (event, msg) => (listeners[event] || []).forEach((fn) => fn(msg));
(await import("/grid.js")).default.render({ model, el: document.getElementById("root") });
window.rendered = true;
</script></body></html>"""


def test_the_panel_in_chromium_shows_thresholds_and_opens_a_rows_trace(runs: Any) -> None:
    import shutil
    from pathlib import Path

    from llmops_nb.widgets.eval_grid import trace_message

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("chromium is not installed")
    _, bad = runs
    widget = EvalGrid(bad)
    sent: list[Any] = []
    widget.send = sent.append  # type: ignore[method-assign]
    widget._on_message(widget, {"type": "rows", "prompt": "p", "model": "m"}, [])
    rows_reply = sent[0]
    trace_reply = trace_message(rows_reply["rows"][0]["trace_id"])
    files = {"/": ("text/html", GRID_PAGE), "/grid.js": ("text/javascript", EvalGrid._esm)}

    def serve_file(route: Any) -> None:
        path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        kind, body = files.get(path, ("text/plain", ""))
        route.fulfill(status=200 if path in files else 404, content_type=kind, body=body)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.route("http://grid.test/**", serve_file)
            page.add_init_script(f"window.DATA = {json.dumps(widget.data)};")
            page.goto("http://grid.test/")
            page.wait_for_function("window.rendered === true", timeout=10_000)
            root = page.locator("#root")
            assert "pass rate: rows where contains ≥ 1.00, is_json ≥ 1.00" in root.inner_text()
            assert "baseline panel #" in root.inner_text()
            page.locator("td.lonb-hm-cell").first.click()
            assert page.evaluate("window.sent") == [{"type": "rows", "prompt": "p", "model": "m"}]
            page.evaluate(f"window.emit('msg:custom', {json.dumps(rows_reply)})")
            link = page.locator("a.lonb-trace").first
            assert link.inner_text() == rows_reply["rows"][0]["trace_id"][:12]
            link.click()
            assert page.evaluate("window.sent")[-1] == {
                "type": "trace", "trace_id": rows_reply["rows"][0]["trace_id"]
            }  # fmt: skip
            page.evaluate(f"window.emit('msg:custom', {json.dumps(trace_reply)})")
            box = page.locator(".lonb-trace-box")
            assert "Trace " + rows_reply["rows"][0]["trace_id"][:12] in box.inner_text()
            assert "<script>alert(0)</script>" in box.inner_text()  # the row's input, as text
            assert page.evaluate("document.querySelectorAll('#root script').length") == 0
            assert page.evaluate("window.alerted") is False
        finally:
            browser.close()
