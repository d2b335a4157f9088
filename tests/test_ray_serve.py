"""The serving routes on Ray Serve, as an application sees them: one local Ray cluster
and one 2-replica deployment for the module, the official openai SDK as the client, and
one PostgreSQL store (the store several machines would share) read and written by this
process and both replicas. The prompt's model is the OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

import llmops_nb as lo
from llmops_nb import config
from llmops_nb.cli import main
from llmops_nb.ray_cluster import RayNotInstalled
from llmops_nb.serving import ServeError, create_key
from llmops_nb.serving.app import DEFAULT_MAX_BODY
from llmops_nb.store import reset_store
from llmops_nb.testing import OpenAIServer

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'llmops_nb[ray]'")
pytest.importorskip("ray.serve", reason="ray[serve] is not installed: pip install 'llmops_nb[ray]'")

import conftest  # noqa: E402  (the session's PostgreSQL server)
from test_serving import QUESTION, register_support_prompt, trace_of, wait_trace  # noqa: E402

from llmops_nb.serving.ray_serve import RayServer  # noqa: E402

ROUTES = {"support": "support_reply@production", "raw": "openai/gpt-4o-mini"}


@dataclass
class Deployed:
    server: RayServer
    store_url: str
    key: str


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, openai_server: OpenAIServer
) -> Iterator[Deployed]:
    """The routes on 2 Ray Serve replicas (half a CPU each) over a fresh PostgreSQL store;
    the replicas get the test server's key and URL through forward_env. A Ray cluster
    this session already runs (tests/test_ray.py's) is reused."""
    url = conftest.postgres_url()
    started = not ray.is_initialized()
    if started:
        # LLMOPS_NB_TEST_RAY_ADDRESS: run against a cluster started apart (`ray start --head`)
        existing = os.environ.get("LLMOPS_NB_TEST_RAY_ADDRESS")
        local = {"address": "local", "num_cpus": 2, "include_dashboard": False,
                 "object_store_memory": 150 * 2**20}  # fmt: skip
        ray.init(**({"address": existing} if existing else local), log_to_driver=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_NB_STORE", url)
        mp.setenv("LLMOPS_NB_HOME", str(tmp_path_factory.mktemp("ray-serve")))
        mp.setenv("OPENAI_API_KEY", "sk-test")  # the test server accepts any
        mp.setenv("OPENAI_BASE_URL", openai_server.base_url)  # where `raw` goes
        mp.setattr(config.settings, "project", "default")
        mp.setattr(config.settings, "ray_num_cpus", 0.5)
        reset_store()
        register_support_prompt(openai_server.base_url)
        key = create_key("app").key
        server = lo.serve(
            ROUTES, executor="ray", replicas=2, port=0,
            forward_env=["OPENAI_API_KEY", "OPENAI_BASE_URL"],
        )  # fmt: skip
        reset_store()
    assert isinstance(server, RayServer)
    yield Deployed(server, url, key)
    server.stop()
    if started:
        ray.shutdown()


@pytest.fixture
def server_store(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test reads (and writes) the store the replicas use."""
    monkeypatch.setenv("LLMOPS_NB_STORE", deployed.store_url)
    reset_store()
    return deployed.store_url


def client(deployed: Deployed, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=deployed.server.url, api_key=key or deployed.key, max_retries=0)


def ask_many(deployed: Deployed, n: int) -> list[Any]:
    """N concurrent prompt-route requests (raw responses: headers and body)."""

    async def call_all() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=deployed.server.url, api_key=deployed.key, max_retries=0
        ) as c:
            return await asyncio.gather(*(
                c.chat.completions.with_raw_response.create(
                    model="support", messages=[{"role": "user", "content": f"question {i}"}],
                    metadata={"product": "Acme"},
                )
                for i in range(n)
            ))  # fmt: skip

    return asyncio.run(call_all())


def test_sync_and_streamed_answers_are_traces_with_route_version_and_key(
    deployed: Deployed, server_store: str
) -> None:
    c = client(deployed)
    raw = c.chat.completions.with_raw_response.create(
        model="support", messages=QUESTION, metadata={"product": "Acme"}
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: v2 How do I reset my password?"
    assert raw.headers["x-llmops-prompt-version"] == "support_reply@2"
    assert raw.headers["x-llmops-model"] == "openai/gpt-4o-mini"

    whole = c.chat.completions.create(model="raw", messages=QUESTION)
    stream = c.chat.completions.create(
        model="raw", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    parts = list(stream)
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text == whole.choices[0].message.content == "echo: How do I reset my password?"
    assert len([p for p in parts if p.choices and p.choices[0].delta.content]) > 1
    assert parts[-1].usage is not None and parts[-1].usage.total_tokens == whole.usage.total_tokens

    key_id = deployed.key.split("-")[1]
    root = wait_trace(trace_of(reply.id)).root
    assert root is not None and root.name == "serve"
    assert root.attributes["llmops.serve.route"] == "support"
    assert root.attributes["llmops.prompt.name"] == "support_reply"
    assert root.attributes["llmops.prompt.version"] == 2
    assert root.attributes["llmops.serve.key_id"] == key_id
    streamed = wait_trace(parts[0].id.removeprefix("chatcmpl-"))
    assert streamed.root is not None and streamed.root.attributes["llmops.serve.stream"] is True
    assert streamed.root.attributes["llmops.serve.route"] == "raw"
    assert streamed.root.attributes["llmops.serve.key_id"] == key_id
    assert streamed.tokens == whole.usage.total_tokens


def test_both_replicas_answer_and_write_to_the_one_store(
    deployed: Deployed, server_store: str
) -> None:
    assert "2/2 replicas running" in repr(deployed.server)
    answers = ask_many(deployed, 24)
    replies = [a.parse() for a in answers]
    assert sorted(r.choices[0].message.content for r in replies) == sorted(
        f"echo: v2 question {i}" for i in range(24)
    )
    assert len({a.headers["x-llmops-replica"] for a in answers}) == 2
    traces = [wait_trace(trace_of(r.id)) for r in replies]
    assert len({t.id for t in traces}) == 24
    assert all(t.status == "ok" and len(t.spans) == 2 for t in traces)


def test_alias_moved_here_changes_the_next_answer_of_every_replica(
    deployed: Deployed, server_store: str
) -> None:
    assert lo.set_alias("support_reply", "production", 1) == (
        "support_reply@production -> v1 (was v2)"
    )
    try:
        answers = ask_many(deployed, 12)
        assert {a.headers["x-llmops-prompt-version"] for a in answers} == {"support_reply@1"}
        assert len({a.headers["x-llmops-replica"] for a in answers}) == 2
        assert sorted(a.parse().choices[0].message.content for a in answers) == sorted(
            f"echo: v1 question {i}" for i in range(12)
        )
    finally:
        lo.set_alias("support_reply", "production", 2)


def test_refusals_and_models_as_the_aiohttp_endpoint_answers(
    deployed: Deployed,
) -> None:
    for key in ("wrong", deployed.key[:-2] + "xx"):
        with pytest.raises(openai.AuthenticationError) as caught:
            client(deployed, key).chat.completions.create(model="support", messages=QUESTION)
        assert caught.value.status_code == 401
        assert caught.value.body == {
            "message": "invalid or missing API key", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key",
        }  # fmt: skip
    with pytest.raises(openai.NotFoundError) as missing:
        client(deployed).chat.completions.create(model="nope", messages=QUESTION)
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert [m.id for m in client(deployed).models.list()] == ["support", "raw"]
    # over the body limit: refused from the Content-Length, or while a chunked body arrives
    url, auth = (
        f"{deployed.server.url}/chat/completions",
        {"Authorization": f"Bearer {deployed.key}"},
    )
    wrong_verb = httpx.get(url, headers=auth)
    assert wrong_verb.status_code == 405 and wrong_verb.json()["error"]["code"] == "405"
    big = b"x" * (DEFAULT_MAX_BODY + 1)
    for content in (big, iter([big[:1000], big[1000:]])):
        refused = httpx.post(url, headers=auth, content=content)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "request_too_large"


def test_bad_ray_options_are_one_line_before_any_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ServeError, match="not set in this environment"):
        lo.serve(ROUTES, executor="ray", forward_env=["LLMOPS_NB_TEST_UNSET"])
    with pytest.raises(ServeError, match="at least 1"):
        lo.serve(ROUTES, executor="ray", replicas=0)
    with pytest.raises(ServeError, match="are for executor='ray'"):
        lo.serve(ROUTES, replicas=2)
    assert main(["serve", "--route", "raw=openai/gpt-4o-mini", "--replicas", "2"]) == 1
    assert capsys.readouterr().err == (
        "error: --replicas, --ray-address and --forward-env need --ray\n"
    )
    # without the extra's Serve dependencies: one line with the pip command
    monkeypatch.delattr(ray, "serve")
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    with pytest.raises(RayNotInstalled) as caught:
        lo.serve(ROUTES, executor="ray")
    assert str(caught.value) == (
        "serving on Ray needs Ray Serve, which is not installed: pip install 'llmops_nb[ray]'"
    )
