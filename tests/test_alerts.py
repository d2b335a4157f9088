"""Alerts: a safe condition parser, rules over real traffic, firings and one-step rollback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython
from sqlalchemy import func, select

import llmops_nb as lo
from llmops_nb import magics
from llmops_nb.alert_conditions import ConditionError, parse_condition
from llmops_nb.alerts import AlertError, AlertWatch
from llmops_nb.errors import NotFound
from llmops_nb.llm.client import ModelCallError
from llmops_nb.monitoring import InvalidDuration, window_stats
from llmops_nb.registry import model_aliases, register_model
from llmops_nb.store import get_store
from llmops_nb.store import models as m
from llmops_nb.testing import OpenAIServer

MODEL = "openai/gpt-4o-mini"


def _traffic(server: OpenAIServer, ok: int, errors: int) -> None:
    """OK good calls and ERRORS failed ones (the server answers 500), all traced."""
    for i in range(ok):
        lo.complete(MODEL, f"q{i}", api_base=server.base_url, api_key="sk-test", retries=0,
                    cache=False)  # fmt: skip
    server.fail_next(500, times=errors)
    for i in range(errors):
        with pytest.raises(ModelCallError):
            lo.complete(MODEL, f"e{i}", api_base=server.base_url, api_key="sk-test", retries=0,
                        cache=False)  # fmt: skip


def _two_versions(name: str = "support_reply") -> None:
    lo.register_prompt(name, "Reply briefly: {{q}}")
    lo.register_prompt(name, "Reply at length: {{q}}")
    lo.set_alias(name, "production", 1)
    lo.set_alias(name, "production", 2)


def _count(table: type) -> int:
    with get_store().session() as s:
        return s.exec(select(func.count()).select_from(table)).one()[0]


# --- the condition language ------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "stats", "holds"),
    [
        ("p95_ms > 2000", {"p95_ms": 2400.0}, True),
        ("p95_ms > 2000", {"p95_ms": 2000.0}, False),
        ("p95_ms >= 2000", {"p95_ms": 2000.0}, True),
        ("error_rate > 0.05", {"error_rate": 0.1}, True),
        ("error_rate > 5%", {"error_rate": 0.04}, False),
        ("cost > 5", {"cost": 5.5}, True),
        ("calls < 10", {"calls": 0}, True),
        ("p95_ms > 1", {"p95_ms": None, "calls": 0}, False),  # no calls: no percentile
        ("error_rate > 0.1 and calls >= 20", {"error_rate": 0.5, "calls": 19}, False),
        ("error_rate > 0.1 or calls >= 20", {"error_rate": 0.0, "calls": 20}, True),
        ("(cost > 5 or p95_ms > 1e3) AND not calls < 10", {"cost": 0, "p95_ms": 1500, "calls": 10}, True),
        ("(cost > 5 or p95_ms > 1e3) and not calls < 10", {"cost": 9, "p95_ms": 1, "calls": 3}, False),
        ("calls == 3 or calls != 3 and cost > 100", {"calls": 3, "cost": 0}, True),  # and binds tighter
    ],  # fmt: skip
)
def test_conditions_evaluate_like_a_user_reads_them(
    condition: str, stats: dict[str, Any], holds: bool
) -> None:
    assert parse_condition(condition).holds(stats) is holds


@pytest.mark.parametrize(
    ("condition", "column", "says"),
    [
        ("p95_ms >", None, "at the end: expected a number"),
        ("p95_ms 2000", 8, "expected a comparison"),
        ("(calls < 3", None, "at the end: expected ')'"),
        ("calls < 3)", 10, "expected 'and', 'or' or the end"),
        ("calls < 3 && cost > 1", 11, "unexpected character '&'"),
        ("__import__('os').system('id')", 12, "unexpected character"),
        ("calls < 3 and", None, "at the end: expected a metric"),
    ],
)
def test_a_condition_that_does_not_parse_points_at_the_position(
    condition: str, column: int | None, says: str
) -> None:
    with pytest.raises(ConditionError) as err:
        parse_condition(condition)
    message = str(err.value)
    assert says in message
    first, shown, caret = message.split("\n")
    assert shown == f"  {condition}"
    at = len(condition) if column is None else column - 1
    assert caret == "  " + " " * at + "^"
    if column is not None:
        assert f"at column {column}:" in first


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ConditionError) as err:
        parse_condition("calls > 3 and p99_ms > 2000")
    assert "unknown metric 'p99_ms'; known: calls, errors, error_rate, p50_ms, p95_ms" in str(
        err.value
    )
    assert "at column 15" in str(err.value)


# --- rules, firing, rollback -------------------------------------------------------------


def test_an_alert_fires_on_injected_errors_and_rolls_the_prompt_back(
    store_url: str, fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_NB_USER", "ops-bot")
    _two_versions()
    rule = lo.alert("errors", "error_rate > 0.2 and calls >= 5", window="1h", model=MODEL,
                    rollback="support_reply@production")  # fmt: skip
    lo.alert("slow", "p95_ms > 60000", window="1h")
    assert rule.rollback == "support_reply@production"

    _traffic(fresh_server, ok=6, errors=0)
    assert lo.check_alerts() == []  # healthy traffic: nothing fires
    assert lo.prompt("support_reply@production").version == 2

    _traffic(fresh_server, ok=0, errors=3)
    fired = lo.check_alerts()
    assert [f.rule for f in fired] == ["errors"]
    firing = fired[0]
    assert firing.measured == {"error_rate": pytest.approx(3 / 9), "calls": 9}
    assert firing.rollback == "support_reply@production v2 -> v1"
    assert firing.line() == (
        f"alert 'errors' fired: error_rate > 0.2 and calls >= 5 (error_rate=0.3333, calls=9) "
        f"over the last 1h model={MODEL}; rolled back support_reply@production v2 -> v1"
    )
    assert lo.prompt("support_reply@production").version == 1

    log = lo.audit(since="1h")
    fired_rows = log.filter(log["action"].is_in(["alert fired", "rollback"]))
    assert fired_rows.select("who", "action", "target", "from", "to").rows() == [
        ("ops-bot", "rollback", "support_reply@production", "v2", "v1"),
        ("ops-bot", "alert fired", "errors", None, "error_rate > 0.2 and calls >= 5"),
    ]
    assert fired_rows["reason"].to_list() == [firing.message, firing.message]

    # the same window's traffic never fires twice, so the alias is not rolled back again
    _traffic(fresh_server, ok=0, errors=2)
    assert lo.check_alerts() == []
    assert lo.prompt("support_reply@production").version == 1
    listed = lo.alerts()
    assert listed.select("name", "firings").rows() == [("errors", 1), ("slow", 0)]
    assert listed.filter(listed["name"] == "errors")["last_fired"][0] == firing.fired_at
    assert _count(m.AlertFiring) == 1


def test_dedupe_is_per_window(store_url: str) -> None:
    """Once the window that fired has passed, the rule can fire again."""
    rule = lo.alert("quiet", "calls < 10", window="1h")
    first = lo.check_alerts()
    assert [f.rule for f in first] == ["quiet"] and first[0].rollback is None
    assert lo.check_alerts() == []
    store = get_store()
    rule_id = store.alert_rules("default")[0].id
    assert rule_id is not None and rule.name == "quiet"

    def age(s: Any) -> None:  # the firing happened two hours ago
        from datetime import timedelta

        from sqlmodel import select as select_rows

        row = s.exec(select_rows(m.AlertFiring)).one()
        row.window_start -= timedelta(hours=2)
        row.window_end -= timedelta(hours=2)
        s.add(row)

    store.write(age)
    assert [f.rule for f in lo.check_alerts()] == ["quiet"]


def test_a_model_alias_is_rolled_back_by_a_slow_alert(
    store_url: str, fresh_server: OpenAIServer, tmp_path: Path
) -> None:
    for _ in range(2):
        register_model("support-ft", base=str(tmp_path), adapter_path=None, backend=None,
                       parameters={})  # fmt: skip
    lo.set_model_alias("support-ft", "production", 1)
    lo.set_model_alias("support-ft", "production", 2)
    lo.alert("slow", "p95_ms > 100", window="15m", model=MODEL,
             rollback="local/support-ft@production")  # fmt: skip
    fresh_server.configure(latency_ms=200)
    _traffic(fresh_server, ok=3, errors=0)
    fired = lo.check_alerts()
    assert [f.rollback for f in fired] == ["local/support-ft@production v2 -> v1"]
    assert fired[0].measured["p95_ms"] >= 100
    assert model_aliases("support-ft") == {"production": 1}
    rollback = lo.audit(action="rollback")
    assert rollback.select("target", "from", "to").rows() == [
        ("local/support-ft@production", "v2", "v1")
    ]
    assert "p95_ms" in rollback["reason"][0]


def test_a_rollback_that_is_no_longer_possible_still_records_the_firing(store_url: str) -> None:
    _two_versions()
    lo.alert("quiet", "calls < 10", rollback="support_reply@production")
    lo.rollback("support_reply", "production")  # someone rolled back by hand meanwhile
    fired = lo.check_alerts()
    assert len(fired) == 1
    assert fired[0].rollback is not None
    assert "not rolled back" in fired[0].rollback and "no earlier version" in fired[0].rollback
    assert lo.prompt("support_reply@production").version == 1
    assert lo.audit(action="alert fired").height == 1


def test_bad_rules_are_one_message_and_store_nothing(store_url: str, tmp_path: Path) -> None:
    lo.register_prompt("once", "Hi {{q}}")
    lo.set_alias("once", "production", 1)  # set once: no history
    register_model("m1", base=str(tmp_path), adapter_path=None, backend=None, parameters={})
    lo.set_model_alias("m1", "production", 1)
    before = (_count(m.AlertRule), _count(m.AuditEvent))

    with pytest.raises(ConditionError, match="at column 8"):
        lo.alert("a", "p95_ms 2000")
    with pytest.raises(ConditionError, match="unknown metric 'latency'"):
        lo.alert("a", "latency > 3")
    with pytest.raises(InvalidDuration, match="window='an hour' is not a duration"):
        lo.alert("a", "calls < 3", window="an hour")
    with pytest.raises(AlertError, match="rollback='once@production' has no history"):
        lo.alert("a", "calls < 3", rollback="once@production")
    with pytest.raises(AlertError, match="rollback='local/m1@production' has no history"):
        lo.alert("a", "calls < 3", rollback="local/m1@production")
    with pytest.raises(AlertError, match="names a version, which cannot move"):
        lo.alert("a", "calls < 3", rollback="once@1")
    with pytest.raises(AlertError, match="rollback= names an alias"):
        lo.alert("a", "calls < 3", rollback="once")
    with pytest.raises(NotFound, match="prompt 'once' has no alias 'canary'"):
        lo.alert("a", "calls < 3", rollback="once@canary")
    with pytest.raises(NotFound, match="model 'm1' has no alias 'canary'"):
        lo.alert("a", "calls < 3", rollback="local/m1@canary")
    with pytest.raises(NotFound, match="unknown prompt 'nope'"):
        lo.alert("a", "calls < 3", prompt="nope")
    with pytest.raises(lo.LLMOpsError, match="invalid alert name"):
        lo.alert("bad name", "calls < 3")
    assert (_count(m.AlertRule), _count(m.AuditEvent)) == before
    assert lo.alerts().height == 0


def test_rerunning_lo_alert_replaces_the_rule(store_url: str) -> None:
    lo.alert("slow", "p95_ms > 2000")
    lo.alert("slow", "p95_ms > 1500", window="15m")
    assert lo.alerts().select("name", "condition", "window").rows() == [
        ("slow", "p95_ms > 1500", "15m")
    ]


# --- faces: the notebook and the CLI -------------------------------------------------------


def test_a_fired_alert_shows_as_one_warning_line_after_the_next_cell(
    store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shell: InteractiveShell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    watch = magics._alert_watch
    assert isinstance(watch, AlertWatch)
    monkeypatch.setattr(watch, "every", 0.0)
    try:
        lo.alert("quiet", "calls < 10 and cost < 1", window="1h")
        capsys.readouterr()
        shell.run_cell("x = 1", store_history=False)  # starts a check in the background
        watch.wait(30)
        assert "fired" not in capsys.readouterr().out  # the cell itself did not wait for it
        shell.run_cell("y = 2", store_history=False)
        lines = [line for line in capsys.readouterr().out.splitlines() if "alert" in line]
        assert lines == [
            "\u26a0 alert 'quiet' fired: calls < 10 and cost < 1 (calls=0, cost=0) over the last 1h"
        ]
        watch.wait(30)
        shell.run_cell("z = 3", store_history=False)  # fired once per window: not again
        assert "alert" not in capsys.readouterr().out
    finally:
        watch.wait(30)
        shell.run_line_magic("unload_ext", "llmops_nb")
    assert magics.show_fired_alerts not in shell.events.callbacks["post_run_cell"]


def test_cli_monitor_check_exit_codes(
    store_url: str, fresh_server: OpenAIServer, llmops_home: Path
) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LLMOPS_NB_STORE": store_url, "LLMOPS_NB_HOME": str(llmops_home)}
        return subprocess.run(
            [sys.executable, "-m", "llmops_nb.cli", "monitor", "--check"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    _two_versions()
    lo.alert("errors", "error_rate > 0.2", model=MODEL, rollback="support_reply@production")
    _traffic(fresh_server, ok=4, errors=0)
    window_stats("1h")  # flushes this process's spans to the store the CLI reads
    quiet = check()
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "no alert fired"), quiet.stderr
    _traffic(fresh_server, ok=0, errors=4)
    window_stats("1h")
    loud = check()
    assert loud.returncode == 1, loud.stderr
    assert loud.stdout.strip().splitlines() == [
        f"alert 'errors' fired: error_rate > 0.2 (error_rate=0.5) over the last 1h "
        f"model={MODEL}; rolled back support_reply@production v2 -> v1"
    ]
    assert lo.prompt("support_reply@production").version == 1
    again = check()  # the same window: recorded once, so cron does not page twice
    assert (again.returncode, again.stdout.strip()) == (0, "no alert fired")
    usage = subprocess.run(
        [sys.executable, "-m", "llmops_nb.cli", "monitor"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "pass --check" in usage.stderr
