"""Monitoring speed: `lo.monitor` and `window_stats` over 1,000,000 LLM spans on SQLite.

1. Load. --spans LLM spans (one per trace, 3 models, 2 prompt versions, 5 % errors,
   20 % cache hits, log-normal latency) spread over the last --days days are inserted
   in bulk with SQL (executemany, one transaction), past the span writer, then folded
   into the rollups by the migration's backfill (one grouped upsert per table). Printed:
   the load and backfill rates and the rollup's size. What the rollup costs the span
   writer itself is benchmarks/bench_store.py.
2. Queries, median of --repeat runs after one warm-up: `lo.monitor(since="7d",
   every="1h")` by model and by prompt, `every="1m"` over one day, and
   `window_stats("1h")` / `window_stats("7d")`. Target: lo.monitor ≤ about 0.5 s.
3. Accuracy: p50/p95 of one model over the whole range from the histogram against the
   exact nearest-rank percentiles of the stored spans.

    python benchmarks/bench_monitor.py [--spans 1000000] [--days 7] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench_monitor_")
os.environ.pop("LLMOPS_NB_STORE", None)

MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "local/support-ft")


def span_rows(n: int, start_ns: int, span_ns: int, seed: int = 7) -> tuple[list, list]:
    """N (trace, span) rows: traces first (project 1), then their LLM spans."""
    rng = random.Random(seed)
    traces, spans = [], []
    for i in range(n):
        start = start_ns + rng.randrange(span_ns)
        model = MODELS[i % 3]
        latency_ms = rng.lognormvariate(math.log(300 if i % 3 else 120), 0.5)
        end = start + int(latency_ms * 1e6)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model.split("/")[-1],
            "llmops.model": model,
            "gen_ai.response.model": model.split("/")[-1],
            "gen_ai.usage.input_tokens": rng.randint(20, 400),
            "gen_ai.usage.output_tokens": rng.randint(5, 200),
            "llmops.cost": 0.0001,
            "llmops.prompt.name": "support_reply",
            "llmops.prompt.version": 1 + (i % 2),
        }
        if rng.random() < 0.2:
            attrs["llmops.cached"] = True
        error = rng.random() < 0.05
        trace_id = f"{i:032x}"
        traces.append((trace_id, 1, "chat", "error" if error else "ok", start, end, 1))
        spans.append(
            (
                f"{i:016x}",
                trace_id,
                "chat " + model,
                "llm",
                "error" if error else "ok",
                "boom" if error else None,
                start,
                end,
                json.dumps(attrs),
            )
        )
    return traces, spans


def insert(path: str, traces: list, spans: list) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO trace (id, project_id, name, status, start_ns, end_ns, n_spans, "
        "input_tokens, output_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0)",
        traces,
    )
    conn.executemany(
        "INSERT INTO span (id, trace_id, name, kind, status, error, start_ns, end_ns, "
        "attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        spans,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import llmops_nb as lo
    from llmops_nb.monitoring import window_stats
    from llmops_nb.store import get_store
    from llmops_nb.store.monitoring import backfill_rollup

    store = get_store()
    store.project_id("default")
    path = store.url.split("///", 1)[1]
    store.close()
    now = time.time_ns()
    span_ns = int(args.days * 86400e9)
    # from an hour inside the range to a minute ago: every span is inside since="7d"
    hour, minute = 3600 * 10**9, 60 * 10**9
    print(f"generating {args.spans:,} spans over {args.days:g} days ...", flush=True)
    traces, spans = span_rows(args.spans, now - span_ns + hour, span_ns - hour - minute)

    t_load = insert(path, traces, spans)
    print(f"load: {args.spans:,} spans in {t_load:.1f} s ({args.spans / t_load:,.0f} spans/s)")
    conn = sqlite3.connect(path, isolation_level=None)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for statement in backfill_rollup("sqlite"):
        conn.execute(statement)
    conn.execute("COMMIT")
    t_fold = time.perf_counter() - t0
    conn.close()
    print(f"rollup backfill: {t_fold:.1f} s ({args.spans / t_fold:,.0f} spans/s)")
    conn = sqlite3.connect(path)
    (rollup_rows,) = conn.execute("SELECT count(*) FROM llm_rollup").fetchone()
    (stored,) = conn.execute("SELECT sum(calls) FROM llm_rollup").fetchone()
    print(f"rollup: {rollup_rows:,} rows for {stored:,} calls")

    from llmops_nb.store import reset_store

    reset_store()
    cases = [
        ('lo.monitor(since="7d", every="1h")', lambda: lo.monitor(since="7d", every="1h")),
        (
            'lo.monitor(since="7d", every="1h", by="prompt")',
            lambda: lo.monitor(since="7d", every="1h", by="prompt"),
        ),
        ('lo.monitor(since="1d", every="1m")', lambda: lo.monitor(since="1d", every="1m")),
        ('window_stats("1h")', lambda: window_stats("1h")),
        ('window_stats("7d")', lambda: window_stats("7d")),
    ]
    print(f"\nqueries (median of {args.repeat}):")
    for label, fn in cases:
        seconds, result = timed(fn, args.repeat)
        size = (
            f"{result.height} rows" if hasattr(result, "height") else f"{result['calls']:,} calls"
        )
        verdict = "  (target ≤ 0.5 s)" if label.startswith("lo.monitor") else ""
        print(f"  {label:<48} {seconds * 1000:8.1f} ms   {size}{verdict}")

    model = MODELS[1]
    stats = window_stats("7d", model=model)
    latencies = sorted(
        (end - start) / 1e6
        for (start, end, attrs) in conn.execute("SELECT start_ns, end_ns, attributes FROM span")
        if json.loads(attrs)["llmops.model"] == model
    )
    conn.close()
    exact = {q: latencies[max(1, math.ceil(q * len(latencies))) - 1] for q in (0.5, 0.95)}
    print(f"\naccuracy over {len(latencies):,} calls of {model}:")
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms")):
        err = (stats[key] - exact[q]) / exact[q] * 100
        found = f"{stats[key]:.1f} ms from the histogram"
        print(f"  {key}: {found}, {exact[q]:.1f} ms exact ({err:+.2f} %)")


if __name__ == "__main__":
    main()
