"""Queries for the append-only audit log: append an event, read events back.

There is deliberately no method that updates or deletes an event. Writers that change
something else (an alias, a registry row) add their event with `add_event` inside their
own transaction, so the change and its record commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, select

from . import models as m
from .base import StoreBase


def add_event(
    s: Session,
    *,
    project_id: int | None,
    action: str,
    target: str,
    author: str,
    from_value: str | None = None,
    to_value: str | None = None,
    reason: str | None = None,
) -> m.AuditEvent:
    """Append one event inside the caller's write transaction."""
    event = m.AuditEvent(
        project_id=project_id,
        action=action,
        target=target,
        author=author,
        from_value=from_value,
        to_value=to_value,
        reason=reason,
    )
    s.add(event)
    return event


class AuditQueries(StoreBase):
    def append_audit(
        self,
        project: str | None,
        action: str,
        target: str,
        *,
        author: str,
        from_value: str | None = None,
        to_value: str | None = None,
        reason: str | None = None,
    ) -> m.AuditEvent:
        """Append one event in its own transaction (project None: not tied to a project)."""
        project_id = self.project_id(project) if project else None

        def append(s: Session) -> m.AuditEvent:
            event = add_event(
                s,
                project_id=project_id,
                action=action,
                target=target,
                author=author,
                from_value=from_value,
                to_value=to_value,
                reason=reason,
            )
            s.flush()
            return event

        return self.write(append)

    def audit_events(
        self,
        project: str | None = None,
        *,
        since: datetime | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events oldest first: of PROJECT plus those tied to no project (every event when
        PROJECT is None), from SINCE on, of one ACTION; the newest LIMIT when given."""
        query = select(m.AuditEvent, m.Project.name).join(
            m.Project,
            m.Project.id == m.AuditEvent.project_id,  # type: ignore[arg-type]
            isouter=True,
        )
        if project is not None:
            query = query.where(
                or_(m.Project.name == project, m.AuditEvent.project_id.is_(None))  # type: ignore[union-attr]
            )
        if since is not None:
            query = query.where(m.AuditEvent.created_at >= since)
        if action is not None:
            query = query.where(m.AuditEvent.action == action)
        query = query.order_by(m.AuditEvent.id.desc())  # type: ignore[union-attr]
        if limit is not None:
            query = query.limit(limit)
        with self.session() as s:
            rows = s.exec(query).all()
        return [
            {
                "id": event.id,
                "created_at": event.created_at,
                "author": event.author,
                "project": project_name,
                "action": event.action,
                "target": event.target,
                "from_value": event.from_value,
                "to_value": event.to_value,
                "reason": event.reason,
            }
            for event, project_name in reversed(rows)
        ]
