"""Eval grids end to end: real litellm over HTTP to the test server, a real store
(SQLite and PostgreSQL), retries under injected errors, resume after kill -9, honest
baseline comparison, the CLI gate and the %%eval magic."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb import cli
from llmops_nb.evals import EvalRun, EvalSpecError
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer, serve

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Peru": "Lima",
    "Kenya": "Nairobi",
}


def capital_reply(body: dict[str, Any]) -> str:
    """A fake model that knows capitals; 'openai/weak' gets Peru and Kenya wrong."""
    text_ = " ".join(str(m.get("content")) for m in body.get("messages", []))
    for country, city in CAPITALS.items():
        if country in text_:
            if body.get("model") == "weak" and country in ("Peru", "Kenya"):
                return "I am not sure."
            return f"The capital of {country} is {city}."
    return "echo: " + text_


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with serve(reply=capital_reply) as srv:
        yield srv


def model(srv: OpenAIServer, name: str = "gpt-4o-mini", label: str | None = None) -> dict[str, Any]:
    return {
        "model": f"openai/{name}",
        "label": label or name,
        "api_base": srv.base_url,
        "api_key": "sk-test",
    }


def capitals_df() -> pl.DataFrame:
    return pl.DataFrame({"country": list(CAPITALS), "answer": list(CAPITALS.values())})


def prompts() -> None:
    lo.register_prompt("capital", "user:\nWhat is the capital of {{country}}?")
    lo.register_prompt(
        "capital", "system:\nAnswer in one sentence.\nuser:\nCapital of {{country}}?"
    )


def count_rows(table: str, where: str = "") -> int:
    with get_store().engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} {where}")).scalar() or 0)


def test_grid_scores_stores_and_links_traces(store_url: str, server: OpenAIServer) -> None:
    prompts()
    run = lo.evaluate(
        prompts=["capital@1", "capital@2"],
        models=[model(server), model(server, "weak")],
        data=capitals_df(),
        scorers=[
            {"contains": {"value": "{{answer}}"}},
            {"exact": {"expected": "The capital of {{country}} is {{answer}}."}},
            {"rouge_l": {"reference": "The capital of {{country}} is {{answer}}."}},
            {"regex": {"pattern": "^The capital"}},
            {"latency_under": {"ms": 60000}},
        ],
        name="capitals",
        concurrency=4,
        progress=False,
    )
    assert run.status == "done" and run.n_cells == 20
    summary = run.summary()
    assert summary.select("prompt", "model").rows() == [
        ("capital@1", "gpt-4o-mini"),
        ("capital@1", "weak"),
        ("capital@2", "gpt-4o-mini"),
        ("capital@2", "weak"),
    ]
    good = summary.filter(pl.col("model") == "gpt-4o-mini")
    weak = summary.filter(pl.col("model") == "weak")
    assert good["contains"].to_list() == [1.0, 1.0]
    assert weak["contains"].to_list() == [0.6, 0.6]
    assert weak["exact"].to_list() == [0.6, 0.6]
    assert weak["pass_rate"].to_list() == [0.6, 0.6]
    assert good["latency_under"].to_list() == [1.0, 1.0]
    assert summary["errors"].sum() == 0
    assert (summary["input_tokens"] > 0).all() and (good["cost"] > 0).all()
    assert summary["latency_p95_ms"].to_list()[0] >= summary["latency_p50_ms"].to_list()[0]

    results = run.results
    assert results.height == 20
    row = results.filter(
        (pl.col("prompt") == "capital@2") & (pl.col("model") == "weak") & (pl.col("row_index") == 3)
    ).row(0, named=True)
    assert row["inputs"] == {"country": "Peru", "answer": "Lima"}
    assert row["output"] == "I am not sure." and row["contains"] == 0.0 and row["passed"] is False
    assert row["expected"] == "Lima"  # the first scorer's reference

    # in the store: one row per cell, linked to the prompt version, the data version and a trace
    assert count_rows("eval_result") == 20
    stored = get_store().get_eval_run(run.id)
    assert stored.status == "done" and stored.finished_at is not None
    assert stored.dataset_version_id is not None
    assert lo.dataset("capitals-data").height == 5
    assert set(results["prompt_version_id"].to_list()) == {
        lo.prompt("capital@1").id,
        lo.prompt("capital@2").id,
    }
    assert results["trace_id"].null_count() == 0
    listed = EvalRun.list()
    assert listed.select("id", "name", "status", "n_cells", "done").rows() == [
        (run.id, "capitals", "done", 20, 20)
    ]
    from llmops_nb import tracing

    tracing.flush()
    trace = lo.get_trace(row["trace_id"])
    assert any(s.kind == "llm" for s in trace.spans)


def test_failing_calls_are_recorded_errors_not_a_crash(server: OpenAIServer) -> None:
    prompts()
    server.configure(models=["gpt-4o-mini"])  # any other model is a 404
    run = lo.evaluate(
        ["capital@1"],
        [model(server), model(server, "missing-model")],
        capitals_df(),
        [{"contains": {"value": "{{answer}}"}}],
        name="errs",
        progress=False,
        retries=0,
    )
    summary = run.summary()
    assert summary.select("model", "errors", "contains").rows() == [
        ("gpt-4o-mini", 0, 1.0),
        ("missing-model", 5, 0.0),
    ]
    failed = run.results.filter(pl.col("model") == "missing-model")
    assert failed["output"].null_count() == 5
    assert "not found" in failed["error"][0] or "does not exist" in failed["error"][0]
    assert run.status == "done"


def test_grid_completes_with_10pct_500_and_10pct_429() -> None:
    prompts()
    with serve(rate_429=0.1, rate_500=0.1, seed=7, reply=capital_reply) as srv:
        df = pl.DataFrame({"country": list(CAPITALS) * 8, "answer": list(CAPITALS.values()) * 8})
        run = lo.evaluate(
            ["capital@1"],
            [model(srv)],
            df,
            [{"contains": {"value": "{{answer}}"}}],
            name="flaky",
            concurrency=8,
            cache=False,
            progress=False,
        )
        assert srv.stats.rate_limited > 0 and srv.stats.server_errors > 0
    assert run.status == "done"
    results = run.results
    assert results.height == 40
    ok = results.filter(pl.col("error").is_null())
    assert ok.height >= 38  # four failures in a row for one cell are possible, and recorded
    assert ok["contains"].to_list() == [1.0] * ok.height


def test_resume_finishes_only_the_missing_cells(server: OpenAIServer) -> None:
    prompts()
    df = capitals_df()
    args = dict(
        prompts=["capital@1"],
        models=[model(server)],
        data=df,
        scorers=[{"contains": {"value": "{{answer}}"}}],
        name="resumable",
        progress=False,
    )
    first = lo.evaluate(**args, cache=False)
    # simulate a crash after two cells: drop the rest, mark the run as never finished
    with get_store().write_engine.begin() as conn:
        conn.execute(text("DELETE FROM eval_result WHERE row_index >= 2"))
        conn.execute(text("UPDATE eval_run SET status = 'running'"))
    before = server.stats.requests
    resumed = lo.evaluate(**args, cache=False, resume=True)
    assert resumed.id == first.id and resumed.status == "done"
    assert server.stats.requests - before == 3
    assert count_rows("eval_result") == 5
    assert resumed.summary()["contains"].to_list() == [1.0]
    # a different spec cannot resume that run
    with pytest.raises(EvalSpecError, match="cannot resume eval 'resumable'"):
        lo.evaluate(
            **{**args, "scorers": ["exact"], "data": df.rename({"answer": "expected"})}, resume=True
        )


def test_cache_answers_a_rerun_without_calls(server: OpenAIServer) -> None:
    prompts()
    args = dict(
        prompts=["capital@1"],
        models=[model(server)],
        data=capitals_df(),
        scorers=[{"contains": {"value": "{{answer}}"}}],
        name="cached",
        progress=False,
    )
    lo.evaluate(**args, cache=True)
    before = server.stats.requests
    again = lo.evaluate(**args, cache=True)
    assert server.stats.requests == before
    assert again.results["cached"].all() and again.summary()["cached"].to_list() == [5]


def test_compare_flags_a_real_regression_and_not_noise(server: OpenAIServer) -> None:
    prompts()
    n = 30
    df = pl.DataFrame(
        {
            "country": ["France", "Japan", "Peru"] * (n // 3),
            "answer": ["Paris", "Tokyo", "Lima"] * (n // 3),
        }
    )
    scorers = [{"contains": {"value": "{{answer}}"}}]
    good = lo.evaluate(
        ["capital@1"], [model(server, label="prod")], df, scorers, name="cmp", progress=False
    )
    # same rows, a model that gets a third of them wrong: a real regression
    bad = lo.evaluate(
        ["capital@1"],
        [model(server, "weak", label="prod")],
        df,
        scorers,
        name="cmp",
        baseline="latest",
        progress=False,
    )
    assert bad.baseline_id == good.id
    cmp = bad.compare()
    row = cmp.row(0, named=True)
    assert (row["baseline"], row["current"], row["n_shared"]) == (1.0, pytest.approx(2 / 3), 30)
    assert row["flag"] == "regression" and row["ci_high"] < 0 and row["p_value"] < 0.05
    assert good.compare(bad).row(0, named=True)["flag"] == "improvement"

    # one row of 30 flipping is not a regression: the paired test says so
    one = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.lit("Peru"))
        .otherwise(pl.lit("France"))
        .alias("country"),
        pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.lit("Lima"))
        .otherwise(pl.lit("Paris"))
        .alias("answer"),
    )
    base = lo.evaluate(
        ["capital@1"], [model(server, label="prod")], one, scorers, name="noise", progress=False
    )
    cand = lo.evaluate(
        ["capital@1"],
        [model(server, "weak", label="prod")],
        one,
        scorers,
        name="noise",
        progress=False,
    )
    noisy = cand.compare(base).row(0, named=True)
    assert noisy["delta"] == pytest.approx(-1 / 30) and noisy["n_shared"] == 30
    assert noisy["flag"] == "same" and noisy["p_value"] == 1.0


def test_cli_gate_prints_the_summary_and_sets_the_exit_code(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts()
    capitals_df().write_csv(tmp_path / "capitals.csv")
    spec = tmp_path / "capitals.yaml"
    spec.write_text(
        f"""prompts: [capital@1]
models:
  - {{model: openai/weak, label: candidate, api_base: "{server.base_url}", api_key: sk-test}}
data: capitals.csv
scorers:
  - contains: {{value: "{{{{answer}}}}"}}
"""
    )
    assert cli.main(["eval", str(spec), "--fail-under", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "eval capitals #" in out and "candidate" in out and "0.600" in out and "PASSED" in out
    assert cli.main(["eval", str(spec), "--fail-under", "0.8"]) == 1
    out = capsys.readouterr().out
    assert "below 0.8: capital@1 x candidate: contains = 0.600" in out and "FAILED" in out
    # bad input: one line on stderr, exit 2, nothing written
    runs = count_rows("eval_run")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "prompts: [capital@1]\nmodels: [openai/x]\ndata: capitals.csv\nscorers: [bleurt]\n"
    )
    assert cli.main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown scorer 'bleurt'") and err.count("\n") == 1
    assert count_rows("eval_run") == runs


def test_cli_gate_fails_on_a_regression_against_latest(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts()
    pl.DataFrame(
        {"country": ["Peru", "Kenya", "France"] * 5, "answer": ["Lima", "Nairobi", "Paris"] * 5}
    ).write_csv(tmp_path / "d.csv")
    spec = tmp_path / "gate.yaml"

    def write(name: str) -> None:
        spec.write_text(
            f"prompts: [capital@1]\nmodels:\n  - {{model: openai/{name}, label: prod, "
            f'api_base: "{server.base_url}", api_key: k}}\ndata: d.csv\n'
            'scorers:\n  - contains: {value: "{{answer}}"}\n'
        )

    write("gpt-4o-mini")
    assert cli.main(["eval", str(spec), "--baseline", "latest"]) == 0
    write("weak")
    assert cli.main(["eval", str(spec), "--baseline", "latest"]) == 1
    out = capsys.readouterr().out
    assert re.search(
        r"regression: capital@1 x prod: contains 1\.000 -> 0\.333 \(delta -0\.667", out
    )


def test_kill_9_mid_grid_then_resume_without_duplicates(tmp_path: Path) -> None:
    prompts()
    n = 60
    pl.DataFrame(
        {"country": ["France"] * n, "answer": ["Paris"] * n, "i": list(range(n))}
    ).write_csv(tmp_path / "d.csv")
    with serve(latency_ms=150, reply=capital_reply) as srv:
        spec = tmp_path / "killme.yaml"
        spec.write_text(
            "prompts: [capital@1]\nmodels:\n"
            f'  - {{model: openai/gpt-4o-mini, api_base: "{srv.base_url}", api_key: k}}\n'
            "data: d.csv\nconcurrency: 4\ncache: false\n"
            'scorers:\n  - contains: {value: "{{answer}}"}\n'
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops_nb.cli", "eval", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 90
            stored = 0
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    stored = count_rows("eval_result")
                except Exception:  # the child may still be creating the schema
                    stored = 0
                if stored >= 8:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the grid finished before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
        killed_at = count_rows("eval_result")
        assert 8 <= killed_at < n
        # the killed process owned the run: it reads as interrupted, not running forever
        assert get_store().latest_eval_run("default", "killme").status == "interrupted"
        assert EvalRun.list()["status"].to_list() == ["interrupted"]
        before = srv.stats.requests
        assert cli.main(["eval", str(spec), "--resume"]) == 0
        assert srv.stats.requests - before == n - killed_at  # only the missing cells ran
    run = EvalRun.load("killme")
    assert run.status == "done"
    assert count_rows("eval_result") == n
    assert count_rows("eval_run") == 1
    keys = run.results.select("prompt", "model", "row_index")
    assert keys.unique().height == n and sorted(keys["row_index"].to_list()) == list(range(n))


def test_eval_magic_binds_the_run_and_shows_the_panel(server: OpenAIServer) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    prompts()
    shell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    try:
        shell.user_ns["faq_df"] = capitals_df()
        body = (
            "prompts: [capital@1, capital@2]\n"
            "models: [{model: openai/weak, label: weak, "
            f'api_base: "{server.base_url}", api_key: k}}]\n'
            "data: faq_df\n"
            "scorers:\n"
            '  - contains: {value: "{{answer}}"}\n'
        )
        run = shell.run_cell_magic("eval", "faq --concurrency 2 --out faq_run --no-cache", body)
        assert isinstance(run, EvalRun) and run.status == "done"
        assert shell.user_ns["faq_run"] is run and shell.user_ns["_"] is run
        assert run.spec["concurrency"] == 2 and run.spec["cache"] is False
        assert run.spec["data"]["name"] == "faq_df"
        data, _metadata = shell.display_formatter.format(run)
        assert "application/vnd.jupyter.widget-view+json" in data
        assert "<svg" in data["text/html"] and "capital@2" in data["text/html"]
        assert "capital@1 x weak: contains=0.60" in data["text/plain"]
        # bad input: one clear error, nothing written
        runs = count_rows("eval_run")
        with pytest.raises(lo.LLMOpsError, match=r"no column 'keyword'"):
            shell.run_cell_magic("eval", "faq", body.replace("{{answer}}", "{{keyword}}"))
        with pytest.raises(lo.LLMOpsError, match=r"unknown prompt 'nope'"):
            shell.run_cell_magic("eval", "faq", body.replace("capital@1, capital@2", "nope"))
        assert count_rows("eval_run") == runs
    finally:
        shell.run_line_magic("unload_ext", "llmops_nb")
        for name in ("faq_df", "faq_run"):
            shell.user_ns.pop(name, None)


def test_progress_bar_with_eta(server: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    prompts()
    lo.evaluate(["capital@1"], [model(server)], capitals_df(), ["is_json"], name="bar")
    err = capsys.readouterr().err
    assert "eval bar #1" in err and "5/5" in err and "call/s" in err and "<00:00" in err
