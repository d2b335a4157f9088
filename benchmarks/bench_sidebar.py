"""Sidebar API speed over a big store: 100,000 traces, 1,000,000 spans, and an eval run
of 100,000 result rows.

Goals (server time, from the handlers' Server-Timing header, median of many requests):
the first page of traces <= 50 ms; one trace's span tree <= 50 ms; a finished eval
run's view <= 50 ms after its first request (it is computed once per finished run:
the first request's time is printed apart, and the `/changes` poll's time while it runs).
The view aggregates a run's cells in SQL: its time is printed beside `EvalRun.summary()`'s
(every row's scores decoded in Python), after checking both give the same numbers.

Fills a SQLite store through the tracing exporter's own write path
(`Store.record_spans`), starts a real `jupyter server` with the extension, and times
requests over HTTP. `--dir DIR` keeps (and reuses) the store between runs.

    python benchmarks/bench_sidebar.py [--traces 100000] [--spans-per-trace 10] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

GOAL_MS = 50.0
T0_NS = 1_800_000_000 * 10**9


def fill(home: Path, n_traces: int, per_trace: int) -> float:
    """Write the traces and spans as the exporter would, in batches; returns seconds."""
    os.environ["LLMOPS_NB_HOME"] = str(home)
    from llmops_nb.store import get_store
    from llmops_nb.store.traces import TraceDelta

    store = get_store()
    if store.count_traces("default") >= n_traces:
        return 0.0
    rng = random.Random(7)
    names = ["answer", "retrieve_and_answer", "summarize", "classify", "agent_step"]
    started = time.perf_counter()
    batch = 1000
    for first in range(0, n_traces, batch):
        spans: list[dict[str, Any]] = []
        deltas: list[TraceDelta] = []
        for i in range(first, min(n_traces, first + batch)):
            tid = f"{i + 1:032x}"
            start = T0_NS + i * 50_000_000
            failed = rng.random() < 0.05
            root = f"{i + 1:010x}000000"
            for j in range(per_trace):
                sid = root if j == 0 else f"{i + 1:010x}{j:06x}"
                is_llm = j % 3 == 2
                spans.append(
                    {
                        "id": sid,
                        "trace_id": tid,
                        "parent_id": None
                        if j == 0
                        else root
                        if j < 3
                        else f"{i + 1:010x}{j - 1:06x}",
                        "name": names[i % len(names)] if j == 0 else f"step_{j}",
                        "kind": "llm" if is_llm else "chain",
                        "status": "error" if failed and j == 0 else "ok",
                        "error": "boom" if failed and j == 0 else None,
                        "start_ns": start + j * 1_000_000,
                        "end_ns": start + 40_000_000 - j * 1_000_000,
                        "inputs": {"question": f"question {i}"},
                        "outputs": f"answer {i}.{j}" if is_llm else None,
                        "attributes": {"gen_ai.usage.input_tokens": 12} if is_llm else {},
                    }
                )
            deltas.append(
                TraceDelta(
                    id=tid, project="default", name=names[i % len(names)], start_ns=start,
                    end_ns=start + 40_000_000, n_spans=per_trace, input_tokens=40,
                    output_tokens=20, cost=0.0004, error="boom" if failed else None,
                    has_error=failed, root=True, root_error="boom" if failed else None,
                )
            )  # fmt: skip
        store.record_spans(spans, deltas)
    return time.perf_counter() - started


def fill_eval_run(home: Path, n_rows: int) -> tuple[int, float]:
    """A finished 2 prompts x 2 models grid of N_ROWS results (a quarter cache hits),
    with fractional scores on two scorers; returns (run id, seconds)."""
    os.environ["LLMOPS_NB_HOME"] = str(home)
    from llmops_nb.store import get_store

    store = get_store()
    existing = store.latest_eval_run("default", "bench")
    if existing is not None:
        return int(existing.id), 0.0
    started = time.perf_counter()
    prompts, models = ["faq@1", "faq@2"], ["gpt", "local"]
    spec = {
        "prompts": [{"label": p} for p in prompts],
        "models": [{"label": m} for m in models],
        "scorers": [{"name": "exact", "threshold": 1.0}, {"name": "rouge_l", "threshold": 0.5}],
    }
    run = store.create_eval_run("default", "bench", spec=spec, n_cells=n_rows, status="running")
    rng = random.Random(3)
    per_cell = n_rows // 4
    rows: list[dict[str, Any]] = []
    for prompt in prompts:
        for model in models:
            for i in range(per_cell):
                rows.append(
                    {
                        "run_id": run.id, "prompt_ref": prompt, "model": f"openai/{model}",
                        "model_label": model, "row_index": i, "inputs": None,
                        "expected": f"answer {i}", "output": f"answer {i} " + "x" * 200,
                        "error": None,
                        "scores": {"exact": rng.random() < 0.6, "rouge_l": round(rng.random(), 2)},
                        "latency_ms": rng.uniform(50, 500), "input_tokens": 40,
                        "output_tokens": 20, "cost": 0.0004, "cached": i % 4 == 0,
                        "trace_id": f"{i:032x}",
                    }
                )  # fmt: skip
                if len(rows) == 5000:
                    store.add_eval_results(rows)
                    rows = []
    store.add_eval_results(rows)
    from datetime import UTC, datetime

    store.update_eval_run(run.id, status="done", finished_at=datetime.now(UTC))
    return int(run.id), time.perf_counter() - started


def summary_speed(home: Path, run_id: int) -> tuple[float, float]:
    """Seconds for the run's cells aggregated in SQL (what the view uses) and decoded row
    by row in Python (`EvalRun.summary()`), after checking that they agree."""
    os.environ["LLMOPS_NB_HOME"] = str(home)
    from llmops_nb.evals.run import EvalRun
    from llmops_nb.views.evals import summary_rows

    run = EvalRun.load(run_id, project="default")
    started = time.perf_counter()
    in_sql = summary_rows(run)
    sql_s = time.perf_counter() - started
    started = time.perf_counter()
    in_python = list(run.summary().iter_rows(named=True))
    python_s = time.perf_counter() - started
    for a, b in zip(in_sql, in_python, strict=True):
        for key, value in b.items():
            same = a[key] == value or (
                isinstance(value, float) and abs(a[key] - value) <= 1e-12 * abs(value)
            )
            assert same, (key, a[key], value)
    return sql_s, python_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    token, port = secrets.token_hex(16), _free_port()
    cfg = work / "cfg"
    cfg.mkdir(exist_ok=True)
    enabled = {"ServerApp": {"jpserver_extensions": {"llmops_nb": True}}}
    (cfg / "jupyter_server_config.json").write_text(json.dumps(enabled))
    env = dict(os.environ, LLMOPS_NB_HOME=str(home), JUPYTER_CONFIG_DIR=str(cfg))
    env.pop("LLMOPS_NB_STORE", None)
    cmd = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip", "127.0.0.1",
        f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return proc, base, token
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                print((work / "server.log").read_text()[-3000:], file=sys.stderr)
                raise SystemExit("jupyter server did not start") from None
            time.sleep(0.3)


def timed(base: str, token: str, path: str, n: int) -> tuple[list[float], list[float], Any]:
    """n requests: (server ms from Server-Timing, client ms), and the last body."""
    server, client, body = [], [], None
    for _ in range(n):
        request = urllib.request.Request(
            f"{base}/llmops-nb/api/{path}", headers={"Authorization": f"token {token}"}
        )
        t = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            body = json.loads(response.read())
            timing = response.headers["Server-Timing"]
        client.append((time.perf_counter() - t) * 1000)
        total = next(p for p in timing.split(",") if p.strip().startswith("total"))
        server.append(float(total.split("dur=")[1]))
    return server, client, body


def first_eval_view(base: str, token: str, run_id: int) -> tuple[float, float]:
    """Server ms of the first request for the run's view, and a /changes poll's client
    ms sent while that request is being served (does the summary tie up the server?)."""
    result: dict[str, float] = {}

    def view() -> None:
        result["view"] = timed(base, token, f"evals/{run_id}", 1)[0][0]

    worker = threading.Thread(target=view)
    worker.start()
    time.sleep(0.05)
    poll = timed(base, token, "changes", 1)[1][0]
    worker.join()
    return result["view"], poll


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--spans-per-trace", type=int, default=10)
    parser.add_argument("--eval-rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None, help="keep and reuse the store here")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="bench_sidebar_"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    try:
        fill_s = fill(home, args.traces, args.spans_per_trace)
        n_spans = args.traces * args.spans_per_trace
        print(f"store: {args.traces:,} traces, {n_spans:,} spans (SQLite, {home})")
        if fill_s:
            print(f"  filled through Store.record_spans in {fill_s:.1f} s "
                  f"({n_spans / fill_s:,.0f} spans/s)")  # fmt: skip
        run_id, eval_s = fill_eval_run(home, args.eval_rows)
        print(f"eval run #{run_id}: {args.eval_rows:,} result rows" +
              (f" (stored in {eval_s:.1f} s)" if eval_s else ""))  # fmt: skip
        sql_s, python_s = summary_speed(home, run_id)
        print(f"run summary in SQL {sql_s:.2f} s, row by row in Python {python_s:.2f} s "
              f"({python_s / sql_s:.1f}x); the numbers agree")  # fmt: skip
        proc, base, token = start_server(home, work)
        try:
            first_view = first_eval_view(base, token, run_id)
            print(f"{'eval run view, 1st request':28} {first_view[0]:9.2f}ms "
                  f"(the /changes poll meanwhile: {first_view[1]:.2f} ms)")  # fmt: skip
            middle = f"{args.traces // 2:032x}"
            cases = [
                ("first page of traces", "traces?limit=50", True),
                ("page 100 of traces", "traces?limit=50&offset=5000", False),
                ("traces named 'summarize'", "traces?name=summarize", False),
                ("traces with status=error", "traces?status=error", False),
                ("one trace's span tree", f"traces/{middle}", True),
                ("change marker (poll)", "changes", False),
                ("eval run view, again", f"evals/{run_id}", True),
            ]
            failed = False
            print(f"{'request':28} {'server p50':>11} {'p95':>8} {'client p50':>11}  goal")
            for label, path, has_goal in cases:
                timed(base, token, path, 3)  # warm the pool and the page cache
                server, client, body = timed(base, token, path, args.requests)
                med = statistics.median(server)
                verdict = ""
                if has_goal:
                    ok = med <= GOAL_MS
                    failed |= not ok
                    verdict = (
                        f"<= {GOAL_MS:.0f} ms: {'ok' if ok else 'MISSED'} ({med / GOAL_MS:.2f}x)"
                    )
                figures = f"{med:9.2f}ms {p95(server):6.2f}ms {statistics.median(client):9.2f}ms"
                print(f"{label:28} {figures}  {verdict}")
                if path == "traces?limit=50":
                    assert body["total"] == args.traces and len(body["items"]) == 50
                if path.startswith("traces/"):
                    assert body["n_spans"] == args.spans_per_trace and len(body["spans"]) == 1
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
