"""Routed-call overhead: `lo.complete("router/NAME", ...)` against a plain `lo.complete`.

Both call the same OpenAI-compatible test server (0 ms latency, in a child process so it
has its own core), in interleaved rounds, on a fresh SQLite store under a temporary
LLMOPS_NB_HOME. The router has two models with history, so each call ranks them from its
cached statistics (refreshed every DECISION_TTL_S seconds), opens the router span and
sets the choice attributes. Printed: the median per-call time of each, the extra
microseconds per routed call, the router's own work timed alone (on a busy machine the
end-to-end difference drowns in the model call's noise), and what one statistics
refresh (the store read every few seconds) costs. Also: a `name@split` pick against a
plain `name@alias` lookup.

    python benchmarks/bench_routing.py [--calls 100] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

KEY = "sk-bench"
MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o")


def per_call_us(fn: Callable[[int], Any], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) * 1e6 / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round and kind")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="bench_routing_")
    os.environ["LLMOPS_NB_HOME"] = home
    os.environ.pop("LLMOPS_NB_STORE", None)

    import llmops_nb as lo
    from llmops_nb import routing, tracing
    from llmops_nb.testing import spawn

    with spawn() as server:
        base = server.base_url
        lo.router("bench", models=[{"model": m, "api_base": base} for m in MODELS])
        for model in MODELS:  # history for both: the router ranks, it does not explore
            for i in range(routing.EXPLORE_CALLS):
                lo.complete(model, f"warm {i}", api_base=base, api_key=KEY, cache=False)
        tracing.flush()
        routing.clear_cache()

        def plain(i: int) -> None:
            lo.complete(MODELS[0], f"plain {i}", api_base=base, api_key=KEY, cache=False, retries=0)

        def routed(i: int) -> None:
            lo.complete("router/bench", f"routed {i}", api_key=KEY, cache=False, retries=0)

        routed(-1)  # the first read of the statistics, outside the timing
        plain_us: list[float] = []
        routed_us: list[float] = []
        for _ in range(args.rounds):
            plain_us.append(per_call_us(plain, args.calls))
            routed_us.append(per_call_us(routed, args.calls))
        r = routing.get_router("bench")

        def routing_only(i: int) -> None:
            """What a routed call adds, without the model call: the choice, the router
            span, the choice attributes and the RoutedCompletion."""
            chosen, plan = routing._route("router/bench")
            with tracing.span(f"router {chosen.name}", kind="router") as outer:
                with tracing.call_attributes(
                    routing._attributes(chosen, plan[0][0], plan[0][1], 0)
                ):
                    pass
                outer.set_attribute("llmops.router.choice", plan[0][0].model)
            routing._routed(lo.Completion(text="", model=plan[0][0].model), chosen, [])

        own_us = statistics.median(per_call_us(routing_only, 2000) for _ in range(5))
        refresh: list[float] = []
        for _ in range(5):
            routing.clear_cache()
            start = time.perf_counter()
            r.ranking()  # reads the statistics again
            refresh.append((time.perf_counter() - start) * 1e6)
        tracing.flush()

        lo.register_prompt("bench_prompt", "user:\nA {{q}}")
        lo.register_prompt("bench_prompt", "user:\nB {{q}}")
        lo.set_alias("bench_prompt", "production", 1)
        lo.set_alias("bench_prompt", "candidate", 2)
        lo.set_split("bench_prompt", {"production": 0.9, "candidate": 0.1})
        alias_us = per_call_us(lambda i: lo.prompt("bench_prompt@production"), 300)
        split_us = per_call_us(lambda i: lo.prompt("bench_prompt@split", key=f"u{i}"), 300)

    p, q = statistics.median(plain_us), statistics.median(routed_us)
    print(f"plain lo.complete          {p:9.0f} µs/call (median of {args.rounds} rounds)")
    print(f"lo.complete('router/...')  {q:9.0f} µs/call")
    print(f"routing overhead           {q - p:9.0f} µs/call ({q / p:.3f}x)")
    print(f"the router's own work      {own_us:9.0f} µs/call (choice, span, attributes; no call)")
    print(f"statistics refresh         {statistics.median(refresh):9.0f} µs "
          f"(once per {routing.DECISION_TTL_S:g} s per router, {len(MODELS)} models)")  # fmt: skip
    print(f"lo.prompt('x@production') {alias_us:9.0f} µs/call")
    print(f"lo.prompt('x@split', key) {split_us:9.0f} µs/call")


if __name__ == "__main__":
    sys.exit(main())
