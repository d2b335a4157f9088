"""The eval grid panel: its view, the rows of a clicked cell, a row's trace, regression
marks, the pass threshold, the static HTML fallback (escaped), and the offline chart."""

from __future__ import annotations

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


def test_static_fallback_is_escaped_and_complete(runs: Any) -> None:
    _, bad = runs
    data = eval_view(bad, rows_per_cell=5)
    page = static_html(data)
    assert "<script>alert" not in page and "&lt;script&gt;alert(0)&lt;/script&gt;" in page
    assert page.count("<svg") == 2  # one heatmap per scorer
    assert "regression: p × m contains 1.000 → 0.083" in page
    assert "▼" in page and f'href="#trace-{bad.results["trace_id"][0]}"' in page
    assert "pass rate: rows where contains ≥ 1.00, is_json ≥ 1.00" in page
    bundle = display.panel(bad)._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
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
