"""The trace viewer: the one span tree (views.traces), escaped static HTML, and the widget's
ESM rendered in headless Chromium (text only, feedback sent back to Python as a custom
message, text and SVG icons rather than emoji)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import llmops_nb as lo
from llmops_nb import display, tracing
from llmops_nb.views.traces import flatten, trace_view
from llmops_nb.widgets.trace_viewer import STATIC, TraceViewer, static_html

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
    page = static_html(trace_view(t))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;agent&lt;/b&gt;" in page and "tool &lt;i&gt;call&lt;/i&gt;" in page
    assert "note&lt;script&gt;" in page
    for tag in ("<script", "<img", "<b>", "<i>"):
        assert tag not in page
    error_page = static_html(trace_view(lo.last_trace()))
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
    data = trace_view(lo.last_trace())
    [root] = data["spans"]
    assert [c["name"] for c in root["children"]] == ["a", "b"]
    assert [c["name"] for c in root["children"][0]["children"]] == ["a1"]
    spans = list(flatten(data["spans"]))
    assert [(s["name"], s["depth"]) for s in spans] == [
        ("parent", 0),
        ("a", 1),
        ("a1", 2),
        ("b", 1),
    ]
    assert spans[0]["offset_ms"] == 0
    assert all(0 <= s["offset_ms"] <= data["duration_ms"] for s in spans)
    json.dumps(data)  # what the widget syncs must be JSON


def test_a_child_written_before_its_parent_is_a_root() -> None:
    """While the exporter has stored a child but not yet its parent, the child is a root."""
    from llmops_nb.tracing import SpanRecord

    t = tracing.Trace(
        id="ab" * 16, name="t", status="ok", error=None, start_ns=0, end_ns=3_000_000,
        n_spans=2, input_tokens=0, output_tokens=0, cost=0.0,
        spans=[
            SpanRecord("c", "ab" * 16, "missing", "child", "llm", "ok", None, 1_000_000, 2_000_000),
            SpanRecord("r", "ab" * 16, None, "root", "chain", "ok", None, 0, 3_000_000),
        ],
    )  # fmt: skip
    view = trace_view(t)
    assert [(s["name"], s["offset_ms"], s["duration_ms"]) for s in view["spans"]] == [
        ("root", 0.0, 3.0),
        ("child", 1.0, 1.0),
    ]


def test_existing_feedback_is_in_the_view_and_shown_as_text() -> None:
    evil_trace()
    t = lo.last_trace()
    tracing.feedback(t.id, 1, "<b>right</b>")
    tracing.feedback(t.id, -1, None)
    view = trace_view(lo.get_trace(t.id))
    assert [(f["score"], f["comment"], f["author"]) for f in view["feedback"]] == [
        (1, "<b>right</b>", "tester"),
        (-1, None, "tester"),
    ]
    page = static_html(view)
    assert "▲ good</span> &lt;b&gt;right&lt;/b&gt;" in page and "▼ bad" in page
    assert "👍" not in page and "👎" not in page


def test_viewer_bundle_has_widget_and_fallback() -> None:
    evil_trace()
    viewer = display.panel(lo.last_trace())
    assert isinstance(viewer, TraceViewer)
    data, _ = viewer._repr_mimebundle_()
    assert set(data) >= {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    assert "fails" in data["text/plain"] and "error" in data["text/plain"]


def test_a_long_feedback_comment_is_refused_and_not_stored() -> None:
    evil_trace()
    viewer = display.panel(lo.last_trace())
    sent: list[Any] = []
    viewer.send = sent.append  # type: ignore[method-assign]
    viewer._on_message(viewer, {"type": "feedback", "score": 1, "comment": "x" * 10_001}, [])
    assert sent[0]["type"] == "feedback_error" and "at most 10,000 characters" in sent[0]["message"]
    assert lo.get_trace(viewer.trace_id).feedback == []


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
    data = trace_view(evil_trace())
    files = {
        "/": ("text/html", PAGE),
        "/trace_viewer.js": ("text/javascript", TraceViewer._esm),
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
            assert "👍" not in text and "👎" not in text  # blank boxes without an emoji font
            assert page.locator("button.lotv-thumb svg").count() == 2
            page.get_by_role("button", name="thumbs down").click()
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
