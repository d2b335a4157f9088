"""lo.embed: the real MiniLM in process (batched), and litellm embedding models over HTTP
to the test server (cache, `embedding` span with tokens and cost, the client's retries)."""

from __future__ import annotations

import asyncio

import pytest

import llmops_nb as lo
from llmops_nb.llm.client import ModelCallError
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer
from llmops_nb.testing.openai_server import embed_text

MODEL = "openai/text-embedding-3-small"  # priced in litellm's table
KEY = "sk-test-embed-key"


def _embedding_span(trace: lo.Trace) -> lo.SpanRecord:
    (span,) = [s for s in trace.spans if s.kind == "embedding"]
    return span


def test_a_litellm_embedding_is_one_embedding_span_with_tokens_and_cost(
    fresh_server: OpenAIServer,
) -> None:
    texts = ["the cat sat on the mat", "stock prices fell"]
    matrix = lo.embed(texts, MODEL, api_base=fresh_server.base_url, api_key=KEY)
    assert matrix.dtype.name == "float32" and matrix.shape == (2, 64)
    assert matrix[1].tolist() == pytest.approx(embed_text("stock prices fell"), abs=1e-6)

    trace = lo.last_trace()
    span = _embedding_span(trace)
    assert span.name == f"embed {MODEL}" and span.parent_id is None
    tokens = span.attributes["gen_ai.usage.input_tokens"]
    assert tokens > 0
    per_token = lo.llm.runtime.litellm().model_cost["text-embedding-3-small"][
        "input_cost_per_token"
    ]
    assert span.attributes["llmops.cost"] == pytest.approx(tokens * per_token)
    assert span.attributes["llmops.embedding.dimensions"] == 64
    assert span.outputs == {"items": 2, "dimensions": 64}
    # litellm's own span sits under it, and the trace counts the tokens once
    (llm,) = [s for s in trace.spans if s.kind == "llm"]
    assert llm.parent_id == span.id
    assert trace.input_tokens == tokens
    assert KEY not in repr(trace.spans)


def test_the_cache_answers_a_repeat_sync_or_async_with_the_first_calls_numbers(
    fresh_server: OpenAIServer,
) -> None:
    kwargs = {"api_base": fresh_server.base_url, "api_key": KEY}
    first = lo.embed(["alpha", "beta"], MODEL, **kwargs)
    tokens = _embedding_span(lo.last_trace()).attributes["gen_ai.usage.input_tokens"]
    again = asyncio.run(lo.aembed(["alpha", "beta"], MODEL, **kwargs))
    assert (again == first).all()
    assert fresh_server.stats.by_path["/v1/embeddings"] == 1
    span = _embedding_span(lo.last_trace())
    assert span.attributes["llmops.cached"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] == tokens
    assert span.attributes["llmops.cost"] == 0.0  # nothing was spent on the repeat
    # no key reaches the cached row
    with get_store().engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT response FROM response_cache").fetchall()
    assert rows and all(KEY not in str(r) for r in rows)
    # cache=False asks the server again
    lo.embed(["alpha", "beta"], MODEL, cache=False, **kwargs)
    assert fresh_server.stats.by_path["/v1/embeddings"] == 2


def test_embeddings_retry_through_the_clients_loop(fresh_server: OpenAIServer) -> None:
    kwargs = {"api_base": fresh_server.base_url, "api_key": KEY, "cache": False}
    fresh_server.fail_next(503, times=1)
    matrix = asyncio.run(lo.aembed("retried", MODEL, retries=2, **kwargs))
    assert matrix.shape == (1, 64)
    assert fresh_server.stats.by_path["/v1/embeddings"] == 2
    fresh_server.fail_next(500, times=3)
    with pytest.raises(ModelCallError, match=r"server error \(500\).*after 3 attempts"):
        lo.embed("fails", MODEL, retries=2, **kwargs)
    assert _embedding_span(lo.last_trace()).status == "error"


def test_minilm_batches_keep_the_callers_order_and_match_one_by_one() -> None:
    texts = [
        "A cat sits on the mat.",
        "Short.",
        "A much longer sentence about the weather in Paris, which was rainy all week long.",
        "A kitten rests on a rug.",
        "",
    ] * 30  # 150 texts: three batches, lengths mixed
    together = lo.embed(texts)
    assert together.shape == (150, 384) and together.dtype.name == "float32"
    alone = [lo.embed(t)[0] for t in texts[:5]]
    for i in range(5):
        assert together[i] == pytest.approx(alone[i], abs=1e-5)
        assert together[i + 100] == pytest.approx(alone[i], abs=1e-5)
    assert float(together[0] @ together[3]) > float(together[0] @ together[2]) + 0.2
    span = _embedding_span(lo.last_trace())
    assert span.attributes["llmops.model"] == "local/minilm"
    assert span.attributes["llmops.embedding.count"] == 1  # the last call embedded one text
    assert span.attributes["gen_ai.usage.input_tokens"] > 0


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ModelCallError, match="a text or a non-empty list"):
        lo.embed([])
    with pytest.raises(ModelCallError, match="a text or a non-empty list"):
        lo.embed(["ok", 3])  # type: ignore[list-item]
