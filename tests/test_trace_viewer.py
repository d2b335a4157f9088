"""The trace viewer: escaped static HTML, and the widget's ESM rendered in headless Chromium
(text only, feedback sent back to Python as a custom message)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.widgets.trace_viewer import STATIC, TraceViewer, trace_html, trace_view_data

EVIL = "<script>alert(1)</script> <img src=x onerror=alert(1)>"


def evil_trace() -> tracing.Trace:
    @lo.trace(name="<b>agent</b>")
    def agent(question: str) -> str:
        with lo.span("tool <i>call</i>", kind="tool") as s:
            s.set_attribute("note<script>", EVIL)
            s.set_outputs({"html": EVIL})
        return EVIL

    agent(EVIL)

    @lo.trace(name="fails")
    def fails() -> None:
        raise ValueError(EVIL)

    with pytest.raises(ValueError):
        fails()
    return lo.get_trace(lo.traces(name="<b>agent</b>")["id"][0])


def test_static_html_is_escaped_text() -> None:
    t = evil_trace()
    page = trace_html(t)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;agent&lt;/b&gt;" in page and "tool &lt;i&gt;call&lt;/i&gt;" in page
    assert "note&lt;script&gt;" in page
    for tag in ("<script", "<img", "<b>", "<i>"):
        assert tag not in page
    error_page = trace_html(lo.last_trace())
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in error_page
    assert "<script" not in error_page
    # the waterfall and the totals are there too
    assert page.count('class="lotv-bar') == 2 and "2 spans" in page


def test_view_data_is_a_tree_in_time_order() -> None:
    @lo.trace
    def parent() -> None:
        with lo.span("a"):
            with lo.span("a1"):
                pass
        with lo.span("b"):
            pass

    parent()
    data = trace_view_data(lo.last_trace())
    assert [(s["name"], s["depth"]) for s in data["spans"]] == [
        ("parent", 0),
        ("a", 1),
        ("a1", 2),
        ("b", 1),
    ]
    assert data["spans"][0]["offset_ms"] == 0
    assert all(0 <= s["offset_ms"] <= data["total_ms"] for s in data["spans"])
    json.dumps(data)  # what the widget syncs must be JSON


def test_viewer_bundle_has_widget_and_fallback() -> None:
    evil_trace()
    viewer = tracing.show()
    assert isinstance(viewer, TraceViewer)
    data, _ = viewer._repr_mimebundle_()
    assert set(data) >= {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    assert "fails" in data["text/plain"] and "error" in data["text/plain"]
    assert tracing.show(viewer.trace_id[:8]).trace_id == viewer.trace_id


# --- the ESM in a real browser ---------------------------------------------------------------


def _browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("chromium is not installed")
    return sync_api, chromium


PAGE = """<!doctype html><html><head><link rel="stylesheet" href="/trace_viewer.css"></head>
<body><div id="root"></div><script type="module">
window.alerted = false;
window.alert = () => { window.alerted = true; };
window.sent = [];
const listeners = {};
const model = {
  get: (key) => window.DATA,
  on: (event, fn) => { (listeners[event] = listeners[event] || []).push(fn); },
  off: () => {},
  send: (msg) => window.sent.push(msg),
};
window.emit = (event, msg) => (listeners[event] || []).forEach((fn) => fn(msg));
const viewer = (await import("/trace_viewer.js")).default;
viewer.render({ model, el: document.getElementById("root") });
window.rendered = true;
</script></body></html>"""


def test_widget_renders_text_only_and_sends_feedback() -> None:
    sync_api, chromium = _browser()
    data = trace_view_data(evil_trace())
    files = {
        "/": ("text/html", PAGE),
        "/trace_viewer.js": ("text/javascript", (STATIC / "trace_viewer.js").read_text()),
        "/trace_viewer.css": ("text/css", (STATIC / "trace_viewer.css").read_text()),
    }

    def serve(route: Any) -> None:
        path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        kind, body = files.get(path, ("text/plain", ""))
        route.fulfill(status=200 if path in files else 404, content_type=kind, body=body)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("http://viewer.test/**", serve)
            page.add_init_script(f"window.DATA = {json.dumps(data)};")
            page.goto("http://viewer.test/")
            page.wait_for_function("window.rendered === true", timeout=10_000)
            root = page.locator("#root")

            text = root.inner_text()
            assert "<b>agent</b>" in text  # names and values shown as text...
            assert EVIL in text  # the root's output is selected first
            assert (
                page.evaluate(
                    "document.querySelectorAll('#root script, #root img, #root b, #root i').length"
                )
                == 0
            )  # ...never parsed as HTML
            page.locator("tr.lotv-row", has_text="tool <i>call</i>").click()
            assert '"html": "<script>alert(1)</script>' in root.inner_text()
            assert "note<script>" in root.inner_text()
            assert page.evaluate("window.alerted") is False

            bars = page.locator(".lotv-bar")
            assert bars.count() == 2
            page.get_by_text("👎").click()
            page.locator("textarea").fill("unsafe output")
            page.get_by_text("Send").click()
            assert page.evaluate("window.sent") == [
                {"type": "feedback", "score": -1, "comment": "unsafe output"}
            ]
            page.evaluate("window.emit('msg:custom', {type: 'feedback_saved'})")
            assert "saved" in root.inner_text()
        finally:
            browser.close()

    # what Python does with that message
    viewer = TraceViewer(data)
    viewer._on_message(viewer, {"type": "feedback", "score": -1, "comment": "unsafe output"}, [])
    assert [f["comment"] for f in viewer.data["feedback"]] == ["unsafe output"]
    viewer._on_message(viewer, {"type": "feedback", "score": 3}, [])  # refused, not stored
    assert len(viewer.data["feedback"]) == 1
