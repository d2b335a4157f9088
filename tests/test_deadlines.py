"""Timeouts are deadlines: a server that trickles or never answers cannot hold a call,
a grid, or the notebook. Real litellm over HTTP to the test server's trickle and hang modes.

No test measures time: each slow server would hold the call far longer than the test's
own `timeout` mark, so returning at all (with the right error) is the proof.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import polars as pl
import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.llm import health
from llmops_nb.llm.client import ModelCallError, ModelTimeout
from llmops_nb.testing import OpenAIServer

# every test here runs on the fast path and through litellm
pytestmark = pytest.mark.usefixtures("llm_path")

MODEL = "openai/gpt-4o-mini"
KEY = "sk-test-key"


@pytest.fixture(autouse=True)
def closed_breakers() -> Iterator[None]:
    from llmops_nb.llm import runtime

    runtime.litellm()  # imported here, outside each test's time limit (func_only)
    health.reset()
    yield
    health.reset()


def call(srv: OpenAIServer, prompt: str = "Say hi", **kwargs: object) -> lo.Completion:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("cache", False)
    return lo.complete(MODEL, prompt, api_base=srv.base_url, **kwargs)  # type: ignore[arg-type]


async def acall(srv: OpenAIServer, prompt: str = "Say hi", **kwargs: object) -> lo.Completion:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("cache", False)
    return await lo.acomplete(MODEL, prompt, api_base=srv.base_url, **kwargs)  # type: ignore[arg-type]


def warm_up(srv: OpenAIServer) -> None:
    """One ordinary call first, so litellm's first-call setup is not what times out."""
    assert call(srv, "warm").text == "echo: warm"
    srv.reset_stats()


# A reply of ~300 bytes at one byte per 0.5 s takes minutes: every read is in time, the
# whole never is.
TRICKLE = 0.5


@pytest.mark.timeout(40, func_only=True)
def test_a_trickling_server_cannot_hold_a_sync_call(fresh_server: OpenAIServer) -> None:
    warm_up(fresh_server)
    fresh_server.configure(trickle_s=TRICKLE)
    with pytest.raises(ModelTimeout, match=r"no response within 4 s") as err:
        call(fresh_server, timeout=4, retries=0)
    assert "\n" not in str(err.value)
    assert fresh_server.stats.requests == 1
    # the attempt's span is closed, as an error, not left open
    tracing.flush()
    trace = lo.get_trace(err.value.trace_id)
    assert trace.status == "error" and "no response" in (trace.error or "")
    # a trickle that would finish in time is just a slow reply
    fresh_server.configure(trickle_s=0.001)
    assert call(fresh_server, "ok", timeout=20).text == "echo: ok"


@pytest.mark.timeout(40, func_only=True)
def test_a_trickling_server_cannot_hold_an_async_call(fresh_server: OpenAIServer) -> None:
    warm_up(fresh_server)
    fresh_server.configure(trickle_s=TRICKLE)
    with pytest.raises(ModelTimeout, match=r"no response within 4 s"):
        asyncio.run(acall(fresh_server, timeout=4, retries=0))
    assert fresh_server.stats.requests == 1


@pytest.mark.timeout(40, func_only=True)
def test_the_deadline_bounds_the_whole_call_retries_included(fresh_server: OpenAIServer) -> None:
    warm_up(fresh_server)
    fresh_server.configure(hang=True)
    # each attempt may take 3 s, the call 7 s: two full attempts and part of a third,
    # never the six that retries=5 would allow
    with pytest.raises(ModelTimeout) as err:
        call(fresh_server, timeout=3, deadline=7, retries=5)
    assert "deadline of 7 s" in str(err.value)
    assert 2 <= fresh_server.stats.requests <= 3
    # by default the deadline is twice the timeout: two attempts, whatever `retries` says
    fresh_server.reset_stats()
    with pytest.raises(ModelTimeout):
        asyncio.run(acall(fresh_server, timeout=3, retries=10))
    assert fresh_server.stats.requests == 2


@pytest.mark.timeout(60, func_only=True)
def test_a_silent_endpoint_fails_fast_after_a_few_calls(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(hang=True)
    for _ in range(health.THRESHOLD):
        with pytest.raises(ModelTimeout):
            call(fresh_server, timeout=0.5, retries=0)
    sent = fresh_server.stats.requests
    assert sent == health.THRESHOLD
    # the breaker is open: the next call fails at once with the same error, not sent
    with pytest.raises(ModelTimeout, match="not sent: the last 3 calls") as err:
        call(fresh_server, timeout=0.5, retries=0)
    assert "no response within 0.5 s" in str(err.value)
    assert fresh_server.stats.requests == sent
    # another endpoint (or model) is not affected
    fresh_server.configure(hang=False)
    other = lo.complete(
        "openai/test-model", "hi", api_base=fresh_server.base_url, api_key=KEY, cache=False
    )
    assert other.text == "echo: hi"
    # after the cooldown the endpoint is tried again, and a success closes the breaker
    health.reset()
    assert call(fresh_server, "back").text == "echo: back"


@pytest.mark.timeout(120, func_only=True)
def test_a_grid_against_a_silent_endpoint_fails_fast_with_every_cell_an_error(
    fresh_server: OpenAIServer,
) -> None:
    fresh_server.configure(hang=True)
    data = pl.DataFrame({"q": [f"question {i}" for i in range(24)]})
    run = lo.evaluate(
        [{"template": "user:\n{{q}}", "label": "p"}],
        [{"model": MODEL, "label": "silent", "api_base": fresh_server.base_url, "api_key": KEY}],
        data,
        [{"contains": {"value": "question"}}],
        name="silent",
        concurrency=4,
        timeout=1,
        retries=0,
        cache=False,
        progress=False,
    )
    results = run.results
    assert results.height == 24
    assert results["output"].null_count() == 24
    errors = results["error"].to_list()
    assert all("no response within 1 s" in e for e in errors)
    # the first wave timed out; the rest failed at once instead of 1 s each
    assert fresh_server.stats.requests <= 8
    assert sum("not sent" in e for e in errors) >= 16


@pytest.mark.timeout(60, func_only=True)
def test_ctrl_c_in_a_sync_call_stops_its_request(fresh_server: OpenAIServer) -> None:
    """A KeyboardInterrupt while waiting reaches the caller at once; the worker thread
    that was reading the trickling reply ends too."""
    import _thread

    fresh_server.configure(trickle_s=TRICKLE)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call(fresh_server, timeout=30, retries=0)
    finally:
        timer.cancel()
    workers = [t for t in threading.enumerate() if t.name == "llmops-model-call"]
    for worker in workers:
        worker.join(timeout=10)
    assert not any(w.is_alive() for w in workers)


def test_bad_deadlines_are_clear(openai_server: OpenAIServer) -> None:
    for bad in (0, -1, "soon", True):
        with pytest.raises(ModelCallError, match="deadline must be a positive number"):
            call(openai_server, deadline=bad)
    with pytest.raises(ModelCallError, match="timeout must be a positive number"):
        call(openai_server, timeout=-1)
    with pytest.raises(ModelCallError, match="retries must be a whole number"):
        call(openai_server, retries=-5)
