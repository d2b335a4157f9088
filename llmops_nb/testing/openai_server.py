"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests, demos and benchmarks.

Real HTTP (aiohttp), so litellm and the openai client run their whole stack against
it. Replies are a deterministic function of the request; latency, 429s (with
`Retry-After`) and 500s can be injected at seeded random rates or queued one by one,
and counters say what reached the server.

    with serve(latency_ms=0) as srv:
        lo.complete("openai/gpt-4o-mini", "hi", api_base=srv.base_url, api_key="sk-test")
        srv.stats.requests

`python -m llmops_nb.testing.openai_server --port 8000` runs one in the foreground;
`spawn(...)` runs one in a child process (its own core, for benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any

from aiohttp import web

__all__ = [
    "OpenAIServer",
    "RemoteServer",
    "ServerConfig",
    "ServerStats",
    "count_tokens",
    "echo_reply",
    "embed_text",
    "serve",
    "spawn",
]

Reply = Callable[[dict[str, Any]], str]
"""A reply function: the request body (JSON) -> the assistant's text."""

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: `echo: ` + the last user message (or the prompt)."""
    if "messages" in body:
        for message in reversed(body.get("messages") or []):
            if message.get("role") == "user":
                return "echo: " + _content_text(message.get("content"))
        return "echo: "
    prompt = body.get("prompt", "")
    return "echo: " + (prompt if isinstance(prompt, str) else " ".join(map(str, prompt)))


@lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> tuple[float, ...]:
    rng = random.Random(hashlib.sha256(word.encode()).digest())
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dim))


def embed_text(text: str, dim: int = 64) -> list[float]:
    """A unit vector from the hashes of the words: equal texts give equal vectors and
    texts that share words point the same way, so cosine similarity means something."""
    vector = [0.0] * dim
    words = [w.lower() for w in _TOKEN.findall(text) if w.isalnum() or w.isalpha()]
    for word in words or [text]:
        for i, x in enumerate(_word_vector(word, dim)):
            vector[i] += x
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


@dataclass
class ServerConfig:
    """What the server does; change it live with `configure`."""

    latency_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    retry_after: float | None = None  # seconds, sent with every 429 when set
    seed: int = 0
    embedding_dim: int = 64
    models: list[str] | None = None  # when set, other models get a 404 model_not_found
    api_key: str | None = None  # when set, requests without `Bearer <api_key>` get a 401
    trickle_s: float = 0.0  # when > 0, every response is sent one byte per trickle_s seconds
    hang: bool = False  # when set, requests are read and never answered (a silent server)
    reply: Reply | None = field(default=None, repr=False)  # None: echo_reply

    def public(self) -> dict[str, Any]:
        """The settings that can travel as JSON (all but the reply function)."""
        return {k: v for k, v in asdict(self).items() if k != "reply"}


@dataclass
class ServerStats:
    """Counters of what reached the server since start (or `reset_stats`)."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0  # 429s sent
    server_errors: int = 0  # 5xx sent
    client_errors: int = 0  # other 4xx sent: bad request, bad key, unknown model
    by_path: dict[str, int] = field(default_factory=dict)


class _App:
    """The request handlers and their state; runs on one event loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = ServerStats()
        self.queued: deque[tuple[int, float | None]] = deque()
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)

    def configure(self, **settings: Any) -> None:
        names = {f.name for f in fields(ServerConfig)}
        unknown = set(settings) - names
        if unknown:
            raise TypeError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        for name, value in settings.items():
            setattr(self.config, name, value)
        if "seed" in settings:
            self.rng = random.Random(self.config.seed)

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._slow_down])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.text_completion)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/_admin/stats", self.admin_stats)
        app.router.add_post("/_admin/configure", self.admin_configure)
        app.router.add_post("/_admin/fail_next", self.admin_fail_next)
        app.router.add_post("/_admin/reset_stats", self.admin_reset_stats)
        return app

    @web.middleware
    async def _slow_down(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """The trickle mode, around every model endpoint (not the admin ones)."""
        if request.path.startswith("/_admin"):
            return await handler(request)
        response = await handler(request)
        delay = self.config.trickle_s
        if delay <= 0 or not isinstance(response, web.Response) or response.body is None:
            return response
        body = bytes(response.body)  # type: ignore[arg-type]
        slow = web.StreamResponse(status=response.status, headers=response.headers)
        slow.content_length = len(body)
        await slow.prepare(request)
        for i in range(len(body)):  # headers at once, then one byte per `delay` seconds
            if request.transport is None or request.transport.is_closing():
                break  # the client gave up
            await slow.write(body[i : i + 1])
            await asyncio.sleep(delay)
        await slow.write_eof()
        return slow

    # --- the common front door: count, record, delay, inject errors ----------------

    async def _admit(
        self, request: web.Request, path: str
    ) -> tuple[dict[str, Any], web.Response | None]:
        stats = self.stats
        stats.requests += 1
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            stats.client_errors += 1
            return {}, _error(400, "the request body is not JSON", "invalid_request_error")
        self.recent.append({"path": path, "headers": dict(request.headers), "body": body})
        while self.config.hang:  # counted and recorded, never answered (until hang is unset)
            if request.transport is None or request.transport.is_closing():
                raise asyncio.CancelledError  # the client gave up: nothing to answer
            await asyncio.sleep(0.05)
        if self.config.api_key is not None:
            if request.headers.get("Authorization") != f"Bearer {self.config.api_key}":
                stats.client_errors += 1
                given = request.headers.get("Authorization", "").removeprefix("Bearer ")
                return body, _error(  # quoting the key, as some providers do
                    401, f"Incorrect API key provided: {given} (test server)",
                    "invalid_request_error", code="invalid_api_key",
                )  # fmt: skip
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        status, retry_after = self._next_status()
        if status == 429:
            stats.rate_limited += 1
            return body, _error(
                429,
                "Rate limit reached (test server)",
                "rate_limit_error",
                code="rate_limit_exceeded",
                retry_after=retry_after,
            )
        if status >= 500:
            stats.server_errors += 1
            return body, _error(status, "The server had an error (test server)", "server_error")
        if status != 200:
            stats.client_errors += 1
            return body, _error(status, "Invalid request (test server)", "invalid_request_error")
        model = body.get("model")
        if (
            self.config.models is not None
            and path != "/v1/embeddings"
            and model not in self.config.models
        ):
            stats.client_errors += 1
            return body, _error(
                404,
                f"The model `{model}` does not exist (test server)",
                "invalid_request_error",
                code="model_not_found",
            )
        stats.ok += 1
        return body, None

    def _next_status(self) -> tuple[int, float | None]:
        if self.queued:
            return self.queued.popleft()
        cfg = self.config
        if cfg.rate_429 <= 0 and cfg.rate_500 <= 0:
            return 200, None
        r = self.rng.random()
        if r < cfg.rate_429:
            return 429, cfg.retry_after
        if r < cfg.rate_429 + cfg.rate_500:
            return 500, None
        return 200, None

    def _reply(self, body: dict[str, Any]) -> str:
        return (self.config.reply or echo_reply)(body)

    # --- endpoints ------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._admit(request, "/v1/chat/completions")
        if failure is not None:
            return failure
        messages = body.get("messages") or []
        prompt_tokens = 3 + sum(
            4 + count_tokens(_content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        )
        text, finish = _truncate(self._reply(body), body)
        completion_tokens = count_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ident = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model = body.get("model", "test-model")
        if body.get("stream"):
            return await self._stream_chat(
                request, body, ident, created, model, text, finish, usage
            )
        return web.json_response(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                "system_fingerprint": "fp_llmops_nb_test",
            }
        )

    async def _stream_chat(
        self,
        request: web.Request,
        body: dict[str, Any],
        ident: str,
        created: int,
        model: str,
        text: str,
        finish: str,
        usage: dict[str, int],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None, **extra: Any) -> bytes:
            payload = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        await response.write(chunk({"role": "assistant", "content": ""}, None))
        for piece in re.findall(r"\S+\s*|\s+", text):
            await response.write(chunk({"content": piece}, None))
        await response.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            payload = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def text_completion(self, request: web.Request) -> web.Response:
        body, failure = await self._admit(request, "/v1/completions")
        if failure is not None:
            return failure
        prompt = body.get("prompt", "")
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        text, finish = _truncate(self._reply(body), body)
        prompt_tokens, completion_tokens = count_tokens(prompt_text), count_tokens(text)
        return web.json_response(
            {
                "id": "cmpl-" + uuid.uuid4().hex[:24],
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model", "test-model"),
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def embeddings(self, request: web.Request) -> web.Response:
        body, failure = await self._admit(request, "/v1/embeddings")
        if failure is not None:
            return failure
        inputs = body.get("input", "")
        if isinstance(inputs, str) or (
            isinstance(inputs, list) and inputs and isinstance(inputs[0], int)
        ):
            inputs = [inputs]
        dim = int(body.get("dimensions") or self.config.embedding_dim)
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += count_tokens(text)
            vector = embed_text(text, dim)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "test-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def list_models(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        self.stats.by_path["/v1/models"] = self.stats.by_path.get("/v1/models", 0) + 1
        self.stats.ok += 1
        names = self.config.models or ["test-model", "gpt-4o-mini", "text-embedding-3-small"]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": 0, "owned_by": "llmops_nb"}
                    for n in names
                ],
            }
        )

    # --- admin endpoints, so a server in another process can be steered -----------------

    async def admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.stats))

    async def admin_configure(self, request: web.Request) -> web.Response:
        try:
            self.configure(**(await request.json()))
        except TypeError as exc:
            return _error(400, str(exc), "invalid_request_error")
        return web.json_response(self.config.public())

    async def admin_fail_next(self, request: web.Request) -> web.Response:
        body = await request.json()
        for _ in range(int(body.get("times", 1))):
            self.queued.append((int(body["status"]), body.get("retry_after")))
        return web.json_response({"queued": len(self.queued)})

    async def admin_reset_stats(self, request: web.Request) -> web.Response:
        self.stats = ServerStats()
        return web.json_response(asdict(self.stats))


def _truncate(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Cut the reply at max_tokens like a real model would, saying so in finish_reason."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if not limit:
        return text, "stop"
    spans = [m.end() for m in _TOKEN.finditer(text)]
    if len(spans) <= int(limit):
        return text, "stop"
    return text[: spans[int(limit) - 1]], "length"


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status=status,
        headers=headers,
    )


class OpenAIServer:
    """A server running in a background thread with its own event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        self._app = _App(ServerConfig())
        self._app.configure(**settings)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to give a client: `http://127.0.0.1:PORT/v1`."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def config(self) -> ServerConfig:
        return self._app.config

    @property
    def stats(self) -> ServerStats:
        return self._app.stats

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 200 requests (path, headers, JSON body), oldest first."""
        return list(self._app.recent)

    def configure(self, **settings: Any) -> None:
        """Change settings live (latency_ms, rate_429, rate_500, retry_after, seed, reply,
        trickle_s, hang...)."""
        self._app.configure(**settings)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next TIMES requests with STATUS (429 carries RETRY_AFTER), then as usual."""
        for _ in range(times):
            self._app.queued.append((status, retry_after))

    def reset_stats(self) -> None:
        self._app.stats = ServerStats()
        self._app.recent.clear()

    def start(self) -> OpenAIServer:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._runner = web.AppRunner(
                    self._app.build(),
                    access_log=None,
                    handle_signals=False,
                    shutdown_timeout=0.5,  # do not wait out injected latency on close
                )
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
                loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(
            target=run, name=f"openai-test-server-{id(self)}", daemon=True
        )
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def serve(
    latency_ms: float = 0.0,
    rate_429: float = 0.0,
    rate_500: float = 0.0,
    seed: int = 0,
    *,
    port: int = 0,
    **settings: Any,
) -> Iterator[OpenAIServer]:
    """Run an OpenAI-compatible server in a background thread for the `with` block."""
    server = OpenAIServer(
        port=port,
        latency_ms=latency_ms,
        rate_429=rate_429,
        rate_500=rate_500,
        seed=seed,
        **settings,
    )
    with server:
        yield server


class RemoteServer:
    """A server in a child process (see `spawn`), steered through its admin endpoints."""

    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self._root = base_url.rsplit("/v1", 1)[0]

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._root + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    @property
    def stats(self) -> ServerStats:
        return ServerStats(**self._call("/_admin/stats"))

    def configure(self, **settings: Any) -> None:
        if "reply" in settings:
            raise TypeError("a reply function cannot be sent to a server in another process")
        self._call("/_admin/configure", settings)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self._call(
            "/_admin/fail_next", {"status": status, "times": times, "retry_after": retry_after}
        )

    def reset_stats(self) -> None:
        self._call("/_admin/reset_stats", {})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RemoteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(
    latency_ms: float = 0.0, rate_429: float = 0.0, rate_500: float = 0.0, seed: int = 0
) -> RemoteServer:
    """Start a server in a child process (its own interpreter and core); close() stops it."""
    args = [
        sys.executable, "-m", "llmops_nb.testing.openai_server", "--port", "0",
        "--latency-ms", str(latency_ms), "--rate-429", str(rate_429),
        "--rate-500", str(rate_500), "--seed", str(seed),
    ]  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("http"):
        process.kill()
        raise RuntimeError(f"the test server did not start: {line.strip() or 'no output'}")
    return RemoteServer(process, line.split()[0])


def main(argv: list[str] | None = None) -> None:
    """Run a server in the foreground; prints its base URL on the first line."""
    parser = argparse.ArgumentParser(
        prog="python -m llmops_nb.testing.openai_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=None, help="seconds, sent with 429s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedding-dim", type=int, default=64)
    args = parser.parse_args(argv)
    server = OpenAIServer(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        retry_after=args.retry_after,
        seed=args.seed,
        embedding_dim=args.embedding_dim,
    ).start()
    print(f"{server.base_url}  (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
