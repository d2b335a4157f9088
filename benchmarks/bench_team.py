"""A team's PostgreSQL store: write throughput of 8 concurrent kernels, and the sidebar's
first page of traces over millions of spans.

1. Eight processes (kernels) trace calls through the real tracing pipeline into one
   PostgreSQL database at once; prints traces/s and spans/s for the eight together (from
   the common start to the last kernel's flush) and per kernel.
2. A throwaway database filled in SQL with generate_series (10 spans a trace), first at
   1 M spans; at 10 M too when the 1 M fill says 10 M would take under ~5 minutes.
   Prints how long generation took, then the sidebar's queries, as its handler runs them
   (`_trace_page`: a page of 50 latest traces and their count; `change_marker`: the poll),
   and a deep page by OFFSET against the same page by keyset cursor.

Starts its own PostgreSQL server (tests/pgserver.py) on 127.0.0.1, removed at the end.

    python benchmarks/bench_team.py [--kernels 8] [--traces-each 400] [--max-spans 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import pgserver  # noqa: E402

SPANS_PER_TRACE = 10
T0_NS = 1_800_000_000 * 10**9
GENERATION_BUDGET_S = 300.0

KERNEL = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import llmops_nb as lo
    from llmops_nb import tracing

    idx, n, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    lo.prompts()  # the store is open before the start
    with lo.span("warm-up"):
        pass
    tracing.flush()
    Path(f"{go}.ready{idx}").touch()
    while not go.exists():
        time.sleep(0.005)
    started = time.time()

    @lo.trace(name="answer")
    def answer(i):
        with lo.span("retrieve", kind="retriever"):
            pass
        with lo.span("generate", kind="llm") as s:
            s.set_outputs(f"answer {i}")
        return i

    for i in range(n):
        answer(i)
    tracing.flush()
    print(json.dumps({"started": started, "finished": time.time(), "stats": tracing.stats()}))
    """
)


def bench_kernels(server: pgserver.PgServer, kernels: int, traces_each: int, tmp: Path) -> None:
    url = server.create_database("bench_kernels")
    go = tmp / "go"
    procs = []
    for idx in range(kernels):
        env = {**os.environ, "LLMOPS_NB_STORE": url, "LLMOPS_NB_USER": f"user{idx % 3}",
               "LLMOPS_NB_HOME": str(tmp / f"home{idx}")}  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", KERNEL, str(idx), str(traces_each), str(go)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    while not all(Path(f"{go}.ready{i}").exists() for i in range(kernels)):
        if any(p.poll() not in (None, 0) for p in procs):
            sys.exit("a kernel failed to start")
        time.sleep(0.05)
    go_at = time.time()
    go.touch()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["finished"] for r in results) - go_at
    traces = kernels * traces_each
    spans = traces * 3
    dropped = sum(r["stats"]["dropped"] for r in results)
    own = [traces_each / (r["finished"] - r["started"]) for r in results]
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM trace WHERE name = 'answer'")).scalar()
    engine.dispose()
    print(f"[1] {kernels} kernels x {traces_each} traces (3 spans each) into one PostgreSQL store")
    print(f"    all together: {traces / wall:,.0f} traces/s, {spans / wall:,.0f} spans/s "
          f"({wall:.1f} s from start to the last flush)")  # fmt: skip
    print(f"    per kernel: median {statistics.median(own):,.0f} traces/s "
          f"(min {min(own):,.0f}, max {max(own):,.0f})")  # fmt: skip
    print(f"    stored {stored:,} of {traces:,} traces; dropped spans: {dropped}")


def generate(url: str, n_traces: int, first: int) -> float:
    """Add traces FIRST+1..FIRST+N_TRACES with 10 spans each, in SQL; returns seconds."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    started = time.perf_counter()
    step = 100_000
    with engine.begin() as conn:
        for lo_ in range(first + 1, first + n_traces + 1, step):
            hi = min(first + n_traces, lo_ + step - 1)
            params = {"lo": lo_, "hi": hi, "t0": T0_NS}
            conn.execute(
                text(
                    "INSERT INTO trace (id, project_id, name, status, start_ns, end_ns, n_spans, "
                    "input_tokens, output_tokens, cost) "
                    "SELECT lpad(to_hex(g), 32, '0'), 1, "
                    "(ARRAY['answer','retrieve_and_answer','summarize','classify'])[1 + g % 4], "
                    "CASE WHEN g % 20 = 0 THEN 'error' ELSE 'ok' END, "
                    ":t0 + g * 50000000, :t0 + g * 50000000 + 40000000, 10, 30, 60, 0.0001 "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO span (id, trace_id, parent_id, name, kind, status, start_ns, "
                    "end_ns, attributes) "
                    "SELECT lpad(to_hex(g * 16 + k), 16, '0'), lpad(to_hex(g), 32, '0'), "
                    "CASE WHEN k = 0 THEN NULL ELSE lpad(to_hex(g * 16), 16, '0') END, "
                    "CASE WHEN k = 0 THEN 'answer' ELSE 'step' END, "
                    "CASE WHEN k = 9 THEN 'llm' ELSE 'chain' END, 'ok', "
                    ":t0 + g * 50000000 + k * 1000, :t0 + g * 50000000 + k * 1000 + 900, '{}' "
                    "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g, "
                    "generate_series(0, 9) k"
                ),
                params,
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE trace"))
        conn.execute(text("VACUUM ANALYZE span"))
    engine.dispose()
    return time.perf_counter() - started


def timed(fn, repeat: int = 15) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of FN over REPEAT calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_sidebar(url: str, n_spans: int, generation_s: float) -> None:
    os.environ["LLMOPS_NB_STORE"] = url
    from llmops_nb.server.handlers import _trace_page
    from llmops_nb.store import get_store, reset_store

    reset_store()
    store = get_store()
    n_traces = n_spans // SPANS_PER_TRACE
    first_page = timed(lambda: _trace_page("default", 50, 0))
    rows, total = _trace_page("default", 50, 0)
    assert total == n_traces and len(rows) == 50
    list_only = timed(lambda: store.list_traces("default", limit=50))
    count_only = timed(lambda: store.count_traces("default"))
    marker = timed(lambda: store.change_marker("default"))
    depth = n_traces // 2
    by_offset = timed(lambda: store.list_traces("default", limit=50, offset=depth), repeat=5)
    anchor = store.list_traces("default", limit=1, offset=depth - 1)[0]
    cursor = (anchor.start_ns, anchor.id)
    by_cursor = timed(lambda: store.list_traces("default", limit=50, after=cursor))
    same = [t.id for t in store.list_traces("default", limit=50, offset=depth)]
    assert same == [t.id for t in store.list_traces("default", limit=50, after=cursor)]
    print(f"[2] sidebar over {n_spans:,} spans ({n_traces:,} traces) on PostgreSQL "
          f"(generated in SQL in {generation_s:.0f} s)")  # fmt: skip
    print(f"    first page of traces, as the handler runs it: {first_page:.1f} ms "
          f"(the 50 rows {list_only:.1f} ms + the total count {count_only:.1f} ms)")  # fmt: skip
    print(f"    change poll (change_marker): {marker:.1f} ms")
    print(f"    page at depth {depth:,}: OFFSET {by_offset:.1f} ms, keyset cursor "
          f"{by_cursor:.1f} ms ({by_offset / max(by_cursor, 0.001):,.0f}x)")  # fmt: skip
    reset_store()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=8)
    parser.add_argument("--traces-each", type=int, default=400)
    parser.add_argument("--max-spans", type=int, default=10_000_000)
    parser.add_argument("--skip-kernels", action="store_true")
    args = parser.parse_args()
    server, why = pgserver.start()
    if server is None:
        sys.exit(f"PostgreSQL unavailable: {why}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_kernels:
                bench_kernels(server, args.kernels, args.traces_each, Path(tmp))
            url = server.create_database("bench_sidebar")
            from llmops_nb.store import Store

            store = Store(url)  # the schema, migrated as on first open
            store.project_id("default")
            store.close()
            spans = min(1_000_000, args.max_spans)
            took = generate(url, spans // SPANS_PER_TRACE, 0)
            bench_sidebar(url, spans, took)
            if args.max_spans > spans:
                estimate = took * (args.max_spans / spans)
                if estimate > GENERATION_BUDGET_S:
                    print(f"    10 M spans skipped: generating them would take ~{estimate:.0f} s "
                          f"here (1 M took {took:.0f} s)")  # fmt: skip
                else:
                    more = generate(url, (args.max_spans - spans) // SPANS_PER_TRACE,
                                    spans // SPANS_PER_TRACE)  # fmt: skip
                    bench_sidebar(url, args.max_spans, took + more)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
