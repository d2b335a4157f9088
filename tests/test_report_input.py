"""Reports from bad input: one clear line and nothing half-written; and the sanitizer
that keeps a notebook's saved HTML from running or loading anything."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmops_nb import cli
from llmops_nb.reporting import ReportError, report
from llmops_nb.reporting.sanitize import clean_html


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


def unsafe(page: str) -> list[str]:
    """What in PAGE could run or load: scripts, handlers, javascript: or external URLs."""
    found = []
    for tag, attrs in parse(page).tags:
        if tag in ("script", "iframe", "object", "embed", "link", "base"):
            found.append(tag)
        for name, value in attrs.items():
            compact = "".join(value.split()).lower()
            if name.startswith("on"):
                found.append(f"{tag}[{name}]")
            if "javascript:" in compact:
                found.append(f"{tag}[{name}={value}]")
            if name in ("src", "href", "xlink:href") and not (
                compact.startswith("#") or compact.startswith("data:image/")
            ):
                found.append(f"{tag}[{name}={value}]")
    return found


def notebook(path: Path, cells: list[dict], metadata: dict | None = None) -> Path:
    path.write_text(
        json.dumps({"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return path


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(source: str, outputs: list[dict]) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": source,
        "outputs": outputs,
    }


PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '<a href="javascript:alert(3)">x</a>',
    '<svg><style><img src=x onerror="alert(4)"></style></svg>',
    '<svg><a xlink:href="javascript:alert(5)"><text>t</text></a></svg>',
    '<div style="background:url(http://example.com/x.png)">s</div>',
    "<style>@import url(http://example.com/x.css); p{color:red}</style>",
    '<iframe srcdoc="<script>alert(6)</script>"></iframe><p>after</p>',
    '<img src="https://example.com/pixel.gif">',
    '<a href="  JaVa&#x53;cript:alert(7)">y</a>',
    "</div></section><p>stray closers</p>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_clean_html_leaves_nothing_that_runs_or_loads(payload: str) -> None:
    cleaned = clean_html(f"<div>{payload}</div>")
    assert unsafe(cleaned) == []
    # inside SVG a <style> holds markup, not text: no '<' may survive in one
    for block in re.findall(r"<style>(.*?)</style>", cleaned, re.S):
        assert "<" not in block
    # balanced: what opens in a fragment closes in it, and stray closers are dropped
    assert cleaned.count("<div") == cleaned.count("</div>")


def test_clean_html_keeps_a_panels_markup() -> None:
    panel = (
        '<div class="lonb-panel"><style>.a > b { color: red }</style>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10"><rect x="1" fill="#fff">'
        "<title>greet × m: 0.5</title></rect></svg>"
        '<table><tr><td>&lt;script&gt;</td></tr></table><a href="#trace-ab">ab</a></div>'
    )
    cleaned = clean_html(panel)
    assert ".a > b { color: red }" in cleaned
    assert '<rect x="1" fill="#fff">' in cleaned and "<title>greet × m: 0.5</title>" in cleaned
    assert "<td>&lt;script&gt;</td>" in cleaned and 'href="#trace-ab"' in cleaned


def test_not_a_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.ipynb"
    text.write_text("just some notes, not JSON")
    out = tmp_path / "out.html"
    assert cli.main(["report", str(text), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {text} is not a Jupyter notebook (.ipynb is JSON)"
    assert not out.exists()

    other = tmp_path / "data.json"
    other.write_text(json.dumps({"rows": [1, 2]}))
    with pytest.raises(ReportError, match="not a Jupyter notebook: it has no list of cells"):
        report(other, tmp_path / "x.html")
    with pytest.raises(ReportError, match="no notebook at"):
        report(tmp_path / "missing.ipynb", tmp_path / "x.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "notes.ipynb"]


def test_output_folder_that_does_not_exist(tmp_path: Path) -> None:
    nb = notebook(tmp_path / "nb.ipynb", [markdown("# Title")])
    with pytest.raises(ReportError, match=r"the folder .*nowhere does not exist \(create it"):
        report(nb, tmp_path / "nowhere" / "r.html")
    assert not (tmp_path / "nowhere").exists()


def test_narrative_alone_with_a_note(tmp_path: Path) -> None:
    nb = notebook(
        tmp_path / "story.ipynb",
        [
            markdown(
                "# A story\n\nSome **bold** text, <b>raw html</b> and a [link](https://x.org)."
            ),
            code("print('hi')", [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]),
        ],
    )
    written = report(nb)
    assert written == tmp_path / "story.report.html"
    page = written.read_text()
    assert "<h1>A story</h1>" in page and "<strong>bold</strong>" in page
    assert "&lt;b&gt;raw html&lt;/b&gt;" in page  # raw HTML in markdown is shown as text
    assert 'link <span class="lo-url">(https://x.org)</span>' in page
    assert "this notebook has no llmops_nb outputs" in page
    assert "<pre>hi\n</pre>" in page
    assert unsafe(page) == []


def test_unreachable_store_still_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_NB_STORE", "postgresql+psycopg://ada:hunter2@127.0.0.1:1/nowhere")
    panel = '<div class="lonb-panel"><span class="lonb-title">eval faq</span> #3</div>'
    nb = notebook(
        tmp_path / "nb.ipynb",
        [
            code(
                "%%eval faq",
                [
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "metadata": {},
                        "data": {
                            "application/vnd.jupyter.widget-view+json": {"model_id": "abc"},
                            "text/html": panel,
                            "text/plain": "eval faq #3: done, 4/4 cells",
                        },
                    }
                ],
            )
        ],
    )
    out = tmp_path / "r.html"
    assert cli.main(["report", str(nb), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert captured.err.startswith("warning: the store could not be reached")
    page = out.read_text()
    assert "warning: the store could not be reached" in page
    assert "ada:***@127.0.0.1:1" in page and "hunter2" not in page
    assert '<span class="lonb-title">eval faq</span>' in page  # the saved panel is shown
    assert "Appendix" not in page


def test_no_notebook_known_in_a_plain_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("LLMOPS_NB_NOTEBOOK", raising=False)
    with pytest.raises(ReportError, match=r"cannot tell which notebook .* lo.report\('NB.ipynb'\)"):
        report()
