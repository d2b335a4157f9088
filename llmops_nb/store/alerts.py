"""Queries for alert rules and their firings.

A firing, its audit event and the rollback it triggers commit in one transaction, under
a lock on the rule: two kernels checking at the same moment fire a rule once, and a
rollback is never recorded without its firing (or the reverse).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .audit import add_event
from .base import StoreBase


class AlertQueries(StoreBase):
    def save_alert_rule(self, project: str, name: str, **fields: Any) -> m.AlertRule:
        """Store rule NAME, or replace its definition when it exists (rerunning a cell)."""
        project_id = self.project_id(project)

        def save(s: Session) -> m.AlertRule:
            row = s.exec(
                select(m.AlertRule)
                .where(m.AlertRule.project_id == project_id, m.AlertRule.name == name)
                .with_for_update()
            ).first()
            if row is None:
                row = m.AlertRule(project_id=project_id, name=name, **fields)
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
            s.add(row)
            s.flush()
            return row

        return self.write(save)

    def alert_rules(self, project: str) -> list[m.AlertRule]:
        """The project's rules by name."""
        project_id = self.project_id(project)
        with self.session() as s:
            return list(
                s.exec(
                    select(m.AlertRule)
                    .where(m.AlertRule.project_id == project_id)
                    .order_by(m.AlertRule.name)
                )
            )

    def last_firing(self, rule_id: int) -> m.AlertFiring | None:
        with self.session() as s:
            return s.exec(
                select(m.AlertFiring)
                .where(m.AlertFiring.rule_id == rule_id)
                .order_by(m.AlertFiring.window_end.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()

    def fire_alert(
        self,
        project: str,
        rule_id: int,
        *,
        window_start: datetime,
        window_end: datetime,
        measured: dict[str, Any],
        message: str,
        author: str,
    ) -> m.AlertFiring | None:
        """Record a firing of RULE_ID for the window [WINDOW_START, WINDOW_END) and apply
        its rollback, all at once; None when the rule already fired inside this window
        (a later firing's window must start after the previous one ended)."""
        self.project_id(project)  # known before the transaction (no nested write)

        def fire(s: Session) -> m.AlertFiring | None:
            rule = s.exec(
                select(m.AlertRule).where(m.AlertRule.id == rule_id).with_for_update()
            ).first()
            if rule is None:
                return None
            last = s.exec(
                select(m.AlertFiring.window_end)
                .where(m.AlertFiring.rule_id == rule_id)
                .order_by(m.AlertFiring.window_end.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
            if last is not None and _naive(last) > _naive(window_start):
                return None  # the traffic of this window already fired the rule
            rolled_back = self._rollback_in(s, project, rule, author, message)
            firing = m.AlertFiring(
                rule_id=rule_id,
                window_start=window_start,
                window_end=window_end,
                measured=measured,
                message=message,
                rollback=rolled_back,
            )
            s.add(firing)
            add_event(
                s,
                project_id=rule.project_id,
                action="alert fired",
                target=rule.name,
                author=author,
                to_value=rule.condition,
                reason=message,
            )
            s.flush()
            return firing

        return self.write(fire)

    def _rollback_in(
        self, s: Session, project: str, rule: m.AlertRule, author: str, reason: str
    ) -> str | None:
        """Move the rule's rollback alias back one step: 'target vA -> vB', or why not."""
        if not rule.rollback:
            return None
        target = rule.rollback
        ref = target.removeprefix("local/")
        name, _, alias = ref.partition("@")
        try:
            if target.startswith("local/"):
                before, after = self.rollback_model_alias_in(  # type: ignore[attr-defined]
                    s, project, name, alias, author, reason
                )
            else:
                before, after = self.rollback_alias_in(  # type: ignore[attr-defined]
                    s, project, name, alias, author, reason
                )
        except NotFound as exc:  # raised before anything is written: the firing still counts
            return f"{target}: not rolled back ({exc})"
        return f"{target} v{before} -> v{after}"

    def alert_firings(
        self, project: str, *, since: datetime | None = None, rule: str | None = None
    ) -> list[dict[str, Any]]:
        """The project's firings, oldest first, with their rule's name and condition."""
        project_id = self.project_id(project)
        query = (
            select(m.AlertFiring, m.AlertRule.name, m.AlertRule.condition)
            .join(m.AlertRule, m.AlertRule.id == m.AlertFiring.rule_id)  # type: ignore[arg-type]
            .where(m.AlertRule.project_id == project_id)
        )
        if since is not None:
            query = query.where(m.AlertFiring.created_at >= since)
        if rule is not None:
            query = query.where(m.AlertRule.name == rule)
        with self.session() as s:
            rows = s.exec(query.order_by(m.AlertFiring.id)).all()  # type: ignore[arg-type]
        return [
            {
                "id": firing.id,
                "rule": name,
                "condition": condition,
                "fired_at": firing.created_at,
                "window_start": firing.window_start,
                "window_end": firing.window_end,
                "measured": dict(firing.measured or {}),
                "message": firing.message,
                "rollback": firing.rollback,
            }
            for firing, name, condition in rows
        ]


def _naive(moment: datetime) -> datetime:
    """SQLite reads back naive UTC; compare everything as naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
