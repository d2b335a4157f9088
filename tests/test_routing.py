"""Model routers: stored in the real store (SQLite and PostgreSQL), real traffic over
HTTP to test servers with different latency and failures, the choice read back from
the stored spans, and a router as a model in a real eval grid."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb import routing, tracing
from llmops_nb.errors import NotFound
from llmops_nb.llm.client import ModelCallError
from llmops_nb.routing import RoutedCompletion, RouterError
from llmops_nb.store import Store
from llmops_nb.testing import OpenAIServer, serve
from llmops_nb.tracing.calls import settle

KEY = "sk-test-key"


@pytest.fixture(autouse=True)
def fresh_routing() -> Iterator[None]:
    routing.clear_cache()
    yield
    settle(None, timeout=5)
    tracing.flush()
    routing.clear_cache()


@pytest.fixture
def slow_server() -> Iterator[OpenAIServer]:
    with serve(latency_ms=300) as srv:
        yield srv


def entry(srv: OpenAIServer, model: str) -> dict[str, Any]:
    return {"model": model, "api_base": srv.base_url}


def routed(name: str, text: str = "hello", **kwargs: Any) -> RoutedCompletion:
    kwargs.setdefault("cache", False)  # every call reaches a model
    result = lo.complete(f"router/{name}", text, api_key=KEY, **kwargs)
    assert isinstance(result, RoutedCompletion)
    return result


def learn() -> None:
    """What a router would see a few seconds later: the calls so far are in the store."""
    settle(None, timeout=5)
    tracing.flush()
    routing.clear_cache()


def llm_spans(trace_id: str) -> list[tracing.SpanRecord]:
    return [s for s in lo.get_trace(trace_id).spans if s.kind == "llm"]


def test_bad_routers_are_one_clear_message_and_store_nothing(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"models": []}, "needs models=[...]"),
        ({"models": "openai/gpt-4o-mini"}, "needs models=[...]"),
        ({"models": ["openai/gpt-4o-mini"], "policy": "cheapest-fast"}, "unknown policy"),
        ({"models": ["nosuchprovider/model-x"]}, "unknown model 'nosuchprovider/model-x'"),
        ({"models": [{"model": "openai/gpt-4o", "api_key": "sk-1"}]}, "never stored"),
        ({"models": ["openai/gpt-4o", "openai/gpt-4o"]}, "listed twice"),
        ({"models": ["router/other"]}, "another router"),
        ({"models": ["openai/gpt-4o"], "max_p95_ms": -5}, "positive number"),
        ({"models": ["openai/gpt-4o"], "window": "an hour"}, "not a duration"),
    ]
    for kwargs, words in cases:
        with pytest.raises(RouterError) as info:
            lo.router("cheap-fast", **kwargs)
        assert words in str(info.value) and "\n" not in str(info.value)
    assert lo.routers().height == 0
    with pytest.raises(NotFound, match="unknown router 'cheap-fast'.*no routers"):
        lo.complete("router/cheap-fast", "hi")


def test_a_router_is_stored_for_every_kernel_and_can_be_redefined(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    r = lo.router("cheap-fast", models=["openai/gpt-4o", entry(fresh_server, "openai/gpt-4o-mini")])
    assert r.model == "router/cheap-fast" and r.policy == "cheapest"
    lo.router("cheap-fast", models=["openai/gpt-4o"], policy="fastest", max_p95_ms=800)
    listed = lo.routers()
    assert listed.select("name", "policy", "models", "max_p95_ms").to_dicts() == [
        {
            "name": "cheap-fast",
            "policy": "fastest",
            "models": ["openai/gpt-4o"],
            "max_p95_ms": 800.0,
        }
    ]
    # another process opens the same store and finds it
    other = Store(store_url)
    try:
        row = other.router("default", "cheap-fast")
        assert (
            row is not None
            and row.policy == "fastest"
            and row.models[0]["model"] == "openai/gpt-4o"
        )
    finally:
        other.close()


def test_fastest_explores_then_picks_the_faster_model(
    store_url: str, fresh_server: OpenAIServer, slow_server: OpenAIServer
) -> None:
    lo.router(
        "quick",
        models=[entry(slow_server, "openai/slow-model"), entry(fresh_server, "openai/fast-model")],
        policy="fastest",
    )
    # no history: each model is tried once first, in order
    first, second = routed("quick"), routed("quick")
    assert [first.model, second.model] == ["openai/slow-model", "openai/fast-model"]
    (span,) = llm_spans(first.trace_id)
    assert span.attributes["llmops.router.reason"] == "explore"
    # traffic, from this kernel or any other: the router reads it from the store
    for srv, name in ((slow_server, "openai/slow-model"), (fresh_server, "openai/fast-model")):
        for i in range(4):
            lo.complete(name, f"traffic {i}", api_base=srv.base_url, api_key=KEY, cache=False)
    learn()
    picks = [routed("quick") for _ in range(5)]
    assert {p.model for p in picks} == {"openai/fast-model"}
    # the choice is on the stored LLM span and on the router's span
    trace = lo.get_trace(picks[-1].trace_id)
    (span,) = [s for s in trace.spans if s.kind == "llm"]
    assert span.attributes["llmops.router"] == "quick"
    assert span.attributes["llmops.router.choice"] == "openai/fast-model"
    assert span.attributes["llmops.router.reason"] == "fastest"
    (outer,) = [s for s in trace.spans if s.kind == "router"]
    assert outer.attributes["llmops.router.choice"] == "openai/fast-model"
    assert span.parent_id == outer.id
    assert picks[-1].router == "quick" and picks[-1].fallbacks == []


def test_a_new_router_learns_from_its_own_calls_before_the_store_is_read_again(
    store_url: str, fresh_server: OpenAIServer, slow_server: OpenAIServer
) -> None:
    """Within one cached read of the store, a burst of calls still explores every model
    and then goes to the faster: the first model listed must not take the whole burst."""
    lo.router(
        "burst",
        models=[entry(slow_server, "openai/slow-model"), entry(fresh_server, "openai/fast-model")],
        policy="fastest",
    )
    picks = [routed("burst").model for _ in range(12)]  # well inside DECISION_TTL_S
    assert picks[:6].count("openai/slow-model") == routing.EXPLORE_CALLS  # explored, no more
    assert picks[6:] == ["openai/fast-model"] * 6


def test_cheapest_picks_the_cheaper_model_within_the_latency_limit(
    store_url: str, fresh_server: OpenAIServer, slow_server: OpenAIServer
) -> None:
    models = [entry(fresh_server, "openai/gpt-4o"), entry(fresh_server, "openai/gpt-4o-mini")]
    lo.router("cheap", models=models, policy="cheapest")
    assert {routed("cheap").model for _ in range(2)} == {"openai/gpt-4o", "openai/gpt-4o-mini"}
    for name in ("openai/gpt-4o", "openai/gpt-4o-mini"):  # a few calls each: known now
        for i in range(2):
            lo.complete(
                name, f"traffic {i}", api_base=fresh_server.base_url, api_key=KEY, cache=False
            )
    learn()
    assert {routed("cheap").model for _ in range(3)} == {"openai/gpt-4o-mini"}
    assert lo.get_trace(routed("cheap").trace_id).cost > 0

    # the cheaper model is slow now: over max_p95_ms it goes after one within it
    # (a model this process has called warm, so no first-call set-up is in its times)
    with serve(latency_ms=700) as slower:
        for _ in range(4):
            lo.complete(
                "openai/gpt-4o-mini", "slow", api_base=slower.base_url, api_key=KEY, cache=False
            )
            lo.complete(
                "openai/gpt-4o-2024-08-06",
                "x",
                api_base=fresh_server.base_url,
                api_key=KEY,
                cache=False,
            )
        limited = [
            entry(fresh_server, "openai/gpt-4o-2024-08-06"),
            entry(slower, "openai/gpt-4o-mini"),
        ]
        r = lo.router("cheap", models=limited, policy="cheapest", max_p95_ms=450)
        learn()
        assert r.ranking() == [
            ("openai/gpt-4o-2024-08-06", "cheapest"),
            ("openai/gpt-4o-mini", "over a limit"),
        ]
        assert routed("cheap").model == "openai/gpt-4o-2024-08-06"


def test_falls_back_when_a_model_fails_and_records_it(
    store_url: str, fresh_server: OpenAIServer, slow_server: OpenAIServer
) -> None:
    lo.router(
        "safe",
        models=[entry(fresh_server, "openai/primary"), entry(slow_server, "openai/backup")],
        policy="fallback",
    )
    fresh_server.fail_next(500)  # retryable, and retries=0: straight to the backup
    result = routed("safe", retries=0)
    assert result.model == "openai/backup" and result.fallbacks == ["openai/primary"]
    trace = lo.get_trace(result.trace_id)
    assert trace.status == "ok"
    spans = sorted(llm_spans(result.trace_id), key=lambda s: s.start)
    assert [(s.attributes["llmops.router.choice"], s.status) for s in spans] == [
        ("openai/primary", "error"),
        ("openai/backup", "ok"),
    ]
    assert [s.attributes["llmops.router.attempt"] for s in spans] == [0, 1]
    # "fallback" falls back on any call error, a 400 too
    fresh_server.fail_next(400)
    assert routed("safe", retries=0).model == "openai/backup"
    # nothing failing: the first model answers
    assert routed("safe", retries=0).model == "openai/primary"


def test_cheapest_falls_back_only_on_retryable_errors(
    store_url: str, fresh_server: OpenAIServer
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    lo.router(
        "mixed",
        models=[
            {"model": "openai/gpt-4o-mini", "api_base": dead},
            entry(fresh_server, "openai/gpt-4o"),
        ],
    )
    result = routed("mixed", retries=0)  # explores gpt-4o-mini first: refused, retryable
    assert result.model == "openai/gpt-4o" and result.fallbacks == ["openai/gpt-4o-mini"]
    # a request the provider rejects (400) is not retried on another model
    lo.router(
        "strict",
        models=[entry(fresh_server, "openai/gpt-4o"), entry(fresh_server, "openai/gpt-4o-mini")],
    )
    fresh_server.fail_next(400)
    with pytest.raises(ModelCallError):
        routed("strict", retries=0)
    # every model failing: the last error, and the router span says what was tried
    lo.router("down", models=[{"model": "openai/gpt-4o", "api_base": dead}], policy="fallback")
    with pytest.raises(ModelCallError, match="connection") as info:
        routed("down", retries=0)
    trace = lo.get_trace(info.value.trace_id)
    (outer,) = [s for s in trace.spans if s.kind == "router"]
    assert outer.status == "error" and outer.attributes["llmops.router.fallbacks"] == [
        "openai/gpt-4o"
    ]


def test_a_router_is_a_model_in_an_eval_grid(store_url: str, fresh_server: OpenAIServer) -> None:
    lo.register_prompt("echo", "user:\nSay {{word}}")
    lo.router(
        "grid",
        models=[entry(fresh_server, "openai/gpt-4o"), entry(fresh_server, "openai/gpt-4o-mini")],
    )
    data = pl.DataFrame({"word": ["alpha", "beta", "gamma", "delta"]})
    run = lo.evaluate(
        prompts=["echo@1"],
        models=[{"model": "router/grid", "api_key": KEY}],
        data=data,
        scorers=[{"contains": {"value": "{{word}}"}}],
        name="routed",
        progress=False,
        cache=False,
    )
    results = run.results
    assert results.height == 4
    assert results["error"].null_count() == 4
    assert results["model"].unique().to_list() == ["router/grid"]
    summary = run.summary()
    assert summary["contains"].to_list() == [1.0] and summary["errors"].sum() == 0
    chosen = set()
    for trace_id in results["trace_id"].to_list():
        (span,) = llm_spans(trace_id)
        assert span.attributes["llmops.router"] == "grid"
        chosen.add(span.attributes["llmops.router.choice"])
    assert chosen <= {"openai/gpt-4o", "openai/gpt-4o-mini"} and chosen
    # an unknown router fails before the run, in one line
    with pytest.raises(NotFound, match="unknown router 'nope'"):
        lo.evaluate(
            prompts=["echo@1"], models=["router/nope"], data=data,
            scorers=[{"contains": {"value": "{{word}}"}}], progress=False,
        )  # fmt: skip
