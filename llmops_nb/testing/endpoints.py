"""The test server's aiohttp application: its settings, counters, fault modes and endpoints.

Every model endpoint goes through one front door that counts and records the request,
then applies the injected faults (hang, bad key, latency, queued or seeded 429s and
500s, unknown model) before the reply; the trickle mode slows the response itself.
Admin endpoints let a server in another process be steered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import struct
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from .replies import Reply, content_text, count_tokens, echo_reply, embed_text, truncate_reply

__all__ = ["ServerApp", "ServerConfig", "ServerStats"]


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


class ServerApp:
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
            4 + count_tokens(content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        )
        text, finish = truncate_reply(self._reply(body), body)
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
        text, finish = truncate_reply(self._reply(body), body)
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
