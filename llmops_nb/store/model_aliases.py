"""Queries for model aliases: `local/name@alias` -> a registered version, with history.

Every move is kept in `model_alias_history` (what a rollback undoes) and in the audit
log, in the same transaction as the move itself.
"""

from __future__ import annotations

from sqlmodel import Session, select

from . import models as m
from .aliases import nothing_to_roll_back, record_move, rollback_source, unknown_alias
from .base import StoreBase


def _locked_alias(s: Session, project_id: int, name: str, alias: str) -> m.ModelAlias | None:
    """ALIAS of model NAME, locked until the transaction ends (None: not set yet)."""
    return s.exec(
        select(m.ModelAlias)
        .where(
            m.ModelAlias.project_id == project_id,
            m.ModelAlias.name == name,
            m.ModelAlias.alias == alias,
        )
        .with_for_update()
    ).first()


class ModelAliasQueries(StoreBase):
    def model_aliases(self, project: str, name: str) -> dict[str, int]:
        """alias -> version of registered model NAME."""
        project_id = self.project_id(project)
        with self.session() as s:
            rows = s.exec(
                select(m.ModelAlias.alias, m.ModelAlias.version)
                .where(m.ModelAlias.project_id == project_id, m.ModelAlias.name == name)
                .order_by(m.ModelAlias.alias)
            )
            return {alias: version for alias, version in rows}

    def resolve_model_alias(self, project: str, name: str, alias: str) -> int:
        """The version `local/NAME@ALIAS` points at, or one clear NotFound."""
        project_id = self.project_id(project)
        with self.session() as s:
            version = s.exec(
                select(m.ModelAlias.version).where(
                    m.ModelAlias.project_id == project_id,
                    m.ModelAlias.name == name,
                    m.ModelAlias.alias == alias,
                )
            ).first()
        if version is None:
            how = f"lo.set_model_alias({name!r}, {alias!r}, VERSION)"
            raise unknown_alias("model", name, alias, self.model_aliases(project, name), how)
        return version

    def set_model_alias(
        self,
        project: str,
        name: str,
        alias: str,
        version: int,
        author: str,
        reason: str | None = None,
    ) -> tuple[int | None, int]:
        """Point ALIAS of model NAME at VERSION (which must be registered); returns
        (previous version or None, version)."""
        self.registered_model(project, name, version)  # type: ignore[attr-defined]
        project_id = self.project_id(project)

        def move(s: Session) -> tuple[int | None, int]:
            return self._move_model_alias(
                s, project_id, name, alias, version, "set", author, reason
            )

        return self.write(move)

    def rollback_model_alias(
        self, project: str, name: str, alias: str, author: str, reason: str | None = None
    ) -> tuple[int, int]:
        """Point ALIAS back where it pointed before its last move (repeatable, like undo)."""
        self.resolve_model_alias(project, name, alias)
        return self.write(
            lambda s: self.rollback_model_alias_in(s, project, name, alias, author, reason)
        )

    def rollback_model_alias_in(
        self,
        s: Session,
        project: str,
        name: str,
        alias: str,
        author: str,
        reason: str | None = None,
    ) -> tuple[int, int]:
        """`rollback_model_alias` inside the caller's write transaction (an alert's firing)."""
        project_id = self.project_id(project)
        # hold the alias while its history is read: concurrent rollbacks serialize
        _locked_alias(s, project_id, name, alias)
        target = self._model_rollback_target(s, project_id, name, alias)
        if target is None:
            raise nothing_to_roll_back("model", name, alias)
        before, after = self._move_model_alias(
            s, project_id, name, alias, target, "rollback", author, reason
        )
        assert before is not None
        return before, after

    def model_rollback_target(self, project: str, name: str, alias: str) -> int | None:
        """The version a rollback of `local/NAME@ALIAS` would go back to (None: no history)."""
        project_id = self.project_id(project)
        with self.session() as s:
            return self._model_rollback_target(s, project_id, name, alias)

    def _model_rollback_target(
        self, s: Session, project_id: int, name: str, alias: str
    ) -> int | None:
        events = s.exec(
            select(m.ModelAliasEvent)
            .where(
                m.ModelAliasEvent.project_id == project_id,
                m.ModelAliasEvent.name == name,
                m.ModelAliasEvent.alias == alias,
            )
            .order_by(m.ModelAliasEvent.id.desc())  # type: ignore[union-attr]
        ).all()
        return rollback_source((event.action, event.from_version) for event in events)

    def _move_model_alias(
        self,
        s: Session,
        project_id: int,
        name: str,
        alias: str,
        version: int,
        action: str,
        author: str,
        reason: str | None,
    ) -> tuple[int | None, int]:
        row = _locked_alias(s, project_id, name, alias)
        before = row.version if row else None
        if action == "set" and before == version:
            return before, version  # not a move: nothing to log or undo
        if row is None:
            row = m.ModelAlias(project_id=project_id, name=name, alias=alias, version=version)
        row.version = version
        history = m.ModelAliasEvent(
            project_id=project_id,
            name=name,
            alias=alias,
            action=action,
            from_version=before,
            to_version=version,
            author=author,
        )
        record_move(
            s, row, history, project_id=project_id, moved="model alias moved",
            target=f"local/{name}@{alias}", action=action, author=author, reason=reason,
            before=before, after=version,
        )  # fmt: skip
        return before, version
