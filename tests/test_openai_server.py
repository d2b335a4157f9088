"""The OpenAI-compatible test server, through the real litellm and openai clients."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

import pytest

from llmops_nb.llm import runtime
from llmops_nb.testing import OpenAIServer, serve, spawn

KEY = "sk-test-key"


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors(openai_server: OpenAIServer) -> None:
    litellm = runtime.litellm()
    texts = [
        "the cat sat on the mat",
        "the cat sat on the mat",
        "the cat sat on a mat",
        "stock prices",
    ]
    response = litellm.embedding(
        model="openai/text-embedding-3-small",
        input=texts,
        api_base=openai_server.base_url,
        api_key=KEY,
    )
    vectors = [item["embedding"] for item in response.data]
    assert [len(v) for v in vectors] == [64] * 4
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vectors)
    assert vectors[0] == vectors[1]
    # shared words point the same way; unrelated text does not
    assert cosine(vectors[0], vectors[2]) > 0.5 > abs(cosine(vectors[0], vectors[3]))
    assert response.usage.prompt_tokens > 0


def test_embedding_dimension_and_base64(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(embedding_dim=16)
    url = fresh_server.base_url + "/embeddings"
    _, _, plain = post(url, {"model": "m", "input": "hello"})
    assert len(plain["data"][0]["embedding"]) == 16
    _, _, sized = post(url, {"model": "m", "input": ["hello"], "dimensions": 8})
    assert len(sized["data"][0]["embedding"]) == 8
    _, _, encoded = post(url, {"model": "m", "input": "hello", "encoding_format": "base64"})
    assert isinstance(encoded["data"][0]["embedding"], str)


def test_models_and_text_completions(openai_server: OpenAIServer) -> None:
    with urllib.request.urlopen(openai_server.base_url + "/models", timeout=10) as response:
        names = [m["id"] for m in json.loads(response.read())["data"]]
    assert "gpt-4o-mini" in names
    status, _, body = post(
        openai_server.base_url + "/completions", {"model": "m", "prompt": "abc def"}
    )
    assert status == 200
    assert body["choices"][0]["text"] == "echo: abc def"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


@pytest.mark.filterwarnings("ignore:Item 'summary' on TypedDict:UserWarning")  # litellm's types
def test_streaming_gives_the_same_text(openai_server: OpenAIServer) -> None:
    litellm = runtime.litellm()
    chunks = litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        api_base=openai_server.base_url,
        api_key=KEY,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "echo: stream these words please"


def test_injected_errors_are_seeded_and_carry_retry_after() -> None:
    def statuses(seed: int) -> list[int]:
        with serve(rate_429=0.3, rate_500=0.2, seed=seed, retry_after=1.5) as srv:
            codes = []
            for _ in range(60):
                status, headers, body = post(
                    srv.base_url + "/chat/completions",
                    {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                )
                codes.append(status)
                if status == 429:
                    assert headers["Retry-After"] == "1.5"
                    assert body["error"]["code"] == "rate_limit_exceeded"
            stats = srv.stats
            assert (stats.requests, stats.rate_limited, stats.server_errors) == (
                60,
                codes.count(429),
                codes.count(500),
            )
            return codes

    first = statuses(seed=3)
    assert first == statuses(seed=3)
    assert first != statuses(seed=4)
    assert set(first) == {200, 429, 500}


def test_custom_reply_function_and_live_configure(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(reply=lambda body: body["messages"][-1]["content"].upper())
    status, _, body = post(
        fresh_server.base_url + "/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "shout"}]},
    )
    assert (status, body["choices"][0]["message"]["content"]) == (200, "SHOUT")
    with pytest.raises(TypeError, match="unknown server setting"):
        fresh_server.configure(latency=5)


def test_spawned_server_in_its_own_process() -> None:
    with spawn(latency_ms=0) as srv:
        srv.fail_next(503)
        payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert post(srv.base_url + "/chat/completions", payload)[0] == 503
        status, _, body = post(srv.base_url + "/chat/completions", payload)
        assert (status, body["choices"][0]["message"]["content"]) == (200, "echo: hi")
        srv.configure(rate_500=1.0)
        assert post(srv.base_url + "/chat/completions", payload)[0] == 500
        stats = srv.stats
        assert (stats.requests, stats.ok, stats.server_errors) == (3, 1, 2)
    assert srv.process.poll() is not None


def _raw_request(srv: OpenAIServer, read_timeout: float) -> tuple[bytes, list[bytes]]:
    """POST one chat request over a plain socket; (everything before the body, the body's
    reads) until the server closes or a read waits longer than READ_TIMEOUT."""
    import socket

    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()
    with socket.create_connection((srv.host, srv.port), timeout=read_timeout) as sock:
        sock.sendall(request)
        received = b""
        reads: list[bytes] = []
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            head, _, first = received.partition(b"\r\n\r\n")
            if first:
                reads.append(first)
            while len(reads) < 5:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reads.append(chunk)
        except TimeoutError:
            head = received.partition(b"\r\n\r\n")[0]
        return head, reads


def test_trickle_mode_sends_the_body_a_byte_at_a_time(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(trickle_s=0.2)
    head, reads = _raw_request(fresh_server, read_timeout=5)
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                 .split(b":")[1])  # fmt: skip
    assert length > 100  # a whole reply is on its way...
    assert len(reads) == 5 and all(len(r) == 1 for r in reads)  # ...one byte per read
    assert b"".join(reads) == b'{"id"'


def test_hang_mode_reads_the_request_and_never_answers(fresh_server: OpenAIServer) -> None:
    fresh_server.configure(hang=True)
    head, reads = _raw_request(fresh_server, read_timeout=1.0)
    assert (head, reads) == (b"", [])
    assert fresh_server.stats.requests == 1  # it arrived, and was counted
    assert fresh_server.requests[-1]["body"]["messages"][0]["content"] == "hi"
    fresh_server.configure(hang=False)
    head, _ = _raw_request(fresh_server, read_timeout=5)
    assert head.startswith(b"HTTP/1.1 200")
