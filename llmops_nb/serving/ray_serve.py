"""The serving routes on Ray Serve: the same endpoint, spread over the machines of a cluster.

`lo.serve(routes, executor="ray", replicas=2)` and `llmops-nb serve --ray --replicas 2`
deploy one Ray Serve application. Each replica holds a `ServeApp`, so it checks keys,
resolves routes live, answers and traces every request with the very code the aiohttp
endpoint runs; this module only adapts Ray Serve's (Starlette) requests to it.

A cluster's workers know nothing of the notebook that deployed them, so each replica is
given the store URL, the data dir and the settings of the deploying process explicitly:
every replica resolves routes from, and writes its traces to, that one store. Across
machines it must be a store every node reaches (PostgreSQL, `LLMOPS_NB_STORE`). The
deploying process's environment is not shipped, API keys least of all: a replica reads
its node's environment, plus the variables named in `forward_env` (in memory: never the
store, nor Ray's dashboard, which shows a runtime_env's variables).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import config
from .app import ServeApp, ServeOptions
from .openai_shapes import RequestError
from .routes import ServeError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "APP_NAME",
    "DEFAULT_REPLICAS",
    "RayServer",
    "RouteReplica",
    "import_serve",
    "run_on_ray",
]

log = logging.getLogger("llmops_nb.serving")

APP_NAME = "llmops_nb"
"""The Serve application's name: one llmops_nb endpoint per cluster (a new one replaces it)."""
DEPLOYMENT = "routes"
DEFAULT_REPLICAS = 2
ENDPOINTS = {"/v1/chat/completions": "POST", "/v1/models": "GET"}  # as the aiohttp app routes
MAX_ONGOING_REQUESTS = 256
"""Per replica. Serve's default (5) suits CPU-bound models; a request here mostly awaits
the model's provider, as in the aiohttp endpoint, which has no such cap."""


def import_serve() -> ModuleType:
    """`ray.serve`, or one line saying which extra to install."""
    try:
        from ray import serve
    except ImportError:
        from ..ray_cluster import RayNotInstalled

        raise RayNotInstalled(
            "serving on Ray needs Ray Serve, which is not installed: pip install 'llmops_nb[ray]'"
        ) from None
    return serve


class RouteReplica:
    """One Ray Serve replica: the endpoint's request handling over the store it is given."""

    def __init__(
        self,
        options: ServeOptions,
        store_url: str,
        home: str,
        settings: config.Settings,
        env: dict[str, str],
    ) -> None:
        os.environ.update(env)
        os.environ["LLMOPS_NB_STORE"] = store_url
        os.environ["LLMOPS_NB_HOME"] = home  # where this replica spools traces the store refused
        for name, value in vars(settings).items():
            setattr(config.settings, name, value)
        self.app = ServeApp(options)  # resolves every route: a node with no store fails here
        from ray import serve

        self.replica = serve.get_replica_context().replica_id.unique_id

    async def __call__(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, StreamingResponse

        from .streaming import SSE_HEADERS, event_lines

        try:
            path = request.url.path
            if path not in ENDPOINTS:
                raise RequestError(404, "Not Found", code="404")
            if request.method != ENDPOINTS[path]:
                raise RequestError(405, "Method Not Allowed", code="405")
            if path == "/v1/models":
                return JSONResponse(await self.app.models(request.headers))
            reply = await self.app.complete(
                request.headers, lambda: self._read_body(request), _content_length(request)
            )
        except Exception as exc:
            status, body, headers = self.app.refusal(exc)
            return JSONResponse(body, status_code=status, headers=headers)
        headers = {**reply.headers, "x-llmops-replica": self.replica}
        if reply.events is not None:
            return StreamingResponse(event_lines(reply.events), headers={**headers, **SSE_HEADERS})
        return JSONResponse(reply.body, headers=headers)

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the limit, like aiohttp's reader."""
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > self.app.options.max_body:
                raise self.app.too_large()
            parts.append(part)
        return b"".join(parts)

    def __del__(self) -> None:
        """Serve calls this on a graceful stop: write the traces still queued."""
        from .. import tracing

        tracing.flush()


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class RayServer:
    """The routes served by Ray Serve replicas: `url`, `stop()`, a status line."""

    def __init__(
        self,
        options: ServeOptions,
        *,
        replicas: int = DEFAULT_REPLICAS,
        address: str | None = None,
        forward_env: Iterable[str] = (),
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ServeError(f"replicas must be a whole number of at least 1, not {replicas!r}")
        env = _forwarded(forward_env)
        self._serve = import_serve()
        self._stopped = True  # until there is something to stop
        self._app = ServeApp(options)  # bad routes and options fail here, before any cluster
        self.options = options
        self.replicas = replicas
        from .. import ray_cluster

        ray_cluster.connect(address)
        cpus, gpus = config.settings.ray_num_cpus, config.settings.ray_num_gpus
        ray_cluster.check_fits("one serving replica", num_cpus=cpus, num_gpus=gpus)
        chosen = (address if address is not None else config.settings.ray_address).strip()
        on_this_machine = chosen in ("", "local")  # a local cluster this process runs
        with _quiet_serve_logs():
            self._started_serve = _serve_client() is None
            self.port = _start_proxy(self._serve, options.host, options.port, on_this_machine)
            deployment = self._serve.deployment(
                RouteReplica, name=DEPLOYMENT, num_replicas=replicas,
                max_ongoing_requests=MAX_ONGOING_REQUESTS,
                ray_actor_options={"num_cpus": cpus, "num_gpus": gpus},
            )  # fmt: skip
            settings = config.Settings(**vars(config.settings))
            settings.project = self._app.table.project
            replica_options = dataclasses.replace(
                options, routes=self.routes, project=self._app.table.project
            )
            app = deployment.bind(
                replica_options, config.store_url(), str(config.home()), settings, env
            )
            self._stopped = False
            try:
                self._serve.run(app, name=APP_NAME, route_prefix="/")
            except Exception as exc:  # a replica that failed to start, several times
                self.stop()
                raise ServeError(
                    f"Ray Serve could not start the routes: {_first_line(exc)}"
                ) from None

    @property
    def url(self) -> str:
        """The OpenAI base URL for clients: `http://HOST:PORT/v1` (Serve's proxy)."""
        return f"http://{self.options.host}:{self.port}/v1"

    @property
    def routes(self) -> dict[str, str]:
        return {r.name: r.target for r in self._app.table.routes.values()}

    def replica_states(self) -> dict[str, int]:
        """How many replicas are in each state ({"RUNNING": 2} when all is well)."""
        app = self._serve.status().applications.get(APP_NAME)
        if app is None or DEPLOYMENT not in app.deployments:
            return {}
        return {str(k): int(v) for k, v in app.deployments[DEPLOYMENT].replica_states.items()}

    @property
    def running(self) -> bool:
        return not self._stopped and self.replica_states().get("RUNNING", 0) > 0

    def stop(self) -> None:
        """Delete the application (its replicas write their queued traces as they stop),
        and stop Serve itself when this server started it."""
        if self._stopped:
            return
        self._stopped = True
        with _quiet_serve_logs():
            if _serve_client() is None:
                return
            self._serve.delete(APP_NAME)
            if self._started_serve:
                self._serve.shutdown()

    def banner(self) -> str:
        """What the CLI prints once the replicas answer."""
        routes = ", ".join(f"{n}={t}" for n, t in self.routes.items())
        auth = "keys required" if self.options.auth else "no auth"
        replicas = f"{self.replicas} replica{'s' if self.replicas > 1 else ''}"
        return f"serving {self.url} on Ray Serve ({replicas}, {auth}): {routes}"

    def __enter__(self) -> RayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._stopped:
            state = "stopped"
        else:
            state = f"{self.replica_states().get('RUNNING', 0)}/{self.replicas} replicas running"
        routes = ", ".join(f"{n}={t}" for n, t in self.routes.items())
        auth = "keys required" if self.options.auth else "no auth"
        return f"<llmops_nb server on Ray Serve at {self.url} ({state}, {auth}): {routes}>"


def run_on_ray(
    options: ServeOptions,
    *,
    replicas: int,
    address: str | None,
    forward_env: Iterable[str] = (),
    announce: Any = print,
) -> None:
    """The CLI's `--ray`: deploy, say where, serve until SIGTERM or Ctrl-C, then take the
    application down (its replicas write the traces they still hold)."""
    stop = threading.Event()
    server = RayServer(options, replicas=replicas, address=address, forward_env=forward_env)
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        announce(server.banner())
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()


def _forwarded(names: Iterable[str]) -> dict[str, str]:
    """{name: value} of this process's variables NAMES; one line for a name not set."""
    if isinstance(names, str):
        names = [names]
    env = {}
    for name in names:
        value = os.environ.get(name)
        if value is None:
            raise ServeError(f"forward_env names {name!r}, which is not set in this environment")
        env[name] = value
    return env


def _serve_client() -> Any:
    """Serve's controller client on this cluster, or None when Serve is not running.
    (Private in Ray: the public API has no way to read the proxies' host and port.)"""
    from ray.serve.context import _get_global_client

    return _get_global_client(raise_if_no_controller_running=False)


def _start_proxy(serve: ModuleType, host: str, port: int, on_this_machine: bool) -> int:
    """Start Serve's HTTP proxies on HOST:PORT (PORT 0: a free one) and return the port.
    Serve already running on the cluster keeps the address it has: one clear line when
    that is not the one asked for."""
    client = _serve_client()
    if client is not None:
        http = client.http_config
        if port not in (0, http.port) or host != http.host:
            raise ServeError(
                f"Ray Serve already listens on {http.host}:{http.port} in this cluster: serve "
                f"there (--host {http.host} --port {http.port}) or stop it (`serve shutdown`)"
            )
        return int(http.port)
    if on_this_machine:  # the proxy will listen here: say now if it cannot
        port = _check_port(host, port)
    elif port == 0:
        raise ServeError("port 0 works only on a local Ray cluster: give the port (--port)")
    serve.start(http_options={"host": host, "port": port})
    return port


def _check_port(host: str, port: int) -> int:
    """PORT if it is free on HOST (0: one the system picks), else the aiohttp endpoint's line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1" if host == "localhost" else host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} on {host} is already in use: stop what listens there or pick "
                    "another port (--port)"
                ) from None
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return int(probe.getsockname()[1])


@contextmanager
def _quiet_serve_logs() -> Iterator[None]:
    """Serve narrates every start and stop at INFO on the driver; keep its warnings only."""
    logger = logging.getLogger("ray.serve")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")
