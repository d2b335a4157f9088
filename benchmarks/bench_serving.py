"""Serving overhead: `llmops-nb serve` in front of the 0 ms test server, against calling
the test server directly, with the same HTTP client on the same machine.

The test server runs in a child process, the endpoint in another (`llmops-nb serve`,
a prompt route over a SQLite store, API keys on), the client here (aiohttp). Printed:
- p50/p95 of one request at a time, direct, through the endpoint, and the added latency
  (the endpoint's percentile minus the direct one); beside them `lo.acomplete` called in
  this process, the model-call layer the endpoint's own overhead sits on;
- requests/s at concurrency 64, direct and through the endpoint;
- the endpoint's RSS after the concurrent run, and how many of its requests are traces
  in the store once it has written them (the goal: none lost).

    python benchmarks/bench_serving.py [--sequential 300] [--concurrent 1280]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONCURRENCY = 64
QUESTION = "How do I reset my password?"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_endpoint(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_nb.cli", "serve", "--port", "0",
         "--route", "support=support_reply@production"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("serving http://"):
                return proc, line.split()[1]
        if proc.poll() is not None:
            raise SystemExit(f"the endpoint did not start: {proc.stderr.read()}")  # type: ignore[union-attr]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one(session: Any, url: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    start = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}: {await response.text()}")
    return (time.perf_counter() - start) * 1000


async def sequential(
    url: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> list[float]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(10):  # warm the connection and both servers
            await one(session, url, body, headers)
        return [await one(session, url, body, headers) for _ in range(n)]


async def concurrent(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    n: int,
    *,
    concurrency: int = CONCURRENCY,
    warm: bool = False,
) -> float:
    """Requests per second with CONCURRENCY requests in flight; WARM opens every
    connection first (so each of several replicas has answered before the clock starts)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(concurrency if warm else 0):
            await one(session, url, body, headers)
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await one(session, url, body, headers)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


async def in_process(model_server: Any, messages: list[dict[str, Any]], n: int) -> list[float]:
    """`lo.acomplete` in this process: what the endpoint's model call costs by itself."""
    import llmops_nb as lo

    async def call() -> float:
        start = time.perf_counter()
        await lo.acomplete("openai/gpt-4o-mini", messages=messages, api_base=model_server.base_url,
                           api_key="sk-bench", cache=False)  # fmt: skip
        return (time.perf_counter() - start) * 1000

    for _ in range(10):
        await call()
    return [await call() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=1280)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ["LLMOPS_NB_HOME"] = str(home)
    os.environ["LLMOPS_NB_STORE"] = store_url = f"sqlite:///{home / 'store.db'}"
    import llmops_nb as lo
    from llmops_nb.serving import create_key
    from llmops_nb.testing import spawn

    model_server = spawn(latency_ms=0)
    lo.register_prompt(
        "support_reply", "system:\nYou help with {{product}}.\nuser:\n{{question}}",
        model="openai/gpt-4o-mini", parameters={"api_base": model_server.base_url},
    )  # fmt: skip
    lo.set_alias("support_reply", "production", 1)
    key = create_key("bench").key
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "LLMOPS_NB_STORE": store_url}
    endpoint, base = start_endpoint(env)
    try:
        served_url = f"{base}/chat/completions"
        served_body = {"model": "support", "messages": [{"role": "user", "content": QUESTION}],
                       "metadata": {"product": "Acme"}}  # fmt: skip
        served_headers = {"Authorization": f"Bearer {key}"}
        direct_url = f"{model_server.base_url}/chat/completions"
        direct_body = {
            "model": "gpt-4o-mini",
            "messages": lo.prompt("support_reply@production").render(
                product="Acme", question=QUESTION
            ),
        }
        direct_headers = {"Authorization": "Bearer sk-bench"}

        direct = asyncio.run(sequential(direct_url, direct_body, direct_headers, args.sequential))
        served = asyncio.run(sequential(served_url, served_body, served_headers, args.sequential))
        called = asyncio.run(in_process(model_server, direct_body["messages"], args.sequential))
        print(f"one at a time, {args.sequential} requests (ms):")
        for label, values in (("direct", direct), ("acomplete", called), ("served", served)):
            p50, p95 = statistics.median(values), percentile(values, 0.95)
            print(f"  {label:9s} p50 {p50:7.2f}   p95 {p95:7.2f}")
        print(
            f"  added     p50 {statistics.median(served) - statistics.median(direct):7.2f}   "
            f"p95 {percentile(served, 0.95) - percentile(direct, 0.95):7.2f}"
        )

        direct_rps = asyncio.run(
            concurrent(direct_url, direct_body, direct_headers, args.concurrent)
        )
        served_rps = asyncio.run(
            concurrent(served_url, served_body, served_headers, args.concurrent)
        )
        print(f"concurrency {CONCURRENCY}, {args.concurrent} requests:")
        print(f"  direct {direct_rps:8.1f} requests/s")
        print(f"  served {served_rps:8.1f} requests/s ({served_rps / direct_rps:.2f}x direct)")
        print(f"  endpoint RSS {rss_mb(endpoint.pid):.0f} MB")
    finally:
        endpoint.terminate()  # it writes the traces still queued as it stops
        endpoint.wait(timeout=120)
        model_server.close()

    sent = 10 + args.sequential + args.concurrent  # the warm-up requests are traces too
    stored = lo.traces(limit=sent + 100, name="serve").height
    print(f"traces: {stored} stored for {sent} requests ({sent - stored} lost)")


if __name__ == "__main__":
    main()
