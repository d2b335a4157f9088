"""The sidebar's Ops tab in a real JupyterLab (Debian Chromium): real lo.complete traffic
to the test server, with injected slowness and an error, shows the numbers lo.monitor
computes. A screenshot lands in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_harness import ARTIFACTS, JupyterLab, chromium_page, open_sidebar, running_lab

import llmops_nb as lo
from llmops_nb.llm.client import ModelCallError
from llmops_nb.store import reset_store
from llmops_nb.testing import OpenAIServer
from llmops_nb.widgets.dashboard import format_value

MODEL = "openai/gpt-4o-mini"
SHOWN = [  # the Ops tab's table columns after bucket and group: key, format
    ("calls", "count"),
    ("errors", "count"),
    ("error_rate", "percent"),
    ("p50_ms", "ms"),
    ("p95_ms", "ms"),
    ("cost", "usd"),
    ("cache_hit_rate", "percent"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    workdir = tmp_path_factory.mktemp("ops_lab")
    with running_lab(workdir, workdir / "llmops_home", ARTIFACTS / "ops") as lab:
        yield lab


def _traffic(lab: JupyterLab, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls from this process into the lab's store: slow ones, fast ones, one failure."""
    monkeypatch.setenv("LLMOPS_NB_HOME", str(lab.home))
    reset_store()

    def call(text: str, **kwargs: Any) -> Any:
        return lo.complete(
            MODEL, text, api_base=server.base_url, api_key="sk-test", retries=0, **kwargs
        )

    server.configure(latency_ms=300)
    for i in range(3):
        call(f"slow {i}", cache=False)
    server.configure(latency_ms=0)
    for i in range(5):
        call(f"fast {i}", cache=False)
    server.fail_next(500)
    with pytest.raises(ModelCallError):
        call("this one fails", cache=False)


def test_ops_tab_shows_lo_monitor_numbers(
    lab: JupyterLab,
    fresh_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _traffic(lab, fresh_server, monkeypatch)
    expected = lo.monitor(since="7d", every="1h").sort("bucket", descending=True)
    assert expected["calls"].sum() == 9 and expected["errors"].sum() == 1

    with chromium_page(ARTIFACTS / "ops") as page:
        page.goto(lab.url())
        sidebar = open_sidebar(page)
        tabs = sidebar.locator(".lm-TabBar-tab .lm-TabBar-tabLabel")
        tabs.get_by_text("Ops", exact=True).click()
        buckets = sidebar.locator(".llmops-ops-buckets tr[data-group]")
        buckets.first.wait_for(timeout=60_000)

        shown = [[td.inner_text() for td in row.locator("td").all()][1:] for row in buckets.all()]
        want = [
            [r["model"], *(format_value(r[key], kind) for key, kind in SHOWN)]
            for r in expected.rows(named=True)
        ]
        assert shown == want

        totals = sidebar.locator(f'.llmops-ops-totals tr[data-group="{MODEL}"] td')
        assert totals.nth(1).inner_text() == "9" and totals.nth(3).inner_text() == "11.1%"
        figures = sidebar.locator(".llmops-ops-figure")
        assert figures.count() == 5
        assert figures.locator("figcaption").all_inner_texts()[0].startswith("Calls")
        # the slow calls dominate p95: at least the injected 300 ms
        p95 = expected["p95_ms"].max()
        assert p95 is not None and p95 >= 300

        path = tmp_path / "ops-tab.png"
        sidebar.screenshot(path=str(path))
        print(f"Ops tab screenshot: {path}")
        assert path.stat().st_size > 0
