"""What prompt aliases and model aliases share: their errors, the record of a move, its undo.

Each kind keeps its own tables (an alias row, a history row per move); this is how a
move is recorded (the alias row, its history row and the audit entry in one
transaction), where a rollback goes (each rollback undoes one earlier move), and what
an alias that is not set, or has nothing to undo, says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel

from ..errors import NotFound
from .audit import add_event
from .models import utcnow

T = TypeVar("T")


def rollback_source(history: Iterable[tuple[str, T | None]]) -> T | None:
    """Where a rollback points the alias: HISTORY is (action, from) per move, newest
    first; each "rollback" undoes one earlier "set", so that many sets are skipped and the
    next one's from is the answer (None: nothing left to undo)."""
    skip = 0
    for action, source in history:
        if action == "rollback":
            skip += 1
        elif skip:
            skip -= 1
        else:
            return source
    return None


def unknown_alias(kind: str, name: str, alias: str, known: Iterable[str], how: str) -> NotFound:
    """The error of NAME@ALIAS when it is not set: the aliases NAME has, and HOW to set one."""
    names = list(known)
    hint = f"its aliases: {', '.join(names)}" if names else "it has no aliases"
    return NotFound(f"{kind} {name!r} has no alias {alias!r} ({hint}); set one with {how}")


def nothing_to_roll_back(kind: str, name: str, alias: str) -> NotFound:
    """The error of a rollback with no earlier version (KIND: "prompt" or "model")."""
    return NotFound(f"alias {alias!r} of {kind} {name!r} has no earlier version to roll back to")


def record_move(
    s: Session,
    alias_row: Any,
    history_row: SQLModel,
    *,
    project_id: int,
    moved: str,
    target: str,
    action: str,
    author: str,
    reason: str | None,
    before: int | None,
    after: int,
) -> None:
    """Save ALIAS_ROW (now at version AFTER) and its HISTORY_ROW, and add the audit entry
    (action MOVED for a set, "rollback" for a rollback; TARGET names the alias), in S."""
    alias_row.updated_at = utcnow()
    s.add(alias_row)
    s.add(history_row)
    add_event(
        s,
        project_id=project_id,
        action="rollback" if action == "rollback" else moved,
        target=target,
        author=author,
        from_value=f"v{before}" if before is not None else None,
        to_value=f"v{after}",
        reason=reason,
    )
