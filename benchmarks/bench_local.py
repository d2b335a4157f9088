"""`local/smollm2` on CPU: the first load (the one-time GGUF conversion), later loads, and
greedy generation tokens/s at batch 1 and batched (8 concurrent requests, one generate()).

Each load runs in a fresh Python process, so nothing is cached in memory; the figure is the
time of `local.load("smollm2")` after torch and transformers' Auto classes are imported
(their import time is printed apart).
The first load converts into a temporary models dir, so your own copy is untouched.

    python benchmarks/bench_local.py [--later 3] [--tokens 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import wait

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS = [
    "Write a short story about a cat who learns to sail.",
    "Explain how a rainbow forms, for a ten-year-old.",
    "Describe a busy market in the morning.",
    "Give advice to someone starting to learn the piano.",
    "Write a letter to a friend about a trip to the mountains.",
    "Explain why the sky is blue.",
    "Describe your favourite meal and how to cook it.",
    "Tell the story of a lighthouse keeper on a stormy night.",
]

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401  (lazy otherwise)
torch.set_num_threads(int(sys.argv[1]))
from llmops_nb.llm import local
t1 = time.perf_counter()
local.load("smollm2")
t2 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "load_s": t2 - t1}))
"""


def timed_load(models_dir: str, threads: int) -> dict[str, float]:
    """One load of local/smollm2 in a fresh process whose converted copies live in MODELS_DIR."""
    env = {**os.environ, "LLMOPS_NB_MODELS_CACHE": models_dir}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def tokens_per_s(model, params, prompts: list[str]) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    """Submit every prompt at once (the worker batches them); (tokens/s, tokens, seconds)."""
    start = time.perf_counter()
    futures = [model.submit([{"role": "user", "content": p}], params) for p in prompts]
    wait(futures)
    seconds = time.perf_counter() - start
    tokens = sum(f.result().completion_tokens for f in futures)
    return tokens / seconds, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--later", type=int, default=3, help="later loads to time")
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per request")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=2, help="generation rounds (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-local-") as models_dir:
        first = timed_load(models_dir, args.threads)
        print(
            f"first load (GGUF -> safetensors conversion + load): {first['load_s']:.1f} s "
            f"(imports {first['imports_s']:.1f} s, apart)"
        )
        later = [timed_load(models_dir, args.threads) for _ in range(args.later)]
        loads = [r["load_s"] for r in later]
        print(
            f"later loads: median {statistics.median(loads):.2f} s, "
            f"min {min(loads):.2f} s over {len(loads)} fresh processes "
            f"(imports {statistics.median(r['imports_s'] for r in later):.1f} s, apart); "
            f"first/later = {first['load_s'] / statistics.median(loads):.0f}x"
        )

        import torch

        torch.set_num_threads(args.threads)
        os.environ["LLMOPS_NB_MODELS_CACHE"] = models_dir
        from llmops_nb.llm import local
        from llmops_nb.llm.local_model import GenParams

        model = local.load("smollm2")
        params = GenParams(max_tokens=args.tokens)
        tokens_per_s(model, GenParams(max_tokens=4), PROMPTS[:1])  # warm-up
        single, batched = [], []
        for _ in range(args.rounds):
            single.append(tokens_per_s(model, params, PROMPTS[:1]))
            calls = model.generate_calls
            batched.append(tokens_per_s(model, params, PROMPTS))
            batch_calls = model.generate_calls - calls
        one = statistics.median(r[0] for r in single)
        eight = statistics.median(r[0] for r in batched)
        print(f"generation, greedy, fp32, {args.threads} threads, up to {args.tokens} new tokens:")
        print(f"  batch 1: {one:.1f} tokens/s")
        print(
            f"  batch 8: {eight:.1f} tokens/s in total ({batch_calls} generate() call(s) for "
            f"8 requests) = {eight / one:.1f}x batch 1"
        )
        print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
