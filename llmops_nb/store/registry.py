"""Queries for the model registry: what `local/<name>` resolves to, with its lineage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, select

from ..config import check_name
from ..errors import NotFound
from . import models as m
from .audit import add_event
from .base import StoreBase


class ModelRegistryQueries(StoreBase):
    def register_model(
        self,
        project: str,
        name: str,
        base: str,
        adapter_path: str | None = None,
        backend: str | None = None,
        job_id: int | None = None,
        data_hash: str | None = None,
        prompt_version_id: int | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        author: str = "",
    ) -> m.RegisteredModel:
        """Add the next version of model NAME (v1 first); concurrent writers get distinct
        versions because `write` retries when two take the same one."""
        check_name("model", name)
        project_id = self.project_id(project)

        def add(s: Session) -> m.RegisteredModel:
            latest = s.exec(
                select(func.max(m.RegisteredModel.version)).where(
                    m.RegisteredModel.project_id == project_id, m.RegisteredModel.name == name
                )
            ).first()
            row = m.RegisteredModel(
                project_id=project_id,
                name=name,
                version=(latest or 0) + 1,
                base=base,
                adapter_path=adapter_path,
                backend=backend,
                job_id=job_id,
                data_hash=data_hash,
                prompt_version_id=prompt_version_id,
                params=dict(params or {}),
                metrics=dict(metrics or {}),
                author=author,
            )
            s.add(row)
            s.flush()
            add_event(
                s,
                project_id=project_id,
                action="model registered",
                target=f"local/{name}",
                author=author,
                to_value=f"v{row.version}",
                reason=f"base {base}" + (f", fine-tune job #{job_id}" if job_id else ""),
            )
            return row

        return self.write(add)

    def registered_model(
        self, project: str, name: str, version: int | None = None
    ) -> m.RegisteredModel:
        """One version of a registered model (the latest when version is None)."""
        project_id = self.project_id(project)
        with self.session() as s:
            query = select(m.RegisteredModel).where(
                m.RegisteredModel.project_id == project_id, m.RegisteredModel.name == name
            )
            if version is None:
                query = query.order_by(m.RegisteredModel.version.desc()).limit(1)  # type: ignore[attr-defined]
            else:
                query = query.where(m.RegisteredModel.version == version)
            row = s.exec(query).first()
            if row is not None:
                return row
            latest = s.exec(
                select(func.max(m.RegisteredModel.version)).where(
                    m.RegisteredModel.project_id == project_id, m.RegisteredModel.name == name
                )
            ).first()
            if latest is not None:
                raise NotFound(f"model {name!r} has no version {version} (latest is v{latest})")
            known = s.exec(
                select(m.RegisteredModel.name)
                .where(m.RegisteredModel.project_id == project_id)
                .distinct()
                .order_by(m.RegisteredModel.name)
                .limit(10)
            ).all()
        hint = f"known models: {', '.join(known)}" if known else "it has no registered models yet"
        raise NotFound(
            f"unknown model {name!r} in the registry of project {project!r} ({hint}); "
            "register one with lo.finetune(..., name=...)"
        )

    def list_models(self, project: str) -> list[m.RegisteredModel]:
        """Every registered model version of the project, by name then version."""
        project_id = self.project_id(project)
        with self.session() as s:
            return list(
                s.exec(
                    select(m.RegisteredModel)
                    .where(m.RegisteredModel.project_id == project_id)
                    .order_by(m.RegisteredModel.name, m.RegisteredModel.version)
                )
            )

    # --- lineage -------------------------------------------------------------------

    def prompt_version_ref(self, version_id: int) -> dict[str, Any] | None:
        """id, name, version and hash of a prompt version, or None if it is gone."""
        with self.session() as s:
            row = s.exec(
                select(m.PromptVersion, m.Prompt.name)
                .join(m.Prompt, m.Prompt.id == m.PromptVersion.prompt_id)  # type: ignore[arg-type]
                .where(m.PromptVersion.id == version_id)
            ).first()
        if row is None:
            return None
        version, name = row
        return {"id": version.id, "name": name, "version": version.version, "hash": version.hash}

    def dataset_versions_with_hash(self, project: str, data_hash: str) -> list[dict[str, Any]]:
        """The project's dataset versions whose content hash is DATA_HASH, oldest first."""
        project_id = self.project_id(project)
        with self.session() as s:
            rows = s.exec(
                select(
                    m.DatasetVersion.id,
                    m.Dataset.name,
                    m.DatasetVersion.version,
                    m.DatasetVersion.hash,
                    m.DatasetVersion.n_rows,
                    m.DatasetVersion.created_at,
                )
                .join(m.Dataset, m.Dataset.id == m.DatasetVersion.dataset_id)  # type: ignore[arg-type]
                .where(m.Dataset.project_id == project_id, m.DatasetVersion.hash == data_hash)
                .order_by(m.DatasetVersion.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def finetune_job_summary(self, job_id: int) -> dict[str, Any] | None:
        """The lineage fields of fine-tune job JOB_ID, or None when there is no such job."""
        with self.session() as s:
            job = s.get(m.FinetuneJob, job_id)
        if job is None:
            return None
        fields = ("id", "name", "base", "method", "backend", "status", "params", "data_hash")
        summary = {f: getattr(job, f) for f in fields}
        summary.update(
            prompt_version_id=job.prompt_version_id,
            created_at=job.created_at,
            finished_at=job.finished_at,
        )
        return summary

    def eval_runs_using_model(self, project: str, model_ids: list[str]) -> list[dict[str, Any]]:
        """Every eval run of the project with a result from one of MODEL_IDS (each id also
        matches its pinned forms, `id@N`): run id, name, status, created_at and the model
        string, one row per run and model, oldest first."""
        if not model_ids:
            return []
        project_id = self.project_id(project)
        col = m.EvalResult.model
        matches = [col == i for i in model_ids] + [
            col.startswith(f"{i}@", autoescape=True)  # type: ignore[attr-defined]
            for i in model_ids
        ]
        with self.session() as s:
            rows = s.exec(
                select(
                    m.EvalRun.id,
                    m.EvalRun.name,
                    m.EvalRun.status,
                    m.EvalRun.created_at,
                    col,
                )
                .join(m.EvalRun, m.EvalRun.id == m.EvalResult.run_id)  # type: ignore[arg-type]
                .where(m.EvalRun.project_id == project_id, or_(*matches))
                .distinct()
                .order_by(m.EvalRun.id, col)
            ).all()
        return [
            {"run_id": r[0], "name": r[1], "status": r[2], "created_at": r[3], "model": r[4]}
            for r in rows
        ]
