"""The audit log: who changed what, when, from what to what, and why.

Every change that matters in production (a prompt or model registered, an alias moved,
a fine-tune launched or cancelled, a split set, an alert fired, a rollback) appends one
event. The log is append-only: there is no function that edits or deletes an event.
Changes made inside the store (alias moves, registrations) write their event in the
same transaction; other services call `record`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from . import config
from .errors import LLMOpsError
from .monitoring import parse_since

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ACTIONS", "AuditError", "audit", "record"]

ACTIONS = (
    "prompt registered",
    "alias moved",
    "model registered",
    "model alias moved",
    "finetune launched",
    "finetune cancelled",
    "split set",
    "alert fired",
    "rollback",
)


class AuditError(LLMOpsError, ValueError):
    """An unknown audit action."""


def _check_action(action: str) -> str:
    if action not in ACTIONS:
        raise AuditError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
    return action


def record(
    action: str,
    target: str,
    *,
    from_: str | None = None,
    to: str | None = None,
    reason: str | None = None,
    project: str | None = None,
) -> None:
    """Append one event by the current author (config.author()) to PROJECT's log."""
    from .store import get_store

    _check_action(action)
    project = config.check_name("project", project) if project else config.current_project()
    get_store().append_audit(
        project,
        action,
        str(target),
        author=config.author(),
        from_value=from_,
        to_value=to,
        reason=reason,
    )


def audit(
    since: str | datetime | date | timedelta | None = None,
    action: str | None = None,
    project: str | None = None,
) -> pl.DataFrame:
    """`lo.audit()`: the project's events, oldest first, as polars with columns when, who,
    action, target, from, to, reason. SINCE: a duration back from now ("7d") or a date
    (the monitoring parser: an InvalidDuration names a bad one)."""
    import polars as pl

    from .store import get_store

    moment = None if since is None else parse_since(since, datetime.now(UTC))
    if action is not None:
        _check_action(action)
    project = config.check_name("project", project) if project else config.current_project()
    rows = get_store().audit_events(project, since=moment, action=action)
    schema = {
        "when": pl.Datetime("us", "UTC"),
        "who": pl.String,
        "action": pl.String,
        "target": pl.String,
        "from": pl.String,
        "to": pl.String,
        "reason": pl.String,
    }
    return pl.DataFrame(
        [
            {
                "when": _utc(r["created_at"]),
                "who": r["author"],
                "action": r["action"],
                "target": r["target"],
                "from": r["from_value"],
                "to": r["to_value"],
                "reason": r["reason"],
            }
            for r in rows
        ],
        schema=schema,
    )


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes for what was written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
