"""Queries for the model registry: what `local/<name>` resolves to, with its lineage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from ..config import check_name
from ..errors import NotFound
from . import models as m
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
