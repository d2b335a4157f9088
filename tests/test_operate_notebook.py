"""notebooks/operate.ipynb runs in a real kernel: traffic with injected slowness and
errors, monitoring, an alert that rolls a bad release back, an A/B split and its report,
a router, guardrails, and the audit log. What it shows is checked against the store."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from notebook_runner import cell_text, execute, find_cell
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb.store import get_store


def test_operate_notebook(llmops_home: Path, tmp_path: Path) -> None:
    nb = execute("operate.ipynb", tmp_path, timeout=300)
    lo.set_project("demo-operate")

    incident = cell_text(find_cell(nb, 'print("after the release:"'))
    assert "after the release: 12 calls, 12 errors" in incident
    assert "alert 'bad-release' fired" in incident and "v2 -> v1" in incident
    assert "production is now v1" in incident
    assert "after the rollback: 12 calls, 0 errors" in incident
    assert lo.prompt("support_reply@production").version == 1  # in the store, for every kernel

    by_prompt = lo.monitor(since="1h", every="1h", by="prompt")
    released = by_prompt.filter(pl.col("prompt") == "support_reply@2").row(0, named=True)
    assert released["calls"] == 12 and released["error_rate"] == 1.0
    assert by_prompt.filter(pl.col("prompt") == "support_reply@1")["errors"].to_list() == [0]
    minutes = lo.monitor(since="1h", every="1m", by="prompt", prompt="support_reply@1")
    assert minutes["p95_ms"].max() > 250  # the minute of injected slowness shows
    assert "support_reply@1" in cell_text(find_cell(nb, "lo.dashboard("))

    report = {r["arm"]: r for r in lo.split_report("support_reply").iter_rows(named=True)}
    assert set(report) == {"production", "candidate"}
    assert report["production"]["calls"] + report["candidate"]["calls"] == 200
    assert 5 <= report["candidate"]["calls"] <= 40  # about one user in ten
    assert report["candidate"]["feedback_mean"] == 1.0  # every candidate user liked it
    assert report["candidate"]["feedback_mean_ci_low"] > 0  # better, beyond the noise

    routed = cell_text(find_cell(nb, "near = OpenAIServer"))
    assert "last 5 calls went to: ['openai/gpt-4.1-nano'" in routed
    assert "'openai/gpt-4.1-mini'" not in routed.split("last 5 calls went to:")[1]

    blocked = cell_text(find_cell(nb, "before = provider.stats.requests"))
    assert "blocked: guard blocked the input" in blocked
    assert "requests that reached the model: 0" in blocked
    redacted = cell_text(find_cell(nb, "%config LLMOps.redact_pii = True"))
    assert "[EMAIL]" in redacted and "[PHONE]" in redacted and "jane.doe" not in redacted
    with get_store().engine.connect() as conn:  # nor anywhere in the stored spans
        leaks = conn.execute(
            text("SELECT count(*) FROM span WHERE inputs LIKE '%jane.doe%'")
        ).scalar()
    assert leaks == 0

    actions = set(lo.audit(since="1h")["action"])
    assert {"prompt registered", "alias moved", "alert fired", "rollback", "split set"} <= actions
