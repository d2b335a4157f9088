"""The model registry: `register_model` records a trained adapter so `local/<name>` serves it.

Minimal on this branch (the fine-tune worker's one call); the full registry service
(`lo.models()`, `lo.model()`, `lo.lineage()`) replaces this module at merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import config

__all__ = ["ModelVersion", "register_model"]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with its lineage."""

    name: str
    version: int
    base: str
    adapter_path: str | None
    backend: str | None
    job_id: int | None
    data_hash: str | None
    prompt_version_id: int | None
    project: str
    created_at: datetime
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"local/{self.name}@{self.version}"


def register_model(
    name: str,
    *,
    base: str,
    adapter_path: str | None,
    backend: str | None,
    parameters: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    dataset_hash: str | None = None,
    dataset_version_id: int | None = None,
    prompt_ref: str | None = None,
    job_id: int | None = None,
    project: str | None = None,
) -> ModelVersion:
    """Add the next version of NAME; `local/NAME` then resolves to BASE with the adapter."""
    from .prompting import prompt
    from .store import get_store

    project = project or config.current_project()
    # `local/<path>` as the path: what this branch's `local/` resolver loads.
    bare = base.removeprefix("local/")
    if Path(bare).expanduser().is_dir():
        base = str(Path(bare).expanduser().resolve())
    prompt_version_id = prompt(prompt_ref, project=project).id if prompt_ref else None
    params = dict(parameters)
    if dataset_version_id is not None:
        params["dataset_version_id"] = dataset_version_id
    row = get_store().register_model(
        project,
        name,
        base=base,
        adapter_path=adapter_path,
        backend=backend,
        job_id=job_id,
        data_hash=dataset_hash,
        prompt_version_id=prompt_version_id,
        params=params,
        metrics=dict(metrics or {}),
        author=config.author(),
    )
    return ModelVersion(
        name=row.name,
        version=row.version,
        base=row.base,
        adapter_path=row.adapter_path,
        backend=row.backend,
        job_id=row.job_id,
        data_hash=row.data_hash,
        prompt_version_id=row.prompt_version_id,
        project=project,
        created_at=row.created_at,
        parameters=dict(row.params or {}),
        metrics=dict(row.metrics or {}),
    )
