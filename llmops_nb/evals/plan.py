"""Resolving an eval spec into a checked plan: prompts x models x rows, before any write.

`prepare` resolves a spec against the store and the data and checks everything (prompt
refs, models, scorer arguments, prompt variables, run settings) before anything is
written, so a wrong spec costs nothing; `runner.run` then executes the plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import LLMOpsError
from .scorers import Scorer, ScorerError, build_scorer
from .spec import EvalSpec, EvalSpecError, ModelSpec, PromptSpec, TargetSpec

if TYPE_CHECKING:
    import polars as pl

    from ..datasets import DatasetVersion

__all__ = [
    "TARGET_COLUMN",
    "GridPrompt",
    "GridTarget",
    "Plan",
    "check_baseline",
    "check_settings",
    "prepare",
]

TARGET_COLUMN = "target"
"""The model label of a target's cells: a target picks its own models."""


@dataclass
class GridPrompt:
    """A prompt of the grid, resolved: renders a data row to chat messages."""

    label: str
    variables: list[str]
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    version: Any = None  # PromptVersion, for store prompts
    template: str | None = None  # inline prompts

    @property
    def version_id(self) -> int | None:
        return self.version.id if self.version is not None else None

    def render(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if self.version is not None:
            return self.version.render(row)  # type: ignore[no-any-return]
        from jinja2 import UndefinedError

        from ..errors import MissingVariable
        from ..prompting import compile_template

        try:
            text = compile_template(self.template or "").render(row)
        except UndefinedError as exc:
            raise MissingVariable(f"prompt {self.label}: {exc.message}") from None
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                messages = json.loads(stripped)
                if isinstance(messages, list) and all(
                    isinstance(m, dict) and "role" in m for m in messages
                ):
                    return messages
            except ValueError:
                pass
        return [{"role": "user", "content": text}]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.version is not None:
            out.update(
                ref=self.label,
                name=self.version.name,
                version=self.version.version,
                version_id=self.version.id,
                hash=self.version.hash,
            )
        else:
            out["template"] = self.template
        return out


@dataclass
class GridTarget:
    """A Python callable of the grid, resolved: which row columns it is called with."""

    label: str
    fn: Any = field(repr=False)
    parameters: list[str] = field(default_factory=list)  # required: columns it must get
    optional: list[str] = field(default_factory=list)  # with defaults: passed when present
    takes_all: bool = False  # **kwargs: the whole row
    spec: TargetSpec | None = None

    def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.takes_all:
            return dict(row)
        return {name: row[name] for name in self.parameters + self.optional if name in row}

    def describe(self) -> dict[str, Any]:
        return self.spec.describe() if self.spec is not None else {"label": self.label}


@dataclass
class Plan:
    """A spec resolved and checked: ready to run, nothing written yet."""

    spec: EvalSpec
    name: str
    project: str
    prompts: list[GridPrompt]
    models: list[ModelSpec]
    frame: pl.DataFrame
    scorers: list[Scorer]
    data_name: str
    data_source: str | None
    data_version: DatasetVersion | None  # when the data already is a stored version
    data_hash: str
    concurrency: int
    cache: bool
    timeout: float | None
    retries: int | None
    targets: list[GridTarget] = field(default_factory=list)

    @property
    def n_cells(self) -> int:
        return (len(self.prompts) * len(self.models) + len(self.targets)) * self.frame.height

    def describe(self) -> dict[str, Any]:
        """The run's spec as stored: no API keys, no frames, no functions."""
        body = {
            "prompts": [p.describe() for p in self.prompts],
            "models": [m.describe() for m in self.models],
            "scorers": [s.describe() for s in self.scorers],
            "data": {"name": self.data_name, "hash": self.data_hash, "rows": self.frame.height},
        }
        if self.targets:  # runs without targets keep the fingerprint they always had
            body["targets"] = [t.describe() for t in self.targets]
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True, default=str).encode()
        ).hexdigest()
        return {
            **body,
            "source": self.spec.source,
            "description": self.spec.description,
            "concurrency": self.concurrency,
            "cache": self.cache,
            "fingerprint": fingerprint,
        }


def prepare(spec: EvalSpec, *, project: str | None = None, check_models: bool = True) -> Plan:
    """Resolve prompts, models, data and scorers, and check them; writes nothing."""
    from .. import datasets
    from ..prompting import prompt as get_prompt
    from ..prompting import template_variables

    project = config.check_name("project", project) if project else config.current_project()
    if not spec.prompts and not spec.targets:
        raise EvalSpecError("the eval needs at least one prompt or target")
    name = config.check_name("eval", spec.name or "eval")
    check_settings(spec)

    prompts = []
    for p in spec.prompts:
        prompts.append(_grid_prompt(p, project, get_prompt, template_variables))

    targets = [_grid_target(t) for t in spec.targets]
    models = list(spec.models) or ([ModelSpec(model=None, label="default")] if prompts else [])
    if targets and any(m.label == TARGET_COLUMN for m in models):
        raise EvalSpecError(
            f"the model label {TARGET_COLUMN!r} names the targets' column: give the model "
            "another label"
        )
    for m in models:
        if m.model is None:
            for p in prompts:
                if not (p.model or config.settings.default_model):
                    raise EvalSpecError(
                        f"no model for prompt {p.label}: list models: [...] in the spec, give "
                        "the prompt a model, or set %config LLMOps.default_model"
                    )

    frame, source = datasets.load_frame(spec.data, project=project, base_dir=spec.base_dir)
    version = spec.data if isinstance(spec.data, datasets.DatasetVersion) else None
    if version is None and isinstance(spec.data, str) and spec.data.strip().startswith("dataset:"):
        version = datasets.get_version(spec.data, project=project)
    data_name = _data_name(spec, name, version)
    datasets.check_rows(frame, data_name)
    columns = list(frame.columns)

    for p in prompts:
        missing = [v for v in p.variables if v not in columns]
        if missing:
            raise EvalSpecError(
                f"prompt {p.label} uses {{{{{missing[0]}}}}}, but the data has no column "
                f"{missing[0]!r} (columns: {', '.join(columns)})"
            )

    for t in targets:
        missing = [name for name in t.parameters if name not in columns]
        if missing:
            raise EvalSpecError(
                f"target {t.label} takes the argument {missing[0]!r}, but the data has no "
                f"column {missing[0]!r} (columns: {', '.join(columns)})"
            )

    scorers = _build_scorers(spec, columns)
    if check_models:
        for m in models:
            for model in (
                {m.model}
                if m.model
                else {p.model or config.settings.default_model for p in prompts}
            ):
                _check_model(model, m.api_base)
        for s in scorers:
            if s.kind == "judge":
                _check_model(str(s.args.get("model")), s.args.get("api_base"))

    return Plan(
        spec=spec,
        name=name,
        project=project,
        prompts=prompts,
        models=models,
        frame=frame,
        scorers=scorers,
        data_name=data_name,
        data_source=source,
        data_version=version,
        data_hash=version.hash if version is not None else datasets.content_hash(frame),
        concurrency=max(1, int(spec.concurrency or config.settings.concurrency)),
        cache=config.settings.cache if spec.cache is None else bool(spec.cache),
        timeout=spec.timeout,
        retries=spec.retries,
        targets=targets,
    )


def _grid_target(t: TargetSpec) -> GridTarget:
    """The columns T is called with, by name: those without defaults must be columns
    (`prepare` checks), those with defaults are passed when the data has them."""
    import inspect

    try:
        params = list(inspect.signature(t.fn).parameters.values())
    except (TypeError, ValueError):
        raise EvalSpecError(f"target {t.label}: cannot read its parameters") from None
    kinds = inspect.Parameter
    takes_all = any(p.kind is kinds.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    required = [p.name for p in named if p.default is inspect.Parameter.empty]
    if any(p.kind is kinds.POSITIONAL_ONLY and p.default is p.empty for p in params):
        raise EvalSpecError(
            f"target {t.label}: positional-only parameters cannot be matched to columns"
        )
    optional = [p.name for p in named if p.default is not inspect.Parameter.empty]
    return GridTarget(t.label, t.fn, required, optional, takes_all, t)


def check_settings(spec: EvalSpec) -> None:
    """concurrency >= 1, timeout > 0, retries >= 0, baseline of a usable type: one clear
    message for each, whichever face (YAML, Python, magic, CLI) set them."""
    checks = (
        ("concurrency", spec.concurrency, 1, "a whole number of at least 1"),
        ("retries", spec.retries, 0, "a whole number of at least 0"),
    )
    for key, value, least, wanted in checks:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < least
        ):
            raise EvalSpecError(f"{key} must be {wanted}, not {value!r}")
    timeout = spec.timeout
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise EvalSpecError(f"timeout must be a number of seconds above 0, not {timeout!r}")
    check_baseline(spec.baseline)


def check_baseline(baseline: Any) -> None:
    """'latest', a run id, a run name or an EvalRun (or none): else one clear message."""
    from .run import EvalRun

    if baseline is None or baseline is False or baseline == "" or isinstance(baseline, EvalRun):
        return
    if isinstance(baseline, int) and not isinstance(baseline, bool):
        return
    if isinstance(baseline, str) and (
        baseline == "latest"
        or baseline.lstrip("#").isdigit()
        or config.NAME_PATTERN.match(baseline)
    ):
        return
    raise EvalSpecError(f"baseline must be 'latest', a run id or a run name, not {baseline!r}")


def _grid_prompt(
    p: PromptSpec, project: str, get_prompt: Any, template_variables: Any
) -> GridPrompt:
    if p.template is not None:
        from ..prompting import compile_template

        try:
            compile_template(p.template)
        except LLMOpsError as exc:
            raise EvalSpecError(f"prompt {p.label}: {exc}") from None
        return GridPrompt(
            label=p.label, variables=template_variables(p.template), template=p.template
        )
    version = p.version if p.version is not None else get_prompt(p.ref, project=project)
    return GridPrompt(
        label=p.label,
        variables=list(version.variables),
        model=version.model,
        parameters=dict(version.parameters),
        version=version,
    )


def _data_name(spec: EvalSpec, name: str, version: Any) -> str:
    import re
    from pathlib import Path

    if version is not None:
        return str(version.name)
    if spec.data_name:
        return spec.data_name
    if isinstance(spec.data, str | Path):
        stem = Path(str(spec.data)).stem
        stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem)
        return stem if re.match(r"^[A-Za-z_]", stem) else f"_{stem}"
    return f"{name}-data"


def _build_scorers(spec: EvalSpec, columns: list[str]) -> list[Scorer]:
    from .scorers import CustomScorer

    scorers: list[Scorer] = []
    names: set[str] = set()
    reserved = {
        "prompt", "model", "row_index", "inputs", "expected", "output", "error", "passed",
        "latency_ms", "input_tokens", "output_tokens", "cost", "cached", "trace_id", "model_id",
        "prompt_version_id", "n", "errors", "pass_rate", "latency_p50_ms", "latency_p95_ms",
    }  # fmt: skip
    for s in spec.scorers:
        if isinstance(s.obj, Scorer):
            built = s.obj
        elif isinstance(s.obj, CustomScorer):
            built = s.obj.build(s.args)
        elif s.rows is not None:
            built = build_scorer(s.kind, s.args)
            built.rows = s.rows
        else:
            built = build_scorer(s.kind, s.args)
        base, n = built.name, 2
        while built.name in names:
            built.name = f"{base}_{n}"
            n += 1
        if built.name in reserved or built.name.endswith("_reason"):
            raise ScorerError(f"scorer name {built.name!r} is reserved: give it name: ...")
        names.add(built.name)
        built.check_columns(columns)
        scorers.append(built)
    return scorers


def _check_model(model: str, api_base: str | None) -> None:
    """Fail before the run, not in every cell, when litellm does not know the provider."""
    from ..llm.client import check_model

    if model.startswith("router/"):  # a stored router (lo.router) is a model too
        from ..routing import check_router

        check_router(model)
        return
    check_model(model, api_base)
