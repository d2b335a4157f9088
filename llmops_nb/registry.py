"""The model registry: fine-tuned models as `local/<name>@N`, with where each came from.

A fine-tune registers its adapter here (`register_model`), and from then on
`local/<name>` (the latest version) and `local/<name>@N` run it on its base model.
`models()` lists the registered versions beside the built-in bases, `model()` returns one
version, and `lineage()` walks back to the job, the dataset version and the prompt version
that made it, and forward to every eval run that used it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import ModelRegistryError, NotFound
from .llm import builtin_models

if TYPE_CHECKING:
    import polars as pl

    from .store import Store
    from .store import models as m

__all__ = [
    "Lineage",
    "ModelVersion",
    "lineage",
    "model",
    "model_aliases",
    "models",
    "register_model",
    "rollback_model",
    "set_model_alias",
]

_PREFIX = "local/"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model (or a built-in base, with `builtin=True`)."""

    name: str
    version: int | None
    base: str
    adapter_path: str | None
    backend: str | None
    dataset_hash: str | None
    dataset_version_id: int | None
    dataset_ref: str | None  # "dataset:name@N", the stored version with that content
    prompt_ref: str | None  # "name@N" of the prompt version the examples were rendered with
    prompt_version_id: int | None
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    job_id: int | None
    created: datetime | None
    author: str = ""
    project: str = ""
    builtin: bool = False

    @property
    def ref(self) -> str:
        """`name@N` (just `name` for a built-in)."""
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @property
    def model(self) -> str:
        """The id that lo.complete, %%prompt and %%eval take: `local/name@N`."""
        return _PREFIX + self.ref

    def __repr__(self) -> str:
        what = "built-in" if self.builtin else f"on {self.base}"
        return f"<ModelVersion {self.model} {what}>"


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from, and which eval runs used it.

    `job`, `dataset` and `prompt` are None when the registration did not record them;
    `dataset` is the stored version whose content hash matches the training data.
    """

    model: ModelVersion
    job: dict[str, Any] | None
    dataset: dict[str, Any] | None
    prompt: dict[str, Any] | None
    eval_runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.model,
            "base": self.model.base,
            "job": self.job,
            "dataset": self.dataset,
            "prompt": self.prompt,
            "eval_runs": self.eval_runs,
        }

    def __repr__(self) -> str:
        def ref(item: dict[str, Any] | None) -> str:
            if item is None:
                return "-"
            if item.get("name") is None:  # training data that was never stored as a dataset
                return f"unstored data, hash {item['hash'][:12]}"
            return f"{item['name']}@{item['version']}"

        job = "-" if self.job is None else f"#{self.job['id']} {self.job['name']}"
        runs = ", ".join(f"#{r['run_id']} {r['name']}" for r in self.eval_runs) or "none"
        return (
            f"{self.model.model} on {self.model.base}\n"
            f"  job: {job}\n  dataset: {ref(self.dataset)}\n  prompt: {ref(self.prompt)}\n"
            f"  eval runs: {runs}"
        )


def _store() -> Store:
    from .store import get_store

    return get_store()


def register_model(
    name: str,
    *,
    base: str,
    adapter_path: str | Path | None,
    backend: str | None,
    parameters: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    dataset_hash: str | None = None,
    dataset_version_id: int | None = None,
    prompt_ref: str | None = None,
    job_id: int | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Add the next version of NAME (v1 first); `local/NAME` then runs it.

    Everything is checked before the row is written: a built-in name, a missing adapter
    folder, an unknown prompt, dataset version or job, or a dataset hash that contradicts
    the dataset version each raise one clear error and register nothing.
    """
    project = project or config.current_project()
    config.check_name("model", name)
    if builtin_models.is_builtin(name):
        raise ModelRegistryError(
            f"cannot register a model called {name!r}: local/{name} is a built-in base; "
            "choose another name"
        )
    if not isinstance(base, str) or not base.strip():
        raise ModelRegistryError("register_model needs base='local/smollm2' or a model path")
    adapter = None
    if adapter_path is not None:
        adapter_dir = Path(adapter_path).expanduser()
        if not adapter_dir.is_dir():
            raise ModelRegistryError(
                f"cannot register {name!r}: the adapter folder {str(adapter_dir)!r} does not exist"
            )
        adapter = str(adapter_dir.resolve())
    store = _store()
    if dataset_version_id is not None:
        try:
            _, version_row = store.dataset_version_by_id(dataset_version_id)
        except NotFound:
            raise NotFound(f"cannot register {name!r}: {_no_dataset(dataset_version_id)}") from None
        if dataset_hash is not None and dataset_hash != version_row.hash:
            raise ModelRegistryError(
                f"cannot register {name!r}: dataset_hash {dataset_hash[:12]}... is not the "
                f"content hash of dataset version {dataset_version_id} "
                f"({version_row.hash[:12]}...)"
            )
        dataset_hash = version_row.hash
    prompt_version_id = None
    if prompt_ref is not None:
        from .prompting import prompt

        prompt_version_id = prompt(prompt_ref, project=project).id
    if job_id is not None and store.finetune_job_summary(job_id) is None:
        raise NotFound(f"cannot register {name!r}: there is no fine-tune job {job_id}")
    row = store.register_model(
        project,
        name,
        base=base.strip(),
        adapter_path=adapter,
        backend=backend,
        job_id=job_id,
        data_hash=dataset_hash,
        prompt_version_id=prompt_version_id,
        params=parameters,
        metrics=metrics,
        author=config.author(),
    )
    return _version(store, project, row)


def _no_dataset(version_id: int) -> str:
    return f"there is no dataset version with id {version_id} (lo.dataset(NAME, data) stores one)"


def parse_model_ref(ref: str, *, project: str | None = None) -> tuple[str, int | None]:
    """'local/name@3', 'name@3', 'name@production' or 'name' -> (name, version or None for
    the latest); an alias resolves to the version it points at now."""
    bare = ref.strip().removeprefix(_PREFIX)
    name, _, tag = bare.partition("@")
    number = tag.removeprefix("v")
    if tag and not number.isdigit() and not config.NAME_PATTERN.match(tag):
        raise ModelRegistryError(
            f"invalid model reference {ref!r}: use 'name', 'name@N', 'name@alias' or "
            "'local/name@N'"
        )
    config.check_name("model", name)
    if not tag or tag == "latest":
        return name, None
    if number.isdigit():
        return name, int(number)
    if builtin_models.is_builtin(name):
        raise NotFound(f"local/{name} is a built-in base and has no aliases")
    project = project or config.current_project()
    return name, _store().resolve_model_alias(project, name, tag)


def model(ref: str, *, project: str | None = None) -> ModelVersion:
    """`lo.model("support-ft@2")`: one registered version (the latest without `@N`)."""
    project = project or config.current_project()
    name, version = parse_model_ref(ref, project=project)
    if builtin_models.is_builtin(name):
        if version is not None:
            raise NotFound(f"local/{name} is a built-in base and has no versions")
        return _builtin_version(builtin_models.builtin(name))
    store = _store()
    return _version(store, project, store.registered_model(project, name, version))


def models(*, project: str | None = None) -> pl.DataFrame:
    """`lo.models()`: the built-in bases, then every registered version, as a polars frame."""
    import json

    import polars as pl

    project = project or config.current_project()
    store = _store()
    rows: list[dict[str, Any]] = []
    for base in builtin_models.BUILTIN_MODELS.values():
        rows.append(
            {
                "model": base.spec,
                "name": base.name,
                "version": None,
                "builtin": True,
                "kind": base.kind,
                "base": base.source,
                "backend": None,
                "dataset": None,
                "prompt": None,
                "job_id": None,
                "metrics": None,
                "available": base.available,
                "created": None,
            }
        )
    for row in store.list_models(project):
        version = _version(store, project, row)
        rows.append(
            {
                "model": version.model,
                "name": version.name,
                "version": version.version,
                "builtin": False,
                "kind": "fine-tune" if version.adapter_path else "model",
                "base": version.base,
                "backend": version.backend,
                "dataset": version.dataset_ref or version.dataset_hash,
                "prompt": version.prompt_ref,
                "job_id": version.job_id,
                "metrics": json.dumps(version.metrics, sort_keys=True, default=str),
                "available": version.adapter_path is None or Path(version.adapter_path).is_dir(),
                "created": version.created,
            }
        )
    schema = {
        "model": pl.String,
        "name": pl.String,
        "version": pl.Int64,
        "builtin": pl.Boolean,
        "kind": pl.String,
        "base": pl.String,
        "backend": pl.String,
        "dataset": pl.String,
        "prompt": pl.String,
        "job_id": pl.Int64,
        "metrics": pl.String,
        "available": pl.Boolean,
        "created": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema)


def lineage(ref: str, *, project: str | None = None) -> Lineage:
    """`lo.lineage("local/support-ft")`: back to the job, dataset version and prompt version
    of that version (the latest without `@N`), forward to the eval runs that used the model:
    every version of it for a bare name, that version only for `name@N`.

    Each run says which version it ran: an eval that named `local/support-ft` without a
    version ran the one that was the latest when the run started.
    """
    project = project or config.current_project()
    pinned = parse_model_ref(ref, project=project)[1] is not None
    version = model(ref, project=project)
    if version.builtin:
        raise ModelRegistryError(
            f"local/{version.name} is a built-in base: it has no fine-tune lineage"
        )
    store = _store()
    job = store.finetune_job_summary(version.job_id) if version.job_id is not None else None
    dataset = _dataset(store, project, version)
    prompt = (
        store.prompt_version_ref(version.prompt_version_id)
        if version.prompt_version_id is not None
        else None
    )
    history = store.list_models(project)
    created = [(r.version, r.created_at) for r in history if r.name == version.name]
    runs = []
    for run in store.eval_runs_using_model(project, [version.model.partition("@")[0]]):
        used = _version_used(run["model"], run["created_at"], created)
        if used == version.version or not pinned:
            runs.append({**run, "version": used})
    return Lineage(version, job, dataset, prompt, runs)


def _version_used(model_id: str, run_created: datetime, created: list[tuple[int, datetime]]) -> int:
    """Which version `model_id` meant in a run: its pin, else the latest one at the time."""
    _, _, tag = model_id.partition("@")
    if tag.removeprefix("v").isdigit():
        return int(tag.removeprefix("v"))
    earlier = [v for v, at in created if _utc(at) <= _utc(run_created)]
    return max(earlier) if earlier else min(v for v, _ in created)


def _utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for what was written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dataset(store: Store, project: str, version: ModelVersion) -> dict[str, Any] | None:
    if version.dataset_hash is None:
        return None
    matches = store.dataset_versions_with_hash(project, version.dataset_hash)
    return matches[0] if matches else {"name": None, "version": None, "hash": version.dataset_hash}


def _version(store: Store, project: str, row: m.RegisteredModel) -> ModelVersion:
    prompt = (
        store.prompt_version_ref(row.prompt_version_id)
        if row.prompt_version_id is not None
        else None
    )
    datasets = store.dataset_versions_with_hash(project, row.data_hash) if row.data_hash else []
    dataset = datasets[0] if datasets else None
    return ModelVersion(
        name=row.name,
        version=row.version,
        base=row.base,
        adapter_path=row.adapter_path,
        backend=row.backend,
        dataset_hash=row.data_hash,
        dataset_version_id=dataset["id"] if dataset else None,
        dataset_ref=f"dataset:{dataset['name']}@{dataset['version']}" if dataset else None,
        prompt_ref=f"{prompt['name']}@{prompt['version']}" if prompt else None,
        prompt_version_id=row.prompt_version_id,
        parameters=dict(row.params or {}),
        metrics=dict(row.metrics or {}),
        job_id=row.job_id,
        created=_utc(row.created_at),
        author=row.author,
        project=project,
    )


def _builtin_version(base: builtin_models.BuiltinModel) -> ModelVersion:
    return ModelVersion(
        name=base.name,
        version=None,
        base=base.source,
        adapter_path=None,
        backend=None,
        dataset_hash=None,
        dataset_version_id=None,
        dataset_ref=None,
        prompt_ref=None,
        prompt_version_id=None,
        parameters={},
        metrics={},
        job_id=None,
        created=None,
        builtin=True,
    )


# --- model aliases -------------------------------------------------------------------


def _check_alias(alias: str) -> str:
    config.check_name("alias", alias)
    if alias == "latest" or (alias[:1] == "v" and alias[1:].isdigit()):
        raise ModelRegistryError(
            f"{alias!r} cannot be a model alias: it reads as a version ('latest', 'vN')"
        )
    return alias


def set_model_alias(
    name: str, alias: str, version: int, *, project: str | None = None, reason: str | None = None
) -> str:
    """`lo.set_model_alias("support-ft", "production", 2)`: `local/support-ft@production`
    then runs v2. Every move is kept (for `rollback_model`) and audited."""
    project = project or config.current_project()
    name = parse_model_ref(name, project=project)[0]
    _check_alias(alias)
    if builtin_models.is_builtin(name):
        raise ModelRegistryError(f"local/{name} is a built-in base: it has no versions to alias")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelRegistryError(f"a model alias points at a version number, not {version!r}")
    before, after = _store().set_model_alias(
        project, name, alias, version, config.author(), reason
    )
    if before == after:
        return f"local/{name}@{alias} is already v{after}"
    was = f" (was v{before})" if before is not None else ""
    return f"local/{name}@{alias} -> v{after}{was}"


def rollback_model(
    name: str, alias: str, *, project: str | None = None, reason: str | None = None
) -> str:
    """`lo.rollback_model("support-ft", "production")`: the alias goes back to the version
    it pointed at before its last move (repeatable, like undo)."""
    project = project or config.current_project()
    name = parse_model_ref(name, project=project)[0]
    _check_alias(alias)
    before, after = _store().rollback_model_alias(project, name, alias, config.author(), reason)
    return f"local/{name}@{alias} rolled back: v{before} -> v{after}"


def model_aliases(name: str, *, project: str | None = None) -> dict[str, int]:
    """alias -> version of registered model NAME."""
    project = project or config.current_project()
    return _store().model_aliases(project, parse_model_ref(name, project=project)[0])
