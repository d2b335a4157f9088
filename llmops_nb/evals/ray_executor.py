"""Eval grids on Ray (`executor="ray"`): the grid's local models run on Ray actors.

The run itself is the local one (`runner.run`): the same plan, cells, cell keys,
scoring, tracing, progress and batched store writes, all in the driver. What moves is
the work: each `local/` model of the grid is served by `ray_actors` replicas (one Ray
actor each, `ray_num_cpus`/`ray_num_gpus` apiece) while the grid runs, and hosted models
stay async calls from the driver. So a run is identical to a local run of the same
spec, `resume` works across executors (the executor is not part of the run's
fingerprint), and workers need no access to the store: the driver alone writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import config
from .spec import EvalSpecError

if TYPE_CHECKING:
    from ..llm.local_model import ModelSource
    from .plan import Plan
    from .run import EvalRun

__all__ = ["EXECUTORS", "RayOptions", "check_executor", "run_on_ray"]

EXECUTORS = ("local", "ray")


def check_executor(executor: str | None) -> str:
    """The executor to use (None: LLMOps.executor), or one clear error."""
    chosen = executor if executor is not None else config.settings.executor
    if chosen not in EXECUTORS:
        raise EvalSpecError(f"executor must be 'local' or 'ray', not {chosen!r}")
    return chosen


@dataclass(frozen=True)
class RayOptions:
    """How a grid uses Ray; unset fields take the LLMOps.ray_* settings."""

    actors: int | None = None
    num_cpus: float | None = None
    num_gpus: float | None = None
    address: str | None = None

    def resolved(self) -> RayOptions:
        s = config.settings
        out = RayOptions(
            actors=s.ray_actors if self.actors is None else self.actors,
            num_cpus=s.ray_num_cpus if self.num_cpus is None else self.num_cpus,
            num_gpus=s.ray_num_gpus if self.num_gpus is None else self.num_gpus,
            address=s.ray_address if self.address is None else self.address,
        )
        actors = out.actors
        if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
            raise EvalSpecError(f"ray_actors must be a whole number of at least 1, not {actors!r}")
        for key, value in (("ray_num_cpus", out.num_cpus), ("ray_num_gpus", out.num_gpus)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise EvalSpecError(f"{key} must be a number of at least 0, not {value!r}")
        return out


def local_sources(plan: Plan) -> list[ModelSource]:
    """The `local/` models the grid calls, resolved in the driver (a registered name is
    looked up in the store here, so the actors get plain paths)."""
    from ..llm import local

    found: dict[tuple[str, str | None], ModelSource] = {}
    for p in plan.prompts:
        for m in plan.models:
            model = m.model or p.model or config.settings.default_model
            if model and model.startswith(f"{local.PROVIDER}/"):
                source = local.resolve(model.removeprefix(f"{local.PROVIDER}/"), plan.project)
                found.setdefault(source.key, source)
    return list(found.values())


def run_on_ray(
    plan: Plan,
    *,
    resume: bool = False,
    baseline: Any = None,
    progress: bool = True,
    options: RayOptions | None = None,
) -> EvalRun:
    """Run PLAN with its local models on Ray actors; nothing is written when Ray cannot
    be reached or cannot fit the actors."""
    from .. import ray_cluster
    from ..llm import ray_actors
    from . import runner

    opts = (options or RayOptions()).resolved()
    sources = local_sources(plan)
    ray_cluster.connect(opts.address)
    assert opts.actors is not None and opts.num_cpus is not None and opts.num_gpus is not None
    if sources:
        ray_cluster.check_fits("one model actor", num_cpus=opts.num_cpus, num_gpus=opts.num_gpus)
    with ray_actors.serving(
        sources, actors=opts.actors, num_cpus=opts.num_cpus, num_gpus=opts.num_gpus
    ):
        return runner.run(plan, resume=resume, baseline=baseline, progress=progress)
