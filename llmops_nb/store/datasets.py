"""Queries for datasets and their content-hashed versions (rows stored as Parquet bytes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .base import StoreBase


class DatasetQueries(StoreBase):
    """Datasets: a name per project, integer versions identified by a content hash."""

    def add_dataset_version(
        self, project: str, name: str, **fields: Any
    ) -> tuple[m.DatasetVersion, bool]:
        """Store a version unless one with the same hash exists; returns (version, created).

        `fields`: hash, n_rows, columns, data (Parquet bytes), source, author.
        """
        project_id = self.project_id(project)

        def add(s: Session) -> tuple[m.DatasetVersion, bool]:
            dataset = s.exec(
                select(m.Dataset)
                .where(m.Dataset.project_id == project_id, m.Dataset.name == name)
                .with_for_update()
            ).first()
            if dataset is None:
                dataset = m.Dataset(project_id=project_id, name=name)
                s.add(dataset)
                s.flush()
            same = s.exec(
                select(m.DatasetVersion).where(
                    m.DatasetVersion.dataset_id == dataset.id,
                    m.DatasetVersion.hash == fields["hash"],
                )
            ).first()
            if same is not None:
                return same, False
            latest = s.exec(
                select(func.max(m.DatasetVersion.version)).where(
                    m.DatasetVersion.dataset_id == dataset.id
                )
            ).first()
            row = m.DatasetVersion(dataset_id=dataset.id, version=(latest or 0) + 1, **fields)
            s.add(row)
            s.flush()
            return row, True

        return self.write(add)

    def _dataset(self, s: Session, project: str, name: str) -> m.Dataset:
        project_id = self._project_ids[project]  # the caller resolved it before reading
        dataset = s.exec(
            select(m.Dataset).where(m.Dataset.project_id == project_id, m.Dataset.name == name)
        ).first()
        if dataset is None:
            known = s.exec(
                select(m.Dataset.name)
                .where(m.Dataset.project_id == project_id)
                .order_by(m.Dataset.name)
                .limit(10)
            ).all()
            hint = f"known datasets: {', '.join(known)}" if known else "it has no datasets yet"
            raise NotFound(
                f"unknown dataset {name!r} in project {project!r} ({hint}); "
                "store one with lo.dataset(NAME, data)"
            )
        return dataset

    def dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> m.DatasetVersion:
        """One version with its data (the latest when version is None)."""
        self.project_id(project)
        with self.session() as s:
            dataset = self._dataset(s, project, name)
            query = select(m.DatasetVersion).where(m.DatasetVersion.dataset_id == dataset.id)
            if version is None:
                query = query.order_by(m.DatasetVersion.version.desc()).limit(1)  # type: ignore[attr-defined]
            else:
                query = query.where(m.DatasetVersion.version == version)
            row = s.exec(query).first()
            if row is None:
                latest = s.exec(
                    select(func.max(m.DatasetVersion.version)).where(
                        m.DatasetVersion.dataset_id == dataset.id
                    )
                ).first()
                raise NotFound(f"dataset {name!r} has no version {version} (latest is v{latest})")
            return row

    def dataset_version_by_id(self, version_id: int) -> tuple[str, m.DatasetVersion]:
        """(dataset name, version row with data)."""
        with self.session() as s:
            row = s.get(m.DatasetVersion, version_id)
            if row is None:
                raise NotFound(f"no dataset version with id {version_id}")
            dataset = s.get(m.Dataset, row.dataset_id)
            assert dataset is not None
            return dataset.name, row

    def list_datasets(self, project: str) -> list[dict[str, Any]]:
        """One dict per dataset: name, latest version, rows, columns, updated."""
        project_id = self.project_id(project)
        with self.session() as s:
            latest = (
                select(
                    m.DatasetVersion.dataset_id,
                    func.max(m.DatasetVersion.version).label("version"),
                )
                .group_by(m.DatasetVersion.dataset_id)
                .subquery()
            )
            rows = s.exec(
                select(
                    m.Dataset.name,
                    m.DatasetVersion.version,
                    m.DatasetVersion.n_rows,
                    m.DatasetVersion.columns,
                    m.DatasetVersion.created_at,
                )
                .join(latest, latest.c.dataset_id == m.Dataset.id)
                .join(
                    m.DatasetVersion,
                    (m.DatasetVersion.dataset_id == m.Dataset.id)
                    & (m.DatasetVersion.version == latest.c.version),
                )
                .where(m.Dataset.project_id == project_id)
                .order_by(m.Dataset.name)
            ).all()
        return [
            {"name": n, "latest": v, "rows": r, "columns": ", ".join(c or []), "updated": t}
            for n, v, r, c, t in rows
        ]
