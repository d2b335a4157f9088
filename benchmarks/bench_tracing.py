"""Tracing cost: `@lo.trace` per call against a bare OpenTelemetry SDK span, and how fast
ended spans are persisted into SQLite.

1. Hot path. The same two-argument function, called in interleaved rounds of --calls:
   plain, inside a bare SDK span (`tracer.start_as_current_span` on a TracerProvider with
   no processor, and with the SDK's BatchSpanProcessor and a no-op exporter), and
   decorated with `@lo.trace` (inputs and outputs recorded). The background writer is
   held during a round and flushed between rounds, outside the timing, so the figure is
   what the caller pays: the median (and best) per-call time over rounds.
   Target: @lo.trace ≤ 1.5× the bare SDK span. Also printed: the sustained cost per
   call with the writer storing every span as it goes (hot path + persistence).
2. Persistence. --spans spans (traces of 10: a root and 9 children) are queued while the
   writer is held, then written: spans/s from the queue into SQLite (row conversion,
   trace totals, the insert). Also the raw `Store.record_spans` insert rate.
   Target: ≥ 20,000 spans/s.
3. Burst. --burst spans (`@lo.trace` calls, as fast as a loop makes them) in a fresh
   process: peak RSS, spans stored and dropped, the queue's high-water mark. Before the
   bounded queue, 1,000,000 spans queued 828,348 and took 2.66 GB.

    python benchmarks/bench_tracing.py [--calls 500] [--rounds 40] [--spans 20000]
        [--burst 1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench_tracing_")
os.environ.pop("LLMOPS_NB_STORE", None)
os.environ.pop("LLMOPS_NB_OTLP_ENDPOINT", None)

import llmops_nb as lo  # noqa: E402
from llmops_nb import tracing  # noqa: E402


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def hot_path(calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class NoExport(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    bare = TracerProvider().get_tracer("bench")
    batched_provider = TracerProvider()
    batched_provider.add_span_processor(BatchSpanProcessor(NoExport(), max_queue_size=1 << 20))
    batched = batched_provider.get_tracer("bench")

    def work(question: str, k: int = 3) -> str:
        return question[:k]

    traced = lo.trace(work)

    def sdk_span() -> None:
        with bare.start_as_current_span("work"):
            work("hello", 2)

    def sdk_batched() -> None:
        with batched.start_as_current_span("work"):
            work("hello", 2)

    variants: dict[str, Callable[[], Any]] = {
        "plain call": lambda: work("hello", 2),
        "bare SDK span": sdk_span,
        "SDK span + BatchSpanProcessor": sdk_batched,
        "@lo.trace": lambda: traced("hello", 2),
    }
    for fn in variants.values():  # warm up: the pipeline starts, code paths are hot
        per_call_us(fn, 200)
    tracing.flush()
    writer = tracing.pipeline.current().processor.write_lock  # type: ignore[union-attr]
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            with writer:  # the writer's work is measured in sustained() and persistence()
                samples[name].append(per_call_us(fn, calls))
            tracing.flush()
            batched_provider.force_flush()
    return {name: (statistics.median(v), min(v)) for name, v in samples.items()}


def sustained(calls: int) -> float:
    """µs per @lo.trace call with the writer running alongside, final flush included."""

    @lo.trace
    def work(question: str, k: int = 3) -> str:
        return question[:k]

    work("warm", 1)
    tracing.flush()
    start = time.perf_counter()
    for _ in range(calls):
        work("hello", 2)
    tracing.flush()
    return (time.perf_counter() - start) / calls * 1e6


def persistence(n_spans: int) -> tuple[float, float]:
    from llmops_nb.store import get_store
    from llmops_nb.store.traces import TraceDelta

    @lo.trace(kind="tool")
    def step(i: int) -> dict[str, Any]:
        return {"i": i, "text": "some output text of a realistic length " * 2}

    @lo.trace(name="request")
    def request(question: str) -> str:
        for i in range(9):
            step(i)
        return "done"

    request("warm up")
    tracing.flush()
    processor = tracing.pipeline.current().processor  # type: ignore[union-attr]
    store = get_store()
    with store.session() as s:  # noqa: F841 - opens the database before timing
        pass
    with processor.write_lock:  # hold the writer: queue every span first
        for i in range(n_spans // 10):
            request(f"question {i}")
        queued = len(processor.queue)
        start = time.perf_counter()
    tracing.flush()
    pipeline_rate = queued / (time.perf_counter() - start)

    # the raw insert, on rows like the ones the writer makes
    now = time.time_ns()
    rows = [
        {
            "id": f"{i + 1:016x}",
            "trace_id": f"{i // 10 + 1:032x}",
            "parent_id": None if i % 10 == 0 else f"{i - i % 10 + 1:016x}",
            "name": "step",
            "kind": "tool",
            "status": "ok",
            "error": None,
            "start_ns": now + i,
            "end_ns": now + i + 1000,
            "inputs": {"i": i},
            "outputs": {"i": i, "text": "some output text"},
            "attributes": {},
        }
        for i in range(n_spans)
    ]
    start = time.perf_counter()
    for b in range(0, n_spans, 2000):
        batch = rows[b : b + 2000]
        deltas = [
            TraceDelta(
                id=f"{t + 1:032x}",
                project="default",
                name="bench",
                start_ns=now,
                end_ns=now + 1000,
                n_spans=10,
                root=True,
            )
            for t in range(b // 10, (b + len(batch)) // 10)
        ]
        store.record_spans(batch, deltas)
    insert_rate = n_spans / (time.perf_counter() - start)
    return pipeline_rate, insert_rate


def burst(n: int) -> None:
    """N traced calls in a tight loop (run in a process of its own, for a clean peak RSS)."""
    from llmops_nb.store import get_store

    @lo.trace
    def step(i: int) -> int:
        return i

    step(-1)
    tracing.flush()
    processor = tracing.pipeline.current().processor  # type: ignore[union-attr]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    high_water = 0
    start = time.perf_counter()
    for i in range(n):
        step(i)
        if i % 1000 == 0:
            high_water = max(high_water, len(processor.queue))
    made = time.perf_counter() - start
    tracing.flush()
    total = time.perf_counter() - start
    stats = tracing.stats()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stored = get_store().count_traces("default", name="step") - 1
    print(f"  burst of {n:,} spans: made in {made:.1f} s, stored in {total:.1f} s")
    print(f"    stored {stored:,}, dropped {stats['dropped']:,}, queue high-water {high_water:,}")
    print(f"    peak RSS {rss:,.0f} MB ({rss - rss_before:+,.0f} MB over the warm process)")
    tracing.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--burst-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.burst_only:
        burst(args.burst)
        return

    print(f"tracing benchmark: {args.rounds} rounds of {args.calls} calls, {args.spans} spans")
    figures = hot_path(args.calls, args.rounds)
    print(f"  {'':<32} {'median':>8} {'best':>8}  µs/call")
    for name, (median, best) in figures.items():
        print(f"  {name:<32} {median:8.2f} {best:8.2f}")

    def ratio(a: str, b: str, i: int) -> float:
        return figures[a][i] / figures[b][i]

    bare = ratio("@lo.trace", "bare SDK span", 0)
    print(
        f"  @lo.trace / bare SDK span:                 {bare:.2f}x median, "
        f"{ratio('@lo.trace', 'bare SDK span', 1):.2f}x best  "
        f"(target ≤ 1.5x: {'met' if bare <= 1.5 else 'MISSED'})"
    )
    print(
        "  @lo.trace / SDK span + BatchSpanProcessor: "
        f"{ratio('@lo.trace', 'SDK span + BatchSpanProcessor', 0):.2f}x median, "
        f"{ratio('@lo.trace', 'SDK span + BatchSpanProcessor', 1):.2f}x best"
    )

    print(
        f"  @lo.trace sustained, storing every span as it goes: {sustained(args.spans):.2f} µs/call"
    )
    pipeline_rate, insert_rate = persistence(args.spans)
    print(
        f"  span persistence, queue -> SQLite:  {pipeline_rate:10,.0f} spans/s  "
        f"(target ≥ 20,000: {'met' if pipeline_rate >= 20_000 else 'MISSED'})"
    )
    print(f"  Store.record_spans insert alone:    {insert_rate:10,.0f} spans/s")
    tracing.shutdown()
    if args.burst:
        sys.stdout.flush()
        subprocess.run(
            [sys.executable, __file__, "--burst-only", "--burst", str(args.burst)], check=True
        )


if __name__ == "__main__":
    main()
