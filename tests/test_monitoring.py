"""lo.monitor / window_stats: real traffic to the test server and spans written through
the store, on SQLite and PostgreSQL; the numbers a user reads per bucket."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb import monitoring
from llmops_nb.llm.client import ModelCallError
from llmops_nb.monitoring import InvalidDuration, parse_duration, window_stats
from llmops_nb.store import get_store
from llmops_nb.store.traces import TraceDelta
from llmops_nb.testing import OpenAIServer
from llmops_nb.tracing.calls import settle

MODEL = "openai/gpt-4o-mini"
HOUR = dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)  # a fixed past hour for written spans


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * 10**9


def write_calls(calls: list[dict[str, Any]], project: str = "default") -> None:
    """Store one-span traces, one per call: start (datetime), latency_ms, model, prompt
    ("name@version"), error, input/output tokens, cost, cached."""
    spans, deltas = [], []
    for i, c in enumerate(calls):
        n = len(spans) + c.get("seq", 0) * 1000
        start = _ns(c["start"]) + i * 1000
        attrs: dict[str, Any] = {
            "llmops.model": c.get("model", MODEL),
            "gen_ai.request.model": c.get("model", MODEL).split("/")[-1],
            "gen_ai.usage.input_tokens": c.get("input_tokens", 10),
            "gen_ai.usage.output_tokens": c.get("output_tokens", 4),
            "llmops.cost": c.get("cost", 0.001),
        }
        if c.get("cached"):
            attrs["llmops.cached"] = True
        if "prompt" in c:
            name, version = c["prompt"].split("@")
            attrs["llmops.prompt.name"] = name
            attrs["llmops.prompt.version"] = int(version)
        trace_id = f"{abs(hash((project, start, n))) % 16**32:032x}"
        end = start + int(c["latency_ms"] * 1e6)
        spans.append(
            {
                "id": f"{abs(hash((trace_id, 's'))) % 16**16:016x}",
                "trace_id": trace_id,
                "name": "chat",
                "kind": "llm",
                "status": "error" if c.get("error") else "ok",
                "error": "boom" if c.get("error") else None,
                "start_ns": start,
                "end_ns": end,
                "attributes": attrs,
            }
        )
        deltas.append(
            TraceDelta(
                id=trace_id, project=project, name="chat", start_ns=start, end_ns=end, root=True
            )
        )
    get_store().record_spans(spans, deltas)


def lo_sum(column: str) -> Any:
    import polars as pl

    return pl.col(column).sum()


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_real_calls_with_injected_slowness_and_errors(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    def call(prompt: str) -> lo.Completion:
        return lo.complete(
            MODEL, prompt, api_base=fresh_server.base_url, api_key="sk-test", retries=0, cache=False
        )

    fresh_server.configure(latency_ms=250)
    slow = [call(f"slow {i}") for i in range(3)]
    fresh_server.configure(latency_ms=0)
    fast = [call(f"fast {i}") for i in range(6)]
    fresh_server.fail_next(500)
    with pytest.raises(ModelCallError):
        call("fails")
    settle(None, timeout=10)  # on a loaded machine a call's span can end after the reader's wait

    df = lo.monitor(since="1h", every="1h", model=MODEL)  # not spans left by earlier tests
    assert df.columns == [
        "bucket", "model", "calls", "errors", "error_rate", "p50_ms", "p95_ms",
        "input_tokens", "output_tokens", "cost", "cache_hit_rate",
    ]  # fmt: skip
    done = slow + fast
    total = df.select(
        calls=df["calls"].sum(),
        errors=df["errors"].sum(),
        input_tokens=df["input_tokens"].sum(),
        output_tokens=df["output_tokens"].sum(),
        cost=df["cost"].sum(),
    ).row(0, named=True)
    assert set(df["model"]) == {MODEL}
    assert total["calls"] == 10 and total["errors"] == 1
    assert total["input_tokens"] == sum(c.usage.input_tokens for c in done)
    assert total["output_tokens"] == sum(c.usage.output_tokens for c in done)
    assert total["cost"] == pytest.approx(sum(c.cost or 0 for c in done))

    stats = window_stats("1h", model=MODEL)
    assert (stats["calls"], stats["errors"]) == (10, 1)
    assert stats["error_rate"] == pytest.approx(0.1)
    assert stats["cache_hit_rate"] == 0.0
    # the three slow calls are the slowest 30 %: p95 is one of them, p50 a fast one
    spans = [s for c in done for s in lo.get_trace(c.trace_id).spans if s.kind == "llm"]
    slow_ms = sorted(s.latency_ms for s in spans)[-3:]
    assert stats["p95_ms"] >= 250 and min(slow_ms) * 0.9 <= stats["p95_ms"] <= max(slow_ms)
    assert stats["p50_ms"] < 250
    assert window_stats("1h", model="openai/other")["calls"] == 0


def test_buckets_groups_and_percentiles(store_url: str) -> None:
    first = [60.0, 80.0, 100.0, 120.0, 900.0]
    second = [200.0, 210.0, 220.0, 230.0, 240.0, 250.0, 260.0, 270.0, 280.0, 2000.0]
    calls = [
        {"start": HOUR + dt.timedelta(minutes=5 + i), "latency_ms": ms, "prompt": "faq@1",
         "error": i == 0, "cached": i < 2}
        for i, ms in enumerate(first)
    ] + [
        {"start": HOUR + dt.timedelta(hours=1, minutes=i), "latency_ms": ms,
         "prompt": "faq@2" if i % 2 else "faq@1", "model": "local/ft" if i >= 8 else MODEL,
         "input_tokens": 20, "cost": 0.01}
        for i, ms in enumerate(second)
    ]  # fmt: skip
    write_calls(calls)
    write_calls([{"start": HOUR, "latency_ms": 5.0}], project="other")

    df = lo.monitor(since=HOUR.isoformat(), until=(HOUR + dt.timedelta(hours=3)).isoformat())
    rows = df.rows(named=True)
    assert [(r["bucket"], r["model"], r["calls"]) for r in rows] == [
        (HOUR, MODEL, 5),
        (HOUR + dt.timedelta(hours=1), "local/ft", 2),
        (HOUR + dt.timedelta(hours=1), MODEL, 8),
    ]
    h1 = rows[0]
    assert (h1["errors"], h1["error_rate"], h1["cache_hit_rate"]) == (1, 0.2, 0.4)
    assert (h1["input_tokens"], h1["output_tokens"], h1["cost"]) == (50, 20, pytest.approx(0.005))
    assert h1["p50_ms"] == pytest.approx(nearest_rank(first, 0.5), rel=0.06)
    assert h1["p95_ms"] == 900.0  # the slowest call: the top rank is exact
    h2 = rows[2]
    assert h2["p50_ms"] == pytest.approx(nearest_rank(second[:8], 0.5), rel=0.06)
    assert h2["p95_ms"] == 270.0 and rows[1]["p95_ms"] == 2000.0

    # whole hours come from the hour rollup, the minutes at either end from the minute one
    partial = lo.monitor(
        since=HOUR + dt.timedelta(minutes=6), until=HOUR + dt.timedelta(hours=2, minutes=5)
    )
    assert partial.group_by("bucket").agg(calls=lo_sum("calls")).sort("bucket").rows() == [
        (HOUR, 4),
        (HOUR + dt.timedelta(hours=1), 10),
    ]

    by_prompt = lo.monitor(since=HOUR, every="1d", by="prompt", until=HOUR + dt.timedelta(days=1))
    assert dict(zip(by_prompt["prompt"], by_prompt["calls"], strict=True)) == {
        "faq@1": 10,
        "faq@2": 5,
    }
    assert by_prompt["bucket"].to_list() == [HOUR.replace(hour=0)] * 2
    day = {"since": HOUR, "every": "1d", "until": HOUR + dt.timedelta(days=1)}
    only_v2 = lo.monitor(**day, by="prompt", prompt="faq@2")
    assert only_v2["calls"].to_list() == [5]
    all_versions = lo.monitor(**day, prompt="faq")
    assert dict(zip(all_versions["model"], all_versions["calls"], strict=True)) == {
        "local/ft": 2,
        MODEL: 13,
    }
    assert lo.monitor(**day, prompt="fa")["calls"].to_list() == []
    one_model = lo.monitor(**day, model="local/ft")
    assert one_model["calls"].to_list() == [2] and one_model["cost"].to_list() == [
        pytest.approx(0.02)
    ]

    by_project = lo.monitor(**day, by="project")
    assert dict(zip(by_project["project"], by_project["calls"], strict=True)) == {
        "default": 15,
        "other": 1,
    }

    window = window_stats("30m", until=HOUR + dt.timedelta(hours=1, minutes=30))
    assert window["calls"] == 10 and window["p95_ms"] == 2000.0
    assert window["input_tokens"] == 200 and window["cost"] == pytest.approx(0.1)
    assert window_stats("1h", until=HOUR)["calls"] == 0
    assert window_stats("1h", until=HOUR)["p95_ms"] is None


def test_spans_stored_before_the_migration_are_counted(llmops_home: Any) -> None:
    write_calls([{"start": HOUR, "latency_ms": 40.0}, {"start": HOUR, "latency_ms": 60.0}])
    store = get_store()
    with store.engine.begin() as conn:  # as if the spans predate the rollup
        conn.execute(text("DELETE FROM llm_rollup"))
        conn.execute(text("DELETE FROM llm_rollup_hour"))
        from llmops_nb.store.monitoring import backfill_rollup

        for statement in backfill_rollup(conn.dialect.name):
            conn.execute(text(statement))
    stats = window_stats("1h", until=HOUR + dt.timedelta(minutes=5))
    assert (stats["calls"], stats["p50_ms"], stats["p95_ms"]) == (2, 40.0, 60.0)


def test_spans_of_one_trace_in_several_batches_count_once(store_url: str) -> None:
    store = get_store()
    start = _ns(HOUR)
    trace_id = "ab" * 16

    def span(i: int) -> dict[str, Any]:
        return {
            "id": f"{i:016x}", "trace_id": trace_id, "name": "chat", "kind": "llm",
            "status": "ok", "start_ns": start + i, "end_ns": start + i + 10**8,
            "attributes": {"llmops.model": MODEL, "gen_ai.usage.input_tokens": 3},
        }  # fmt: skip

    def delta() -> TraceDelta:
        return TraceDelta(id=trace_id, project="default", name="x", start_ns=start, end_ns=start)

    store.record_spans([span(1), span(2)], [delta()])  # spans before their trace row
    store.record_spans([span(3)], [delta()])  # a later batch: the trace row exists
    store.record_spans([span(3)], [delta()], if_absent=True)  # a retried batch: no twice
    stats = window_stats("1h", until=HOUR + dt.timedelta(minutes=5))
    assert (stats["calls"], stats["input_tokens"]) == (3, 9)


def rollup_rows(table: str) -> list[dict[str, Any]]:
    """The rows of rollup TABLE, in key order."""
    with get_store().engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4")).mappings()
        return [dict(r) for r in rows]


def rollup_by_the_triggers_sql() -> dict[str, list[dict[str, Any]]]:
    """The rollups recomputed from the stored spans with the SQL the triggers ran."""
    from llmops_nb.store.monitoring import backfill_rollup

    with get_store().engine.begin() as conn:
        conn.execute(text("DELETE FROM llm_rollup"))
        conn.execute(text("DELETE FROM llm_rollup_hour"))
        for statement in backfill_rollup(conn.dialect.name):
            conn.execute(text(statement))
    return {table: rollup_rows(table) for table in ("llm_rollup", "llm_rollup_hour")}


def assert_same_rollup(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [tuple(r.values())[:4] for r in got] == [tuple(r.values())[:4] for r in want]
    for a, b in zip(got, want, strict=True):
        assert a == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in b.items()}


def llm_span(trace_id: str, i: int, start: int, **attrs: Any) -> dict[str, Any]:
    return {
        "id": f"{abs(hash((trace_id, i))) % 16**16:016x}", "trace_id": trace_id,
        "name": "chat", "kind": attrs.pop("kind", "llm"), "status": attrs.pop("status", "ok"),
        "start_ns": start, "end_ns": start + int(attrs.pop("ms", 50.0) * 1e6),
        "attributes": attrs,
    }  # fmt: skip


def delta_for(trace_id: str, start: int, project: str = "default") -> TraceDelta:
    return TraceDelta(id=trace_id, project=project, name="chat", start_ns=start, end_ns=start)


def test_a_retried_batch_and_a_trace_row_from_an_earlier_batch_count_once(
    store_url: str,
) -> None:
    store = get_store()
    start = _ns(HOUR + dt.timedelta(minutes=7))
    trace_id = "cd" * 16
    first = [llm_span(trace_id, i, start + i, **{"llmops.model": MODEL,
             "gen_ai.usage.input_tokens": 5, "llmops.cost": 0.25}) for i in (1, 2)]  # fmt: skip
    second = [llm_span(trace_id, 3, start + 3, **{"llmops.model": MODEL,
              "gen_ai.usage.input_tokens": 7, "llmops.cost": 0.5}, status="error")]  # fmt: skip

    def totals(table: str) -> list[tuple[Any, ...]]:
        return [
            (r["period_ns"], r["model"], r["calls"], r["errors"], r["input_tokens"], r["cost"])
            for r in rollup_rows(table)
        ]

    minute, hour = _ns(HOUR + dt.timedelta(minutes=7)), _ns(HOUR)
    store.record_spans(first, [delta_for(trace_id, start)])  # spans first, then the trace row
    assert totals("llm_rollup") == [(minute, MODEL, 2, 0, 10, 0.5)]
    store.record_spans(first, [delta_for(trace_id, start)], if_absent=True)  # retried
    assert totals("llm_rollup") == [(minute, MODEL, 2, 0, 10, 0.5)]
    store.record_spans(second, [delta_for(trace_id, start)])  # its trace row is stored
    store.record_spans(second, [delta_for(trace_id, start)], if_absent=True)  # retried
    assert totals("llm_rollup") == [(minute, MODEL, 3, 1, 17, 1.0)]
    assert totals("llm_rollup_hour") == [(hour, MODEL, 3, 1, 17, 1.0)]
    assert len(lo.get_trace(trace_id).spans) == 3
    stats = window_stats("1h", until=HOUR + dt.timedelta(minutes=10))
    assert (stats["calls"], stats["errors"], stats["input_tokens"]) == (3, 1, 17)


def test_the_writers_rollup_is_the_triggers_rollup(store_url: str) -> None:
    """Every kind of span and batch the writer sees, odd attribute values included, gives
    the rollup rows that the triggers' SQL computes from the stored spans."""
    store = get_store()
    t0 = _ns(HOUR)
    minute = 60 * 10**9
    huge = 2**70 if store.is_sqlite else 2**40  # SQLite saturates; the PG trigger failed
    odd = [  # attribute values of every JSON type where numbers and strings are read
        {"llmops.model": MODEL, "gen_ai.usage.input_tokens": 3.5,
         "gen_ai.usage.output_tokens": 2.4, "llmops.cost": 1, "llmops.cached": True},
        {"llmops.model": "", "gen_ai.request.model": "gpt-x", "gen_ai.usage.input_tokens": "9",
         "llmops.cost": float("nan"), "llmops.cached": "yes", "llmops.prompt.name": "faq"},
        {"llmops.model": 7, "gen_ai.usage.input_tokens": True, "llmops.prompt.name": "faq",
         "llmops.prompt.version": 2.0, "llmops.cost": -0.5, "gen_ai.usage.output_tokens": -2.5},
        {"llmops.model": float("inf"), "llmops.prompt.name": "", "llmops.prompt.version": 3,
         "gen_ai.usage.input_tokens": huge, "llmops.cached": False},
        {"llmops.model": ["a"], "gen_ai.request.model": {"x": 1}, "llmops.prompt.version": 4,
         "gen_ai.usage.output_tokens": None},
        {},
    ]  # fmt: skip
    batch, deltas = [], []
    for i, attrs in enumerate(odd):  # one trace each, spans stored before their trace rows
        tid = f"{i + 1:032x}"
        batch.append(llm_span(tid, 0, t0 + i * minute, ms=0.4 + i * 300, **dict(attrs)))
        batch.append(llm_span(tid, 1, t0 + i * minute + 5, ms=10**7, status="error"))
        batch.append(llm_span(tid, 2, t0 + i * minute, kind="chain", **{"llmops.model": MODEL}))
        deltas.append(delta_for(tid, t0, project="other" if i % 2 else "default"))
    store.record_spans(batch, deltas)
    late = [llm_span(f"{i + 1:032x}", 9, t0 + 2 * 3600 * 10**9 + i, ms=2.0 * i,
                     **{"llmops.model": MODEL, "llmops.cost": 0.1}) for i in range(4)]  # fmt: skip
    store.record_spans(late, [])  # no deltas: their trace rows are stored already
    store.record_spans(late, [], if_absent=True)
    orphan = "ef" * 16
    store.record_spans([llm_span(orphan, 0, t0 + 3, **{"llmops.model": "local/x"})], [])
    store.record_spans([llm_span("fe" * 16, 0, t0, **{"llmops.model": "never"})], [])
    got = {table: rollup_rows(table) for table in ("llm_rollup", "llm_rollup_hour")}
    assert not any(r["model"] in ("local/x", "never") for r in got["llm_rollup"])
    # the orphan's trace row arrives with a later batch of another span of it
    store.record_spans([llm_span(orphan, 1, t0 + 4, **{"llmops.model": "local/x"})],
                       [delta_for(orphan, t0)])  # fmt: skip
    got = {table: rollup_rows(table) for table in ("llm_rollup", "llm_rollup_hour")}
    [orphan_row] = [r for r in got["llm_rollup"] if r["model"] == "local/x"]
    assert orphan_row["calls"] == 2
    assert sum(r["calls"] for r in got["llm_rollup"]) == 2 * len(odd) + 4 + 2
    assert sum(r["calls"] for r in got["llm_rollup_hour"]) == 2 * len(odd) + 4 + 2
    want = rollup_by_the_triggers_sql()
    assert_same_rollup(got["llm_rollup"], want["llm_rollup"])
    assert_same_rollup(got["llm_rollup_hour"], want["llm_rollup_hour"])


def test_at_head_no_trigger_keeps_the_rollup_and_a_downgrade_restores_them(
    store_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config

    from llmops_nb.store.base import HEAD_REVISION, MIGRATIONS_DIR

    store = get_store()
    project_id = store.project_id("default")
    list_triggers = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1"
        if store.is_sqlite
        else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
    )
    with store.engine.connect() as conn:
        assert conn.execute(text(list_triggers)).scalars().all() == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003_splits")
        assert conn.execute(text(list_triggers)).scalars().all() == [
            "llm_rollup_on_span", "llm_rollup_on_trace"
        ]  # fmt: skip
        conn.execute(  # a span and its trace row written past the writer: the triggers count it
            text(
                "INSERT INTO trace (id, project_id, name, status, start_ns, end_ns, n_spans, "
                "input_tokens, output_tokens, cost) VALUES (:t, :p, 'x', 'ok', :s, :s, 1, 0, 0, 0)"
            ),
            {"t": "12" * 16, "p": project_id, "s": _ns(HOUR)},
        )
        conn.execute(
            text(
                "INSERT INTO span (id, trace_id, name, kind, status, start_ns, end_ns, attributes)"
                " VALUES ('00000000000000b1', :t, 'chat', 'llm', 'ok', :s, :e, :a)"
            ),
            {"t": "12" * 16, "s": _ns(HOUR), "e": _ns(HOUR) + 10**7, "a": '{"llmops.model": "m"}'},
        )
        command.upgrade(cfg, "head")
        assert conn.execute(text(list_triggers)).scalars().all() == []
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == HEAD_REVISION == "0004_rollup_writer"
    assert [(r["model"], r["calls"]) for r in rollup_rows("llm_rollup_hour")] == [("m", 1)]


def test_bad_durations_are_one_clear_message() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("15m") == dt.timedelta(minutes=15)
    assert parse_duration("7d") == dt.timedelta(days=7)
    for bad in ("soon", "7 days", "-1h", "0m", ""):
        with pytest.raises(InvalidDuration, match="duration"):
            lo.monitor(since=bad)
    with pytest.raises(InvalidDuration, match="every='fortnight' is not a duration"):
        lo.monitor(every="fortnight")
    with pytest.raises(InvalidDuration, match="window"):
        window_stats("yesterday")
    with pytest.raises(monitoring.InvalidMonitorQuery, match="by='team'"):
        lo.monitor(by="team")
    assert lo.monitor(since="2026-11-01")["calls"].to_list() == []


# --- the dashboard: the panel and the sidebar's Ops tab show one view -------------------


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}


def _traffic() -> dict[str, str]:
    write_calls(
        [{"start": HOUR + dt.timedelta(minutes=i), "latency_ms": 100.0 + i} for i in range(4)]
        + [
            {"start": HOUR + dt.timedelta(hours=1), "latency_ms": 300.0, "error": True,
             "model": "local/<b>ft</b>"}
        ]
    )  # fmt: skip
    return {"since": HOUR.isoformat(), "until": (HOUR + dt.timedelta(hours=2)).isoformat()}


async def test_the_panel_and_the_ops_endpoint_are_one_view(jp_fetch: Any, store_url: str) -> None:
    import json

    scope = _traffic()
    lo.alert("slow", "p95_ms > 2000", window="1h", model=MODEL)
    lo.register_prompt("support_reply", "Answer {{question}} <b>kindly</b>")
    panel = lo.dashboard(**scope, every="1h")
    response = await jp_fetch("llmops-nb", "api", "ops", params={**scope, "every": "1h"})
    assert json.loads(response.body) == panel.view
    alerts, audit = panel.view["sections"][1:]
    assert [(r["name"], r["condition"], r["model"], r["firings"]) for r in alerts["rows"]] == [
        ("slow", "p95_ms > 2000", MODEL, 0)
    ]
    assert audit["id"] == "audit" and "support_reply" in {r["target"] for r in audit["rows"]}
    section = panel.view["sections"][0]
    assert section["id"] == "dashboard" and section["by"] == "model"
    frame = lo.monitor(**scope)
    assert [(r["group"], r["calls"], r["p95_ms"]) for r in section["series"]] == list(
        zip(frame["model"], frame["calls"], frame["p95_ms"], strict=True)
    )
    totals = {r["group"]: (r["calls"], r["errors"]) for r in section["totals"]}
    assert totals == {MODEL: (4, 0), "local/<b>ft</b>": (1, 1)}


async def test_the_ops_endpoint_rejects_a_bad_duration(jp_fetch: Any) -> None:
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("llmops-nb", "api", "ops", params={"since": "soon"})
    assert info.value.code == 400
    assert "since='soon'" in json_message(info.value)


def json_message(exc: Any) -> str:
    import json

    return json.loads(exc.response.body)["message"]


def test_static_dashboard_shows_totals_and_svg_charts_escaped() -> None:
    from llmops_nb.widgets.dashboard import static_html, summary_text

    scope = _traffic()
    panel = lo.dashboard(**scope, every="1h")
    data, _ = panel._repr_mimebundle_()
    page = data["text/html"]
    assert "<b>ft</b>" not in page and "local/&lt;b&gt;ft&lt;/b&gt;" in page
    assert page.count("<svg") == 1 and "<script" not in page
    assert "<h4>Alerts</h4>" in page and "<h4>Audit log</h4>" in page
    for title in ("Calls", "Error rate", "p95 latency", "Cost", "Cache hit rate"):
        assert title in page  # one chart per metric, titled, in the SVG
    row = page.split(f'data-group="{MODEL}"', 1)[1].split("</tr>", 1)[0]
    assert '<td data-key="calls">4</td>' in row and '<td data-key="p95_ms">103 ms</td>' in row
    assert "local/<b>ft</b>: calls 1, errors 1, error rate 100.0%" in summary_text(panel.view)
    assert static_html(panel.view, []) != page  # the charts are part of the fallback
