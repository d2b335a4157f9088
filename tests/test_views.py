"""One view of each thing: the notebook panel and the sidebar endpoint show the same numbers.

A real grid (litellm against the test server, the real store on SQLite and PostgreSQL)
with fractional scores, scorers with different thresholds, a baseline and cached rows;
then the panel's data, its static HTML and `GET /llmops-nb/api/evals/<id>` are compared.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb import display
from llmops_nb.views.evals import eval_view
from llmops_nb.widgets.eval_grid import static_html

SCORES = [0.7, 0.6, 1.0, 0.2]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


@pytest.fixture
def frac() -> Any:
    @lo.scorer(name="frac", threshold=0.5)
    def frac(output: str, row: dict[str, Any]) -> float:
        return float(row["s"])

    return frac


def grid(openai_server: Any, frac: Any, name: str, models: list[str], baseline: Any = None) -> Any:
    """One prompt x MODELS x 4 rows; `frac` and `strict` score the row's s, at 0.5 and 0.9."""
    lo.register_prompt("ask", "user:\n{{q}}")
    df = pl.DataFrame({"q": [f"question {i}" for i in range(4)], "s": SCORES})
    return lo.evaluate(
        ["ask"],
        [
            {
                "model": "openai/gpt-4o-mini",
                "label": label,
                "api_base": openai_server.base_url,
                "api_key": "k",
                "parameters": {"temperature": 0 if label == "fast" else 0.5},
            }
            for label in models
        ],  # fmt: skip
        df,
        [frac, {"frac": {"name": "strict", "threshold": 0.9}}, {"contains": {"value": "{{q}}"}}],
        name=name,
        baseline=baseline,
        cache=True,
        progress=False,
    )


async def test_sidebar_and_panel_show_the_same_cells(
    jp_fetch: Any, store_url: str, openai_server: Any, frac: Any
) -> None:
    base = grid(openai_server, frac, "faq", ["fast"])
    # "fast" repeats the baseline's calls (every row a cache hit); "warm" makes real calls
    run = grid(openai_server, frac, "faq", ["fast", "warm"], baseline=base.id)

    panel = display.panel(run).data
    response = await jp_fetch("llmops-nb", "api", "evals", str(run.id))
    served = json.loads(response.body)
    assert served["cells"] == json.loads(json.dumps(panel["cells"]))
    for key in ("id", "name", "status", "prompts", "models", "scorers", "thresholds",
                "baseline_id", "baseline_name", "done", "n_cells"):  # fmt: skip
        assert served[key] == panel[key], key

    assert served["thresholds"] == {"frac": 0.5, "strict": 0.9, "contains": 1.0}
    assert (served["baseline_id"], served["baseline_name"]) == (base.id, "faq")
    fast, warm = served["cells"]
    for cell in (fast, warm):
        assert cell["scores"]["frac"] == pytest.approx(sum(SCORES) / 4)
        assert cell["scores"]["contains"] == 1.0
        # a row passes when every scorer reaches its own threshold: only the 1.0 row
        assert cell["pass_rate"] == 0.25
    assert fast["cached"] == 4 and warm["cached"] == 0
    # cache hits are reported apart from the latency of real calls
    assert fast["latency_p50_ms"] is None and fast["cached_latency_p50_ms"] is not None
    assert warm["latency_p50_ms"] > 0 and warm["cached_latency_p50_ms"] is None
    # the baseline comparison travels too: the same rows scored the same
    assert fast["flags"]["frac"]["flag"] == "same" and warm["flags"]["frac"]["flag"] == "new"

    page = static_html(panel)
    assert "pass rate: rows where frac ≥ 0.50, strict ≥ 0.90, contains ≥ 1.00" in page
    assert f"baseline faq #{base.id}" in page
    assert page.count("<td>0.250</td>") == 2


async def test_a_finished_runs_view_is_served_from_memory_after_the_first_request(
    jp_fetch: Any, openai_server: Any, frac: Any
) -> None:
    """A finished run's numbers do not change: the sidebar computes them once."""
    from llmops_nb.server import handlers

    run = grid(openai_server, frac, "once", ["fast"])
    first = json.loads((await jp_fetch("llmops-nb", "api", "evals", str(run.id))).body)
    cached = [v for k, v in handlers._eval_views.items() if k[1] == run.id]
    assert len(cached) == 1 and cached[0]["cells"] == first["cells"]
    cached[0]["name"] = "served from the cache"
    again = json.loads((await jp_fetch("llmops-nb", "api", "evals", str(run.id))).body)
    assert again["name"] == "served from the cache"
    handlers._eval_views.clear()


def test_eval_view_is_json_and_names_its_numbers(openai_server: Any, frac: Any) -> None:
    run = grid(openai_server, frac, "json", ["fast"])
    view = eval_view(run, rows_per_cell=2)
    assert json.loads(json.dumps(view)) == view
    [rows] = view["rows"].values()
    assert [r["scores"]["frac"] for r in rows] == SCORES[:2]
    assert [r["passed"] for r in rows] == [False, False]  # 0.7 and 0.6 miss strict's 0.9
    summary = run.summary().row(0, named=True)
    assert view["cells"][0]["pass_rate"] == summary["pass_rate"]
    assert view["cells"][0]["latency_p95_ms"] == summary["latency_p95_ms"]


def test_the_views_sql_summary_follows_run_summary_on_every_kind_of_row(store_url: str) -> None:
    """The view's cells are aggregated in SQL; `run.summary()` decodes every row in Python.
    Both must give the same numbers on fractional, {"score": x}, boolean, text and missing
    scores, failed calls, a negated threshold, cache hits, unknown latencies, and a spec
    order unlike the order the cells were stored in."""
    import random

    from llmops_nb.evals.run import EvalRun
    from llmops_nb.store import get_store
    from llmops_nb.views.evals import summary_rows

    store = get_store()
    spec = {
        "prompts": [{"label": "p@2"}, {"label": "p@1"}],
        "models": [{"label": "b"}, {"label": "a"}],
        "scorers": [
            {"name": "frac", "threshold": 0.5},
            {"name": "strict", "threshold": 0.9},
            {"name": "flag"},
            {"name": "toxic", "threshold": 0.2, "negate": True},
        ],
    }
    row = store.create_eval_run("default", "edge", spec=spec, n_cells=4 * 37, status="running")
    rng = random.Random(5)
    rows = []
    for prompt in ["p@1", "p@2"]:
        for model in ["a", "b"]:
            for i in range(37):
                kind = i % 7
                error = "timed out" if kind == 6 else None
                scores: dict[str, Any] = {}
                if error is None:
                    scores = {
                        "frac": None if kind == 5 else round(rng.random(), 3),
                        "strict": {"score": rng.choice([0.95, 0.5, 1, True]), "reason": "why"},
                        "flag": "n/a" if kind == 1 else rng.random() < 0.5,
                    }
                    if kind != 3:
                        scores["toxic"] = rng.random()
                rows.append(
                    {
                        "run_id": row.id, "prompt_ref": prompt, "prompt_version_id": None,
                        "model": f"openai/{model}", "model_label": model, "row_index": i,
                        "inputs": None, "expected": None, "output": "x", "error": error,
                        "scores": scores, "latency_ms": None if kind == 4 else rng.uniform(9, 900),
                        "input_tokens": 10, "output_tokens": 5 if i else None, "cost": 0.001 * i,
                        "cached": kind == 2, "trace_id": None,
                    }
                )  # fmt: skip
    store.add_eval_results(rows)
    store.update_eval_run(row.id, status="done")
    run = EvalRun.load(row.id, project="default")

    expected = list(run.summary().iter_rows(named=True))
    got = summary_rows(run)
    assert [(c["prompt"], c["model"]) for c in got] == [
        ("p@2", "b"), ("p@2", "a"), ("p@1", "b"), ("p@1", "a"),
    ]  # fmt: skip
    assert [(c["prompt"], c["model"]) for c in expected] == [(c["prompt"], c["model"]) for c in got]
    for sql, frame in zip(got, expected, strict=True):
        assert sql.keys() == frame.keys()
        for key, value in frame.items():
            if value is None or isinstance(value, str):
                assert sql[key] == value, key
            else:  # sums may differ in the last bits (the order of additions)
                assert sql[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    some = got[0]
    assert 0 < some["pass_rate"] < 1 and some["errors"] == 5 and some["cached"] == 5
    assert some["cached_latency_p50_ms"] is not None and some["frac"] not in (0.0, 1.0)
