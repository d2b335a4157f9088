"""A/B splits of a prompt's traffic between versions or aliases, and their report.

`set_split("support_reply", {"production": 0.9, "candidate": 0.1})` stores the arms;
`lo.prompt("support_reply@split", key=user_id)` picks an arm from a stable hash of the
prompt name and the key (sha256, never Python's salted `hash`), so one user always gets
the same arm in every process. A call made with that version records the split and the
arm on its LLM spans (`PromptVersion.trace_attributes`), which is what `split_report`
reads back from the store, with thumbs feedback, to compare each arm with the control.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import config, timespans
from .errors import LLMOpsError, NotFound

if TYPE_CHECKING:
    import polars as pl

    from .prompting import PromptVersion

__all__ = [
    "Arm",
    "Split",
    "SplitError",
    "get_split",
    "pick_arm",
    "set_split",
    "split_report",
    "split_version",
]

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same rows always give the same interval
COMPARED = ("error_rate", "feedback_mean", "p50_ms", "p95_ms", "cost_per_call")


class SplitError(LLMOpsError, ValueError):
    """A split that cannot be set as asked, or an arm asked for without a key."""


@dataclass(frozen=True)
class Arm:
    """One arm of a split: an alias (followed as it moves) or a fixed version."""

    label: str  # the alias name, or "v3"
    weight: float  # the share of keys, out of the split's total weight
    alias: str | None = None
    version: int | None = None

    def stored(self) -> dict[str, Any]:
        target: dict[str, Any] = {"alias": self.alias} if self.alias else {"version": self.version}
        return {"arm": self.label, **target, "weight": self.weight}

    @classmethod
    def from_stored(cls, row: Mapping[str, Any]) -> Arm:
        return cls(
            label=str(row["arm"]),
            weight=float(row["weight"]),
            alias=row.get("alias"),
            version=row.get("version"),
        )


@dataclass(frozen=True)
class Split:
    """A prompt's split: its arms in order, the first being the control."""

    name: str
    project: str
    arms: tuple[Arm, ...]

    def describe(self) -> str:
        total = sum(a.weight for a in self.arms)
        shares = ", ".join(f"{a.label} {100 * a.weight / total:g} %" for a in self.arms)
        return f"{self.name}@split: {shares}"

    def __repr__(self) -> str:
        return f"Split({self.describe()!r})"


def _project(project: str | None) -> str:
    return config.check_name("project", project) if project else config.current_project()


def _arm(target: Any, weight: Any) -> Arm:
    """One arm from a `{target: weight}` item: 3, "3" and "v3" are versions, else an alias."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise SplitError(f"split arm {target!r}: the weight must be a number, not {weight!r}")
    if weight < 0:
        raise SplitError(f"split arm {target!r}: the weight {weight:g} is negative")
    if isinstance(target, int) and not isinstance(target, bool):
        version = target
    elif isinstance(target, str) and re.fullmatch(r"v?\d+", target.strip()):
        version = int(target.strip().lstrip("v"))
    elif isinstance(target, str):
        alias = target.strip()
        if alias in ("latest", "split"):
            raise SplitError(
                f"split arm {alias!r}: name an alias or a version, e.g. 'production' or 'v3'"
            )
        config.check_name("alias", alias)
        return Arm(label=alias, weight=float(weight), alias=alias)
    else:
        raise SplitError(
            f"a split arm is an alias or a version (e.g. 'production', 'v3' or 3), not {target!r}"
        )
    if version < 1:
        raise SplitError(f"split arm {target!r}: versions start at 1")
    return Arm(label=f"v{version}", weight=float(weight), version=version)


def set_split(name: str, weights: Mapping[Any, Any], *, project: str | None = None) -> Split:
    """Split prompt NAME's traffic between arms: `{"production": 0.9, "candidate": 0.1}`.

    Arms are aliases (followed when they move) or versions ("v3" or 3); weights are
    shares (they need not sum to 1), the first arm is the control `split_report`
    compares with. Replaces any split NAME had; the audit log gets a "split set"
    event in the same transaction.
    """
    from .store import get_store

    config.check_name("prompt", name)
    project = _project(project)
    if not isinstance(weights, Mapping) or not weights:
        raise SplitError(
            "a split is a mapping of arm to weight, e.g. "
            f"{{'production': 0.9, 'candidate': 0.1}}, not {weights!r}"
        )
    arms = [_arm(target, weight) for target, weight in weights.items()]
    labels = [a.label for a in arms]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        raise SplitError(f"split arm {twice!r} is given twice")
    if sum(a.weight for a in arms) <= 0:
        raise SplitError("the split's weights sum to 0: give at least one arm a positive weight")
    split = Split(name, project, tuple(arms))

    def describe(stored: list[dict[str, Any]]) -> str:
        return Split(name, project, tuple(Arm.from_stored(r) for r in stored)).describe()

    get_store().set_split(project, name, [a.stored() for a in arms], config.author(), describe)
    return split


def get_split(name: str, *, project: str | None = None) -> Split | None:
    """Prompt NAME's split, or None when it has none."""
    from .store import get_store

    config.check_name("prompt", name)
    project = _project(project)
    rows = get_store().prompt_split(project, name)
    return Split(name, project, tuple(Arm.from_stored(r) for r in rows)) if rows else None


def pick_arm(name: str, key: Any, arms: tuple[Arm, ...]) -> Arm:
    """The arm KEY gets: sha256 of the prompt name and the key, as a point in [0, 1),
    falls in one arm's share of the cumulative weights (the same in every process)."""
    digest = hashlib.sha256(f"{name}\x1f{key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(a.weight for a in arms)
    edge = 0.0
    for arm in arms:
        edge += arm.weight / total
        if point < edge and arm.weight > 0:
            return arm
    return next(a for a in reversed(arms) if a.weight > 0)  # rounding at the top edge


def split_version(
    name: str, key: Any, *, project: str | None = None, ref: str | None = None
) -> PromptVersion:
    """`lo.prompt("name@split", key=...)`: the version of the arm KEY gets, with `.arm` set."""
    from .prompting import PromptVersion, parse_ref
    from .store import get_store

    asked = ref or f"{name}@split"
    if parse_ref(asked)[2] != "split":
        raise SplitError(f"key= picks an arm of a split: ask for '{name}@split', not {asked!r}")
    if key is None:
        raise SplitError(
            f"{name}@split needs key=...: the arm is picked per key (a user or session id), "
            "so the same key always gets the same arm"
        )
    project = _project(project)

    def choose(arms: list[dict[str, Any]]) -> dict[str, Any]:
        picked = pick_arm(name, key, tuple(Arm.from_stored(a) for a in arms))
        return next(a for a in arms if a["arm"] == picked.label)

    found = get_store().split_pick(project, name, choose)
    if found is None:
        raise NotFound(
            f"prompt {name!r} has no split: set one with "
            f"lo.set_split({name!r}, {{'production': 0.9, 'candidate': 0.1}})"
        )
    arm, row = found
    return replace(PromptVersion.from_row(name, project, row), arm=str(arm["arm"]))


# --- the report -----------------------------------------------------------------------


def since_ns(since: Any) -> int | None:
    """None, a duration back from now ("7d"), or a date or time (UTC when it names no
    zone, as `lo.monitor` reads it), in span-clock nanoseconds."""
    return None if since is None else timespans.since_ns(since)


def split_report(name: str, since: Any = None, *, project: str | None = None) -> pl.DataFrame:
    """Per arm: calls, errors, error rate, thumbs feedback (n, mean of +1/-1), p50/p95
    latency (of the calls that succeeded), cost (total and per call); and, for each
    arm against the control (the first arm), the difference and a 95 % interval:
    normal approximation for the error rate, feedback and cost per call, a bootstrap
    (BOOTSTRAP_RESAMPLES resamples, seed BOOTSTRAP_SEED) for the latency percentiles.

    A call is one trace's use of an arm, its retries included. `since` is a duration
    ("7d") or a date (UTC when it names no zone).
    """
    import polars as pl

    from .store import get_store
    from .tracing import flush

    config.check_name("prompt", name)
    project = _project(project)
    start = since_ns(since)
    split = get_split(name, project=project)
    flush()  # this process's calls are in the store before it is read
    store = get_store()
    spans = store.split_calls(project, name, start)
    calls = _calls(spans)
    scores = _scores(store.feedback_scores(sorted({c["trace_id"] for c in calls})))
    labels = [a.label for a in split.arms] if split else []
    labels += sorted({c["arm"] for c in calls} - set(labels))
    versions = _current_versions(split) if split else {}
    weights = {a.label: a.weight for a in split.arms} if split else {}
    arms = [_arm_stats(label, calls, scores) for label in labels]
    rows = []
    for stats in arms:
        row: dict[str, Any] = {
            "arm": stats.label,
            "version": versions.get(stats.label),
            "weight": weights.get(stats.label),
            **stats.summary(),
        }
        for metric in COMPARED:
            diff, low, high = (
                (None, None, None) if stats is arms[0] else _compare(metric, arms[0], stats)
            )
            row[f"{metric}_diff"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = (
                diff,
                low,
                high,
            )
        rows.append(row)
    schema: dict[str, Any] = {
        "arm": pl.String,
        "version": pl.Int64,
        "weight": pl.Float64,
        "calls": pl.Int64,
        "errors": pl.Int64,
        "error_rate": pl.Float64,
        "feedback_n": pl.Int64,
        "feedback_mean": pl.Float64,
        "p50_ms": pl.Float64,
        "p95_ms": pl.Float64,
        "cost": pl.Float64,
        "cost_per_call": pl.Float64,
    }
    for metric in COMPARED:
        for suffix in ("diff", "ci_low", "ci_high"):
            schema[f"{metric}_{suffix}"] = pl.Float64
    return pl.DataFrame(rows, schema=schema, orient="row")


def _calls(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LLM spans -> calls: one per (trace, arm); ok when any attempt succeeded, latency
    from the first attempt's start to the last one's end, cost summed."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for span in spans:
        if span["arm"] is None:
            continue
        call = grouped.get((span["trace_id"], span["arm"]))
        if call is None:
            call = grouped[(span["trace_id"], span["arm"])] = {
                "trace_id": span["trace_id"],
                "arm": span["arm"],
                "ok": False,
                "start": span["start_ns"],
                "end": span["end_ns"],
                "cost": 0.0,
            }
        call["ok"] = call["ok"] or span["status"] == "ok"
        call["start"] = min(call["start"], span["start_ns"])
        call["end"] = max(call["end"], span["end_ns"])
        cost = span["cost"]
        if cost is not None and math.isfinite(cost):
            call["cost"] += cost
    return list(grouped.values())


def _scores(rows: list[tuple[str, int]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for trace_id, score in rows:
        found.setdefault(trace_id, []).append(score)
    return found


def _current_versions(split: Split) -> dict[str, int | None]:
    """The version each arm points at now (an alias may have moved)."""
    from .prompting import aliases

    now = aliases(split.name, project=split.project)
    return {a.label: (now.get(a.alias) if a.alias else a.version) for a in split.arms}


@dataclass
class _ArmStats:
    label: str
    errors: list[float]  # 1.0 per failed call, 0.0 per success
    latencies: list[float]  # ms, of the calls that succeeded
    feedback: list[float]
    costs: list[float]  # per call

    def summary(self) -> dict[str, Any]:
        import numpy as np

        calls = len(self.errors)
        return {
            "calls": calls,
            "errors": int(sum(self.errors)),
            "error_rate": sum(self.errors) / calls if calls else None,
            "feedback_n": len(self.feedback),
            "feedback_mean": _mean(self.feedback),
            "p50_ms": float(np.quantile(self.latencies, 0.5)) if self.latencies else None,
            "p95_ms": float(np.quantile(self.latencies, 0.95)) if self.latencies else None,
            "cost": float(sum(self.costs)),
            "cost_per_call": _mean(self.costs),
        }


def _arm_stats(label: str, calls: list[dict[str, Any]], scores: dict[str, list[int]]) -> _ArmStats:
    mine = [c for c in calls if c["arm"] == label]
    return _ArmStats(
        label=label,
        errors=[0.0 if c["ok"] else 1.0 for c in mine],
        latencies=[(c["end"] - c["start"]) / 1e6 for c in mine if c["ok"]],
        feedback=[float(s) for c in mine for s in scores.get(c["trace_id"], [])],
        costs=[c["cost"] for c in mine],
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _compare(
    metric: str, control: _ArmStats, arm: _ArmStats
) -> tuple[float | None, float | None, float | None]:
    """ARM minus CONTROL on METRIC, with its 95 % interval (None where too few calls)."""
    if metric in ("p50_ms", "p95_ms"):
        return _bootstrap(control.latencies, arm.latencies, 0.5 if metric == "p50_ms" else 0.95)
    if metric == "error_rate":
        a, b = control.errors, arm.errors
        if not a or not b:
            return None, None, None
        pa, pb = sum(a) / len(a), sum(b) / len(b)
        se = math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))
        return pb - pa, pb - pa - Z95 * se, pb - pa + Z95 * se
    a, b = (
        (control.feedback, arm.feedback)
        if metric == "feedback_mean"
        else (control.costs, arm.costs)
    )
    if not a or not b:
        return None, None, None
    diff = sum(b) / len(b) - sum(a) / len(a)
    if len(a) < 2 or len(b) < 2:
        return diff, None, None
    se = math.sqrt(_variance(a) / len(a) + _variance(b) / len(b))
    return diff, diff - Z95 * se, diff + Z95 * se


def _variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _bootstrap(
    control: list[float], arm: list[float], q: float
) -> tuple[float | None, float | None, float | None]:
    """The difference of the Q-quantiles and its percentile-bootstrap 95 % interval."""
    import numpy as np

    if not control or not arm:
        return None, None, None
    a, b = np.asarray(control), np.asarray(arm)
    diff = float(np.quantile(b, q) - np.quantile(a, q))
    if len(a) < 2 or len(b) < 2:
        return diff, None, None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    diffs = _resampled(rng, b, q) - _resampled(rng, a, q)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return diff, float(low), float(high)


def _resampled(rng: Any, values: Any, q: float) -> Any:
    """The Q-quantile of BOOTSTRAP_RESAMPLES resamples of VALUES, a few million draws at
    a time so a large arm does not need gigabytes."""
    import numpy as np

    step = max(1, 2_000_000 // len(values))
    parts = []
    for done in range(0, BOOTSTRAP_RESAMPLES, step):
        n = min(step, BOOTSTRAP_RESAMPLES - done)
        parts.append(np.quantile(values[rng.integers(0, len(values), (n, len(values)))], q, axis=1))
    return np.concatenate(parts)
