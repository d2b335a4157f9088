"""Model routers: `router/NAME` picks a model per call from the recent traces.

`lo.router("cheap-fast", models=[...], policy="cheapest")` stores a router, so every
kernel and the serving endpoint can call `lo.complete("router/cheap-fast", ...)`. Each
call ranks the router's models from the store's recent traces (`monitoring.window_stats`:
latency, cost, errors): a model with little history yet is tried first (explore), one over
`max_p95_ms` or `max_cost` goes after those within them, one failing half its calls goes
last. The call goes to the first model and falls back to the next when it fails
(a retryable error; any error for the "fallback" policy). The choice is recorded on the
call's spans (`llmops.router`, `llmops.router.choice`, ...) and on the `RoutedCompletion`.

Definitions and statistics are cached for DECISION_TTL_S seconds, so a routed call
costs microseconds more than a plain one, not a database query.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import config
from .errors import LLMOpsError, NotFound
from .llm.completion import Completion
from .monitoring import DEFAULT_WINDOW

if TYPE_CHECKING:
    import polars as pl

    from .store import models as m

__all__ = [
    "POLICIES",
    "PREFIX",
    "RoutedCompletion",
    "Router",
    "RouterError",
    "acomplete",
    "check_router",
    "clear_cache",
    "complete",
    "get_router",
    "router",
    "routers",
]

PREFIX = "router/"
POLICIES = ("cheapest", "fastest", "fallback")
DECISION_TTL_S = 5.0
"""How long a router's definition and its models' statistics are reused in a process."""
EXPLORE_CALLS = 3
"""A model with fewer calls than this in the window is tried (once per statistics
read) before the ranking: one slow first call should not decide for good."""
UNHEALTHY_ERROR_RATE = 0.5
"""A model failing at least this share of its recent calls is tried last."""


class RouterError(LLMOpsError, ValueError):
    """A router that cannot be defined as asked: no models, an unknown policy or model."""


@dataclass(frozen=True)
class RoutedModel:
    """One model a router may send a call to (an API key is never part of it)."""

    model: str
    api_base: str | None = None

    def stored(self) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base}


@dataclass(frozen=True)
class Router:
    """A stored router: its models in the order given, its policy and limits."""

    name: str
    project: str
    policy: str
    models: tuple[RoutedModel, ...]
    max_p95_ms: float | None = None
    max_cost: float | None = None
    window: str = DEFAULT_WINDOW
    author: str = ""
    updated_at: datetime | None = None

    @property
    def model(self) -> str:
        """What to pass as a model: `router/NAME`."""
        return PREFIX + self.name

    @classmethod
    def from_row(cls, project: str, row: m.Router) -> Router:
        return cls(
            name=row.name,
            project=project,
            policy=row.policy,
            models=tuple(RoutedModel(e["model"], e.get("api_base")) for e in row.models),
            max_p95_ms=row.max_p95_ms,
            max_cost=row.max_cost,
            window=row.stats_window,
            author=row.author,
            updated_at=row.updated_at,
        )

    def ranking(self) -> list[tuple[str, str]]:
        """(model, why) in the order the next call would try them."""
        key = (config.store_url(), self.project, self.name)
        return [(choice.model, why) for choice, why in _plan(self, key, explore=False)]

    def __repr__(self) -> str:
        models = ", ".join(e.model for e in self.models)
        return f"Router({self.model!r}, policy={self.policy!r}, models=[{models}])"


@dataclass
class RoutedCompletion(Completion):
    """A Completion from a router: which router, and the models that failed before."""

    router: str = ""
    fallbacks: list[str] = field(default_factory=list)  # models tried first, which failed


# --- defining routers ------------------------------------------------------------------


def _project(project: str | None) -> str:
    return config.check_name("project", project) if project else config.current_project()


def _limit(name: str, what: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise RouterError(f"router {name!r}: {what} must be a positive number, not {value!r}")
    if not math.isfinite(value):
        raise RouterError(f"router {name!r}: {what} must be finite, not {value!r}")
    return float(value)


def _entry(name: str, item: Any) -> RoutedModel:
    """A router model: a litellm id, or {model: ID, api_base: URL}."""
    if isinstance(item, str):
        entry = RoutedModel(item.strip())
    elif isinstance(item, Mapping):
        unknown = sorted(set(item) - {"model", "api_base"})
        if any("key" in k.lower() for k in unknown):
            raise RouterError(
                f"router {name!r}: API keys are never stored; pass api_key= to lo.complete "
                "or set the provider's key variable (e.g. OPENAI_API_KEY)"
            )
        if unknown:
            raise RouterError(
                f"router {name!r}: a model entry takes model and api_base, not {unknown[0]!r}"
            )
        model, api_base = item.get("model"), item.get("api_base")
        if not isinstance(model, str) or (api_base is not None and not isinstance(api_base, str)):
            raise RouterError(
                f"router {name!r}: a model entry is {{model: ID, api_base: URL}}, "
                f"not {dict(item)!r}"
            )
        entry = RoutedModel(model.strip(), api_base or None)
    else:
        raise RouterError(
            f"router {name!r}: a model is a litellm id or {{model:, api_base:}}, not {item!r}"
        )
    if not entry.model:
        raise RouterError(f"router {name!r}: a model id is empty")
    if entry.model.startswith(PREFIX):
        raise RouterError(
            f"router {name!r}: a router cannot route to another router ({entry.model})"
        )
    return entry


def router(
    name: str,
    models: Sequence[Any],
    policy: str = "cheapest",
    max_p95_ms: float | None = None,
    max_cost: float | None = None,
    *,
    window: str = DEFAULT_WINDOW,
    project: str | None = None,
) -> Router:
    """Define (or redefine) router NAME, callable as the model `router/NAME`.

    `models`: litellm ids or {model: ID, api_base: URL}, in order (the "fallback" policy's
    order). `policy`: "cheapest" (cost per call), "fastest" (p50 latency) or "fallback"
    (the first that works). `max_p95_ms` / `max_cost` (per call): models over them are
    tried only after those within. `window`: how far back the traces it reads go.
    """
    from .llm.client import UnknownModel, check_model
    from .store import get_store

    config.check_name("router", name)
    project = _project(project)
    if policy not in POLICIES:
        raise RouterError(
            f"router {name!r}: unknown policy {policy!r}; use one of {', '.join(POLICIES)}"
        )
    if isinstance(models, str | Mapping) or not isinstance(models, Sequence) or not models:
        raise RouterError(f"router {name!r} needs models=[...]: at least one model id to route to")
    entries = [_entry(name, item) for item in models]
    if len(set(entries)) < len(entries):
        raise RouterError(f"router {name!r}: a model is listed twice")
    p95, cost = _limit(name, "max_p95_ms", max_p95_ms), _limit(name, "max_cost", max_cost)
    _check_window(name, window)
    for entry in entries:
        try:
            check_model(entry.model, entry.api_base)
        except UnknownModel as exc:
            raise RouterError(f"router {name!r}: {exc}") from None
    row, _ = get_store().set_router(
        project,
        name,
        policy=policy,
        models=[e.stored() for e in entries],
        max_p95_ms=p95,
        max_cost=cost,
        stats_window=window,
        author=config.author(),
    )
    with _lock:  # this process uses the new definition at once
        _definitions.pop((config.store_url(), project, name), None)
        _snapshots.pop((config.store_url(), project, name), None)
    return Router.from_row(project, row)


def _check_window(name: str, window: Any) -> None:
    from .monitoring import InvalidDuration, parse_duration

    try:
        parse_duration(window, name="window")
    except InvalidDuration as exc:
        raise RouterError(f"router {name!r}: {exc}") from None


def get_router(name: str, *, project: str | None = None) -> Router:
    """Router NAME as stored (reused for DECISION_TTL_S); NotFound names the known ones."""
    project = _project(project)
    return _cached_router((config.store_url(), project, name))


def _cached_router(key: tuple[str, str, str]) -> Router:
    now = time.monotonic()
    cached = _definitions.get(key)
    if cached is not None and now - cached[0] < DECISION_TTL_S:
        return cached[1]
    from .store import get_store

    _, project, name = key
    store = get_store()
    row = store.router(project, name)
    if row is None:
        known = [r.name for r in store.list_routers(project)]
        hint = f"its routers: {', '.join(known)}" if known else "it has no routers"
        raise NotFound(
            f"unknown router {name!r} in project {project!r} ({hint}); "
            f"define it with lo.router({name!r}, models=[...])"
        )
    found = Router.from_row(project, row)
    with _lock:
        _definitions[key] = (now, found)
    return found


def routers(*, project: str | None = None) -> pl.DataFrame:
    """The project's routers: name, policy, models, limits, window, author, updated."""
    import polars as pl

    from .store import get_store

    project = _project(project)
    rows = [Router.from_row(project, r) for r in get_store().list_routers(project)]
    schema = {
        "name": pl.String,
        "model": pl.String,
        "policy": pl.String,
        "models": pl.List(pl.String),
        "max_p95_ms": pl.Float64,
        "max_cost": pl.Float64,
        "window": pl.String,
        "author": pl.String,
        "updated": pl.Datetime("us", "UTC"),
    }
    data = [
        {
            "name": r.name,
            "model": r.model,
            "policy": r.policy,
            "models": [e.model for e in r.models],
            "max_p95_ms": r.max_p95_ms,
            "max_cost": r.max_cost,
            "window": r.window,
            "author": r.author,
            "updated": r.updated_at,
        }
        for r in rows
    ]
    return pl.DataFrame(data, schema=schema, orient="row")


def check_router(model: str) -> None:
    """NotFound unless `router/NAME` names a defined router (the eval grid's model check)."""
    get_router(model[len(PREFIX) :])


# --- choosing a model --------------------------------------------------------------------

_lock = threading.Lock()
_definitions: dict[tuple[str, str, str], tuple[float, Router]] = {}


@dataclass
class _Snapshot:
    """One read of a router's models' statistics, their ranking, and what was explored."""

    at: float
    stats: dict[RoutedModel, dict[str, Any]]
    ranked: list[tuple[RoutedModel, str]]
    # model -> how well known it was when this process last explored it
    explored: dict[RoutedModel, int] = field(default_factory=dict)
    # model -> this process's calls since the read, which the store may not show yet
    observed: dict[RoutedModel, list[_Outcome]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Outcome:
    """One routed call as this process saw it."""

    latency_ms: float | None  # None: it failed
    cost: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0


_snapshots: dict[tuple[str, str, str], _Snapshot] = {}


def clear_cache() -> None:
    """Forget cached definitions and statistics: the next call reads the store again."""
    with _lock:
        _definitions.clear()
        _snapshots.clear()


def _snapshot(r: Router, key: tuple[str, str, str]) -> _Snapshot:
    now = time.monotonic()
    snap = _snapshots.get(key)
    if snap is not None and now - snap.at < DECISION_TTL_S:
        return snap
    from .monitoring import window_stats

    stats = {e: window_stats(r.window, model=e.model, project=r.project) for e in r.models}
    snap = _Snapshot(now, stats, _rank(r, stats), dict(snap.explored) if snap else {})
    with _lock:
        _snapshots[key] = snap
    return snap


def _calls(snap: _Snapshot, e: RoutedModel) -> int:
    """How many calls of E are known: the store's, or this process's when it has more."""
    return max(int(snap.stats[e].get("calls") or 0), len(snap.observed.get(e, ())))


def _stats(snap: _Snapshot, e: RoutedModel) -> Mapping[str, Any]:
    """E's statistics: the store's, or this process's own calls while the store lags
    (within one snapshot a fast model explored here must not rank as unknown)."""
    seen = snap.observed.get(e, [])
    if len(seen) <= int(snap.stats[e].get("calls") or 0):
        return snap.stats[e]
    latencies = sorted(o.latency_ms for o in seen if o.latency_ms is not None)
    errors = len(seen) - len(latencies)

    def quantile(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    costs = [o.cost for o in seen if o.cost is not None]
    return {
        "calls": len(seen),
        "errors": errors,
        "error_rate": errors / len(seen),
        "p50_ms": quantile(0.5),
        "p95_ms": quantile(0.95),
        "cost": sum(costs),
        "input_tokens": sum(o.input_tokens for o in seen),
        "output_tokens": sum(o.output_tokens for o in seen),
    }


def _record(key: tuple[str, str, str], choice: RoutedModel, result: Completion | None) -> None:
    """Remember a routed call's outcome until the next read of the store."""
    outcome = (
        _Outcome(None)
        if result is None
        else _Outcome(
            result.latency_ms,
            result.cost,
            result.usage.input_tokens,
            result.usage.output_tokens,
        )
    )
    with _lock:
        snap = _snapshots.get(key)
        if snap is not None:
            snap.observed.setdefault(choice, []).append(outcome)


def _cost_per_call(model: str, stats: Mapping[str, Any]) -> float | None:
    """Observed cost per call, else the price table's price of the observed tokens."""
    calls = stats.get("calls") or 0
    if not calls:
        return None
    cost = stats.get("cost") or 0.0
    if cost > 0:
        return float(cost) / calls
    from .llm import runtime

    prices = runtime.litellm().model_cost
    entry = prices.get(model) or prices.get(model.split("/", 1)[-1])
    if not entry:
        return None
    spent = (stats.get("input_tokens") or 0) * (entry.get("input_cost_per_token") or 0.0) + (
        stats.get("output_tokens") or 0
    ) * (entry.get("output_cost_per_token") or 0.0)
    return spent / calls


def _plan(
    r: Router, key: tuple[str, str, str], *, explore: bool = True
) -> list[tuple[RoutedModel, str]]:
    """The models in the order this call tries them, each with why it is there: a model
    with fewer than EXPLORE_CALLS calls first (the least known), then the ranking."""
    snap = _snapshot(r, key)
    if r.policy == "fallback":  # the listed order, health as the store last showed it
        return snap.ranked
    ranked = _rank(r, {e: _stats(snap, e) for e in r.models}) if snap.observed else snap.ranked
    if not explore:
        return ranked
    with _lock:
        # a model explored here whose call the store does not show yet: not again
        fresh = [
            e
            for e in r.models
            if _calls(snap, e) < EXPLORE_CALLS and _calls(snap, e) > snap.explored.get(e, -1)
        ]
        if not fresh:
            return ranked
        pick = min(fresh, key=lambda e: _calls(snap, e))  # the least known, in order
        snap.explored[pick] = _calls(snap, pick)
    return [(pick, "explore"), *(item for item in ranked if item[0] != pick)]


def _rank(
    r: Router, stats: Mapping[RoutedModel, Mapping[str, Any]]
) -> list[tuple[RoutedModel, str]]:
    """By the policy: those within the limits, then those over one, then those with no
    history, then those failing at least UNHEALTHY_ERROR_RATE of their calls."""
    groups: dict[str, list[tuple[tuple[float, ...], RoutedModel]]] = {
        "within": [], "over": [], "new": [], "failing": []
    }  # fmt: skip
    for index, e in enumerate(r.models):
        s = stats[e]
        if not s.get("calls"):
            groups["new"].append(((index,), e))
            continue
        cost = _cost_per_call(e.model, s)
        p50, p95 = s.get("p50_ms"), s.get("p95_ms")
        if r.policy == "cheapest":
            rank: tuple[float, ...] = (_or_inf(cost), _or_inf(p50), index)
        elif r.policy == "fastest":
            rank = (_or_inf(p50), _or_inf(cost), index)
        else:
            rank = (index,)
        if (s.get("error_rate") or 0.0) >= UNHEALTHY_ERROR_RATE:
            groups["failing"].append((rank, e))
        elif (r.max_p95_ms is not None and p95 is not None and p95 > r.max_p95_ms) or (
            r.max_cost is not None and cost is not None and cost > r.max_cost
        ):
            groups["over"].append((rank, e))
        else:
            groups["within"].append((rank, e))
    why = {"within": r.policy, "over": "over a limit", "new": "no history", "failing": "failing"}
    ordered: list[tuple[RoutedModel, str]] = []
    for group, members in groups.items():
        ordered.extend((e, why[group]) for _, e in sorted(members, key=lambda item: item[0]))
    return ordered


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else float(value)


# --- routed calls ------------------------------------------------------------------------


def _route(
    model: str,
) -> tuple[Router, tuple[str, str, str], list[tuple[RoutedModel, str]]]:
    """The router `router/NAME` names, its cache key, and the order this call tries its
    models in."""
    key = (config.store_url(), config.current_project(), model[len(PREFIX) :])
    r = _cached_router(key)
    return r, key, _plan(r, key)


def _falls_back(r: Router, exc: Exception) -> bool:
    return r.policy == "fallback" or bool(getattr(exc, "retryable", False))


def _attributes(r: Router, choice: RoutedModel, why: str, attempt: int) -> dict[str, Any]:
    return {
        "llmops.router": r.name,
        "llmops.router.policy": r.policy,
        "llmops.router.choice": choice.model,
        "llmops.router.reason": why,
        "llmops.router.attempt": attempt,
    }


def _routed(result: Completion, r: Router, failed: list[str]) -> RoutedCompletion:
    values = {f.name: getattr(result, f.name) for f in fields(Completion)}
    return RoutedCompletion(**values, router=r.name, fallbacks=failed)


class _RoutedCall:
    """One routed call's decisions, shared by `complete` and `acomplete`: the models in
    the order to try, which failed, and what the router span records."""

    def __init__(self, model: str, api_base: str | None) -> None:
        self.router, self.key, self.plan = _route(model)
        self.api_base = api_base  # the caller's, for models that name none
        self.failed: list[str] = []

    def span(self) -> Any:
        from .tracing import span

        name = self.router.name
        return span(f"router {name}", kind="router", attributes={"llmops.router": name})

    def attempts(self) -> Iterator[tuple[RoutedModel, str | None, Any]]:
        """Per try, in order: the model, its api_base, and the call attributes to set."""
        from .tracing import call_attributes

        for attempt, (choice, why) in enumerate(self.plan):
            attributes = call_attributes(_attributes(self.router, choice, why, attempt))
            yield choice, choice.api_base or self.api_base, attributes

    def goes_on(self, outer: Any, choice: RoutedModel, exc: Exception) -> bool:
        """Record CHOICE's failure; True when the call falls back to the next model."""
        _record(self.key, choice, None)
        if not _falls_back(self.router, exc) or len(self.failed) == len(self.plan) - 1:
            outer.set_attribute("llmops.router.fallbacks", self.failed + [choice.model])
            return False
        self.failed.append(choice.model)
        return True

    def succeeded(self, outer: Any, choice: RoutedModel, result: Completion) -> RoutedCompletion:
        """Record CHOICE's reply and return it as the router's."""
        _record(self.key, choice, result)
        outer.set_attribute("llmops.router.choice", choice.model)
        outer.set_attribute("llmops.router.fallbacks", self.failed)
        return _routed(result, self.router, self.failed)


def complete(model: str, prompt: Any = None, **kwargs: Any) -> RoutedCompletion:
    """`lo.complete("router/NAME", ...)`: the same arguments, sent to the router's choice
    (falling back along its order); `api_base` applies to models that have none."""
    from .llm.client import ModelError
    from .llm.client import complete as call_model

    call = _RoutedCall(model, kwargs.pop("api_base", None))
    with call.span() as outer:
        for choice, api_base, attributes in call.attempts():
            try:
                with attributes:
                    result = call_model(choice.model, prompt, api_base=api_base, **kwargs)
            except ModelError as exc:
                if call.goes_on(outer, choice, exc):
                    continue
                raise
            return call.succeeded(outer, choice, result)
    raise AssertionError("unreachable: a router has at least one model")


async def acomplete(model: str, prompt: Any = None, **kwargs: Any) -> RoutedCompletion:
    """`complete` for asyncio code (the eval runner)."""
    from .llm.client import ModelError
    from .llm.client import acomplete as call_model

    call = _RoutedCall(model, kwargs.pop("api_base", None))
    async with call.span() as outer:
        for choice, api_base, attributes in call.attempts():
            try:
                with attributes:
                    result = await call_model(choice.model, prompt, api_base=api_base, **kwargs)
            except ModelError as exc:
                if call.goes_on(outer, choice, exc):
                    continue
                raise
            return call.succeeded(outer, choice, result)
    raise AssertionError("unreachable: a router has at least one model")
