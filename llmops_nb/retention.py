"""Retention policy: `lo.prune(older_than="90d")` deletes old traces from the store.

A shared store grows with every model call; pruning keeps it to a window. It deletes in
small batches (see `store.retention`), so kernels keep writing spans while it runs.
"""

from __future__ import annotations

import time
from datetime import timedelta

from .errors import LLMOpsError
from .timespans import Duration, parse_duration

__all__ = ["RetentionError", "parse_age", "prune"]


class RetentionError(LLMOpsError, ValueError):
    """A retention age that cannot be read, such as older_than="ninety days"."""


def parse_age(older_than: Duration) -> timedelta:
    """'90d', '12h', '30m', '45s', '2w' or a timedelta -> a positive timedelta."""
    return parse_duration(older_than, name="older_than", error=RetentionError)


def prune(
    older_than: Duration = "90d",
    keep_eval_runs: bool = True,
    *,
    project: str | None = None,
) -> dict[str, int]:
    """Delete traces that ended more than OLDER_THAN ago, with their spans and feedback,
    and cached responses as old whose trace is gone; returns how many of each.

    keep_eval_runs keeps the traces that eval results point to, so an old run's grid
    still opens its calls. Every project unless PROJECT is given. Eval runs, prompts,
    datasets and models are never pruned.
    """
    from .store import get_store

    age = parse_age(older_than)
    cutoff_ns = time.time_ns() - int(age.total_seconds() * 1e9)
    return get_store().prune_before(cutoff_ns, keep_eval_runs=keep_eval_runs, project=project)
