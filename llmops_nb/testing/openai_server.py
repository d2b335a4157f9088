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
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from .endpoints import ServerApp, ServerConfig, ServerStats
from .replies import count_tokens, echo_reply, embed_text

__all__ = [  # count_tokens, echo_reply, embed_text: from .replies, for custom replies
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


class OpenAIServer:
    """A server running in a background thread with its own event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        self._app = ServerApp(ServerConfig())
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
