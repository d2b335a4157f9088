"""Eval grids: `lo.evaluate(...)` and `%%eval` run prompts x models x rows, score them,
store every cell, and compare with a baseline. Light to import: litellm, polars and
altair load on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .load import parse_spec
from .run import EvalRun
from .scorers import Score, ScorerError, UnknownScorer, scorer
from .spec import EvalSpec, EvalSpecError, model_specs, prompt_specs, scorer_specs, target_specs

__all__ = [
    "EvalRun",
    "EvalSpec",
    "EvalSpecError",
    "Score",
    "ScorerError",
    "UnknownScorer",
    "evaluate",
    "run_spec",
    "scorer",
]


def evaluate(
    prompts: list[Any] | None = None,
    models: list[Any] | None = None,
    data: Any = None,
    scorers: list[Any] | None = None,
    *,
    spec: str | Path | None = None,
    name: str = "eval",
    concurrency: int | None = None,
    cache: bool | None = None,
    baseline: Any = None,
    resume: bool = False,
    progress: bool = True,
    timeout: float | None = None,
    retries: int | None = None,
    project: str | None = None,
    targets: list[Any] | None = None,
    executor: str | None = None,
    ray_actors: int | None = None,
    ray_num_cpus: float | None = None,
    ray_num_gpus: float | None = None,
) -> EvalRun:
    """Run the grid prompts x models x data rows and score every output.

    prompts: refs ('support_reply@2'), PromptVersions or {template, label} maps.
    models: litellm ids or {model, label, api_base, api_key, parameters} maps.
    data: a polars/pandas frame, list of dicts, .csv/.jsonl/.parquet path or
    'dataset:NAME@V'. scorers: names, {name: {args}} maps or @lo.scorer functions.
    targets: Python callables (a traced RAG pipeline), called with each row's columns,
    run beside prompts x models.
    baseline: 'latest', a run id or an EvalRun, compared in the panel and `compare()`.
    resume=True finishes the latest run called NAME instead of starting a new one.
    spec: a spec file (ours or a promptfoo config) or its YAML text, run as the CLI runs it.
    executor: "local" or "ray" (None: LLMOps.executor); on Ray each local model is served
    by ray_actors actors of ray_num_cpus/ray_num_gpus each (None: the LLMOps.ray_* settings).
    """
    from .ray_executor import RayOptions

    ray = RayOptions(actors=ray_actors, num_cpus=ray_num_cpus, num_gpus=ray_num_gpus)
    if spec is not None:
        if any(x is not None for x in (prompts, targets, models, data, scorers)):
            raise EvalSpecError("lo.evaluate(spec=...) takes the whole grid from the spec")
        from .load import parse_file

        parsed = parse_file(spec) if isinstance(spec, Path) else parse_spec(spec)
        parsed.name = name if name != "eval" or parsed.name is None else parsed.name
        for key, value in (
            ("concurrency", concurrency),
            ("cache", cache),
            ("timeout", timeout),
            ("retries", retries),
        ):
            if value is not None:
                setattr(parsed, key, value)
        return run_spec(
            parsed, resume=resume, baseline=baseline, progress=progress, project=project,
            executor=executor, ray=ray,
        )  # fmt: skip
    if prompts is None and targets is None:
        raise EvalSpecError(
            "lo.evaluate needs prompts= or targets= (or spec=: a spec file or its YAML)"
        )
    if data is None:
        raise EvalSpecError("lo.evaluate needs data=: a DataFrame, a path or 'dataset:NAME@V'")
    grid = EvalSpec(
        prompts=prompt_specs(_listed(prompts)),
        targets=target_specs(_listed(targets)),
        models=model_specs(list(models or [])),
        data=data,
        scorers=scorer_specs(list(scorers or [])),
        name=name,
        concurrency=concurrency,
        baseline=baseline,
        cache=cache,
        timeout=timeout,
        retries=retries,
        source="python",
    )
    return run_spec(
        grid, resume=resume, progress=progress, project=project, executor=executor, ray=ray
    )


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def run_spec(
    spec: EvalSpec,
    *,
    resume: bool = False,
    baseline: Any = None,
    progress: bool = True,
    project: str | None = None,
    executor: str | None = None,
    ray: Any = None,
) -> EvalRun:
    """Check the spec (nothing is written when it is wrong), then run it, here or on Ray."""
    from . import runner
    from .ray_executor import check_executor, run_on_ray

    chosen = check_executor(executor)
    plan = runner.prepare(spec, project=project)
    if chosen == "ray":
        return run_on_ray(
            plan,
            resume=resume,
            baseline=baseline if baseline is not None else spec.baseline,
            progress=progress,
            options=ray,
        )
    return runner.run(
        plan,
        resume=resume,
        baseline=baseline if baseline is not None else spec.baseline,
        progress=progress,
    )


def run_cell(
    name: str,
    body: str,
    *,
    namespace: dict[str, Any] | None = None,
    concurrency: int | None = None,
    baseline: Any = None,
    resume: bool = False,
    cache: bool | None = None,
    progress: bool = True,
    base_dir: Path | None = None,
    executor: str | None = None,
) -> EvalRun:
    """The `%%eval NAME` cell: parse the body (our YAML, promptfoo, or a path) and run."""
    spec = parse_spec(body, namespace=namespace, base_dir=base_dir, line_offset=1)
    spec.name = name or spec.name
    if concurrency is not None:
        spec.concurrency = concurrency
    if cache is not None:
        spec.cache = cache
    return run_spec(spec, resume=resume, baseline=baseline, progress=progress, executor=executor)
