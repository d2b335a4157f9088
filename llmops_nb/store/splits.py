"""Queries for A/B splits of a prompt's traffic and the calls recorded under them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from ..errors import NotFound
from . import models as m
from .audit import add_event
from .base import StoreBase
from .models import utcnow
from .prompts import PromptQueries

SPLIT_ATTRIBUTE = "llmops.prompt.split"  # the prompt whose split picked a call's version
ARM_ATTRIBUTE = "llmops.prompt.arm"  # the arm it picked
VERSION_ATTRIBUTE = "llmops.prompt.version"

_trace_table = m.Trace.__table__  # type: ignore[attr-defined]
_span = m.Span.__table__.c  # type: ignore[attr-defined]
_trace = _trace_table.c
_feedback = m.Feedback.__table__.c  # type: ignore[attr-defined]


class SplitQueries(StoreBase):
    def set_split(
        self,
        project: str,
        name: str,
        arms: list[dict[str, Any]],
        author: str,
        describe: Callable[[list[dict[str, Any]]], str],
    ) -> list[dict[str, Any]] | None:
        """Store ARMS as NAME's split (replacing any), and its "split set" audit event
        (from and to as DESCRIBE writes them) in the same transaction; every arm's alias
        or version must exist, else NotFound and nothing is written. Returns the arms it
        replaced."""
        project_id = self.project_id(project)

        def put(s: Session) -> list[dict[str, Any]] | None:
            prompt = _prompt(self, s, project, name, lock=True)
            for arm in arms:
                _check_arm(s, prompt, arm)
            row = s.exec(select(m.PromptSplit).where(m.PromptSplit.prompt_id == prompt.id)).first()
            before = list(row.arms) if row is not None else None
            if row is None:
                assert prompt.id is not None
                row = m.PromptSplit(prompt_id=prompt.id)
            row.arms, row.author, row.updated_at = list(arms), author, utcnow()
            s.add(row)
            add_event(
                s,
                project_id=project_id,
                action="split set",
                target=name,
                author=author,
                from_value=describe(before) if before else None,
                to_value=describe(arms),
            )
            return before

        return self.write(put)

    def prompt_split(self, project: str, name: str) -> list[dict[str, Any]] | None:
        """The arms of NAME's split, control first; None when it has none."""
        with self.session() as s:
            prompt = _prompt(self, s, project, name)
            arms = s.exec(
                select(m.PromptSplit.arms).where(m.PromptSplit.prompt_id == prompt.id)
            ).first()
        return list(arms) if arms is not None else None

    def split_pick(
        self, project: str, name: str, pick: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ) -> tuple[dict[str, Any], m.PromptVersion] | None:
        """The arm PICK chooses from NAME's split and the version it points at now, in
        two queries (it runs per request); None when NAME has no split."""
        project_id = self._project_ids.get(project) or self.project_id(project)
        with self.session() as s:
            found = s.exec(
                select(m.Prompt.id, m.PromptSplit.arms)
                .join(m.PromptSplit, m.PromptSplit.prompt_id == m.Prompt.id, isouter=True)
                .where(m.Prompt.project_id == project_id, m.Prompt.name == name)
            ).first()
            if found is None:
                _prompt(self, s, project, name)  # raises the NotFound that names the prompts
            prompt_id, arms = found  # type: ignore[misc]
            if not arms:
                return None
            arm = pick(list(arms))
            query = select(m.PromptVersion).where(m.PromptVersion.prompt_id == prompt_id)
            if "alias" in arm:
                query = query.join(
                    m.PromptAlias, m.PromptAlias.version_id == m.PromptVersion.id
                ).where(m.PromptAlias.alias == arm["alias"])
            else:
                query = query.where(m.PromptVersion.version == arm["version"])
            row = s.exec(query).first()
        if row is None:
            raise NotFound(
                f"split arm {arm['arm']!r} of prompt {name!r} points at nothing now "
                "(its alias or version is gone): set the split again with lo.set_split"
            )
        return arm, row

    def split_calls(self, project: str, name: str, since_ns: int | None) -> list[dict[str, Any]]:
        """The LLM spans a split of prompt NAME picked the version of: trace id, arm,
        version, status, start/end (ns) and cost, oldest first."""
        attrs = _span.attributes
        query = (
            sa_select(
                _span.trace_id,
                attrs[ARM_ATTRIBUTE].as_string().label("arm"),
                attrs[VERSION_ATTRIBUTE].as_integer().label("version"),
                _span.status,
                _span.start_ns,
                _span.end_ns,
                attrs["llmops.cost"].as_float().label("cost"),
            )
            .join(_trace_table, _trace.id == _span.trace_id)
            .where(
                _trace.project_id == self.project_id(project),
                _span.kind == "llm",
                attrs[SPLIT_ATTRIBUTE].as_string() == name,
            )
            .order_by(_span.start_ns)
        )
        if since_ns is not None:
            query = query.where(_span.start_ns >= since_ns)
        with self.session() as s:
            return [dict(row._mapping) for row in s.execute(query)]

    def feedback_scores(self, trace_ids: list[str]) -> list[tuple[str, int]]:
        """(trace id, score) of every thumbs up/down given on TRACE_IDS."""
        found: list[tuple[str, int]] = []
        with self.session() as s:
            for start in range(0, len(trace_ids), 500):
                chunk = trace_ids[start : start + 500]
                rows = s.execute(
                    sa_select(_feedback.trace_id, _feedback.score).where(
                        _feedback.trace_id.in_(chunk)
                    )
                )
                found.extend((trace_id, int(score)) for trace_id, score in rows)
        return found


def _prompt(store: StoreBase, s: Session, project: str, name: str, lock: bool = False) -> m.Prompt:
    """The prompt row, or the prompt queries' NotFound (the Store has both mixins)."""
    return PromptQueries._prompt(cast(PromptQueries, store), s, project, name, lock)


def _check_arm(s: Session, prompt: m.Prompt, arm: dict[str, Any]) -> None:
    """NotFound, naming what exists, unless ARM's alias or version is there."""
    if "alias" in arm:
        found = s.exec(
            select(m.PromptAlias.id).where(
                m.PromptAlias.prompt_id == prompt.id, m.PromptAlias.alias == arm["alias"]
            )
        ).first()
        if found is None:
            aliases = s.exec(
                select(m.PromptAlias.alias)
                .where(m.PromptAlias.prompt_id == prompt.id)
                .order_by(m.PromptAlias.alias)
            ).all()
            hint = f"its aliases: {', '.join(aliases)}" if aliases else "it has no aliases"
            raise NotFound(
                f"split arm {arm['arm']!r}: prompt {prompt.name!r} has no alias "
                f"{arm['alias']!r} ({hint})"
            )
        return
    found = s.exec(
        select(m.PromptVersion.id).where(
            m.PromptVersion.prompt_id == prompt.id, m.PromptVersion.version == arm["version"]
        )
    ).first()
    if found is None:
        versions = s.exec(
            select(m.PromptVersion.version)
            .where(m.PromptVersion.prompt_id == prompt.id)
            .order_by(m.PromptVersion.version)
        ).all()
        raise NotFound(
            f"split arm {arm['arm']!r}: prompt {prompt.name!r} has no version "
            f"{arm['version']} (it has v{versions[0]}..v{versions[-1]})"
            if versions
            else f"split arm {arm['arm']!r}: prompt {prompt.name!r} has no versions"
        )
