"""Span writes: what keeping the monitoring rollup costs `Store.record_spans`.

`record_spans` stores --batches batches of --batch (2,000) LLM spans (two a trace, three
models, two prompt versions, 5 % errors, 20 % cache hits, each batch ten seconds of
traffic) into a fresh store, on SQLite and on PostgreSQL (its own server,
tests/pgserver.py), four ways:

- none:         no rollup at all (the writer's fold switched off): the floor;
- trigger:      the per-span and per-trace triggers of migration 0003_monitor (the old way);
- batch SQL:    one INSERT ... SELECT ... GROUP BY ... ON CONFLICT per rollup table, over
                the batch's span ids, parsing the stored JSON in SQL;
- batch Python: the writer's way (`monitoring.fold_calls`): fields read from the span
                dicts in hand, grouped in Python, one executemany upsert per table;
                it also looks up LLM spans stored before their new trace rows, which
                batch SQL (restricted to the batch's span ids) leaves out.

Printed: spans/s (median of --rounds, the ways interleaved) and each way against none.
Every way's rollup rows are checked against the trigger's before anything is printed.

    python benchmarks/bench_store.py [--batch 2000] [--batches 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench_store_")
os.environ.pop("LLMOPS_NB_STORE", None)

import pgserver  # noqa: E402
from sqlalchemy import text  # noqa: E402

from llmops_nb.store import Store, monitoring, traces  # noqa: E402
from llmops_nb.store.traces import TraceDelta  # noqa: E402

MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "local/support-ft")
WAYS = ("none", "trigger", "batch SQL", "batch Python")
T0_NS = 1_800_000_000 * 10**9


def batches(n_batches: int, size: int, seed: int = 7) -> list[tuple[list, list]]:
    """(spans, deltas) per batch: LLM spans two to a trace, the trace's rows after."""
    rng = random.Random(seed)
    out = []
    for b in range(n_batches):
        spans, deltas = [], []
        for i in range(b * size, (b + 1) * size):
            start = T0_NS + b * 10**10 + rng.randrange(10**10)
            model = MODELS[i % 3]
            end = start + int(rng.lognormvariate(math.log(300 if i % 3 else 120), 0.5) * 1e6)
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model.split("/")[-1],
                "llmops.model": model,
                "gen_ai.usage.input_tokens": rng.randint(20, 400),
                "gen_ai.usage.output_tokens": rng.randint(5, 200),
                "llmops.cost": 0.0001,
                "llmops.prompt.name": "support_reply",
                "llmops.prompt.version": 1 + (i // 2) % 2,
            }
            if rng.random() < 0.2:
                attrs["llmops.cached"] = True
            error = rng.random() < 0.05
            trace_id = f"{i // 2 + 1:032x}"
            spans.append({
                "id": f"{i + 1:016x}", "trace_id": trace_id, "name": "chat " + model,
                "kind": "llm", "status": "error" if error else "ok",
                "error": "boom" if error else None, "start_ns": start, "end_ns": end,
                "inputs": {"messages": [{"role": "user", "content": f"question {i}"}]},
                "outputs": {"content": f"answer {i}"}, "attributes": attrs,
            })  # fmt: skip
            if i % 2:
                delta = TraceDelta(trace_id, "default", "chat", start, end, n_spans=2, root=True)
                deltas.append(delta)
        out.append((spans, deltas))
    return out


class _BatchSpan(NamedTuple):
    trace_id: str  # first, as in the writer's LLMCall
    id: str


def _fold_in_sql(conn: Any, spans: list[_BatchSpan], project_of: Any) -> None:
    """The alternative: the rollup's grouped upsert over this batch's span ids, in SQL."""
    span_ids = [s.id for s in spans]
    sqlite = conn.dialect.name == "sqlite"
    where = "s.id IN (SELECT value FROM json_each(:ids))" if sqlite else "s.id = ANY(:ids)"
    for table, grain in monitoring.m.ROLLUP_GRAINS_NS.items():
        sql = monitoring._upsert(
            conn.dialect.name, table, monitoring._select_grouped(conn.dialect.name, grain, where)
        )
        conn.execute(text(sql), {"ids": json.dumps(span_ids) if sqlite else span_ids})


@contextmanager
def way(name: str, store: Store) -> Iterator[None]:
    """Make STORE's record_spans keep the rollup the named way."""
    saved = traces.llm_calls, traces.fold_calls, traces.stored_llm_calls
    if name != "batch Python":
        traces.stored_llm_calls = lambda *_: []
        traces.fold_calls = lambda *_: None
        traces.llm_calls = lambda *_: []
    if name == "trigger":
        with store.write_engine.begin() as conn:
            for statement in monitoring.rollup_triggers(conn.dialect.name):
                conn.execute(text(statement))
    if name == "batch SQL":
        traces.llm_calls = lambda spans, _: [
            _BatchSpan(s["trace_id"], s["id"]) for s in spans if s.get("kind") == "llm"
        ]
        traces.fold_calls = _fold_in_sql
    try:
        yield
    finally:
        traces.llm_calls, traces.fold_calls, traces.stored_llm_calls = saved


def rollup(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [
            tuple(round(v, 6) if isinstance(v, float) else v for v in row)
            for table in ("llm_rollup", "llm_rollup_hour")
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"))
        ]


def run(url: str, name: str, data: list[tuple[list, list]]) -> tuple[float, list]:
    """Spans/s of record_spans over DATA into the fresh store at URL, and its rollup."""
    store = Store(url)
    store.project_id("default")
    try:
        with way(name, store):
            store.record_spans(*data[0])  # warm-up: connections, statement caches
            start = time.perf_counter()
            for spans, deltas in data[1:]:
                store.record_spans(spans, deltas)
            elapsed = time.perf_counter() - start
        return sum(len(s) for s, _ in data[1:]) / elapsed, rollup(store)
    finally:
        store.close()


def measure(label: str, new_url: Callable[[str], str], data: list, rounds: int) -> None:
    rates: dict[str, list[float]] = {w: [] for w in WAYS}
    rollups: dict[str, list] = {}
    for r in range(rounds):
        for w in WAYS:
            rate, rows = run(new_url(f"r{r}_{WAYS.index(w)}"), w, data)
            rates[w].append(rate)
            rollups[w] = rows
    calls = sum(len(s) for s, _ in data)
    assert rollups["none"] == [], "the floor kept a rollup"
    assert sum(row[4] for row in rollups["trigger"]) == 2 * calls, "the trigger missed calls"
    for w in ("batch SQL", "batch Python"):
        assert rollups[w] == rollups["trigger"], f"{w}'s rollup differs from the trigger's"
    floor = statistics.median(rates["none"])
    print(f"\n{label}: {len(data) - 1} timed batches of {len(data[0][0]):,} LLM spans")
    for w in WAYS:
        rate = statistics.median(rates[w])
        print(f"  {w:<13} {rate:10,.0f} spans/s   {floor / rate:5.2f}x the time of none")
    trigger, batch = statistics.median(rates["trigger"]), statistics.median(rates["batch Python"])
    sql = statistics.median(rates["batch SQL"])
    print(
        f"  batch Python: {batch / trigger:.1f}x the trigger's rate, {batch / sql:.2f}x batch SQL's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = batches(args.batches + 1, args.batch)
    home = Path(os.environ["LLMOPS_NB_HOME"])
    measure("SQLite", lambda n: f"sqlite:///{home / n}.db", data, args.rounds)
    server, why = pgserver.start()
    if server is None:
        print(f"\nPostgreSQL skipped: {why}")
        return
    try:
        measure("PostgreSQL", lambda n: server.create_database(f"bench_{n}"), data, args.rounds)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
