"""Retrieval figures: a 100k x 384 hnswlib index (build time, memory, recall@10 against
numpy brute force, p50 query latency), MiniLM throughput, and a 200-row RAG grid's wall
time with the share spent in retrieval.

Run: .venv/bin/python benchmarks/bench_retrieval.py [index] [uniform] [minilm] [rag]
(about 5 minutes on 2 idle cores; the index build dominates)
Targets (issue 13): recall@10 >= 0.95 with the defaults; p50 query about 1 ms or less.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="bench-retrieval-")

import numpy as np  # noqa: E402

N, DIM, QUERIES, K = 100_000, 384, 200, 10


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus(latent: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in 384 dimensions around 2,000 topics, and queries near (not on)
    stored points. With LATENT=48 they span a 48-dimensional subspace plus a little
    noise, as sentence embeddings do (their intrinsic dimension is low); LATENT=384 is
    the worst case, nearly uniform on the sphere, where no graph index keeps recall."""
    rng = np.random.default_rng(13)
    mix = rng.normal(size=(latent, DIM)).astype(np.float32) / np.sqrt(latent)
    centers = rng.normal(size=(2000, latent)).astype(np.float32)
    points = centers[rng.integers(0, 2000, N)] + 0.6 * rng.normal(size=(N, latent))
    data = (points.astype(np.float32) @ mix) + 0.05 * rng.normal(size=(N, DIM)).astype(np.float32)
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    picks = data[rng.integers(0, N, QUERIES)]
    queries = picks + 0.1 * rng.normal(size=(QUERIES, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return data, queries.astype(np.float32)


def bench_index(latent: int) -> None:
    import llmops_nb as lo
    from llmops_nb import retrieval

    data, queries = corpus(latent)
    texts = [f"item {i}" for i in range(N)]
    before = rss_mb()
    start = time.perf_counter()
    idx = lo.index(f"bench-{latent}", texts, vectors=data)
    build_s = time.perf_counter() - start
    graph, _ = idx._load()
    after = rss_mb()
    files_mb = sum(p.stat().st_size for p in idx.path.iterdir()) / 2**20
    settings = f"M={idx.M}, ef_construction={idx.ef_construction}"
    print(f"index {N:,} x {DIM} (intrinsic dimension {latent}): built in {build_s:.1f} s "
          f"({settings}), {N / build_s:,.0f} vectors/s")  # fmt: skip
    print(f"  memory: +{after - before:,.0f} MB resident, files {files_mb:,.0f} MB "
          f"(raw vectors {data.nbytes / 2**20:,.0f} MB)")  # fmt: skip

    exact = np.argsort(-(queries @ data.T), axis=1)[:, :K]
    for ef in (32, retrieval.DEFAULT_EF, 128):
        found = 0
        for q, truth in zip(queries, exact):
            found += len({int(h.id) for h in idx.search(q, k=K, ef=ef)} & set(truth.tolist()))
        marker = "  (default)" if ef == retrieval.DEFAULT_EF else ""
        print(f"  recall@{K} vs numpy brute force, ef={ef}: {found / (QUERIES * K):.3f}{marker}")

    graph.set_ef(retrieval.DEFAULT_EF)
    raw, full = [], []
    for q in queries:
        t = time.perf_counter()
        graph.knn_query(q, k=K)
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        idx.search(q, k=K)
        full.append(time.perf_counter() - t)
    brute = []
    for q in queries[:50]:
        t = time.perf_counter()
        np.argpartition(-(data @ q), K)[:K]
        brute.append(time.perf_counter() - t)
    p50 = statistics.median
    print(f"  p50 query: hnswlib {p50(raw) * 1e3:.3f} ms, idx.search (retriever span, hits) "
          f"{p50(full) * 1e3:.3f} ms, numpy brute force {p50(brute) * 1e3:.2f} ms "
          f"({p50(brute) / p50(full):.0f}x slower)")  # fmt: skip


def bench_minilm() -> None:
    import llmops_nb as lo

    words = "the quick brown fox jumps over a lazy dog near the river bank at dawn".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) for _ in range(2000)]
    lo.embed(texts[:64])  # load the model
    start = time.perf_counter()
    lo.embed(texts)
    seconds = time.perf_counter() - start
    print(f"MiniLM: {len(texts) / seconds:,.0f} texts/s ({len(texts)} texts of 8-40 words, "
          f"{os.cpu_count()} cores)")  # fmt: skip


def bench_rag_grid() -> None:
    import polars as pl

    import llmops_nb as lo
    from llmops_nb.testing import serve

    docs = [Path(__file__).resolve().parents[1] / "README.md"]
    docs += sorted((Path(__file__).resolve().parents[1] / "notebooks" / "corpus").glob("*.md"))
    text = "\n\n".join(p.read_text() for p in docs if p.exists())
    chunks = lo.chunk(text, size=60, overlap=10, by="tokens")
    idx = lo.index("grid-docs", chunks)
    spent: list[float] = []

    with serve() as srv:

        @lo.trace
        def answer(question: str) -> str:
            t = time.perf_counter()
            hits = idx.search(question, k=3)
            spent.append(time.perf_counter() - t)
            context = "\n".join(h.text for h in hits)
            return lo.complete(
                "openai/gpt-4o-mini", f"{context}\n\nQ: {question}", api_base=srv.base_url,
                api_key="sk-bench", cache=False,
            ).text  # fmt: skip

        questions = [f"How do I use feature {i} of the eval grid?" for i in range(200)]
        start = time.perf_counter()
        run = lo.evaluate(
            targets=[answer], data=pl.DataFrame({"question": questions}),
            scorers=["faithfulness"], name="bench-rag", progress=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
    rows = run.results
    busy = rows["latency_ms"].sum() / 1000
    print(f"RAG grid: {rows.height} rows ({len(chunks)} chunks indexed) in {wall:.1f} s wall, "
          f"{rows.height / wall:.1f} rows/s; retrieval {sum(spent):.2f} s of {busy:.2f} s in "
          f"the target calls ({sum(spent) / busy:.0%}); "
          f"{rows['error'].drop_nulls().len()} errors")  # fmt: skip


if __name__ == "__main__":
    parts = sys.argv[1:] or ["index", "minilm", "rag"]
    if "index" in parts:
        bench_index(48)
    if "uniform" in parts:  # the worst case, on request: python bench_retrieval.py uniform
        bench_index(DIM)
    if "minilm" in parts:
        bench_minilm()
    if "rag" in parts:
        bench_rag_grid()
