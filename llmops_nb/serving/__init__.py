"""Serving: prompt versions and models as an OpenAI-compatible endpoint, traced per request.

`lo.serve(routes={"support": "support_reply@production"})` runs it in a background
thread of the kernel; `llmops-nb serve --route support=support_reply@production` in the
foreground; `executor="ray"` (`--ray`) on Ray Serve replicas. One module per job:
`routes` (what a route resolves to, live), `auth` (API keys), `completions` (one
request, one trace), `openai_shapes` and `streaming` (the wire), `app` (the request
handling, aiohttp, limits, errors, running it), `ray_serve` (the same on Ray Serve).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .app import DEFAULT_MAX_BODY, ServeOptions, Server
from .auth import ApiKeyInfo, NewKey, create_key, list_keys, revoke_key
from .routes import ServeError

if TYPE_CHECKING:
    from .ray_serve import RayServer

__all__ = [
    "ApiKeyInfo",
    "NewKey",
    "ServeError",
    "Server",
    "create_key",
    "list_keys",
    "revoke_key",
    "serve",
]


def serve(
    routes: Mapping[str, str] | Iterable[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8088,
    auth: bool = True,
    guards: Mapping[str, Iterable[str]] | None = None,
    guard_action: str = "block",
    max_body: int = DEFAULT_MAX_BODY,
    cache: bool = False,
    project: str | None = None,
    executor: str = "local",
    replicas: int | None = None,
    ray_address: str | None = None,
    forward_env: Iterable[str] = (),
) -> Server | RayServer:
    """Serve ROUTES ({name: prompt ref or model}) at http://HOST:PORT/v1 in the background.

    Returns at once with a `Server` (`url`, `stop()`). Every route is checked first: an
    unknown prompt, alias or model is refused, one line each. `auth=False` (no keys) is
    allowed on localhost only; `guards={"support": ["pii", "injection"]}` checks a
    route's calls with `guard_action` ("block", "redact" or "flag"). `port=0` lets the
    system choose a free port.

    `executor="ray"` serves the same routes from `replicas` Ray Serve replicas (default 2,
    `LLMOps.ray_num_cpus`/`ray_num_gpus` each) on the cluster `ray_address` names
    (default `LLMOps.ray_address`); the URL is then Serve's proxy, at HOST:PORT.
    `forward_env=["OPENAI_API_KEY"]` hands those variables of this process to the
    replicas, for nodes whose own environment lacks them.
    """
    if executor not in ("local", "ray"):
        raise ServeError(f"executor must be 'local' or 'ray', not {executor!r}")
    if executor == "local" and (replicas is not None or ray_address is not None or forward_env):
        raise ServeError("replicas=, ray_address= and forward_env= are for executor='ray'")
    options = ServeOptions(
        routes=routes, host=host, port=port, auth=auth, guards=dict(guards or {}),
        guard_action=guard_action, max_body=max_body, cache=cache, project=project,
    )  # fmt: skip
    if executor == "ray":
        from .ray_serve import DEFAULT_REPLICAS, RayServer

        return RayServer(
            options, replicas=DEFAULT_REPLICAS if replicas is None else replicas,
            address=ray_address, forward_env=forward_env,
        )  # fmt: skip
    return Server(options)
