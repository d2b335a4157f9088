"""Routes: what the request's `model` names, and what it resolves to right now.

A route maps a name to a prompt ref (`support_reply@production`, `name@v2`,
`name@split`) or a model (`openai/gpt-4o-mini`, `local/support-ft@production`, a
registered model `support-ft@2`). Every request resolves its route through the store,
with a cache that is dropped as soon as the store's serving marker changes (an alias
move, a new version or model, a key revoked, in any kernel) and after `CACHE_TTL_S` in
any case, so a change applies on the next request without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import LLMOpsError, NotFound

if TYPE_CHECKING:
    from ..prompting import PromptVersion

__all__ = ["CACHE_TTL_S", "Resolved", "Route", "RouteTable", "ServeError", "parse_routes"]

CACHE_TTL_S = 2.0
"""The longest a resolved route is reused, even when the marker has not moved (for
configuration the marker does not cover)."""
SPLIT_ALIAS = "split"


class ServeError(LLMOpsError, ValueError):
    """A server that cannot start as asked: a bad route, guard, host or port."""


@dataclass(frozen=True)
class Route:
    """One route: NAME (the request's `model`) -> TARGET (a prompt ref or a model)."""

    name: str
    target: str
    kind: str  # "prompt" or "model"
    guard: tuple[str, ...] = ()

    @property
    def is_split(self) -> bool:
        return self.kind == "prompt" and self.target.partition("@")[2] == SPLIT_ALIAS


@dataclass(frozen=True)
class Resolved:
    """What one request is served with: the prompt version (for a prompt route), the
    model the call goes to, and the split arm that picked the version, if any."""

    route: Route
    model: str
    prompt: PromptVersion | None = None
    arm: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_ref(self) -> str | None:
        return None if self.prompt is None else self.prompt.ref


def parse_routes(routes: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """{name: target} from a mapping or from `name=target` strings (the CLI's --route)."""
    if isinstance(routes, Mapping):
        pairs = list(routes.items())
    else:
        pairs = []
        for item in routes:
            name, sep, target = str(item).partition("=")
            if not sep or not name.strip() or not target.strip():
                raise ServeError(
                    f"route {item!r}: write NAME=TARGET, e.g. support=support_reply@production"
                )
            pairs.append((name.strip(), target.strip()))
    if not pairs:
        raise ServeError(
            "no routes: give at least one, e.g. --route support=support_reply@production"
        )
    table: dict[str, str] = {}
    for name, target in pairs:
        if not isinstance(target, str) or not target.strip():
            raise ServeError(f"route {name!r}: the target must be a prompt ref or a model id")
        if name in table:
            raise ServeError(f"route {name!r} is given twice")
        if not name or any(c.isspace() for c in name):
            raise ServeError(f"route name {name!r}: no spaces")
        table[name] = target.strip()
    return table


def _resolve_model(target: str, project: str) -> str:
    """The model id a model route calls now: a registered model pinned to the version its
    ref names (so the response can say which), any other id as given."""
    from ..registry import model as registered_model
    from ..store import get_store

    bare = target.removeprefix("local/")
    if "/" not in target:  # a bare name: a registered model, or nothing this server knows
        name = bare.partition("@")[0]
        if name not in {row.name for row in get_store().list_models(project)}:
            raise NotFound(
                f"no prompt or registered model named {name!r} in project {project!r} "
                "(a model id needs its provider, e.g. openai/gpt-4o-mini)"
            )
        return registered_model(bare, project=project).model
    if target.startswith("local/"):
        try:
            return registered_model(bare, project=project).model
        except NotFound:
            pass
        from ..llm.local import resolve

        resolve(bare, project)  # a directory or a Hugging Face id: found, or one clear line
        return target
    if target.startswith("router/"):  # a stored router picks the model on each call
        from ..routing import check_router

        check_router(target)
        return target
    from ..llm.client import check_model

    check_model(target)
    return target


def _classify(target: str, project: str) -> str:
    """'prompt' when TARGET names a prompt of the project, else 'model'."""
    if "/" in target:
        return "model"
    from ..prompting import parse_ref
    from ..store import get_store

    name = parse_ref(target)[0]
    try:
        get_store().prompt_versions(project, name)
    except NotFound:
        return "model"
    return "prompt"


class RouteTable:
    """The routes of one server and their live resolution."""

    def __init__(
        self,
        routes: Mapping[str, str] | Iterable[str],
        *,
        guards: Mapping[str, Iterable[str]] | None = None,
        project: str | None = None,
    ) -> None:
        self.project = (
            config.check_name("project", project) if project else config.current_project()
        )
        table = parse_routes(routes)
        guards = dict(guards or {})
        unknown = sorted(set(guards) - set(table))
        if unknown:
            raise ServeError(f"--guard names route {unknown[0]!r}, which is not a route")
        self.routes: dict[str, Route] = {}
        for name, target in table.items():
            try:
                kind = _classify(target, self.project)
            except LLMOpsError as exc:
                raise ServeError(f"route {name!r} ({target}): {exc}") from None
            self.routes[name] = Route(name, target, kind, tuple(guards.get(name, ())))
        self._cache: dict[str, tuple[Resolved, int, float]] = {}
        self._generation = 0
        self._marker: str | None = None
        self._pending: asyncio.Task[str] | None = None

    def check(self) -> list[str]:
        """Resolve every route once; the problems, one line each (empty: all good)."""
        problems = []
        for route in self.routes.values():
            try:
                self._resolve_now(route, key="llmops-start-check")
            except LLMOpsError as exc:
                problems.append(f"route {route.name!r} ({route.target}): {exc}")
        return problems

    def _resolve_now(self, route: Route, key: str | None) -> Resolved:
        """Resolve ROUTE through the store (blocking: run it in a thread)."""
        if route.kind == "model":
            return Resolved(route, _resolve_model(route.target, self.project))
        from ..prompting import prompt

        if route.is_split:
            version = prompt(route.target, key=key, project=self.project)
        else:
            version = prompt(route.target, project=self.project)
        model = version.model or config.settings.default_model
        if not model:
            raise ServeError(
                f"prompt {version.ref} names no model and no default model is set (LLMOPS_NB_MODEL)"
            )
        return Resolved(route, model, version, version.arm, dict(version.parameters))

    async def resolve(
        self, name: str, key: str | None = None, generation: int | None = None
    ) -> Resolved:
        """The route NAME as it resolves now (KeyError: no such route); GENERATION, when
        the request has just read it, saves a second marker read."""
        route = self.routes[name]
        if generation is None:
            generation = await self.generation()
        if route.is_split:  # the arm depends on the key: the split's own lookup decides
            if not key:
                raise ServeError(
                    f"route {name!r} is an A/B split: give the caller's id in the request's "
                    "'user' field or an x-llmops-user header"
                )
            return await asyncio.to_thread(self._resolve_now, route, key)
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and hit[1] == generation and now - hit[2] < CACHE_TTL_S:
            return hit[0]
        resolved = await asyncio.to_thread(self._resolve_now, route, key)
        self._cache[name] = (resolved, generation, now)
        return resolved

    async def generation(self) -> int:
        """A number that grows whenever the store's serving marker changes. Concurrent
        requests share one marker read."""
        task = self._pending
        if task is None:
            task = self._pending = asyncio.ensure_future(asyncio.to_thread(_read_marker))
            task.add_done_callback(self._read_done)
        marker = await asyncio.shield(task)
        if marker != self._marker:
            self._marker = marker
            self._generation += 1
            self._cache.clear()
        return self._generation

    def _read_done(self, task: asyncio.Task[str]) -> None:
        if self._pending is task:
            self._pending = None


def _read_marker() -> str:
    from ..store import get_store

    return get_store().serving_marker()
