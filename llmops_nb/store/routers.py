"""Queries for model routers: defined once, seen by every kernel and the serving endpoint."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from . import models as m
from .base import StoreBase
from .models import utcnow


class RouterQueries(StoreBase):
    def set_router(self, project: str, name: str, **fields: Any) -> tuple[m.Router, bool]:
        """Define or redefine router NAME; returns (its row, whether it is new)."""
        project_id = self.project_id(project)

        def put(s: Session) -> tuple[m.Router, bool]:
            row = s.exec(
                select(m.Router)
                .where(m.Router.project_id == project_id, m.Router.name == name)
                .with_for_update()
            ).first()
            created = row is None
            if row is None:
                row = m.Router(project_id=project_id, name=name, **fields)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
            s.add(row)
            s.flush()
            return row, created

        return self.write(put)

    def router(self, project: str, name: str) -> m.Router | None:
        with self.session() as s:
            return s.exec(
                select(m.Router).where(
                    m.Router.project_id == self.project_id(project), m.Router.name == name
                )
            ).first()

    def list_routers(self, project: str) -> list[m.Router]:
        with self.session() as s:
            return list(
                s.exec(
                    select(m.Router)
                    .where(m.Router.project_id == self.project_id(project))
                    .order_by(m.Router.name)
                )
            )
