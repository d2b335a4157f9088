"""The `%%eval` YAML mapping -> one EvalSpec (`load.py` tells it from a promptfoo config).

```
name: faq                            # optional: the cell's NAME wins
prompts: [support_reply@1, support_reply@2]
targets: [answer]                    # traced Python callables (a RAG pipeline), beside them
models:
  - openai/gpt-4o-mini
  - {model: openai/gpt-4o, label: big, api_base: http://..., parameters: {temperature: 0}}
data: faq_df          # a namespace variable, a .csv/.jsonl/.parquet path, dataset:NAME@V
scorers:
  - contains: {value: "{{keyword}}"}
  - rouge_l: {reference: "{{answer}}"}
concurrency: 16
baseline: latest
```
Parsing checks the shape and names everything wrong with its line; resolving prompts,
data and scorers against the store happens in `runner.prepare`, still before any write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LLMOpsError

__all__ = [
    "EvalSpec",
    "EvalSpecError",
    "ModelSpec",
    "PromptSpec",
    "ScorerSpec",
    "TargetSpec",
    "from_mapping",
    "safe_name",
]

SPEC_KEYS = (
    "name",
    "description",
    "prompts",
    "targets",
    "models",
    "data",
    "scorers",
    "concurrency",
    "baseline",
    "cache",
    "timeout",
    "retries",
)
MODEL_KEYS = ("model", "label", "api_base", "api_key", "parameters")


class EvalSpecError(LLMOpsError, ValueError):
    """A malformed eval spec: a missing or unknown key, a wrong type, an unknown model."""


@dataclass
class PromptSpec:
    """A prompt of the grid: a store ref (`support_reply@2`), or an inline template."""

    label: str
    ref: str | None = None  # a prompt in the store
    template: str | None = None  # inline (promptfoo prompts)
    version: Any = None  # a PromptVersion given directly (Python API)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.ref is not None:
            out["ref"] = self.ref
        if self.template is not None:
            out["template"] = self.template
        return out


@dataclass
class ModelSpec:
    """A model of the grid: a litellm id with a label and call settings."""

    model: str | None  # None: the prompt's own model (or the default model)
    label: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never stored
    parameters: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "label": self.label}
        if self.api_base:
            out["api_base"] = self.api_base
        if self.parameters:
            out["parameters"] = self.parameters
        return out


@dataclass
class TargetSpec:
    """A Python callable of the grid (a RAG pipeline): called with the row's columns."""

    label: str
    fn: Any = field(repr=False)

    def describe(self) -> dict[str, Any]:
        module = getattr(self.fn, "__module__", None) or ""
        qualname = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        return {"label": self.label, "function": f"{module}.{qualname}".lstrip(".")}


@dataclass
class ScorerSpec:
    """A scorer as written: kind and arguments (built by `scorers.build_scorer`)."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    rows: dict[int, dict[str, Any]] | None = None  # per-row arguments (promptfoo tests)
    obj: Any = None  # a CustomScorer or Scorer object given directly


@dataclass
class EvalSpec:
    """Everything a grid needs, before resolving it against the store and the data."""

    prompts: list[PromptSpec]
    models: list[ModelSpec]
    data: Any
    scorers: list[ScorerSpec] = field(default_factory=list)
    name: str | None = None
    description: str | None = None
    concurrency: int | None = None
    baseline: Any = None
    cache: bool | None = None
    timeout: float | None = None
    retries: int | None = None
    base_dir: Path | None = None  # relative data paths are relative to this
    data_name: str | None = None  # the dataset a frame is stored under
    source: str = "eval"  # eval, promptfoo or python
    targets: list[TargetSpec] = field(default_factory=list)


# --- the %%eval YAML -------------------------------------------------------------------


def _at(lines: dict[str, int], key: str) -> str:
    return f" (line {lines[key]})" if key in lines else ""


def from_mapping(
    data: dict[str, Any],
    *,
    namespace: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    lines: dict[str, int] | None = None,
) -> EvalSpec:
    lines = lines or {}
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise EvalSpecError(
            f"unknown key {unknown[0]!r}{_at(lines, str(unknown[0]))} in the eval spec; "
            f"allowed keys: {', '.join(SPEC_KEYS)}"
        )
    if data.get("data") in (None, "", []):
        raise EvalSpecError("the eval spec needs 'data'" + _hint("data"))
    if data.get("prompts") in (None, "", []) and data.get("targets") in (None, "", []):
        raise EvalSpecError("the eval spec needs 'prompts'" + _hint("prompts"))
    prompts = prompt_specs(_as_list(data.get("prompts") or [], "prompts", lines), lines)
    targets = target_specs(_as_list(data.get("targets") or [], "targets", lines), namespace, lines)
    labels = [p.label for p in prompts] + [t.label for t in targets]
    _unique(labels, "prompt or target", lines, "targets")
    models = model_specs(_as_list(data.get("models") or [], "models", lines), lines)
    scorers = scorer_specs(_as_list(data.get("scorers") or [], "scorers", lines), lines)
    raw_data = data["data"]
    data_name = None
    if isinstance(raw_data, str) and namespace is not None and raw_data.isidentifier():
        if raw_data not in namespace:
            raise EvalSpecError(
                f"data: no variable {raw_data!r} in the notebook{_at(lines, 'data')}; give a "
                "DataFrame variable, a .csv/.jsonl/.parquet path or dataset:NAME@VERSION"
            )
        data_name, raw_data = raw_data, namespace[raw_data]
    elif isinstance(raw_data, str) and raw_data.isidentifier():
        raise EvalSpecError(
            f"data: {raw_data!r}{_at(lines, 'data')} is neither a path (.csv, .jsonl, "
            ".parquet) nor dataset:NAME@VERSION"
        )
    return EvalSpec(
        prompts=prompts,
        models=models,
        data=raw_data,
        scorers=scorers,
        name=_opt_str(data, "name", lines),
        description=_opt_str(data, "description", lines),
        concurrency=_opt_int(data, "concurrency", lines),
        baseline=data.get("baseline"),
        cache=_opt_bool(data, "cache", lines),
        timeout=_opt_float(data, "timeout", lines),
        retries=_opt_int(data, "retries", lines),
        base_dir=base_dir,
        data_name=data_name,
        targets=targets,
    )


def _hint(key: str) -> str:
    if key == "prompts":
        return (
            " (or 'targets'), e.g. prompts: [support_reply@1, support_reply@2] or targets: [answer]"
        )
    return ": a DataFrame variable, a .csv/.jsonl/.parquet path, or dataset:NAME@VERSION"


def _as_list(value: Any, key: str, lines: dict[str, int]) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str | dict):
        return [value]
    raise EvalSpecError(f"{key!r}{_at(lines, key)} must be a list")


def _opt_str(data: dict[str, Any], key: str, lines: dict[str, int]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise EvalSpecError(f"{key!r}{_at(lines, key)} must be text")
    return str(value)


def _opt_int(data: dict[str, Any], key: str, lines: dict[str, int]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < (1 if key != "retries" else 0)
    ):
        raise EvalSpecError(
            f"{key!r}{_at(lines, key)} must be a positive whole number, not {value!r}"
        )
    return value


def _opt_float(data: dict[str, Any], key: str, lines: dict[str, int]) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise EvalSpecError(f"{key!r}{_at(lines, key)} must be a positive number, not {value!r}")
    return float(value)


def _opt_bool(data: dict[str, Any], key: str, lines: dict[str, int]) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise EvalSpecError(f"{key!r}{_at(lines, key)} must be true or false, not {value!r}")
    return value


def prompt_specs(items: list[Any], lines: dict[str, int] | None = None) -> list[PromptSpec]:
    """Refs ('name', 'name@3', 'name@alias'), PromptVersions, or {template, label} maps."""
    from ..prompting import PromptVersion, parse_ref

    lines = lines or {}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, PromptVersion):
            out.append(PromptSpec(label=item.ref, ref=item.ref, version=item))
        elif isinstance(item, str):
            try:
                parse_ref(item)
            except LLMOpsError as exc:
                raise EvalSpecError(f"prompts{_at(lines, 'prompts')}: {exc}") from None
            out.append(PromptSpec(label=item.strip(), ref=item.strip()))
        elif isinstance(item, dict) and ("template" in item or "ref" in item):
            extra = set(item) - {"template", "ref", "label"}
            if extra:
                raise EvalSpecError(
                    f"prompts{_at(lines, 'prompts')}: unknown key {sorted(extra)[0]!r} "
                    "in a prompt (use ref, template, label)"
                )
            if "ref" in item:
                ref = str(item["ref"])
                parse_ref(ref)
                out.append(PromptSpec(label=str(item.get("label") or ref), ref=ref))
            else:
                out.append(
                    PromptSpec(
                        label=str(item.get("label") or f"prompt{i + 1}"),
                        template=str(item["template"]),
                    )
                )
        else:
            raise EvalSpecError(
                f"prompts{_at(lines, 'prompts')}: item {i + 1} must be a prompt ref such as "
                f"support_reply@2, not {item!r}"
            )
    _unique([p.label for p in out], "prompt", lines, "prompts")
    return out


def target_specs(
    items: list[Any],
    namespace: dict[str, Any] | None = None,
    lines: dict[str, int] | None = None,
) -> list[TargetSpec]:
    """Callables, or names of callables in the notebook's namespace."""
    lines = lines or {}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, TargetSpec):
            out.append(item)
            continue
        label = None
        if isinstance(item, str):
            label = item.strip()
            if namespace is None or label not in namespace:
                raise EvalSpecError(
                    f"targets{_at(lines, 'targets')}: no function {label!r} in the notebook; "
                    "define it (e.g. @lo.trace def answer(question): ...) before the eval"
                )
            item = namespace[label]
        if not callable(item):
            raise EvalSpecError(
                f"targets{_at(lines, 'targets')}: target {label or i + 1!r} is a "
                f"{type(item).__name__}, not a function; a target is a Python callable"
            )
        name = label or getattr(item, "__name__", None) or f"target{i + 1}"
        out.append(TargetSpec(label=str(name), fn=item))
    _unique([t.label for t in out], "target", lines, "targets")
    return out


def model_specs(items: list[Any], lines: dict[str, int] | None = None) -> list[ModelSpec]:
    """litellm ids, or {model, label, api_base, api_key, parameters} maps."""
    lines = lines or {}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, ModelSpec):
            out.append(item)
        elif isinstance(item, str) and item.strip():
            out.append(ModelSpec(model=item.strip(), label=item.strip()))
        elif isinstance(item, dict):
            unknown = [k for k in item if k not in MODEL_KEYS]
            if unknown:
                raise EvalSpecError(
                    f"models{_at(lines, 'models')}: unknown key {unknown[0]!r} in model "
                    f"{i + 1}; allowed: {', '.join(MODEL_KEYS)}"
                )
            model = item.get("model")
            if not isinstance(model, str) or not model.strip():
                raise EvalSpecError(
                    f"models{_at(lines, 'models')}: model {i + 1} needs 'model: <litellm id>'"
                )
            params = item.get("parameters") or {}
            if not isinstance(params, dict):
                raise EvalSpecError(f"models{_at(lines, 'models')}: parameters must be a mapping")
            out.append(
                ModelSpec(
                    model=model.strip(),
                    label=str(item.get("label") or model).strip(),
                    api_base=item.get("api_base"),
                    api_key=item.get("api_key"),
                    parameters=dict(params),
                )
            )
        else:
            raise EvalSpecError(
                f"models{_at(lines, 'models')}: item {i + 1} must be a litellm model id such as "
                f"openai/gpt-4o-mini, not {item!r}"
            )
    _unique([m.label for m in out], "model", lines, "models")
    return out


def scorer_specs(items: list[Any], lines: dict[str, int] | None = None) -> list[ScorerSpec]:
    """'exact', {contains: {value: ...}}, {type: contains, value: ...}, or scorer objects."""
    from .scorers import CustomScorer, Scorer

    lines = lines or {}
    out = []
    for i, item in enumerate(items):
        if isinstance(item, CustomScorer | Scorer):
            out.append(ScorerSpec(kind=item.name, obj=item))
        elif callable(item):
            raise EvalSpecError(
                f"scorer {getattr(item, '__name__', item)!r} is a plain function: "
                "decorate it with @lo.scorer"
            )
        elif isinstance(item, str):
            out.append(ScorerSpec(kind=item.strip()))
        elif isinstance(item, dict) and "type" in item:
            args = {k: v for k, v in item.items() if k != "type"}
            out.append(ScorerSpec(kind=str(item["type"]), args=args))
        elif isinstance(item, dict) and len(item) == 1:
            ((kind, args),) = item.items()
            if args is None:
                args = {}
            if not isinstance(args, dict):
                raise EvalSpecError(
                    f"scorers{_at(lines, 'scorers')}: the arguments of {kind!r} must be a "
                    f'mapping, e.g. {kind}: {{value: "{{{{keyword}}}}"}}'
                )
            out.append(ScorerSpec(kind=str(kind), args=dict(args)))
        else:
            raise EvalSpecError(
                f"scorers{_at(lines, 'scorers')}: item {i + 1} must be a scorer name or "
                f"'NAME: {{ARGS}}', not {item!r}"
            )
    return out


def _unique(labels: list[str], what: str, lines: dict[str, int], key: str) -> None:
    seen = set()
    for label in labels:
        if label in seen:
            raise EvalSpecError(
                f"{key}{_at(lines, key)}: the {what} {label!r} appears twice; "
                "give one a different label"
            )
        seen.add(label)


def safe_name(text: str) -> str:
    """TEXT made a valid run name (a spec file's stem)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", text) or "eval"
    return name if re.match(r"^[A-Za-z_]", name) else f"_{name}"
