"""The audit log: who changed what, when, from what to what, and why.

Every change that matters in production (a prompt or model registered, an alias moved,
a fine-tune launched or cancelled, a split set, an alert fired, a rollback) appends one
event. The log is append-only: there is no function that edits or deletes an event.
Changes made inside the store (alias moves, registrations) write their event in the
same transaction; other services call `record`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from . import config
from .errors import LLMOpsError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ACTIONS", "AuditError", "audit", "parse_duration", "parse_since", "record"]

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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class AuditError(LLMOpsError, ValueError):
    """An unknown audit action, or a `since` that is neither a duration nor a date."""


def parse_duration(text: str, what: str = "window") -> timedelta:
    """'30s', '15m', '1h', '7d', '2w' -> a positive timedelta."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None or float(found.group(1)) <= 0:
        raise AuditError(
            f"{what} {text!r} is not a duration: write a number and a unit, "
            "such as '30s', '15m', '1h', '7d' or '2w'"
        )
    return timedelta(seconds=float(found.group(1)) * _UNIT_S[found.group(2).lower()])


def parse_since(since: str | datetime | date | timedelta | None) -> datetime | None:
    """A duration back from now ('7d'), an ISO date or time ('2026-12-01', naive = UTC),
    a datetime, a date or a timedelta -> the UTC moment it means (None stays None)."""
    if since is None:
        return None
    now = datetime.now(UTC)
    if isinstance(since, timedelta):
        return now - since
    if isinstance(since, datetime):
        return since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    if isinstance(since, str):
        if _DURATION.match(since):
            return now - parse_duration(since, "since")
        try:
            moment = datetime.fromisoformat(since.strip())
        except ValueError:
            pass
        else:
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise AuditError(
        f"since={since!r} is neither a duration nor a date: write a duration such as '7d' "
        "or '12h', or an ISO date such as '2026-12-01'"
    )


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
    action, target, from, to, reason. SINCE: a duration back from now or a date."""
    import polars as pl

    from .store import get_store

    moment = parse_since(since)
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
