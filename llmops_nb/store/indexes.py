"""Queries for vector indexes: one row per version (settings, size, where its files are)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .base import StoreBase
from .models import utcnow


class IndexQueries(StoreBase):
    """Vector indexes: a name per project, integer versions identified by a content hash."""

    def index_by_hash(self, project: str, name: str, hash: str) -> m.VectorIndex | None:
        """The live version of NAME with this content hash, if there is one."""
        project_id = self.project_id(project)
        with self.session() as s:
            return s.exec(
                select(m.VectorIndex).where(
                    m.VectorIndex.project_id == project_id,
                    m.VectorIndex.name == name,
                    m.VectorIndex.hash == hash,
                    m.VectorIndex.deleted_at.is_(None),  # type: ignore[union-attr]
                )
            ).first()

    def add_index_version(
        self, project: str, name: str, **fields: Any
    ) -> tuple[m.VectorIndex, bool]:
        """Record a version unless a live one with the same hash exists: (row, created).

        `fields`: hash, embed_model, dim, n_items, space, m, ef_construction, ef, path,
        parent_id, author.
        """
        project_id = self.project_id(project)

        def add(s: Session) -> tuple[m.VectorIndex, bool]:
            same = s.exec(
                select(m.VectorIndex).where(
                    m.VectorIndex.project_id == project_id,
                    m.VectorIndex.name == name,
                    m.VectorIndex.hash == fields["hash"],
                    m.VectorIndex.deleted_at.is_(None),  # type: ignore[union-attr]
                )
            ).first()
            if same is not None:
                return same, False
            latest = s.exec(
                select(func.max(m.VectorIndex.version)).where(
                    m.VectorIndex.project_id == project_id, m.VectorIndex.name == name
                )
            ).first()
            row = m.VectorIndex(
                project_id=project_id, name=name, version=(latest or 0) + 1, **fields
            )
            s.add(row)
            s.flush()
            return row, True

        return self.write(add)

    def index_version(self, project: str, name: str, version: int | None = None) -> m.VectorIndex:
        """One version (the latest live one when VERSION is None), or one clear NotFound."""
        project_id = self.project_id(project)
        with self.session() as s:
            rows = s.exec(
                select(m.VectorIndex)
                .where(m.VectorIndex.project_id == project_id, m.VectorIndex.name == name)
                .order_by(m.VectorIndex.version.desc())  # type: ignore[attr-defined]
            ).all()
            if not rows:
                known = s.exec(
                    select(m.VectorIndex.name)
                    .where(m.VectorIndex.project_id == project_id)
                    .distinct()
                    .order_by(m.VectorIndex.name)
                    .limit(10)
                ).all()
                hint = f"known indexes: {', '.join(known)}" if known else "it has no indexes yet"
                raise NotFound(
                    f"unknown index {name!r} in project {project!r} ({hint}); "
                    "build one with lo.index(NAME, texts)"
                )
        live = [r for r in rows if r.deleted_at is None]
        if version is None:
            if not live:
                raise NotFound(f"every version of index {name!r} was dropped; build it again")
            return live[0]
        for row in rows:
            if row.version == version:
                if row.deleted_at is not None:
                    when = row.deleted_at.isoformat(timespec="seconds")
                    raise NotFound(
                        f"index {name}@{version} was dropped ({when}); "
                        + (f"the latest is {name}@{live[0].version}" if live else "build it again")
                    )
                return row
        latest = f"the latest is {name}@{live[0].version}" if live else "all were dropped"
        raise NotFound(f"index {name!r} has no version {version} ({latest})")

    def index_by_id(self, index_id: int) -> m.VectorIndex | None:
        with self.session() as s:
            return s.get(m.VectorIndex, index_id)

    def drop_index_version(self, index_id: int) -> None:
        """Mark a version dropped (its files are removed by the caller)."""

        def drop(s: Session) -> None:
            row = s.get(m.VectorIndex, index_id)
            if row is not None and row.deleted_at is None:
                row.deleted_at = utcnow()
                s.add(row)

        self.write(drop)

    def list_indexes(self, project: str) -> list[dict[str, Any]]:
        """The latest live version of each index: name, version, items, model, dim, ..."""
        project_id = self.project_id(project)
        with self.session() as s:
            rows = s.exec(
                select(m.VectorIndex)
                .where(
                    m.VectorIndex.project_id == project_id,
                    m.VectorIndex.deleted_at.is_(None),  # type: ignore[union-attr]
                )
                .order_by(m.VectorIndex.name, m.VectorIndex.version.desc())  # type: ignore[attr-defined]
            ).all()
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = out.get(row.name)
            if entry is None:
                out[row.name] = {
                    "name": row.name,
                    "version": row.version,
                    "n_items": row.n_items,
                    "embed_model": row.embed_model,
                    "dim": row.dim,
                    "space": row.space,
                    "m": row.m,
                    "ef": row.ef,
                    "versions": 1,
                    "author": row.author,
                    "created_at": row.created_at,
                }
            else:
                entry["versions"] += 1
        return list(out.values())
