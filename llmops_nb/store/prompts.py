"""Queries for prompts, versions, aliases and the alias audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .aliases import nothing_to_roll_back, record_move, rollback_source, unknown_alias
from .audit import add_event
from .base import StoreBase
from .models import utcnow

MAX_VERSION = 2**62  # above any real version, below every database's integer limit


class PromptQueries(StoreBase):
    def _prompt(self, s: Session, project: str, name: str, lock: bool = False) -> m.Prompt:
        """The prompt row; the project id must already be known (no nested write)."""
        project_id = self._project_ids.get(project) or self.project_id(project)
        query = select(m.Prompt).where(m.Prompt.project_id == project_id, m.Prompt.name == name)
        prompt = s.exec(query.with_for_update() if lock else query).first()
        if prompt is None:
            known = s.exec(
                select(m.Prompt.name)
                .where(m.Prompt.project_id == project_id)
                .order_by(m.Prompt.name)
                .limit(10)
            ).all()
            hint = f"known prompts: {', '.join(known)}" if known else "it has no prompts yet"
            raise NotFound(
                f"unknown prompt {name!r} in project {project!r} ({hint}); "
                "create it with %%prompt or lo.register_prompt"
            )
        return prompt

    def add_prompt_version(
        self, project: str, name: str, **fields: Any
    ) -> tuple[m.PromptVersion, bool]:
        """Append a version unless the latest has the same hash; returns (version, created)."""
        project_id = self.project_id(project)

        def add(s: Session) -> tuple[m.PromptVersion, bool]:
            prompt = s.exec(
                select(m.Prompt)
                .where(m.Prompt.project_id == project_id, m.Prompt.name == name)
                .with_for_update()
            ).first()
            if prompt is None:
                prompt = m.Prompt(project_id=project_id, name=name)
                s.add(prompt)
                s.flush()
            latest = s.exec(
                select(m.PromptVersion)
                .where(m.PromptVersion.prompt_id == prompt.id)
                .order_by(m.PromptVersion.version.desc())  # type: ignore[attr-defined]
                .limit(1)
            ).first()
            if latest is not None and latest.hash == fields["hash"]:
                return latest, False
            row = m.PromptVersion(
                prompt_id=prompt.id,
                version=(latest.version + 1) if latest else 1,
                parent_id=latest.id if latest else None,
                **fields,
            )
            prompt.updated_at = utcnow()
            s.add(row)
            s.add(prompt)
            s.flush()
            add_event(
                s,
                project_id=project_id,
                action="prompt registered",
                target=name,
                author=fields.get("author", ""),
                from_value=f"v{latest.version}" if latest else None,
                to_value=f"v{row.version}",
                reason=fields.get("message"),
            )
            return row, True

        return self.write(add)

    def prompt_version(
        self, project: str, name: str, version: int | None = None
    ) -> m.PromptVersion:
        """One version (the latest when version is None)."""
        if version is not None and not 1 <= version <= MAX_VERSION:
            raise NotFound(f"prompt {name!r} has no version {version}")
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            query = select(m.PromptVersion).where(m.PromptVersion.prompt_id == prompt.id)
            if version is None:
                query = query.order_by(m.PromptVersion.version.desc()).limit(1)  # type: ignore[attr-defined]
            else:
                query = query.where(m.PromptVersion.version == version)
            row = s.exec(query).first()
            if row is None:
                latest = s.exec(
                    select(func.max(m.PromptVersion.version)).where(
                        m.PromptVersion.prompt_id == prompt.id
                    )
                ).first()
                raise NotFound(f"prompt {name!r} has no version {version} (latest is v{latest})")
            return row

    def prompt_versions(self, project: str, name: str) -> list[m.PromptVersion]:
        """All versions of a prompt, oldest first."""
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            return list(
                s.exec(
                    select(m.PromptVersion)
                    .where(m.PromptVersion.prompt_id == prompt.id)
                    .order_by(m.PromptVersion.version)
                )
            )

    def prompt_aliases(self, project: str, name: str) -> dict[str, int]:
        """alias -> version number."""
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            rows = s.exec(
                select(m.PromptAlias.alias, m.PromptVersion.version)
                .join(m.PromptVersion, m.PromptVersion.id == m.PromptAlias.version_id)
                .where(m.PromptAlias.prompt_id == prompt.id)
                .order_by(m.PromptAlias.alias)
            )
            return {alias: version for alias, version in rows}

    def resolve_alias(self, project: str, name: str, alias: str) -> m.PromptVersion:
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            row = s.exec(
                select(m.PromptVersion)
                .join(m.PromptAlias, m.PromptAlias.version_id == m.PromptVersion.id)
                .where(m.PromptAlias.prompt_id == prompt.id, m.PromptAlias.alias == alias)
            ).first()
        if row is None:
            how = f"%prompt alias {name} {alias} VERSION"
            raise unknown_alias("prompt", name, alias, self.prompt_aliases(project, name), how)
        return row

    def list_prompts(self, project: str) -> list[dict[str, Any]]:
        """One dict per prompt: name, latest, aliases, updated."""
        project_id = self.project_id(project)
        with self.session() as s:
            latest = dict(
                s.exec(
                    select(m.PromptVersion.prompt_id, func.max(m.PromptVersion.version))
                    .join(m.Prompt, m.Prompt.id == m.PromptVersion.prompt_id)
                    .where(m.Prompt.project_id == project_id)
                    .group_by(m.PromptVersion.prompt_id)
                ).all()
            )
            aliases: dict[int, list[str]] = {}
            for prompt_id, alias, version in s.exec(
                select(m.PromptAlias.prompt_id, m.PromptAlias.alias, m.PromptVersion.version)
                .join(m.PromptVersion, m.PromptVersion.id == m.PromptAlias.version_id)
                .join(m.Prompt, m.Prompt.id == m.PromptAlias.prompt_id)
                .where(m.Prompt.project_id == project_id)
                .order_by(m.PromptAlias.alias)
            ):
                aliases.setdefault(prompt_id, []).append(f"{alias}=v{version}")
            prompts = s.exec(
                select(m.Prompt).where(m.Prompt.project_id == project_id).order_by(m.Prompt.name)
            ).all()
            return [
                {
                    "name": p.name,
                    "latest": latest.get(p.id),
                    "aliases": ", ".join(aliases.get(p.id or 0, [])),
                    "updated": p.updated_at,
                }
                for p in prompts
            ]

    def set_alias(
        self,
        project: str,
        name: str,
        alias: str,
        version: int,
        author: str,
        reason: str | None = None,
    ) -> tuple[int | None, int]:
        """Point ALIAS at VERSION; returns (previous version or None, version)."""
        target = self.prompt_version(project, name, version)

        def move(s: Session) -> tuple[int | None, int]:
            prompt = self._prompt(s, project, name, lock=True)
            return self._move_alias(s, prompt, alias, target, "set", author, reason)

        return self.write(move)

    def rollback_alias(
        self, project: str, name: str, alias: str, author: str, reason: str | None = None
    ) -> tuple[int, int]:
        """Point ALIAS back where it pointed before its last move (repeatable, like undo)."""
        self.resolve_alias(project, name, alias)  # a clear error for an unknown alias

        def rollback(s: Session) -> tuple[int, int]:
            return self.rollback_alias_in(s, project, name, alias, author, reason)

        return self.write(rollback)

    def rollback_alias_in(
        self,
        s: Session,
        project: str,
        name: str,
        alias: str,
        author: str,
        reason: str | None = None,
    ) -> tuple[int, int]:
        """`rollback_alias` inside the caller's write transaction (an alert's firing)."""
        prompt = self._prompt(s, project, name, lock=True)
        target = self._rollback_target(s, prompt, alias)
        if target is None:
            raise nothing_to_roll_back("prompt", name, alias)
        before, after = self._move_alias(s, prompt, alias, target, "rollback", author, reason)
        assert before is not None
        return before, after

    def rollback_target(self, project: str, name: str, alias: str) -> int | None:
        """The version a rollback of NAME@ALIAS would go back to, None when it has no history."""
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            target = self._rollback_target(s, prompt, alias)
            return target.version if target else None

    def _rollback_target(self, s: Session, prompt: m.Prompt, alias: str) -> m.PromptVersion | None:
        events = s.exec(
            select(m.AliasEvent)
            .where(m.AliasEvent.prompt_id == prompt.id, m.AliasEvent.alias == alias)
            .order_by(m.AliasEvent.id.desc())  # type: ignore[union-attr]
        ).all()
        target_id = rollback_source((ev.action, ev.from_version_id) for ev in events)
        return s.get(m.PromptVersion, target_id) if target_id is not None else None

    def _move_alias(
        self,
        s: Session,
        prompt: m.Prompt,
        alias: str,
        target: m.PromptVersion,
        action: str,
        author: str,
        reason: str | None = None,
    ) -> tuple[int | None, int]:
        row = s.exec(
            select(m.PromptAlias).where(
                m.PromptAlias.prompt_id == prompt.id, m.PromptAlias.alias == alias
            )
        ).first()
        before = s.get(m.PromptVersion, row.version_id) if row else None
        if action == "set" and before is not None and before.id == target.id:
            return before.version, target.version  # not a move: nothing to log or undo
        if row is None:
            row = m.PromptAlias(prompt_id=prompt.id, alias=alias, version_id=target.id)
        row.version_id = target.id  # type: ignore[assignment]
        history = m.AliasEvent(
            prompt_id=prompt.id,  # type: ignore[arg-type]
            alias=alias,
            action=action,
            from_version_id=before.id if before else None,
            to_version_id=target.id,  # type: ignore[arg-type]
            author=author,
        )
        previous = before.version if before else None
        record_move(
            s, row, history, project_id=prompt.project_id, moved="alias moved",
            target=f"{prompt.name}@{alias}", action=action, author=author, reason=reason,
            before=previous, after=target.version,
        )  # fmt: skip
        return previous, target.version

    def alias_log(self, project: str, name: str) -> list[dict[str, Any]]:
        """The audit log of a prompt's aliases, oldest first."""
        with self.session() as s:
            prompt = self._prompt(s, project, name)
            versions = {
                v.id: v.version
                for v in s.exec(
                    select(m.PromptVersion).where(m.PromptVersion.prompt_id == prompt.id)
                )
            }
            events = s.exec(
                select(m.AliasEvent)
                .where(m.AliasEvent.prompt_id == prompt.id)
                .order_by(m.AliasEvent.id)  # type: ignore[arg-type]
            ).all()
            return [
                {
                    "alias": e.alias,
                    "action": e.action,
                    "from_version": versions.get(e.from_version_id),
                    "to_version": versions[e.to_version_id],
                    "author": e.author,
                    "time": e.created_at,
                }
                for e in events
            ]
