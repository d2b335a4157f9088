"""Ray Serve against the aiohttp endpoint: the same prompt route in front of the 0 ms test
server, the same client, on one machine.

The test server runs in a child process; the aiohttp endpoint in another (`llmops-nb
serve`); the Ray Serve deployment (`lo.serve(..., executor="ray")`, 2 replicas) on a
local Ray cluster this process starts. Both use one SQLite store and API keys. Printed:
- p50 of one request at a time through each;
- requests/s at concurrency 32 through each, and the ratio;
- how many of the Ray replicas' requests are traces in the store (the goal: none lost).

On one small machine Ray Serve's proxy, replicas and Ray's own processes share the
cores with the client, so this measures its overhead, not what more machines add.

    python benchmarks/bench_ray_serve.py [--sequential 200] [--concurrent 640] [--replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from bench_serving import QUESTION, concurrent, sequential, start_endpoint  # noqa: E402

CONCURRENCY = 32


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=640)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-ray-serve-"))
    os.environ["LLMOPS_NB_HOME"] = str(home)
    os.environ["LLMOPS_NB_STORE"] = store_url = f"sqlite:///{home / 'store.db'}"
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    import ray

    import llmops_nb as lo
    from llmops_nb import config
    from llmops_nb.serving import create_key
    from llmops_nb.testing import spawn

    model_server = spawn(latency_ms=0)
    lo.register_prompt(
        "support_reply", "system:\nYou help with {{product}}.\nuser:\n{{question}}",
        model="openai/gpt-4o-mini", parameters={"api_base": model_server.base_url},
    )  # fmt: skip
    lo.set_alias("support_reply", "production", 1)
    key = create_key("bench").key
    body = {"model": "support", "messages": [{"role": "user", "content": QUESTION}],
            "metadata": {"product": "Acme"}}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}

    endpoint, base = start_endpoint({**os.environ, "LLMOPS_NB_STORE": store_url})
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    config.settings.ray_num_cpus = 0.5  # I/O-bound replicas; leave Ray's scheduler room
    started = time.perf_counter()
    on_ray = lo.serve(
        {"support": "support_reply@production"}, executor="ray", replicas=args.replicas,
        port=0, forward_env=["OPENAI_API_KEY"],
    )  # fmt: skip
    print(f"Ray Serve up in {time.perf_counter() - started:.1f} s: {on_ray!r}")
    try:
        figures = {}
        for label, url in (("aiohttp", base), ("ray serve", on_ray.url)):
            target = f"{url}/chat/completions"
            one_by_one = asyncio.run(sequential(target, body, headers, args.sequential))
            rps = asyncio.run(
                concurrent(
                    target, body, headers, args.concurrent, concurrency=CONCURRENCY, warm=True
                )
            )
            figures[label] = (statistics.median(one_by_one), rps)
        print(f"one at a time ({args.sequential}) p50, and concurrency {CONCURRENCY} "
              f"({args.concurrent} requests):")  # fmt: skip
        for label, (p50, rps) in figures.items():
            print(f"  {label:9s} p50 {p50:7.2f} ms   {rps:8.1f} requests/s")
        ratio = figures["ray serve"][1] / figures["aiohttp"][1]
        print(f"  ray serve / aiohttp: {ratio:.2f}x requests/s ({args.replicas} replicas)")
    finally:
        on_ray.stop()  # the replicas write the traces still queued as they stop
        ray.shutdown()
        endpoint.terminate()
        endpoint.wait(timeout=120)
        model_server.close()

    # per endpoint: 10 warm-up + sequential + CONCURRENCY warm-up + concurrent requests
    sent = 2 * (10 + args.sequential + CONCURRENCY + args.concurrent)
    stored = lo.traces(limit=sent + 100, name="serve").height
    print(f"traces: {stored} stored for {sent} requests to both ({sent - stored} lost)")


if __name__ == "__main__":
    main()
