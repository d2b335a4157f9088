"""Serving: prompt versions and models as an OpenAI-compatible endpoint, traced per request.

`lo.serve(routes={"support": "support_reply@production"})` runs it in a background
thread of the kernel; `llmops-nb serve --route support=support_reply@production` in the
foreground. One module per job: `routes` (what a route resolves to, live), `auth` (API
keys), `completions` (one request, one trace), `openai_shapes` and `streaming` (the
wire), `app` (aiohttp, limits, errors, running it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .app import DEFAULT_MAX_BODY, ServeOptions, Server
from .auth import ApiKeyInfo, NewKey, create_key, list_keys, revoke_key
from .routes import ServeError

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
) -> Server:
    """Serve ROUTES ({name: prompt ref or model}) at http://HOST:PORT/v1 in the background.

    Returns at once with a `Server` (`url`, `stop()`). Every route is checked first: an
    unknown prompt, alias or model is refused, one line each. `auth=False` (no keys) is
    allowed on localhost only; `guards={"support": ["pii", "injection"]}` checks a
    route's calls with `guard_action` ("block", "redact" or "flag"). `port=0` lets the
    system choose a free port.
    """
    options = ServeOptions(
        routes=routes, host=host, port=port, auth=auth, guards=dict(guards or {}),
        guard_action=guard_action, max_body=max_body, cache=cache, project=project,
    )  # fmt: skip
    return Server(options)
