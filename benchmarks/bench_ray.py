"""A local-model grid of 400 calls on Ray (2 actors, 1 CPU each) against the same grid
in-process (2 torch threads), on the same 2 cores; and what N machines would give.

Both runs store their results in a throwaway SQLite store; the cache is off so every
cell generates. The driver's own cost per cell (render, litellm, tracing, scoring,
store writes) is measured from a third run that the cache answers entirely: it is what
no number of machines takes away.

    python benchmarks/bench_ray.py [--rows 400] [--tokens 16] [--model local/PATH]

RAY_ADDRESS=HOST:PORT runs it on a cluster started apart instead of a new local one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--tokens", type=int, default=16, help="max_tokens per call")
    parser.add_argument("--model", help="a local/ model (default: the tiny test model)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["LLMOPS_NB_HOME"] = str(work / "home")
    import polars as pl
    import ray
    import torch

    import llmops_nb as lo
    from llmops_nb.llm import local

    model = args.model
    if model is None:
        from llmops_nb.testing.tiny_model import build_tiny_model

        model = f"local/{build_tiny_model(work / 'tiny')}"
    lo.register_prompt("echo", "user:\nsay {{word}}", parameters={"max_tokens": args.tokens})
    words = [f"word{i}" for i in range(args.rows)]
    grid = dict(
        prompts=["echo@1"],
        models=[model],
        data=pl.DataFrame({"word": words, "expected": words}),
        scorers=["exact"],
        concurrency=args.concurrency,
        progress=False,
    )

    torch.set_num_threads(2)
    local.load(model.removeprefix("local/"))  # loading is not part of either figure
    start = time.perf_counter()
    here = lo.evaluate(**grid, name="in-process", cache=False)
    in_process_s = time.perf_counter() - start
    local.unload_all()  # the driver holds no model while Ray serves it

    if os.environ.get("RAY_ADDRESS"):  # a 2-CPU cluster started apart (`ray start --head`)
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20,
                 log_to_driver=False)  # fmt: skip
    from llmops_nb.llm import ray_actors

    source = local.resolve(model.removeprefix("local/"))
    start = time.perf_counter()
    with ray_actors.serving([source], actors=2, num_cpus=1, num_gpus=0):
        started_s = time.perf_counter() - start
    start = time.perf_counter()
    there = lo.evaluate(**grid, name="on-ray", cache=False, executor="ray", ray_actors=2)
    ray_s = time.perf_counter() - start
    ray.shutdown()

    lo.evaluate(**grid, name="warm-cache", cache=True)  # fill the cache ...
    start = time.perf_counter()
    lo.evaluate(**grid, name="cache-hits", cache=True)  # ... then every cell is a hit
    driver_ms = (time.perf_counter() - start) / args.rows * 1000

    same = here.results.select("row_index", "output").equals(
        there.results.select("row_index", "output")
    )
    grid_ray_s = ray_s - started_s
    print(
        f"{args.rows} calls of {model} (max_tokens {args.tokens}), concurrency {args.concurrency}"
    )
    rate = args.rows / in_process_s
    print(f"  in-process, 2 threads:        {in_process_s:7.2f} s  ({rate:6.1f} calls/s)")
    print(f"  Ray, 2 actors x 1 CPU:        {ray_s:7.2f} s  ({args.rows / ray_s:6.1f} calls/s), "
          f"of which starting the actors {started_s:.2f} s")  # fmt: skip
    print(f"  ratio in-process / Ray:       {in_process_s / ray_s:7.2f}  "
          f"(without the actors' start: {in_process_s / grid_ray_s:.2f})")  # fmt: skip
    print(f"  same outputs on both:         {same}")
    print(f"  driver's own cost per cell:   {driver_ms:7.2f} ms (a run answered by the cache)")
    generation_s = max(grid_ray_s - args.rows * driver_ms / 1000, 0.0)
    for n in (2, 4, 8):
        projected = max(generation_s / n, args.rows * driver_ms / 1000) + started_s
        print(f"  projected on {n} such machines (ray_actors={2 * n}): {projected:6.2f} s, "
              f"{in_process_s / projected:.1f}x the in-process run")  # fmt: skip
    print(
        "On N machines the generation spreads over N times the actors, so the grid runs up\n"
        "to about N times faster, until the driver's per-cell cost (above) and the actors'\n"
        "start-up bound it; on one 2-core machine Ray only adds its overhead (ratio near 1)."
    )


if __name__ == "__main__":
    main()
