"""Eval grid throughput and memory.

1. 1,000 calls (2 prompts x 2 models x 250 rows) at concurrency 32 against the test
   server at 50 ms latency (a child process, its own core): wall time of `lo.evaluate`
   (rendering, calls, scoring, batched store writes) and its ratio to a bare
   `litellm.acompletion` loop with a semaphore on the same server, in the same run,
   interleaved rounds, best of each. Target: ratio <= 1.05. The bare loop runs both
   with llmops_nb's tracing callback (what any litellm call gets after
   `%load_ext llmops_nb`; the same configuration as the grid) and without it.
2. A 100,000-row result set, in a fresh interpreter: store it, then read `results`,
   `summary()` and the panel data; peak RSS. Target: <= 500 MB.

    python benchmarks/bench_evals.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CALLS_ROWS = 250
CONCURRENCY = 32
LATENCY_MS = 50
from bare_litellm import untraced  # noqa: E402  (beside this script)


def bare_loop(litellm: Any, base_url: str, texts: list[str]) -> float:
    """The baseline: the same 1,000 requests, litellm.acompletion under a semaphore."""

    async def main() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(model: str, text: str) -> str:
            async with sem:
                r = await litellm.acompletion(
                    model=model,
                    messages=[{"role": "user", "content": text}],
                    api_base=base_url,
                    api_key="sk-bench",
                    max_retries=0,
                    num_retries=0,
                )
                return r.choices[0].message.content  # type: ignore[no-any-return]

        await asyncio.gather(
            *(one(m, t) for t in texts for m in ("openai/gpt-4o-mini", "openai/gpt-4o"))
        )

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def acomplete_loop(lo: Any, base_url: str, texts: list[str]) -> float:
    """For diagnosis: the llm layer alone (lo.acomplete under the same semaphore)."""

    async def main() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(model: str, text: str) -> str:
            async with sem:
                c = await lo.acomplete(
                    model,
                    messages=[{"role": "user", "content": text}],
                    api_base=base_url,
                    api_key="sk-bench",
                    cache=False,
                    retries=0,
                )
                return c.text  # type: ignore[no-any-return]

        await asyncio.gather(
            *(one(m, t) for t in texts for m in ("openai/gpt-4o-mini", "openai/gpt-4o"))
        )

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def grid(lo: Any, base_url: str, df: Any, name: str) -> tuple[float, Any]:
    start = time.perf_counter()
    run = lo.evaluate(
        prompts=["bench@1", "bench@2"],
        models=[
            {"model": "openai/gpt-4o-mini", "api_base": base_url, "api_key": "sk-bench"},
            {"model": "openai/gpt-4o", "api_base": base_url, "api_key": "sk-bench"},
        ],
        data=df,
        scorers=[{"contains": {"value": "{{q}}"}}],
        name=name,
        concurrency=CONCURRENCY,
        cache=False,
        retries=0,
        progress=False,
    )
    return time.perf_counter() - start, run


def throughput(rounds: int) -> None:
    import polars as pl

    import llmops_nb as lo
    from llmops_nb.llm import runtime
    from llmops_nb.testing import spawn

    litellm = runtime.litellm()
    lo.register_prompt("bench", "user:\n{{q}}")
    lo.register_prompt("bench", "system:\nBe brief.\nuser:\n{{q}}")
    df = pl.DataFrame({"q": [f"question number {i}" for i in range(CALLS_ROWS)]})
    texts = [f"question number {i}" for i in range(CALLS_ROWS * 2)]  # 2 prompts' worth
    with spawn(latency_ms=LATENCY_MS) as server:
        base = server.base_url
        bare_loop(litellm, base, texts[:64])  # warm up connections and imports
        grid(lo, base, df.head(16), "warmup")
        bare, bare_untraced, ours, layer = [], [], [], []
        cpu: dict[str, list[float]] = {"bare": [], "ours": [], "layer": [], "untraced": []}
        run = None

        def timed(key: str, fn: Any) -> Any:
            c0 = time.process_time()
            out = fn()
            cpu[key].append(time.process_time() - c0)
            return out

        for i in range(rounds):
            bare.append(timed("bare", lambda: bare_loop(litellm, base, texts)))
            t, run = timed("ours", lambda i=i: grid(lo, base, df, f"bench{i}"))
            ours.append(t)
            layer.append(timed("layer", lambda: acomplete_loop(lo, base, texts)))
            with untraced(litellm):
                bare_untraced.append(timed("untraced", lambda: bare_loop(litellm, base, texts)))
        stats = server.stats
    assert run is not None and run.status == "done"
    summary = run.summary()
    errors = int(summary["errors"].sum())
    best_ours, best_bare, best_untraced = min(ours), min(bare), min(bare_untraced)
    print(
        f"grid: 2 prompts x 2 models x {CALLS_ROWS} rows = {run.n_cells} calls, "
        f"concurrency {CONCURRENCY}, server latency {LATENCY_MS} ms"
    )
    print(
        f"  lo.evaluate wall:                {best_ours:6.2f} s  "
        f"({run.n_cells / best_ours:5.0f} calls/s)"
        f"   rounds: {', '.join(f'{t:.2f}' for t in ours)}"
    )
    print(
        f"  bare litellm loop (traced):      {best_bare:6.2f} s   "
        f"rounds: {', '.join(f'{t:.2f}' for t in bare)}"
    )
    print(
        f"  bare litellm loop (untraced):    {best_untraced:6.2f} s   rounds: "
        f"{', '.join(f'{t:.2f}' for t in bare_untraced)}"
    )
    print(
        f"  lo.acomplete loop (llm layer):   {min(layer):6.2f} s   "
        f"rounds: {', '.join(f'{t:.2f}' for t in layer)}"
    )
    ratios = sorted(o / b for o, b in zip(ours, bare, strict=True))
    print(
        f"  ratio vs traced bare loop:       {best_ours / best_bare:6.3f} best/best, "
        f"{statistics.median(ratios):.3f} median of rounds  (target <= 1.05)"
    )
    print(f"  ratio vs untraced bare loop:     {best_ours / best_untraced:6.3f} best/best")
    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"  process CPU per run (median):    grid {med['ours']:.2f} s, "
        f"bare traced {med['bare']:.2f} s, "
        f"lo.acomplete {med['layer']:.2f} s, bare untraced {med['untraced']:.2f} s"
    )
    print(
        f"  CPU ratio grid / bare traced:    {med['ours'] / med['bare']:6.3f};  "
        f"grid / lo.acomplete loop: {med['ours'] / med['layer']:.3f}"
    )
    print(
        f"  results stored: {lo.EvalRun.load(run.id).results.height}, errors: {errors}, "
        f"server requests: {stats.requests}"
    )
    runner_overhead(lo, df)
    print(
        "  floor (calls / concurrency x latency): "
        f"{run.n_cells / CONCURRENCY * LATENCY_MS / 1000:.2f} s"
    )


def runner_overhead(lo: Any, df: Any) -> None:
    """The grid's own cost per call: the same grid with model calls answered instantly."""
    from llmops_nb.llm import client
    from llmops_nb.llm.completion import Completion, Usage

    async def instant(model: str, messages: Any = None, **kwargs: Any) -> Completion:
        text = "echo: " + str(messages[-1]["content"])
        return Completion(text=text, model=model, usage=Usage(10, 5), cost=1e-6, latency_ms=50.0)

    real = client.acomplete
    client.acomplete = instant  # type: ignore[assignment]
    try:
        times = []
        for i in range(3):
            c0 = time.process_time()
            grid(lo, "http://127.0.0.1:9/v1", df, f"overhead{i}")
            times.append(time.process_time() - c0)
    finally:
        client.acomplete = real  # type: ignore[assignment]
    per_call = min(times) / (df.height * 4) * 1e6
    print(
        f"  grid overhead without model calls: {min(times) * 1000:.0f} ms CPU per 1,000 cells "
        f"({per_call:.0f} us a cell: render, score, store)"
    )


MEMORY_CHILD = r"""
import json, os, resource, sys, time
os.environ["LLMOPS_NB_HOME"] = sys.argv[1]
import polars as pl
import llmops_nb as lo
from llmops_nb import datasets
from llmops_nb.store import get_store
N = 100_000
store = get_store()
df = pl.DataFrame({"question": [f"question {i} about the product" for i in range(N)],
                   "answer": [f"answer {i}" for i in range(N)]})
version = datasets.store_frame("big", df)
spec = {"prompts": [{"label": "p@1"}], "models": [{"model": "openai/x", "label": "x"}],
        "scorers": [{"name": "contains", "kind": "contains", "args": {}, "threshold": 1.0},
                    {"name": "rouge_l", "kind": "rouge_l", "args": {}, "threshold": 0.5}],
        "data": {"name": "big", "version": 1}}
run_row = store.create_eval_run("default", "big", spec=spec, dataset_version_id=version.id,
                                n_cells=N)
t0 = time.perf_counter()
for start in range(0, N, 5000):
    store.add_eval_results([{
        "run_id": run_row.id, "prompt_ref": "p@1", "prompt_version_id": None, "model": "openai/x",
        "model_label": "x", "row_index": i,
        "inputs": {"question": f"question {i} about the product",
        "answer": f"answer {i}"}, "expected": f"answer {i}", "output": f"The answer is answer {i}.",
        "error": None, "scores": {"contains": 1.0, "rouge_l": 0.5 + (i % 7) / 20},
        "latency_ms": 50.0 + i % 13,
        "input_tokens": 12, "output_tokens": 6, "cost": 1e-6, "cached": False,
        "trace_id": f"{i:032x}"} for i in range(start, min(N, start + 5000))])
store.update_eval_run(run_row.id, status="done")
write_s = time.perf_counter() - t0
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from llmops_nb.views.evals import eval_view

t0 = time.perf_counter()
run = lo.EvalRun.load(run_row.id)
results = run.results
read_s = time.perf_counter() - t0
t0 = time.perf_counter()
summary = run.summary()
data = eval_view(run)
agg_s = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": results.height, "frame_mb": results.estimated_size("mb"),
                  "write_s": write_s, "read_s": read_s, "agg_s": agg_s,
                  "rss_before_read_mb": rss_before, "peak_rss_mb": peak,
                  "mean_rouge": summary["rouge_l"][0], "cells": len(data["cells"])}))
"""


def memory() -> None:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, home], capture_output=True, text=True, check=False
        )
    if out.returncode != 0:
        print("memory benchmark failed:\n" + out.stderr[-3000:])
        return
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print("100,000-row result set (fresh interpreter, SQLite):")
    print(
        f"  stored in {r['write_s']:.1f} s; results frame {r['rows']:,} rows, "
        f"{r['frame_mb']:.0f} MB, read in {r['read_s']:.2f} s; "
        f"summary + panel data {r['agg_s']:.2f} s"
    )
    print(
        f"  peak RSS {r['peak_rss_mb']:.0f} MB (before reading: {r['rss_before_read_mb']:.0f} MB)"
        f"  (target <= 500 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["LLMOPS_NB_HOME"] = home
        throughput(args.rounds)
    if not args.skip_memory:
        memory()


if __name__ == "__main__":
    main()
