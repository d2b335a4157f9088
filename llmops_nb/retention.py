"""Retention policy: `lo.prune(older_than="90d")` deletes old traces from the store.

A shared store grows with every model call; pruning keeps it to a window. It deletes in
small batches (see `store.retention`), so kernels keep writing spans while it runs.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

from .errors import LLMOpsError

__all__ = ["RetentionError", "parse_age", "prune"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class RetentionError(LLMOpsError, ValueError):
    """A retention age that cannot be read, such as older_than="ninety days"."""


def parse_age(older_than: str | timedelta) -> timedelta:
    """'90d', '12h', '30m', '45s', '2w' or a timedelta -> a positive timedelta."""
    if isinstance(older_than, timedelta):
        age = older_than
    else:
        match = _AGE.match(older_than) if isinstance(older_than, str) else None
        if match is None:
            raise RetentionError(
                f"older_than must be an age such as '90d', '12h', '30m', '45s' or '2w' "
                f"(or a timedelta), not {older_than!r}"
            )
        age = timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    if age <= timedelta(0):
        raise RetentionError(f"older_than must be a positive age, not {older_than!r}")
    return age


def prune(
    older_than: str | timedelta = "90d",
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
