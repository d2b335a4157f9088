"""Retention on SQLite and PostgreSQL: lo.prune deletes old traces, their spans, feedback
and stale cache entries in batches, keeps the traces of eval runs when asked, and never
gets in the way of kernels that keep writing spans meanwhile."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.retention import RetentionError
from llmops_nb.store import get_store
from llmops_nb.store import models as m
from llmops_nb.store.traces import TraceDelta
from llmops_nb.testing import OpenAIServer

DAY_NS = 86_400 * 10**9


def _old_traces(n: int, days_ago: int, prefix: str, spans_each: int = 3) -> list[str]:
    """N finished traces that ran DAYS_AGO, written the way the exporter writes them."""
    store = get_store()
    start = time.time_ns() - days_ago * DAY_NS
    ids = [f"{prefix}{i:0{32 - len(prefix)}x}" for i in range(n)]
    for chunk in range(0, n, 500):
        spans, deltas = [], []
        for i in range(chunk, min(n, chunk + 500)):
            tid, t0 = ids[i], start + i * 1000
            for j in range(spans_each):
                spans.append(
                    {
                        "id": f"{prefix}{i:010x}{j:04x}",
                        "trace_id": tid,
                        "parent_id": None if j == 0 else f"{prefix}{i:010x}0000",
                        "name": f"step{j}",
                        "start_ns": t0 + j,
                        "end_ns": t0 + 100,
                    }
                )
            deltas.append(
                TraceDelta(
                    id=tid,
                    project="default",
                    name="old",
                    start_ns=t0,
                    end_ns=t0 + 100,
                    n_spans=spans_each,
                    root=True,
                )
            )
        store.record_spans(spans, deltas)
    return ids


def _count(sql: str, **params: object) -> int:
    with get_store().engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _ids(sql: str) -> set[str]:
    with get_store().engine.connect() as conn:
        return {row[0] for row in conn.execute(text(sql))}


def _age_eval_run(run_id: int, days: int) -> list[str]:
    """Move an eval run's traces (and their spans) DAYS into the past."""
    tracing.flush()  # every span stored first: a later batch would move the trace's end back
    shift = days * DAY_NS
    with get_store().write_engine.begin() as conn:
        ids = sorted(
            row[0]
            for row in conn.execute(
                text("SELECT DISTINCT trace_id FROM eval_result WHERE run_id = :r"), {"r": run_id}
            )
            if row[0] is not None
        )
        for table, key in (("trace", "id"), ("span", "trace_id")):
            conn.execute(
                text(
                    f"UPDATE {table} SET start_ns = start_ns - :d, end_ns = end_ns - :d "
                    f"WHERE {key} = :t"
                ),
                [{"d": shift, "t": tid} for tid in ids],
            )
    return ids


def _eval_run(server: OpenAIServer) -> lo.EvalRun:
    lo.register_prompt("echo", "user:\nSay {{word}}")
    return lo.evaluate(
        ["echo@1"],
        [{"model": "openai/gpt-4o-mini", "api_base": server.base_url, "api_key": "sk-test"}],
        [{"word": "one"}, {"word": "two"}],
        [{"contains": {"value": "{{word}}"}}],
        name="kept",
        progress=False,
        cache=False,
    )


def test_prune_deletes_old_traces_spans_feedback_and_cache_and_keeps_eval_runs(
    store_url: str, openai_server: OpenAIServer
) -> None:
    store = get_store()
    old = _old_traces(40, days_ago=120, prefix="a0")
    recent = _old_traces(5, days_ago=10, prefix="b0")
    run = _eval_run(openai_server)
    kept = _age_eval_run(run.id, days=200)
    assert len(kept) == 2
    tracing.feedback(old[0], 1, "good")
    tracing.feedback(recent[0], -1, "bad")
    store.cache_put("k-old-gone", "m", {"text": "x"}, trace_id=old[1])
    store.cache_put("k-old-kept", "m", {"text": "y"}, trace_id=kept[0])
    store.cache_put("k-new", "m", {"text": "z"}, trace_id=old[2])
    with store.write_engine.begin() as conn:
        conn.execute(
            update(m.CacheEntry.__table__)  # type: ignore[attr-defined]
            .where(m.CacheEntry.__table__.c.key.like("k-old%"))  # type: ignore[attr-defined]
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
        )

    counts = lo.prune(older_than="90d", keep_eval_runs=True)

    assert counts == {"traces": 40, "spans": 120, "feedback": 1, "cache_entries": 1}
    assert _ids("SELECT id FROM trace") == set(recent) | set(kept)
    with store.engine.connect() as conn:
        span_traces = [row[0] for row in conn.execute(text("SELECT trace_id FROM span"))]
    assert not set(span_traces) & set(old)
    assert sum(tid in recent for tid in span_traces) == 15
    assert _ids("SELECT trace_id FROM feedback") == {recent[0]}
    assert _ids("SELECT key FROM response_cache") == {"k-old-kept", "k-new"}
    assert lo.get_trace(kept[0]).spans  # the eval run's call still opens from its grid
    assert lo.prune("90d") == {"traces": 0, "spans": 0, "feedback": 0, "cache_entries": 0}

    # without keep_eval_runs the run's traces go too; the run and its results stay
    counts = lo.prune(older_than=timedelta(days=90), keep_eval_runs=False)
    assert (counts["traces"], counts["cache_entries"]) == (2, 1)
    assert _ids("SELECT id FROM trace") == set(recent)
    assert _count("SELECT count(*) FROM eval_result WHERE run_id = :r", r=run.id) == 2
    assert lo.EvalRun.load(run.id).status == "done"


def test_prune_of_one_project_leaves_the_others(store_url: str) -> None:
    old = _old_traces(3, days_ago=100, prefix="c0")
    lo.set_project("other")
    with tracing.span("recent-in-other"):
        pass
    tracing.flush()
    get_store().write(
        lambda s: s.execute(
            text("UPDATE trace SET start_ns = 1, end_ns = 2 WHERE name = 'recent-in-other'")
        )
    )
    assert lo.prune("30d", project="default")["traces"] == 3
    assert _ids("SELECT name FROM trace") == {"recent-in-other"}
    assert old


def test_a_bad_age_is_one_clear_message_and_deletes_nothing() -> None:
    _old_traces(2, days_ago=400, prefix="d0")
    for bad in ["ninety days", "90", "-5d", "0d", "3y", "", None, 90]:
        with pytest.raises(RetentionError) as caught:
            lo.prune(older_than=bad)  # type: ignore[arg-type]
        assert "older_than" in str(caught.value) and "\n" not in str(caught.value)
        assert repr(bad) in str(caught.value)
    assert _count("SELECT count(*) FROM trace") == 2


def test_writers_keep_writing_while_prune_runs(store_url: str) -> None:
    """A kernel writing spans (the real pipeline) and another writing batches straight to
    the store, while prune deletes 3,000 old traces in batches of 100: no writer error,
    every new span stored, every old trace gone."""
    store = get_store()
    _old_traces(3000, days_ago=120, prefix="e0", spans_each=2)
    errors: list[BaseException] = []
    pruning = threading.Event()
    done = threading.Event()
    written: list[str] = []

    def direct_writer() -> None:
        i = 0
        try:
            while not done.is_set() or i < 5:
                tid = f"f0{i:030x}"
                now = time.time_ns()
                store.record_spans(
                    [
                        {
                            "id": f"{i:016x}",
                            "trace_id": tid,
                            "name": "w",
                            "start_ns": now,
                            "end_ns": now + 1,
                        }
                    ],
                    [
                        TraceDelta(
                            id=tid,
                            project="default",
                            name="w",
                            start_ns=now,
                            end_ns=now + 1,
                            n_spans=1,
                            root=True,
                        )
                    ],
                )
                written.append(tid)
                i += 1
                pruning.set()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
            pruning.set()

    def traced_writer() -> None:
        try:
            pruning.wait(10)
            n = 0
            while not done.is_set() or n < 5:
                with tracing.span(f"live-{n}"):
                    with tracing.span("child"):
                        pass
                n += 1
                time.sleep(0.002)
            tracing.flush()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=direct_writer), threading.Thread(target=traced_writer)]
    for t in threads:
        t.start()
    pruning.wait(10)
    counts = store.prune_before(time.time_ns() - 90 * DAY_NS, batch_size=100)
    done.set()
    for t in threads:
        t.join(60)

    assert errors == []
    assert counts["traces"] == 3000 and counts["spans"] == 6000
    assert _count("SELECT count(*) FROM trace WHERE name = 'old'") == 0
    assert _ids("SELECT id FROM trace WHERE name = 'w'") == set(written)
    assert tracing.stats()["dropped"] == 0
    live = _ids("SELECT name FROM trace WHERE name LIKE 'live-%'")
    assert len(live) >= 5 and _count("SELECT count(*) FROM span WHERE name = 'child'") == len(live)
