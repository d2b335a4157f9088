"""The aiohttp application: `/v1/chat/completions` and `/v1/models`, behind API keys, a
body size limit and OpenAI-shaped errors; run in the foreground (the CLI) or in a
background thread of the kernel (`lo.serve`)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .openai_shapes import RequestError, chunks, completion_body, models_body
from .routes import RouteTable, ServeError
from .streaming import send_events

__all__ = ["DEFAULT_MAX_BODY", "GUARD_ACTIONS", "Reply", "ServeApp", "ServeOptions", "Server"]

log = logging.getLogger("llmops_nb.serving")

DEFAULT_MAX_BODY = 1024 * 1024
GUARD_ACTIONS = ("block", "redact", "flag")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _unauthorized() -> RequestError:
    """The same answer for a missing, malformed, wrong or revoked key."""
    return RequestError(401, "invalid or missing API key", code="invalid_api_key")


@dataclass
class ServeOptions:
    """How a server runs; checked by `ServeApp` before anything listens."""

    routes: Mapping[str, str] | Iterable[str]
    host: str = "127.0.0.1"
    port: int = 8088
    auth: bool = True
    guards: Mapping[str, Iterable[str]] = field(default_factory=dict)
    guard_action: str = "block"
    max_body: int = DEFAULT_MAX_BODY
    cache: bool = False  # production traffic reaches the model, unlike a notebook rerun
    project: str | None = None


@dataclass
class Reply:
    """A chat completion's answer before a web framework writes it: a whole completion
    (`body`) or the SSE chunks of a streamed one (`events`)."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None


@dataclass
class ServeStats:
    requests: int = 0
    errors: int = 0


def _check_options(options: ServeOptions) -> None:
    if not options.auth and options.host not in LOCAL_HOSTS:
        raise ServeError(
            f"--no-auth is allowed only on 127.0.0.1 or localhost, not on {options.host}: "
            "create a key with `llmops-nb keys create NAME`"
        )
    if options.guard_action not in GUARD_ACTIONS:
        raise ServeError(
            f"guard action {options.guard_action!r}: use one of {', '.join(GUARD_ACTIONS)}"
        )
    if options.guards:
        from ..errors import LLMOpsError
        from ..guardrails import check_names

        for route, checks in options.guards.items():
            try:
                check_names(list(checks))
            except LLMOpsError as exc:
                raise ServeError(f"--guard {route}: {exc}") from None
    if (
        isinstance(options.max_body, bool)
        or not isinstance(options.max_body, int)
        or options.max_body < 1
    ):
        raise ServeError(f"max_body must be a positive number of bytes, not {options.max_body!r}")


class ServeApp:
    """The endpoint's state (routes, key cache, counters), its request handling (which
    the aiohttp application and the Ray Serve replicas both call) and its aiohttp app."""

    def __init__(self, options: ServeOptions) -> None:
        _check_options(options)
        self.options = options
        guards = {
            name: [c.strip() for c in checks if c.strip()]
            for name, checks in options.guards.items()
        }
        self.table = RouteTable(options.routes, guards=guards, project=options.project)
        problems = self.table.check()
        if problems:
            raise ServeError("\n".join(problems))
        self.stats = ServeStats()
        self._keys: dict[str, tuple[str, int]] = {}  # valid key -> (key id, generation)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body, middlewares=[self._errors])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.list_models)
        return app

    # --- middlewares -------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every refusal in the OpenAI error shape, with no traceback."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(self.too_large())
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._refuse(RequestError(exc.status, exc.reason, code=str(exc.status)))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            return self._refuse(exc)

    def _refuse(self, exc: Exception) -> web.Response:
        status, body, headers = self.refusal(exc)
        return web.json_response(body, status=status, headers=headers or None)

    def refusal(self, exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, OpenAI error body, headers) for a refused request; anything but a
        RequestError is logged and answered as a bare 500."""
        if not isinstance(exc, RequestError):
            log.error("llmops_nb serve: request failed", exc_info=exc)
            exc = RequestError(500, "internal error", type="server_error")
        self.stats.errors += 1
        headers = {"x-llmops-trace-id": exc.trace_id} if exc.trace_id else {}
        return exc.status, exc.body(), headers

    def too_large(self) -> RequestError:
        return RequestError(
            413, f"the request body is over the limit of {self.options.max_body} bytes",
            code="request_too_large",
        )  # fmt: skip

    async def _authorize(self, headers: Mapping[str, str], generation: int) -> str | None:
        """The caller's key id: a valid `Authorization: Bearer KEY` is required unless the
        server runs with --no-auth (then None); a refusal says nothing about why."""
        if not self.options.auth:
            return None
        scheme, _, key = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthorized()
        key_id = await self._check_key(key.strip(), generation)
        if key_id is None:
            raise _unauthorized()
        return key_id

    async def _check_key(self, key: str, generation: int) -> str | None:
        """The key id of a valid key; valid keys are cached until the marker moves (a
        revoke), invalid ones are looked up each time (no cache to fill with junk)."""
        from .auth import check_key

        hit = self._keys.get(key)
        if hit is not None and hit[1] == generation:
            return hit[0]
        key_id = await asyncio.to_thread(check_key, key)
        if key_id is not None:
            self._keys[key] = (key_id, generation)
        else:
            self._keys.pop(key, None)
        return key_id

    # --- request handling (every face) -------------------------------------------------

    async def models(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """The `/v1/models` body, for a caller with a valid key."""
        await self._authorize(headers, await self.table.generation())
        return models_body(list(self.table.routes))

    async def complete(
        self,
        headers: Mapping[str, str],
        read_body: Callable[[], Awaitable[bytes]],
        content_length: int | None,
    ) -> Reply:
        """One `/v1/chat/completions` request: key, size limit, body, route, call, trace.
        A refusal raises RequestError; READ_BODY enforces the size limit as it reads."""
        from .completions import parse_request, serve_request

        generation = await self.table.generation()  # one marker read serves the whole request
        key_id = await self._authorize(headers, generation)
        if content_length is not None and content_length > self.options.max_body:
            raise self.too_large()
        raw = await read_body()
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, "the request body is not valid JSON") from None
        req = parse_request(body, headers.get("x-llmops-user"))
        self.stats.requests += 1
        served = await serve_request(
            self.table, req, key_id=key_id,
            guard_action=self.options.guard_action, cache=self.options.cache, generation=generation,
        )  # fmt: skip
        resolved = served.resolved
        answer = {
            "x-llmops-route": resolved.route.name,
            "x-llmops-model": served.result.model,  # a router's choice, not router/NAME
            "x-llmops-trace-id": served.trace_id,
        }
        if resolved.prompt_ref:
            answer["x-llmops-prompt-version"] = resolved.prompt_ref
        if resolved.arm:
            answer["x-llmops-arm"] = resolved.arm
        response_id = f"chatcmpl-{served.trace_id}"
        if req.stream:
            events = chunks(response_id, served.result.model, served.result, req.include_usage)
            return Reply(answer, events=events)
        return Reply(answer, body=completion_body(response_id, served.result.model, served.result))

    # --- the aiohttp face --------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response(await self.models(request.headers))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        reply = await self.complete(request.headers, request.read, request.content_length)
        if reply.events is not None:
            return await send_events(request, reply.events, reply.headers)
        return web.json_response(reply.body, headers=reply.headers)


# --- running it --------------------------------------------------------------------------


async def start_site(app: ServeApp) -> web.AppRunner:
    """Listen on the options' host and port; a port in use is one clear line."""
    runner = web.AppRunner(app.application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, app.options.host, app.options.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{app.options.host}:{app.options.port}"
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {app.options.port} on {app.options.host} is already in use: stop what "
                "listens there or pick another port (--port)"
            ) from None
        raise ServeError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the site listens on (the one the OS chose for port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise ServeError("the server is not listening")


async def run_forever(app: ServeApp, announce: Any = print) -> None:
    """The CLI's loop: listen, say where, serve until SIGTERM or Ctrl-C; then stop and
    write the traces still queued."""
    from .. import tracing

    runner = await start_site(app)
    port = bound_port(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    announce(_banner(app, port))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(tracing.flush)


def _banner(app: ServeApp, port: int) -> str:
    routes = ", ".join(f"{r.name}={r.target}" for r in app.table.routes.values())
    auth = "keys required" if app.options.auth else "no auth"
    return f"serving http://{app.options.host}:{port}/v1 ({auth}): {routes}"


class Server:
    """A server running in a background thread of this process: `url`, `stop()`."""

    def __init__(self, options: ServeOptions) -> None:
        self._app = ServeApp(options)  # bad routes and options fail here, before any thread
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llmops-serve", daemon=True)
        self.port = 0
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = self._loop.run_until_complete(start_site(self._app))
            self.port = bound_port(self._runner)
        except BaseException as exc:  # reported by __init__ in the caller's thread
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        # tasks libraries left on this loop (litellm's logging worker) end with it
        left = asyncio.all_tasks(self._loop)
        for task in left:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        self._loop.close()

    @property
    def url(self) -> str:
        """The OpenAI base URL for clients: `http://HOST:PORT/v1`."""
        return f"http://{self._app.options.host}:{self.port}/v1"

    @property
    def routes(self) -> dict[str, str]:
        return {r.name: r.target for r in self._app.table.routes.values()}

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def requests(self) -> int:
        return self._app.stats.requests

    def stop(self) -> None:
        """Stop listening, finish, and write the traces still queued."""
        from .. import tracing

        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        tracing.flush()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        routes = ", ".join(f"{n}={t}" for n, t in self.routes.items())
        auth = "keys required" if self._app.options.auth else "no auth"
        return (
            f"<llmops_nb server {state} at {self.url} ({auth}): {routes}; "
            f"{self.requests} requests, {self._app.stats.errors} refused or failed>"
        )
