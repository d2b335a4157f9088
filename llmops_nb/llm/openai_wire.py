"""The fast path: chat completions to OpenAI-compatible endpoints without litellm.

`openai/*` models (OpenAI itself, or any `api_base` that speaks its protocol: vLLM,
Ollama's /v1, LM Studio, the test server) need no translation, so the request goes
straight out on a pooled connection: aiohttp for `acomplete` (one session per event
loop, closed when the loop shuts down its async generators, as `asyncio.run` does),
`http.client` connections kept per host for `complete`. litellm's per-call CPU (a few ms)
is what capped a grid near 300 calls/s; this path costs a fraction of it. aiohttp over
the `openai` SDK: 2,000 calls at concurrency 32 against a 0 ms server took 0.45-0.63 ms
of CPU a call with aiohttp and 5.6-6.1 ms with the SDK (httpx and pydantic models), in
the same run on a loaded 2-core machine.

Everything around the request is shared with the litellm path (`client`): the retry
loop, the deadlines, the cache, the error messages (`call_errors`), the LLM span's
contents (`call_span`) and the prices (`pricing`, litellm's own table). Calls this path
cannot send exactly as litellm would (other parameters, no API key, embeddings) go
through litellm; `LLMOPS_NB_FAST_PATH=0` or `%config LLMOps.fast_path = False` sends
every call through litellm.
"""

from __future__ import annotations

import asyncio
import atexit
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import redaction, tracing
from ..config import settings
from . import health, pricing
from .call_errors import call_trace_id
from .call_span import failure, request_attributes, response_fields
from .completion import Completion, Usage

if TYPE_CHECKING:
    from .client import ModelCall

__all__ = ["Route", "WireError", "close_sessions", "route"]

# Parameters sent as they are; any other sends the call through litellm, which knows
# how each provider wants it.
PARAMS = frozenset(
    {
        "temperature", "max_tokens", "max_completion_tokens", "top_p", "n", "stop", "seed",
        "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
        "user", "response_format", "tools", "tool_choice", "parallel_tool_calls",
    }
)  # fmt: skip
_RAW_FIELDS = ("id", "object", "created", "model", "choices", "usage", "system_fingerprint")
DEFAULT_BASE = "https://api.openai.com/v1"


class WireError(Exception):
    """An HTTP error reply; named like litellm's exceptions (the span's `error.type`)."""

    def __init__(self, message: str, status_code: int | None, headers: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


_ERROR_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
}
_ERROR_TYPES: dict[str, type[WireError]] = {}


def _error(status: int, body: bytes, headers: Any) -> WireError:
    """The error for a reply with STATUS: the provider's own message, like litellm's."""
    name = _ERROR_NAMES.get(status) or ("InternalServerError" if status >= 500 else "APIError")
    kind = _ERROR_TYPES.get(name)
    if kind is None:
        kind = _ERROR_TYPES[name] = type(name, (WireError,), {})
    return kind(_message(body) or f"HTTP {status}", status, headers)


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:600]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return json.dumps(data)[:600]


class APIConnectionError(WireError, ConnectionError):
    """No reply: refused, reset or dropped (litellm reports these as 'Connection error.')."""

    def __init__(self) -> None:
        super().__init__("Connection error.", None)


def route(call: ModelCall) -> Route | None:
    """How CALL goes out on the fast path, or None when litellm must send it."""
    if call.operation != "completion" or not settings.fast_path:
        return None
    provider, _, name = call.model.partition("/")
    if provider != "openai" or not name:
        return None
    params = {k: v for k, v in call.params.items() if v is not None}
    if not params.keys() <= PARAMS:
        return None
    api_key = call.api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        return None  # litellm says what is missing
    base = call.api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    base = (base or DEFAULT_BASE).rstrip("/")
    try:
        body = json.dumps({"model": name, "messages": call.messages, **params}).encode()
    except (TypeError, ValueError):
        return None  # e.g. a pydantic response_format: litellm converts it
    redaction.add_secrets([api_key])
    return Route(name, call.model, base, body, api_key, params)


@dataclass(slots=True)
class Route:
    """One call's request on the fast path; `send`/`asend` make one attempt each."""

    name: str  # the endpoint's name for the model
    model: str  # ours: openai/<name>
    api_base: str
    body: bytes
    api_key: str
    params: dict[str, Any]

    @property
    def url(self) -> str:
        return f"{self.api_base}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {self.api_key}",
        }

    def _open_span(self, call_id: str, messages: Any) -> None:
        attributes = request_attributes("chat", "openai", self.name, self.params, self.api_base)
        tracing.start_call_span(
            call_id,
            f"chat {self.name}",
            attributes=attributes,
            # masked by the span writer, with every registered key, before it is stored
            # or exported (`tracing.pipeline`): no second pass per call here
            inputs=tracing.jsonable({"messages": messages}),
            start_ns=time.time_ns(),
        )

    def _succeeded(self, call_id: str, data: Any) -> tuple[dict[str, Any], float | None]:
        if not isinstance(data, dict):
            error = WireError(f"not a chat completion: {str(data)[:200]}", None)
            self._failed(call_id, error)
            raise error
        usage = data.get("usage")
        cost = pricing.cost(self.model, usage if isinstance(usage, Mapping) else None)
        attributes: dict[str, Any] = {}
        outputs: Any = None
        try:
            attributes, outputs = response_fields(data)
        except Exception as exc:  # an unexpected reply shape must not lose the span
            attributes["llmops.response_error"] = str(exc)
        if cost is not None:
            attributes["llmops.cost"] = cost
        tracing.end_call_span(
            call_id,
            outputs=tracing.jsonable(outputs),
            attributes=attributes,
            end_ns=time.time_ns(),
        )
        return data, cost

    def _failed(self, call_id: str, exc: BaseException) -> None:
        name, message = failure(exc)
        tracing.end_call_span(
            call_id,
            attributes={"error.type": name},
            error=message,
            end_ns=time.time_ns(),
        )

    # one attempt: kwargs are `ModelCall.next_attempt()`'s (the call id and the time limit)

    def send(self, **kwargs: Any) -> tuple[dict[str, Any], float | None]:
        call_id = kwargs["litellm_call_id"]
        self._open_span(call_id, kwargs.get("messages"))
        try:
            status, body, headers = _post_sync(
                self.url, self.body, self._headers(), kwargs["timeout"]
            )
            if status >= 400:
                raise _error(status, body, headers)
            data = json.loads(body)
        except Exception as exc:  # an abandoned attempt (BaseException) is ended by the caller
            self._failed(call_id, exc)
            raise _as_wire(exc) from None
        return self._succeeded(call_id, data)

    async def asend(self, **kwargs: Any) -> tuple[dict[str, Any], float | None]:
        call_id = kwargs["litellm_call_id"]
        self._open_span(call_id, kwargs.get("messages"))
        try:
            session = await _session()
            async with session.post(self.url, data=self.body, headers=self._headers()) as reply:
                body = await reply.read()
                if reply.status >= 400:
                    raise _error(reply.status, body, reply.headers)
            data = json.loads(body)
        except Exception as exc:  # a cancelled attempt is ended by the task or the caller
            self._failed(call_id, exc)
            raise _as_wire(exc) from None
        return self._succeeded(call_id, data)

    def completion(self, call: ModelCall, sent: tuple[dict[str, Any], float | None]) -> Completion:
        """The Completion for the reply of the attempt that succeeded."""
        data, cost = sent
        health.record_success(call.model, call.api_base)
        choices = data.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return Completion(
            text=message.get("content") or "",
            model=call.model,
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            ),
            cost=cost,
            latency_ms=(time.perf_counter() - call.start) * 1000,
            cached=False,
            trace_id=call_trace_id(call.call_id),
            finish_reason=choice.get("finish_reason"),
            raw={k: data[k] for k in _RAW_FIELDS if k in data},
        )


def _as_wire(exc: Exception) -> Exception:
    """Connection failures read as litellm's do; timeouts and HTTP errors stay as they are."""
    if isinstance(exc, WireError | TimeoutError):
        return exc
    if isinstance(exc, OSError | http.client.HTTPException) or _is_aiohttp_connection(exc):
        return APIConnectionError()
    if isinstance(exc, ValueError):  # the reply was not JSON
        return WireError(f"the reply is not JSON: {exc}", None)
    return exc


def _is_aiohttp_connection(exc: Exception) -> bool:
    aiohttp = _aiohttp
    return aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError)


# --- sync: http.client connections kept per host ---------------------------------------

_idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
_idle_lock = threading.Lock()


def _post_sync(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes, Any]:
    """POST on a kept-alive connection; a stale kept one is replaced once, transparently."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    key = (parts.scheme, host, port)
    for attempt in (0, 1):
        conn, reused = _take(key, timeout)
        try:
            conn.request("POST", path, body, headers)
            reply = conn.getresponse()
            data = reply.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if reused and attempt == 0:
                continue  # the server closed a kept connection: a fresh one, same attempt
            raise
        except BaseException:
            conn.close()
            raise
        if reply.will_close:
            conn.close()
        else:
            with _idle_lock:
                _idle.setdefault(key, []).append(conn)
        return reply.status, data, reply.headers
    raise AssertionError("unreachable")  # pragma: no cover


@atexit.register
def _close_idle() -> None:
    with _idle_lock:
        kept = [conn for conns in _idle.values() for conn in conns]
        _idle.clear()
    for conn in kept:
        conn.close()


def _take(key: tuple[str, str, int], timeout: float) -> tuple[http.client.HTTPConnection, bool]:
    with _idle_lock:
        kept = _idle.get(key)
        conn = kept.pop() if kept else None
    if conn is not None:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True
    scheme, host, port = key
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=timeout)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn, False


# --- async: one aiohttp session per event loop -----------------------------------------

_aiohttp: Any = None  # imported with the first async call
_sessions: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}  # loop -> (session, closer)


async def _session() -> Any:
    """This loop's session; closed when the loop shuts down its async generators."""
    global _aiohttp
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop)
    if found is not None and not found[0].closed:
        return found[0]
    if _aiohttp is None:
        import aiohttp

        _aiohttp = aiohttp
    session = _aiohttp.ClientSession(
        connector=_aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=False),
        timeout=_aiohttp.ClientTimeout(total=None),  # each attempt is bounded by the deadline
        skip_auto_headers=("User-Agent",),
    )
    closer = _close_with_loop(loop, session)
    await closer.asend(None)  # started: the loop now tracks it (`shutdown_asyncgens`)
    _sessions[loop] = (session, closer)
    for other in [lp for lp in _sessions if lp.is_closed()]:
        _sessions.pop(other, None)  # a loop closed without shutting down: drop its entry
    return session


async def _close_with_loop(loop: asyncio.AbstractEventLoop, session: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        _sessions.pop(loop, None)
        await session.close()


async def close_sessions() -> None:
    """Close this loop's session now (a long-lived loop that is done with the fast path)."""
    found = _sessions.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found[1].aclose()
