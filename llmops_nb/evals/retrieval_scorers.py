"""Retrieval scorers: how good were the contexts a RAG target retrieved, and did the
answer stay with them.

With `relevant_ids` in the data (a list column, or "a, b" text): `recall_at_k`,
`precision_at_k`, `mrr` and `ndcg` over the ids the row's searches returned, best
first (a hit matches by its id, or by its chunk's `doc_id`). Without labels:
`context_relevance` (are the contexts about the query?) and `faithfulness` (is the
answer supported by the contexts?), each by an LLM judge when `model:` is given, else
by MiniLM embeddings, offline (`embed:` picks another embedding model).

The contexts are the hits of the `retriever` spans under the row's call, collected in
process while it runs (`retrieval.collect_retrievals`), plus any `contexts` the target
returned; `contexts_from_trace` reads the same from a stored trace.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import LLMOpsError
from .scorers import Builtin, Score, ScoreContext, parse_judgement

__all__ = ["RETRIEVAL_SCORERS", "RetrievalContext", "contexts_from_trace"]


@dataclass
class RetrievalContext(ScoreContext):
    """A ScoreContext that also knows the row's trace and what its searches returned."""

    trace_id: str | None = None
    retrievals: list[dict[str, Any]] = field(default_factory=list)  # {index, query, hits}
    returned_contexts: list[str] = field(default_factory=list)  # the target's own

    @property
    def hits(self) -> list[dict[str, Any]]:
        """Every hit of the row's searches, in the order they were retrieved."""
        return [h for r in self.retrievals for h in r.get("hits") or []]

    @property
    def contexts(self) -> list[str]:
        """The retrieved texts (each once), then the ones the target returned."""
        seen: dict[str, None] = {}
        for text in [h.get("text") or "" for h in self.hits] + self.returned_contexts:
            if text.strip():
                seen.setdefault(text, None)
        return list(seen)

    @property
    def query(self) -> str:
        queries = [str(r["query"]) for r in self.retrievals if r.get("query")]
        return queries[0] if queries else self.input_text


def contexts_from_trace(trace: Any) -> list[dict[str, Any]]:
    """The hits of a stored trace's retriever spans ({id, text, score, metadata})."""
    out = []
    for span in sorted(trace.spans, key=lambda s: s.start):
        if span.kind == "retriever" and isinstance(span.outputs, list):
            out.extend(h for h in span.outputs if isinstance(h, dict))
    return out


# --- ranking with labels -----------------------------------------------------------------


def _relevant(value: Any) -> list[str]:
    """relevant_ids as rendered: "['a', 'b']", '["a"]', "a, b" -> ['a', 'b']."""
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    text = "" if value is None else str(value).strip()
    if text.startswith(("[", "(")):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, list | tuple):
                return [str(v) for v in parsed]
        except (ValueError, SyntaxError):
            pass
    return [part for part in re.split(r"[,\s]+", text.strip("[]()")) if part.strip("'\"")]


def _ranked(ctx: ScoreContext, relevant: set[str]) -> list[str]:
    """The row's hits as keys, best first, each once: a hit's id, or its doc_id when
    that is what the labels name."""
    keys: dict[str, None] = {}
    for hit in getattr(ctx, "hits", []):
        key = str(hit.get("id"))
        doc = (hit.get("metadata") or {}).get("doc_id")
        if key not in relevant and doc is not None and str(doc) in relevant:
            key = str(doc)
        keys.setdefault(key, None)
    return list(keys)


def _ranking(a: dict[str, Any], ctx: ScoreContext) -> tuple[list[str], set[str], int] | Score:
    relevant = {r.strip("'\" ") for r in _relevant(a.get("relevant_ids"))}
    relevant.discard("")
    if not relevant:
        return Score(None, "no relevant_ids for this row")
    if not getattr(ctx, "retrievals", None):
        return Score(None, "no retrieval in this row's call: score a target that searches an index")
    k = _k(a.get("k"))
    return _ranked(ctx, relevant)[:k], relevant, k


def _k(value: Any) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise LLMOpsError(f"k must be a whole number, not {value!r}") from None
    if k < 1:
        raise LLMOpsError(f"k must be at least 1, not {k}")
    return k


def _recall_at_k(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    ranked = _ranking(a, ctx)
    if isinstance(ranked, Score):
        return ranked
    top, relevant, _ = ranked
    found = len(relevant & set(top))
    return Score(found / len(relevant), f"{found} of {len(relevant)} relevant ids retrieved")


def _precision_at_k(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    """Relevant hits over the hits returned (at most k)."""
    ranked = _ranking(a, ctx)
    if isinstance(ranked, Score):
        return ranked
    top, relevant, _ = ranked
    if not top:
        return Score(0.0, "nothing retrieved")
    found = len(relevant & set(top))
    return Score(found / len(top), f"{found} of {len(top)} hits relevant")


def _mrr(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    ranked = _ranking(a, ctx)
    if isinstance(ranked, Score):
        return ranked
    top, relevant, _ = ranked
    for rank, key in enumerate(top, start=1):
        if key in relevant:
            return Score(1.0 / rank, f"first relevant hit at rank {rank}")
    return Score(0.0, "no relevant hit in the top k")


def _ndcg(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    """Binary-relevance nDCG@k."""
    ranked = _ranking(a, ctx)
    if isinstance(ranked, Score):
        return ranked
    top, relevant, k = ranked
    dcg = sum(1.0 / math.log2(rank + 1) for rank, key in enumerate(top, 1) if key in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return Score(dcg / ideal)


# --- without labels: a judge, or embeddings ------------------------------------------------

RELEVANCE_RUBRIC = (
    "The Reply lists passages retrieved for the question in the Input. Score the share of "
    "the passages that are relevant to answering the question."
)
FAITHFULNESS_RUBRIC = (
    "Score whether every claim in the Reply is supported by the Reference passages; "
    "a claim the passages do not contain counts against it, whatever its truth."
)


def _split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text)]
    return [p for p in parts if len(p) > 2]


async def _vectors(texts: list[str], a: dict[str, Any], ctx: ScoreContext) -> Any:
    from ..llm import aembed

    return await aembed(
        texts, str(a.get("embed") or "local/minilm"), api_base=a.get("api_base") or None,
        api_key=a.get("api_key") or None, cache=ctx.cache,
    )  # fmt: skip


async def _ask_judge(
    rubric: str, input_text: str, reply: str, reference: str, a: dict[str, Any], ctx: ScoreContext
) -> Score:
    from .scorers import judge_messages

    assert ctx.call is not None
    params = dict(a.get("parameters") or {})
    params.setdefault("temperature", 0)
    try:
        completion = await ctx.call(
            a["model"], messages=judge_messages(rubric, input_text, reply, reference),
            cache=ctx.cache, api_base=a.get("api_base"), api_key=a.get("api_key"), **params,
        )  # fmt: skip
    except LLMOpsError as exc:
        return Score(None, f"judge call failed: {exc}", getattr(exc, "trace_id", None))
    value, reason = parse_judgement(completion.text)
    return Score(value, reason, completion.trace_id)


def _passages(contexts: list[str]) -> str:
    return "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))


async def _context_relevance(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    contexts = list(getattr(ctx, "contexts", []))
    if not contexts:
        return Score(None, "no retrieved contexts in this row's call")
    query = str(a.get("query") or getattr(ctx, "query", "") or ctx.input_text)
    if a.get("model"):
        return await _ask_judge(RELEVANCE_RUBRIC, query, _passages(contexts), "", a, ctx)
    try:
        vectors = await _vectors([query, *contexts], a, ctx)
    except LLMOpsError as exc:
        return Score(None, f"embedding call failed: {str(exc)[:200]}")
    sims = [max(0.0, float(vectors[0] @ v) / _norms(vectors[0], v)) for v in vectors[1:]]
    return Score(sum(sims) / len(sims), f"mean cosine of {len(sims)} contexts to the query")


async def _faithfulness(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    contexts = list(getattr(ctx, "contexts", []))
    if not contexts:
        return Score(None, "no retrieved contexts in this row's call")
    if not output.strip():
        return Score(0.0, "empty answer")
    if a.get("model"):
        return await _ask_judge(
            FAITHFULNESS_RUBRIC, ctx.input_text, output, _passages(contexts), a, ctx
        )
    claims = _split_sentences(output) or [output]
    try:
        vectors = await _vectors([*claims, *contexts], a, ctx)
    except LLMOpsError as exc:
        return Score(None, f"embedding call failed: {str(exc)[:200]}")
    claim_vecs, context_vecs = vectors[: len(claims)], vectors[len(claims) :]
    best = [max(max(0.0, float(c @ p) / _norms(c, p)) for p in context_vecs) for c in claim_vecs]
    weakest = min(range(len(best)), key=best.__getitem__)
    return Score(
        sum(best) / len(best),
        f"mean best-context cosine of {len(claims)} sentences; weakest: {claims[weakest][:80]!r}",
    )


def _norms(a: Any, b: Any) -> float:
    import numpy as np

    n = float(np.linalg.norm(a) * np.linalg.norm(b))
    return n if n else 1.0


_LABELS = {"relevant_ids": "{{relevant_ids}}", "k": 5}
_UNLABELLED = ("model", "embed", "api_base", "api_key", "parameters")
RETRIEVAL_SCORERS: dict[str, Builtin] = {
    "recall_at_k": Builtin(_recall_at_k, dict(_LABELS), threshold=0.5),
    "precision_at_k": Builtin(_precision_at_k, dict(_LABELS), threshold=0.5),
    "mrr": Builtin(_mrr, dict(_LABELS), threshold=0.5),
    "ndcg": Builtin(_ndcg, dict(_LABELS), threshold=0.5),
    "context_relevance": Builtin(
        _context_relevance, {}, threshold=0.5, allowed=("query", *_UNLABELLED)
    ),
    "faithfulness": Builtin(_faithfulness, {}, threshold=0.5, allowed=_UNLABELLED),
}
