"""lo.complete / lo.acomplete: real litellm over HTTP to the test server, real stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)
from sqlalchemy import inspect, text

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.config import settings
from llmops_nb.errors import LLMOpsError
from llmops_nb.llm.client import ModelCallError, ModelTimeout, UnknownModel, cache_key
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer

# every test here runs on the fast path and through litellm
pytestmark = pytest.mark.usefixtures("llm_path")

MODEL = "openai/gpt-4o-mini"  # in litellm's price table
KEY = "sk-test-key"


def call(srv: OpenAIServer, prompt: str = "Say hi", **kwargs: object) -> lo.Completion:
    kwargs.setdefault("api_key", KEY)
    return lo.complete(MODEL, prompt, api_base=srv.base_url, **kwargs)  # type: ignore[arg-type]


def price(model: str) -> tuple[float, float]:
    from llmops_nb.llm import runtime

    entry = runtime.litellm().model_cost[model]
    return entry["input_cost_per_token"], entry["output_cost_per_token"]


def test_text_usage_cost_and_latency(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(latency_ms=30)
    c = call(fresh_server, "Say hi", temperature=0.2, cache=False)

    assert c.text == "echo: Say hi"
    assert c.model == MODEL
    # the server counts words and marks: 3 + (4 + 2) in, "echo : Say hi" out
    assert (c.usage.input_tokens, c.usage.output_tokens, c.usage.total_tokens) == (9, 4, 13)
    per_in, per_out = price("gpt-4o-mini")
    assert c.cost == pytest.approx(9 * per_in + 4 * per_out)
    assert 30 <= c.latency_ms < 10_000
    assert (c.cached, c.finish_reason) == (False, "stop")
    assert str(c) == c.text
    # what reached the provider: our parameters and the key, once
    sent = fresh_server.requests[-1]
    assert sent["body"]["temperature"] == 0.2
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert fresh_server.stats.requests == 1


def test_messages_and_max_tokens(openai_server: OpenAIServer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "one two three four"},
    ]
    c = lo.complete(
        MODEL, messages=messages, max_tokens=3, api_base=openai_server.base_url, api_key=KEY
    )
    assert c.text == "echo: one"
    assert c.finish_reason == "length"
    assert c.usage.output_tokens == 3


def test_model_without_a_price_has_no_cost(openai_server: OpenAIServer) -> None:
    c = lo.complete("openai/my-own-finetune", "hello", api_base=openai_server.base_url, api_key=KEY)
    assert c.text == "echo: hello"
    assert not c.cost  # None or 0: litellm has no price for it


def test_default_model_setting(openai_server: OpenAIServer) -> None:
    with pytest.raises(UnknownModel, match="no default model set"):
        lo.complete(prompt="hi", api_base=openai_server.base_url, api_key=KEY)
    settings.default_model = MODEL
    c = lo.complete(prompt="hi", api_base=openai_server.base_url, api_key=KEY)
    assert (c.model, c.text) == (MODEL, "echo: hi")


def test_cache_hit_is_marked_and_never_reaches_the_server(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    first = call(fresh_server, "cache me", temperature=0)
    second = call(fresh_server, "cache me", temperature=0)

    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text == "echo: cache me"
    assert second.usage == first.usage
    assert second.cost == first.cost
    assert second.trace_id == first.trace_id  # the trace of the call that filled the cache
    assert fresh_server.stats.requests == 1
    key = cache_key(MODEL, [{"role": "user", "content": "cache me"}], {"temperature": 0},
                    fresh_server.base_url)  # fmt: skip
    assert get_store(store_url).cache_hits(key) == 1

    # other parameters, or the cache turned off, do reach the model
    assert call(fresh_server, "cache me", temperature=0.5).cached is False
    assert call(fresh_server, "cache me", temperature=0, cache=False).cached is False
    settings.cache = False
    assert call(fresh_server, "cache me", temperature=0).cached is False
    assert fresh_server.stats.requests == 4
    # a different key or timeout is not a different request
    settings.cache = True
    assert call(fresh_server, "cache me", temperature=0, api_key="sk-other", timeout=9).cached


def test_api_keys_never_reach_the_store(
    store_url: str, fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, env_secret = "sk-live-PASSED-7f3a9c", "sk-live-FROMENV-2b8d1e"
    fresh_server.configure(api_key=secret)
    assert call(fresh_server, "with a key", api_key=secret).text == "echo: with a key"
    monkeypatch.setenv("OPENAI_API_KEY", env_secret)
    fresh_server.configure(api_key=env_secret)
    c = lo.complete(MODEL, "key from env", api_base=fresh_server.base_url)
    assert c.text == "echo: key from env"
    # a wrong key: a clear error that does not repeat the key
    with pytest.raises(ModelCallError, match="authentication failed") as err:
        call(fresh_server, "wrong key", api_key="sk-live-WRONG-99")
    assert "sk-live-WRONG-99" not in str(err.value)

    tracing.flush()  # the LLM spans of these calls, written to the store now
    engine = get_store(store_url).engine
    tables: dict[str, str] = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"'))
            tables[table] = "\n".join(repr(tuple(row)) for row in rows)
    assert "echo: key from env" in tables["response_cache"]
    assert "echo: key from env" in tables["span"]  # the scan covers the traces too
    everything = "\n".join(tables.values())
    for needle in (secret, env_secret, "sk-live"):
        assert needle not in everything


def test_retry_after_is_honoured_and_requests_counted(fresh_server: OpenAIServer) -> None:
    fresh_server.fail_next(429, times=2, retry_after=0.3)
    c = call(fresh_server, "patience", cache=False, retries=3)

    assert c.text == "echo: patience"
    assert (fresh_server.stats.requests, fresh_server.stats.rate_limited) == (3, 2)
    # what the user waited, retries included: at least the two Retry-After waits
    # (how long a call takes is measured in benchmarks/bench_llm.py)
    assert c.latency_ms >= 600
    # a Retry-After beyond the call's deadline fails at once, saying why
    fresh_server.fail_next(429, times=1, retry_after=5)
    with pytest.raises(ModelCallError, match="deadline of 3 s leaves no time") as err:
        call(fresh_server, "too patient", cache=False, timeout=1.5, deadline=3)
    assert "rate limited (429)" in str(err.value)
    assert fresh_server.stats.requests == 4


def test_retries_exhausted_is_one_clear_error(fresh_server: OpenAIServer) -> None:
    fresh_server.fail_next(500, times=3)
    with pytest.raises(ModelCallError) as err:
        call(fresh_server, "doomed", cache=False, retries=2)
    message = str(err.value)
    assert "server error (500)" in message and "after 3 attempts" in message
    assert "\n" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert fresh_server.stats.requests == 3
    assert lo.get_trace(err.value.trace_id).status == "error"  # the last attempt's trace
    # a 400-class refusal is not retried
    fresh_server.fail_next(400)
    with pytest.raises(ModelCallError, match="the call failed"):
        call(fresh_server, "bad request", cache=False, retries=3)
    assert fresh_server.stats.requests == 4


@pytest.mark.timeout(60)
def test_flaky_server_every_call_succeeds_or_fails_clearly(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(rate_429=0.2, rate_500=0.1, seed=7)
    n = 120

    async def run() -> list[lo.Completion | BaseException]:
        calls = [
            lo.acomplete(MODEL, f"q{i}", api_base=fresh_server.base_url, api_key=KEY, cache=False)
            for i in range(n)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    done = [(i, r) for i, r in enumerate(results) if isinstance(r, lo.Completion)]
    failed = [r for r in results if not isinstance(r, lo.Completion)]
    assert all(r.text == f"echo: q{i}" for i, r in done)
    for error in failed:
        assert isinstance(error, ModelCallError), repr(error)
        assert "after 4 attempts" in str(error)
        assert "rate limited (429)" in str(error) or "server error (500)" in str(error)
    stats = fresh_server.stats
    assert len(done) + len(failed) == n
    assert len(done) >= n * 0.9
    assert stats.ok == len(done)  # every answer reached exactly one caller
    assert stats.rate_limited > 0 and stats.server_errors > 0
    assert stats.requests == stats.ok + stats.rate_limited + stats.server_errors
    assert stats.requests <= 4 * n


@pytest.mark.timeout(60)
def test_timeout_is_honoured(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(latency_ms=30_000)  # far beyond the timeout and the test's limit
    with pytest.raises(ModelTimeout, match=r"no response within 0\.3 s"):
        call(fresh_server, "slow", cache=False, timeout=0.3, retries=0)
    with pytest.raises(ModelTimeout):
        asyncio.run(
            lo.acomplete(
                MODEL,
                "slow",
                api_base=fresh_server.base_url,
                api_key=KEY,
                cache=False,
                timeout=0.3,
                retries=0,
            )  # fmt: skip
        )
    assert fresh_server.stats.requests == 2


def test_unknown_model_is_one_clear_message(openai_server: OpenAIServer) -> None:
    with pytest.raises(UnknownModel) as err:
        lo.complete("nosuchprovider/model-x", "hi", api_base=openai_server.base_url)
    message = str(err.value)
    assert "unknown model 'nosuchprovider/model-x'" in message and "openai/" in message
    assert "\n" not in message
    assert isinstance(err.value, LLMOpsError)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_model_the_server_does_not_have(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(models=["gpt-4o-mini"])
    with pytest.raises(UnknownModel, match="model not found") as err:
        lo.complete("openai/gpt-nope", "hi", api_base=fresh_server.base_url, api_key=KEY)
    assert "gpt-nope" in str(err.value)
    assert fresh_server.stats.requests == 1  # a 404 is not retried


def test_connection_refused_is_a_clear_error() -> None:
    with pytest.raises(ModelCallError, match="connection failed"):
        lo.complete(MODEL, "hi", api_base="http://127.0.0.1:9/v1", api_key=KEY, retries=0)


def test_acomplete_concurrent_with_cache(store_url: str, fresh_server: OpenAIServer) -> None:
    async def batch() -> list[lo.Completion]:
        return await asyncio.gather(
            *[
                lo.acomplete(MODEL, f"item {i % 10}", api_base=fresh_server.base_url, api_key=KEY)
                for i in range(10)
            ]
        )

    first = asyncio.run(batch())
    again = asyncio.run(batch())
    assert [c.text for c in first] == [f"echo: item {i}" for i in range(10)]
    assert [c.text for c in again] == [c.text for c in first]
    assert not any(c.cached for c in first) and all(c.cached for c in again)
    assert fresh_server.stats.requests == 10


def test_bad_arguments_are_clear(openai_server: OpenAIServer) -> None:
    with pytest.raises(ModelCallError, match="either a prompt or messages"):
        lo.complete(MODEL, "a", messages=[{"role": "user", "content": "b"}])
    with pytest.raises(ModelCallError, match="does not stream"):
        lo.complete(MODEL, "a", stream=True, api_base=openai_server.base_url)


def test_trace_id_names_the_calls_trace(openai_server: OpenAIServer) -> None:
    c = call(openai_server, "traced", cache=False)
    assert isinstance(c.trace_id, str) and len(c.trace_id) == 32
    trace = lo.get_trace(c.trace_id)
    llm_spans = [s for s in trace.spans if s.kind == "llm"]
    assert len(llm_spans) == 1 and trace.status == "ok"
    assert "echo: traced" in repr(llm_spans[0].outputs)
    # each call is its own trace; a cached answer made no model call: it links to the
    # trace of the call that filled the cache
    assert call(openai_server, "traced", cache=False).trace_id != c.trace_id
    filled = call(openai_server, "traced again")
    hit = call(openai_server, "traced again")
    assert (filled.cached, hit.cached) == (False, True)
    assert filled.trace_id is not None and hit.trace_id == filled.trace_id
    assert "echo: traced again" in repr(lo.get_trace(hit.trace_id).spans[0].outputs)


def _hold_write_lock(url: str) -> Any:
    """Another connection that holds the response cache's write lock until closed."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the one SQLite writer, until rollback
        conn.execute("UPDATE response_cache SET hits = hits")
        return conn
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute("LOCK TABLE response_cache IN EXCLUSIVE MODE")  # reads pass, writes wait
    return conn


def _in_thread(fn: Any, limit: float = 30) -> Any:
    """fn() in a thread; fails the test if it is still waiting after LIMIT seconds (the
    locks below are held for ever, so a call that waits on them never returns)."""
    import threading

    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), "the call waited on another connection's lock"
    return box[0]


@pytest.mark.timeout(120)
def test_a_locked_cache_never_holds_a_model_call(
    store_url: str, fresh_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = call(fresh_server, "cached before the lock")
    holder = _hold_write_lock(store_url)
    try:
        hit = _in_thread(lambda: call(fresh_server, "cached before the lock"))
        assert hit.cached and hit.text == filled.text  # read past the lock; hit not counted
        fresh = _in_thread(lambda: call(fresh_server, "asked during the lock"))
        assert (fresh.cached, fresh.text) == (False, "echo: asked during the lock")
    finally:
        holder.rollback()
        holder.close()
    assert fresh_server.stats.requests == 2
    assert "cache" not in capsys.readouterr().err  # contention is not worth a warning
    # the entry that could not be written during the lock is written by the next call
    assert call(fresh_server, "asked during the lock").cached is False
    assert call(fresh_server, "asked during the lock").cached is True


def test_an_unreachable_store_does_not_fail_model_calls(
    fresh_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LLMOPS_NB_STORE", f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    first = call(fresh_server, "no store")
    second = call(fresh_server, "no store")
    assert [c.text for c in (first, second)] == ["echo: no store"] * 2
    assert not first.cached and not second.cached
    assert fresh_server.stats.requests == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "response cache" in line]
    assert len(warnings) == 1, warnings  # one line, not one per call, and no traceback
    assert "calling models without it" in warnings[0] and f":{port}" in warnings[0]


def test_embed_returns_a_float32_matrix_cached_and_traced(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    from llmops_nb.llm import aembed, embed
    from llmops_nb.testing.openai_server import embed_text

    texts = ["the cat sat", "the cat sat", "stock prices"]
    kwargs = {"api_base": fresh_server.base_url, "api_key": KEY}
    matrix = embed(texts, "openai/text-embedding-3-small", **kwargs)
    assert matrix.dtype.name == "float32" and matrix.shape == (3, 64)
    assert matrix[0].tolist() == pytest.approx(embed_text("the cat sat"), abs=1e-6)
    assert (matrix[0] == matrix[1]).all()
    assert fresh_server.stats.by_path["/v1/embeddings"] == 1
    # the same texts again come from the cache, async too
    again = asyncio.run(aembed(texts, "openai/text-embedding-3-small", **kwargs))
    assert (again == matrix).all() and fresh_server.stats.by_path["/v1/embeddings"] == 1
    tracing.flush()
    assert any("embedding" in name for name in lo.traces(limit=20)["name"].to_list())
    # failures are the same clear errors as completions'
    fresh_server.fail_next(500, times=2)
    with pytest.raises(ModelCallError, match=r"server error \(500\).*after 2 attempts"):
        embed(["fails"], "openai/text-embedding-3-small", retries=1, cache=False, **kwargs)
    with pytest.raises(ModelCallError, match="a text or a non-empty list"):
        embed([], "openai/text-embedding-3-small")


def test_embed_with_the_packaged_minilm_offline() -> None:
    from llmops_nb.llm import embed

    matrix = embed(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."])
    assert matrix.dtype.name == "float32" and matrix.shape == (3, 384)
    norms = (matrix**2).sum(axis=1)
    assert norms == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)
    similar, unrelated = float(matrix[0] @ matrix[1]), float(matrix[0] @ matrix[2])
    assert similar > unrelated + 0.2


def test_check_model_knows_providers_without_a_request(fresh_server: OpenAIServer) -> None:
    from llmops_nb.llm import check_model

    check_model(MODEL)
    check_model("openai/anything", api_base=fresh_server.base_url)
    with pytest.raises(UnknownModel, match="unknown model 'nosuchprovider/x'"):
        check_model("nosuchprovider/x")
    assert fresh_server.stats.requests == 0
