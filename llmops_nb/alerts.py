"""Alerts: rules over the recent traces, their firings, and a one-step rollback.

    lo.alert("errors", "error_rate > 0.05 and calls >= 20", window="1h",
             model="openai/gpt-4o-mini", rollback="support_reply@production")
    lo.check_alerts()   # -> the rules that fired now; their aliases are rolled back

A rule's condition is parsed by `alert_conditions` (never evaluated as Python) and
measured with `monitoring.window_stats` over the rule's window. A firing, its "alert
fired" audit event and its rollback (with its "rollback" event, the reason naming the
rule and the measured values) commit together.

Dedupe: a rule fires at most once per window of traffic. After a firing at time T with
window W, the rule stays quiet until T + W, when the window it measures no longer
overlaps the one that fired; so the same slow calls never roll an alias back twice.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import config
from .alert_conditions import parse_condition
from .errors import LLMOpsError, NotFound

if TYPE_CHECKING:
    import polars as pl

    from .store import Store
    from .store import models as m

__all__ = [
    "AlertError",
    "AlertRule",
    "AlertWatch",
    "Firing",
    "alert",
    "alerts",
    "check_alerts",
    "firings",
]

CHECK_EVERY_S = 30.0
"""How often a notebook re-checks the alerts after its cells (at most)."""


class AlertError(LLMOpsError, ValueError):
    """An alert rule that cannot be stored as given: its rollback target, model or prompt."""


@dataclass(frozen=True)
class AlertRule:
    """A stored rule, as `lo.alert` returns it."""

    name: str
    condition: str
    window: str
    model: str | None
    prompt: str | None
    rollback: str | None
    project: str

    def __repr__(self) -> str:
        scope = "".join(
            f", {k}={v}" for k, v in (("model", self.model), ("prompt", self.prompt)) if v
        )
        then = f", then roll back {self.rollback}" if self.rollback else ""
        return f"<alert {self.name!r}: {self.condition} over {self.window}{scope}{then}>"


@dataclass(frozen=True)
class Firing:
    """One firing: the rule, what was measured, and what was rolled back."""

    rule: str
    condition: str
    message: str
    measured: dict[str, Any]
    rollback: str | None
    fired_at: datetime
    window_start: datetime
    window_end: datetime

    def line(self) -> str:
        """One line for a notebook warning, the CLI or a log."""
        then = f"; rolled back {self.rollback}" if self.rollback else ""
        return f"{self.message}{then}"

    def __str__(self) -> str:
        return self.line()


def _project(project: str | None) -> str:
    return config.check_name("project", project) if project else config.current_project()


def _store() -> Store:
    from .store import get_store

    return get_store()


def alert(
    name: str,
    condition: str,
    window: str = "1h",
    model: str | None = None,
    prompt: str | None = None,
    rollback: str | None = None,
    *,
    project: str | None = None,
) -> AlertRule:
    """`lo.alert(...)`: store rule NAME (rerunning replaces its definition).

    condition: e.g. "p95_ms > 2000", "error_rate > 0.05 and calls >= 20" (see
    alert_conditions); window: the recent traffic it measures ("15m", "1h", "1d");
    model / prompt: only the calls of that model or prompt ("name", "name@2", or
    "name@alias", which follows the alias); rollback: the alias to move back one step
    when it fires, "name@alias" (a prompt) or "local/name@alias" (a model); it must have
    an earlier version to go back to. Everything is checked before anything is stored.
    """
    from .monitoring import parse_duration

    project = _project(project)
    config.check_name("alert", name)
    parsed = parse_condition(condition)
    span = parse_duration(window, name="window")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise AlertError(f"model= names a model id such as 'openai/gpt-4o-mini', not {model!r}")
    if prompt is not None:
        _check_prompt(prompt, project)
    if rollback is not None:
        _check_rollback(rollback, project)
    row = _store().save_alert_rule(
        project,
        name,
        condition=parsed.text,
        window=window,
        window_s=span.total_seconds(),
        model=model,
        prompt=prompt,
        rollback=rollback,
        author=config.author(),
    )
    return _rule(row, project)


def _check_prompt(ref: str, project: str) -> None:
    from .prompting import prompt as get_prompt

    if not isinstance(ref, str):
        raise AlertError(f"prompt= names a prompt such as 'support_reply', not {ref!r}")
    get_prompt(ref, project=project)  # an unknown prompt, version or alias: NotFound


def _check_rollback(target: str, project: str) -> None:
    """TARGET must be an alias (of a prompt or a model) with an earlier version."""
    from .prompting import parse_ref
    from .registry import parse_model_ref

    usage = (
        "rollback= names an alias: 'support_reply@production' (a prompt) or "
        "'local/support-ft@production' (a model)"
    )
    if not isinstance(target, str) or "@" not in target:
        raise AlertError(f"{usage}, not {target!r}")
    store = _store()
    if target.startswith("local/"):
        name, _, alias = target.removeprefix("local/").partition("@")
        parse_model_ref(name, project=project)
        if not config.NAME_PATTERN.match(alias):
            raise AlertError(f"{usage}, not {target!r}")
        store.resolve_model_alias(project, name, alias)
        previous = store.model_rollback_target(project, name, alias)
    else:
        name, _, alias = target.partition("@")
        if parse_ref(target)[2] is None:
            raise AlertError(f"{usage}; {target!r} names a version, which cannot move")
        store.resolve_alias(project, name, alias)
        previous = store.rollback_target(project, name, alias)
    if previous is None:
        raise AlertError(
            f"rollback={target!r} has no history: the alias was never moved from an earlier "
            "version, so there is nothing to roll back to"
        )


def alerts(*, project: str | None = None) -> pl.DataFrame:
    """`lo.alerts()`: the project's rules, as polars: name, condition, window, model,
    prompt, rollback, author, created, firings, last_fired."""
    import polars as pl

    project = _project(project)
    store = _store()
    fired: dict[str, list[datetime]] = {}
    for firing in store.alert_firings(project):
        fired.setdefault(firing["rule"], []).append(_utc(firing["fired_at"]))
    rows = [
        {
            "name": r.name,
            "condition": r.condition,
            "window": r.window,
            "model": r.model,
            "prompt": r.prompt,
            "rollback": r.rollback,
            "author": r.author,
            "created": _utc(r.created_at),
            "firings": len(fired.get(r.name, [])),
            "last_fired": max(fired[r.name]) if r.name in fired else None,
        }
        for r in store.alert_rules(project)
    ]
    schema = {
        "name": pl.String,
        "condition": pl.String,
        "window": pl.String,
        "model": pl.String,
        "prompt": pl.String,
        "rollback": pl.String,
        "author": pl.String,
        "created": pl.Datetime("us", "UTC"),
        "firings": pl.Int64,
        "last_fired": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema)


def check_alerts(*, project: str | None = None) -> list[Firing]:
    """`lo.check_alerts()`: measure every rule of the project over its window; record
    the ones that hold (once per window, see the module doc) and apply their rollbacks.
    Returns the firings of this check (empty when nothing fired)."""
    from .monitoring import window_stats

    project = _project(project)
    store = _store()
    fired: list[Firing] = []
    for rule in store.alert_rules(project):
        assert rule.id is not None
        now = datetime.now(UTC)
        start = now - timedelta(seconds=rule.window_s)
        last = store.last_firing(rule.id)
        if last is not None and _utc(last.window_end) > start:
            continue  # this window's traffic already fired the rule
        condition = parse_condition(rule.condition)
        prompt = _followed_prompt(rule.prompt, project)
        stats = window_stats(
            timedelta(seconds=rule.window_s),
            model=rule.model,
            prompt=prompt,
            project=project,
            until=now,
        )
        if not condition.holds(stats):
            continue
        scope = "".join(f" {k}={v}" for k, v in (("model", rule.model), ("prompt", prompt)) if v)
        message = (
            f"alert {rule.name!r} fired: {rule.condition} ({condition.measured(stats)}) "
            f"over the last {rule.window}{scope}"
        )
        row = store.fire_alert(
            project,
            rule.id,
            window_start=start,
            window_end=now,
            measured={k: stats.get(k) for k in condition.metrics} | {"calls": stats.get("calls")},
            message=message,
            author=config.author(),
        )
        if row is not None:
            fired.append(_firing(row, rule.name, rule.condition))
    return fired


def firings(since: Any = None, *, project: str | None = None) -> pl.DataFrame:
    """Every recorded firing of the project, oldest first (SINCE: a duration or a date)."""
    import polars as pl

    from .monitoring import parse_since

    project = _project(project)
    moment = None if since is None else parse_since(since, datetime.now(UTC))
    rows = [
        {
            "fired_at": _utc(f["fired_at"]),
            "rule": f["rule"],
            "condition": f["condition"],
            "message": f["message"],
            "rollback": f["rollback"],
        }
        for f in _store().alert_firings(project, since=moment)
    ]
    schema = {
        "fired_at": pl.Datetime("us", "UTC"),
        "rule": pl.String,
        "condition": pl.String,
        "message": pl.String,
        "rollback": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


class AlertWatch:
    """Checks the alerts in a background thread, at most every EVERY seconds, so a cell
    never waits for it; `poll` hands out what the last check fired (shown after the
    next cell) and starts the next check when it is due."""

    def __init__(self, every: float = CHECK_EVERY_S) -> None:
        self.every = every
        self._last = float("-inf")
        self._found: list[Firing] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[Firing]:
        with self._lock:
            found, self._found = self._found, []
        busy = self._thread is not None and self._thread.is_alive()
        # only a kernel that has used the store has rules to check: never open one here
        if not busy and time.monotonic() - self._last >= self.every and _store_in_use():
            self._last = time.monotonic()
            self._thread = threading.Thread(target=self._check, name="llmops-alerts", daemon=True)
            self._thread.start()
        return found

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running check to finish (tests, and before a kernel exits)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _check(self) -> None:
        try:
            fired = check_alerts()
        except LLMOpsError:
            return  # a store that is unreachable now: the next cell's poll tries again
        with self._lock:
            self._found.extend(fired)


def _store_in_use() -> bool:
    return "llmops_nb.store" in sys.modules


def _followed_prompt(ref: str | None, project: str) -> str | None:
    """A rule on "name@alias" watches the version the alias points at now, so after a
    rollback it watches the version it rolled back to."""
    if ref is None:
        return None
    from .prompting import parse_ref
    from .prompting import prompt as get_prompt

    name, _, alias = parse_ref(ref)
    if alias is None:
        return ref
    try:
        return get_prompt(ref, project=project).ref
    except NotFound:  # the alias was removed since: watch every version of the prompt
        return name


def _rule(row: m.AlertRule, project: str) -> AlertRule:
    return AlertRule(
        row.name, row.condition, row.window, row.model, row.prompt, row.rollback, project
    )


def _firing(row: m.AlertFiring, rule: str, condition: str) -> Firing:
    return Firing(
        rule=rule,
        condition=condition,
        message=row.message,
        measured=dict(row.measured or {}),
        rollback=row.rollback,
        fired_at=_utc(row.created_at),
        window_start=_utc(row.window_start),
        window_end=_utc(row.window_end),
    )


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes for what was written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
