"""`local/` models served by Ray actors: one model replica per actor, for grids on Ray.

Inside each actor the model is the in-process one (`local.load`, its batching worker
thread), so requests that reach an actor together share one `generate()` call. In the
driver a `ReplicaPool` stands in for the loaded model: while `serving(...)` is open the
`local` litellm provider finds the pool where it would find the model, so rendering,
litellm, retries, the cache, tracing and scoring all stay in the driver, unchanged, and
only generation crosses to the cluster. Actors never see the store: the driver resolves
registered names to plain paths first.

A request whose actor dies (killed, or its node lost) is sent again to a live replica;
its caller sees one answer, so a grid cell is never lost or stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..errors import LocalModelError
from .local_model import Generation, GenParams, LocalModel, ModelSource

__all__ = ["ModelReplica", "ReplicaPool", "serving", "serving_pools"]

READY_TIMEOUT_S = 600.0  # loading a replica: import torch, read the weights


class ModelReplica:
    """The Ray actor: one copy of a `local/` model, its batching worker inside."""

    def __init__(self, source: ModelSource, threads: int | None) -> None:
        import torch

        from . import local

        if threads:
            torch.set_num_threads(threads)
        self._model = local.load(source)

    async def defaults(self) -> dict[str, Any]:
        """The model's own sampling defaults (what `LocalModel.params` falls back to)."""
        config = getattr(self._model.model, "generation_config", None)
        keys = ("do_sample", "temperature", "top_p", "top_k")
        return {k: getattr(config, k, None) for k in keys}

    async def generate(self, messages: list[dict[str, Any]], params: GenParams) -> Generation:
        return await asyncio.wrap_future(self._model.submit(messages, params))

    async def batch_sizes(self) -> list[int]:
        """The size of every generate() call this replica made."""
        return list(self._model.batch_sizes)


@dataclass(eq=False)
class _Replica:
    handle: Any
    in_flight: int = 0
    served: int = 0
    alive: bool = True


@dataclass
class _Request:
    messages: list[dict[str, Any]]
    params: GenParams
    future: Future[Generation] = field(default_factory=Future)


class ReplicaPool:
    """A `local/` model served by N Ray actors, seen by the provider as a LocalModel."""

    # The in-process rules for sampling parameters, read against the replicas' defaults.
    params = LocalModel.params

    def __init__(
        self, source: ModelSource, *, actors: int, num_cpus: float, num_gpus: float
    ) -> None:
        import ray

        self.source = source
        self.retried = 0  # requests sent again after their actor died
        self._lock = threading.Lock()
        actor_class = ray.remote(ModelReplica).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=256
        )
        threads = max(1, int(num_cpus)) if num_cpus else None
        self._replicas = [_Replica(actor_class.remote(source, threads)) for _ in range(actors)]
        try:
            defaults = self._ready()
        except BaseException:
            self.close()
            raise
        self.model = SimpleNamespace(generation_config=SimpleNamespace(**defaults))

    def _ready(self) -> dict[str, Any]:
        import ray

        refs = [r.handle.defaults.remote() for r in self._replicas]
        done, pending = ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
        if pending:
            raise LocalModelError(
                f"only {len(done)} of {len(refs)} Ray actors for local/{self.source.spec} "
                f"started within {READY_TIMEOUT_S:g} s: the cluster lacks free CPUs/GPUs "
                "for them (lower ray_actors, ray_num_cpus or ray_num_gpus)"
            )
        try:
            return dict(ray.get(refs[0]))
        except ray.exceptions.RayError as exc:
            raise LocalModelError(
                f"the Ray actors could not load local/{self.source.spec}: {_cause(exc)}"
            ) from None

    @property
    def key(self) -> tuple[str, str | None]:
        return self.source.key

    @property
    def handles(self) -> list[Any]:
        """The live actors' handles (a test kills one mid-grid)."""
        with self._lock:
            return [r.handle for r in self._replicas if r.alive]

    @property
    def served(self) -> list[int]:
        """Requests each replica answered, in start order."""
        with self._lock:
            return [r.served for r in self._replicas]

    def batch_sizes(self) -> list[int]:
        """Every generate() call's batch size, over the live replicas."""
        import ray

        sizes: list[int] = []
        for handle in self.handles:
            sizes.extend(ray.get(handle.batch_sizes.remote()))
        return sizes

    def submit(self, messages: Sequence[Any], params: GenParams) -> Future[Generation]:
        """Send one completion to the least busy live replica."""
        request = _Request([_plain(m) for m in messages], params)
        request.future.set_running_or_notify_cancel()
        self._send(request)
        return request.future

    def _send(self, request: _Request) -> None:
        with self._lock:
            live = [r for r in self._replicas if r.alive]
            if not live:
                request.future.set_exception(
                    LocalModelError(
                        f"every Ray actor serving local/{self.source.spec} has died; "
                        "re-run with resume=True to finish the grid"
                    )
                )
                return
            replica = min(live, key=lambda r: r.in_flight)
            replica.in_flight += 1
        ref = replica.handle.generate.remote(request.messages, request.params)
        ref.future().add_done_callback(lambda f: self._done(f, replica, request))

    def _done(self, answer: Future[Generation], replica: _Replica, request: _Request) -> None:
        import ray

        with self._lock:
            replica.in_flight -= 1
        try:
            generation = answer.result()
        except ray.exceptions.RayActorError:
            with self._lock:
                replica.alive = False
                self.retried += 1
            self._send(request)  # the same request, once, to a replica still alive
        except ray.exceptions.RayTaskError as exc:
            request.future.set_exception(exc.cause if exc.cause is not None else exc)
        except BaseException as exc:
            request.future.set_exception(exc)
        else:
            with self._lock:
                replica.served += 1
            request.future.set_result(generation)

    def close(self) -> None:
        """End the actors (their CPUs and GPUs go back to the cluster)."""
        import ray

        with self._lock:
            ending = [r for r in self._replicas if r.alive]
            for r in ending:
                r.alive = False
        for r in ending:
            with contextlib.suppress(Exception):
                ray.kill(r.handle)


_active: list[ReplicaPool] = []


def serving_pools() -> list[ReplicaPool]:
    """The pools `serving` has open now."""
    return list(_active)


@contextlib.contextmanager
def serving(
    sources: Sequence[ModelSource], *, actors: int, num_cpus: float, num_gpus: float
) -> Iterator[list[ReplicaPool]]:
    """Serve each model from ACTORS Ray actors while the block runs; `local/` calls of this
    process go to them. The actors end with the block."""
    from . import local

    pools: list[ReplicaPool] = []
    replaced: list[tuple[tuple[str, str | None], Any]] = []
    try:
        for source in sources:
            pools.append(ReplicaPool(source, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus))
        # The provider's lookup (local.load) returns what this cache holds for the key.
        with local._cache_lock:
            for pool in pools:
                replaced.append((pool.key, local._cache.get(pool.key)))
                local._cache[pool.key] = pool  # type: ignore[assignment]
        _active.extend(pools)
        yield pools
    finally:
        with local._cache_lock:
            for key, previous in replaced:
                if previous is None:
                    local._cache.pop(key, None)
                else:
                    local._cache[key] = previous
        for pool in pools:
            if pool in _active:
                _active.remove(pool)
            pool.close()


def _plain(message: Any) -> dict[str, Any]:
    """A message as a plain dict (litellm may hand over its own Message objects)."""
    if isinstance(message, dict):
        return dict(message)
    dump = getattr(message, "model_dump", None)
    return dict(dump()) if callable(dump) else {"role": "user", "content": str(message)}


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
