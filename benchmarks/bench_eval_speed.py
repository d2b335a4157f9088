"""Eval grids at the I/O limit (issue 14): the figures, side by side, in one run.

1. In process: `lo.evaluate` on 2 prompts x 2 models x 250 rows, one `contains` each,
   concurrency 32, cache off, against the test server at 50 ms (a child process): wall
   time and its share of the ideal (1,000 x 0.05 s / 32 = 1.56 s). Beside it, in the same
   run, a naive `litellm.acompletion` loop under a semaphore on the same server.
2. Whole process: `llmops-nb eval` on the equivalent promptfoo config file (wall, and
   from the process start to its first request), and `promptfoo eval` on the same file
   when npm can install promptfoo into .cache/ (else the reason is printed).
3. 10,000 calls (2 x 2 x 2,500) at concurrency 256 against a 0 ms server, in a fresh
   process: calls/s and peak RSS.
4. Per-call costs: `@lo.trace` on a no-op against a bare OpenTelemetry span with the SDK's
   BatchSpanProcessor, and a traced `lo.complete` against the same call with its LLM
   span taken out (0 ms server, serial).

Targets are printed, not asserted.

    python benchmarks/bench_eval_speed.py [--rounds 2] [--skip-promptfoo]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench_eval_speed_")
os.environ.pop("LLMOPS_NB_STORE", None)
os.environ.pop("LLMOPS_NB_OTLP_ENDPOINT", None)

ROWS, CONCURRENCY, LATENCY_MS = 250, 32, 50
IDEAL = 2 * 2 * ROWS * LATENCY_MS / 1000 / CONCURRENCY
MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o")
PROMPTFOO_VERSION = "0.121"
CACHE = ROOT / ".cache" / "promptfoo"

rows_out: list[tuple[str, str, str]] = []  # (figure, value, target)


def report(figure: str, value: str, target: str = "") -> None:
    rows_out.append((figure, value, target))
    print(f"  {figure:<52} {value:>14}   {target}", flush=True)


# --- 1. in process ---------------------------------------------------------------------


def grid(lo: Any, base_url: str, df: Any, name: str, concurrency: int = CONCURRENCY) -> float:
    start = time.perf_counter()
    run = lo.evaluate(
        prompts=[{"label": "p1", "template": "user:\n{{q}}"},
                 {"label": "p2", "template": "system:\nBe brief.\nuser:\n{{q}}"}],
        models=[{"model": m, "api_base": base_url, "api_key": "sk-bench"} for m in MODELS],
        data=df, scorers=[{"contains": {"value": "{{q}}"}}], name=name,
        concurrency=concurrency, cache=False, progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    assert run.status == "done", run.status
    return wall


def naive_litellm(base_url: str, texts: list[str]) -> float:
    """The baseline the issue names: litellm.acompletion under a semaphore, nothing else."""
    import litellm

    litellm.suppress_debug_info = True

    async def main() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(model: str, text: str) -> None:
            async with sem:
                r = await litellm.acompletion(
                    model=model, messages=[{"role": "user", "content": text}],
                    api_base=base_url, api_key="sk-bench", max_retries=0, num_retries=0,
                )  # fmt: skip
                assert text in r.choices[0].message.content

        await asyncio.gather(*(one(m, t) for t in texts for m in MODELS))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def in_process(rounds: int) -> float:
    import polars as pl
    from bare_litellm import untraced

    import llmops_nb as lo
    from llmops_nb.llm import runtime
    from llmops_nb.testing import spawn

    df = pl.DataFrame({"q": [f"question number {i}" for i in range(ROWS)]})
    texts = [f"question number {i}" for i in range(2 * ROWS)]  # 1,000 calls, 2 models
    litellm = runtime.litellm()
    with spawn(latency_ms=LATENCY_MS) as server:
        grid(lo, server.base_url, df.head(16), "warmup")
        naive_litellm(server.base_url, texts[:64])
        ours, naive = [], []
        for i in range(rounds):
            ours.append(grid(lo, server.base_url, df, f"grid{i}"))
            with untraced(litellm):
                naive.append(naive_litellm(server.base_url, texts))
    best = min(ours)
    print(f"1. in process: 2 prompts x 2 models x {ROWS} rows, concurrency {CONCURRENCY}, "
          f"{LATENCY_MS} ms server; ideal {IDEAL:.2f} s")  # fmt: skip
    report("lo.evaluate wall (best of rounds)", f"{best:.2f} s", "target <= 2.0 s")
    report("  share of the ideal", f"{IDEAL / best:.2f}", "target >= 0.78")
    report("  rounds", ", ".join(f"{t:.2f}" for t in ours))
    report("naive litellm.acompletion loop", f"{min(naive):.2f} s")
    report("  share of the ideal", f"{IDEAL / min(naive):.2f}")
    report("ratio naive loop / lo.evaluate", f"{min(naive) / best:.2f}x", "(> 1: we are faster)")
    return best


# --- 2. whole process ------------------------------------------------------------------


def promptfoo_config(base_url: str, folder: Path) -> Path:
    provider = {"config": {"apiBaseUrl": base_url, "apiKey": "sk-bench"}}
    config = {
        "description": "bench",
        "prompts": ["{{q}}", "Be brief. {{q}}"],
        "providers": [{"id": f"openai:chat:{m.split('/')[1]}", **provider} for m in MODELS],
        "tests": [
            {
                "vars": {"q": f"question number {i}"},
                "assert": [{"type": "contains", "value": "{{q}}"}],
            }
            for i in range(ROWS)
        ],
    }
    path = folder / "promptfooconfig.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def stamped_server() -> tuple[Any, list[float]]:
    """The test server in this process, noting when each run's first request arrives."""
    from llmops_nb.testing import OpenAIServer

    server = OpenAIServer(latency_ms=LATENCY_MS)
    first: list[float] = []
    chat = server._app.chat

    async def stamped(request: Any) -> Any:
        if not first:
            first.append(time.time())
        return await chat(request)

    server._app.chat = stamped  # type: ignore[method-assign]
    return server.start(), first


def timed_process(
    cmd: list[str], env: dict[str, str], first: list[float], cwd: Path
) -> tuple[float, float | None, str]:
    first.clear()
    started = time.time()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.time() - started
    to_first = first[0] - started if first else None
    tail = "" if out.returncode == 0 else (out.stderr or out.stdout)[-600:]
    return wall, to_first, tail


def whole_process(skip_promptfoo: bool) -> None:
    server, first = stamped_server()
    try:
        _whole_process(server, first, skip_promptfoo)
    finally:
        server.close()


def _whole_process(server: Any, first: list[float], skip_promptfoo: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_pf_"))
    config = promptfoo_config(server.base_url, folder)
    env = {**os.environ, "LLMOPS_NB_HOME": str(folder / "home")}
    cli = [sys.executable, "-m", "llmops_nb.cli", "eval", str(config), "--no-cache",
           "--concurrency", str(CONCURRENCY)]  # fmt: skip
    print(f"2. whole process, the same grid from a promptfoo config ({config.name})")
    timed_process(cli, env, first, folder)  # warm the OS's file cache
    walls, firsts = [], []
    for _ in range(2):
        wall, to_first, error = timed_process(cli, env, first, folder)
        if error:
            print("   llmops-nb eval failed:\n" + error)
            return
        walls.append(wall)
        firsts.append(to_first or float("nan"))
    ours = min(walls)
    report("llmops-nb eval, whole process", f"{ours:.2f} s", "target <= ~3.0 s")
    report("  process start -> first request", f"{min(firsts):.2f} s", "target < 1.5 s")
    wall, to_first, error = timed_process(cli, {**env, "LLMOPS_NB_FAST_PATH": "0"}, first, folder)
    if not error:
        report("  the same through litellm (LLMOPS_NB_FAST_PATH=0)", f"{wall:.2f} s")
        report("    process start -> first request", f"{to_first or float('nan'):.2f} s")
    if skip_promptfoo:
        print("   promptfoo: skipped (--skip-promptfoo)")
        return
    binary, why = install_promptfoo()
    if binary is None:
        print(f"   promptfoo: not timed: {why}")
        return
    pf_env = {**env, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
              "PROMPTFOO_CONFIG_DIR": str(folder / "pf"), "OPENAI_API_KEY": "sk-bench"}  # fmt: skip
    cmd = [binary, "eval", "-c", str(config), "--no-cache", "-j", str(CONCURRENCY),
           "--no-progress-bar", "--no-table", "--no-write"]  # fmt: skip
    timed_process(cmd, pf_env, first, folder)
    wall, to_first, error = timed_process(cmd, pf_env, first, folder)
    if error and first == []:
        print("   promptfoo eval failed:\n" + error)
        return
    report(f"promptfoo eval ({why}), whole process", f"{wall:.2f} s")
    report("  process start -> first request", f"{to_first or float('nan'):.2f} s")
    report("ratio promptfoo / llmops-nb eval", f"{wall / ours:.2f}x", "issue: >= 3x")


def install_promptfoo() -> tuple[str | None, str]:
    """promptfoo's binary under .cache/promptfoo (npm install once), or why there is none."""
    binary = CACHE / "node_modules" / ".bin" / "promptfoo"
    if not binary.exists():
        if shutil.which("npm") is None:
            return None, "npm is not installed"
        CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), f"promptfoo@{PROMPTFOO_VERSION}",
             "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        if out.returncode != 0 or not binary.exists():
            return None, f"npm install failed: {(out.stderr or out.stdout).strip()[-300:]}"
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()  # fmt: skip
    return str(binary), f"{version or PROMPTFOO_VERSION}"


# --- 3. 10,000 calls -------------------------------------------------------------------

TEN_K_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[2])
import polars as pl
import llmops_nb as lo
rows = int(os.environ.get("BENCH_ROWS", "2500"))
df = pl.DataFrame({"q": [f"question number {i}" for i in range(rows)]})
base = sys.argv[1]
run = lambda d, n: lo.evaluate(
    prompts=[{"label": "p1", "template": "user:\n{{q}}"},
             {"label": "p2", "template": "system:\nBe brief.\nuser:\n{{q}}"}],
    models=[{"model": m, "api_base": base, "api_key": "sk-bench"}
            for m in ("openai/gpt-4o-mini", "openai/gpt-4o")],
    data=d, scorers=[{"contains": {"value": "{{q}}"}}], name=n, concurrency=256,
    cache=False, progress=False)
run(df.head(64), "warm")
if os.environ.get("BENCH_PROFILE"):  # the grid's loop runs in a thread of its own
    import asyncio, cProfile, pstats
    prof, run_loop = cProfile.Profile(), asyncio.run
    def profiled(main):
        prof.enable()
        try:
            return run_loop(main)
        finally:
            prof.disable()
    asyncio.run = profiled  # this child process only
t0 = time.perf_counter(); c0 = time.process_time()
r = run(df, "ten_k")
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
if os.environ.get("BENCH_PROFILE"):
    stats = pstats.Stats(prof, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(45)
    stats.sort_stats("cumulative").print_stats(60)
lo.tracing.flush()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cells": r.n_cells, "status": r.status, "wall": wall, "cpu": cpu,
                  "errors": int(r.summary()["errors"].sum()), "peak_mb": peak,
                  "spans": lo.tracing.stats()["stored"]}))
"""


def ten_k() -> None:
    from llmops_nb.testing import spawn

    with spawn(latency_ms=0) as server:
        out = subprocess.run([sys.executable, "-c", TEN_K_CHILD, server.base_url, str(ROOT)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        print("3. 10,000 calls: failed\n" + out.stderr[-2000:])
        return
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print("3. 10,000 calls (2 x 2 x 2,500) at concurrency 256, 0 ms server, fresh process")
    report("calls/s", f"{r['cells'] / r['wall']:,.0f}", "target >= 1,500")
    report("  wall, process CPU", f"{r['wall']:.2f} s, {r['cpu']:.2f} s")
    report("  CPU per call", f"{r['cpu'] / r['cells'] * 1e6:.0f} us")
    report("peak RSS", f"{r['peak_mb']:.0f} MB", "target < 400 MB")
    report("  status, errors, spans stored", f"{r['status']}, {r['errors']}, {r['spans']}")


# --- 4. per-call costs -----------------------------------------------------------------


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def trace_cost(calls: int = 2000, rounds: int = 15) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import llmops_nb as lo
    from llmops_nb import tracing

    class Nothing(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nothing()))
    tracer = provider.get_tracer("bench")

    def bare() -> None:
        with tracer.start_as_current_span("noop"):
            pass

    @lo.trace
    def noop() -> None:
        return None

    noop()
    tracing.flush()
    bare_us, ours_us = [], []
    for _ in range(rounds):
        bare_us.append(per_call_us(bare, calls))
        ours_us.append(per_call_us(noop, calls))
        tracing.flush()
    b, o = statistics.median(bare_us), statistics.median(ours_us)
    print("4. per-call costs")
    report("bare OpenTelemetry span (BatchSpanProcessor)", f"{b:.1f} us")
    report("@lo.trace on a no-op", f"{o:.1f} us")
    report("  ratio", f"{o / b:.2f}x", "target <= 1.3x")
    provider.shutdown()


def complete_cost(calls: int = 300, rounds: int = 5) -> None:
    import llmops_nb as lo
    from llmops_nb import tracing
    from llmops_nb.llm import openai_wire
    from llmops_nb.testing import spawn

    def no_span(*args: Any, **kwargs: Any) -> str:
        return ""

    with spawn(latency_ms=0) as server:

        def one() -> None:
            lo.complete(MODELS[0], "hi", api_base=server.base_url, api_key="sk-bench",
                        cache=False, retries=0)  # fmt: skip

        one()
        traced, untraced = [], []
        real = (openai_wire.tracing.start_call_span, openai_wire.tracing.end_call_span)
        for _ in range(rounds):
            traced.append(per_call_us(one, calls))
            tracing.flush()
            openai_wire.tracing = _Untraced(no_span)  # type: ignore[assignment]
            try:
                untraced.append(per_call_us(one, calls))
            finally:
                openai_wire.tracing = tracing
        del real
    t, u = statistics.median(traced), statistics.median(untraced)
    report("lo.complete (sync, 0 ms server), untraced", f"{u / 1000:.3f} ms")
    report("lo.complete, traced (its LLM span stored)", f"{t / 1000:.3f} ms")
    report("  traced - untraced", f"{(t - u) / 1000:+.3f} ms", "target <= +0.5 ms")


class _Untraced:
    """tracing, with the call span's start and end made no-ops (for the comparison)."""

    def __init__(self, no_span: Callable[..., Any]) -> None:
        from llmops_nb import tracing

        self._tracing = tracing
        self.start_call_span = no_span
        self.end_call_span = no_span

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracing, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-promptfoo", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    in_process(args.rounds)
    whole_process(args.skip_promptfoo)
    ten_k()
    trace_cost()
    complete_cost()
    print("\nsummary")
    for figure, value, target in rows_out:
        print(f"| {figure.strip():<50} | {value:>14} | {target} |")


if __name__ == "__main__":
    main()
