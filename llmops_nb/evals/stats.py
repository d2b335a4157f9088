"""Paired comparison of two runs' scores on the same rows, honestly.

A difference of means says little on 20 rows. For each cell and scorer we take the
per-row differences d = current - baseline over the rows both runs scored, and report
the mean difference with a paired bootstrap 95% interval and a paired sign-flip
permutation p-value (exact up to 16 rows). A cell is flagged a regression (or an
improvement) only when the interval excludes 0 *and* p < alpha, so five rows that
happened to flip do not fail a CI gate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

__all__ = ["PairedResult", "paired_test"]

N_BOOT = 4000
N_PERM = 20000
EXACT_UP_TO = 16
NORMAL_ABOVE = 20000  # rows: beyond this, the normal approximation is exact enough


@dataclass
class PairedResult:
    n: int
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    flag: str  # regression, improvement, same, or n/a

    def as_dict(self) -> dict[str, object]:
        return {
            "n_shared": self.n,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "flag": self.flag,
        }


def paired_test(
    current: list[float], baseline: list[float], *, alpha: float = 0.05, seed: int = 0
) -> PairedResult:
    """Compare paired scores (same rows, same order)."""
    import numpy as np

    d = np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)
    n = int(d.size)
    if n == 0:
        return PairedResult(0, None, None, None, None, "n/a")
    delta = float(d.mean())
    if np.allclose(d, 0.0):
        return PairedResult(n, 0.0, 0.0, 0.0, 1.0, "same")
    if n > NORMAL_ABOVE:
        se = float(d.std(ddof=1)) / math.sqrt(n)
        low, high = delta - 1.959964 * se, delta + 1.959964 * se
        z = abs(delta) / se if se > 0 else math.inf
        p = math.erfc(z / math.sqrt(2))
    else:
        rng = np.random.default_rng(seed)
        means = np.empty(N_BOOT)
        step = max(1, 2_000_000 // n)  # bounded memory: resample in chunks
        for start in range(0, N_BOOT, step):
            k = min(step, N_BOOT - start)
            idx = rng.integers(0, n, size=(k, n))
            means[start : start + k] = d[idx].mean(axis=1)
        low, high = (float(x) for x in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        p = _sign_flip_p(d, rng)
    if high < 0 and p < alpha:
        flag = "regression"
    elif low > 0 and p < alpha:
        flag = "improvement"
    else:
        flag = "same"
    return PairedResult(n, delta, low, high, p, flag)


def _sign_flip_p(d: object, rng: object) -> float:
    """Two-sided p-value of the mean difference under random sign flips (H0: no change)."""
    import numpy as np

    d = np.asarray(d)
    n = d.size
    observed = abs(d.sum())
    nonzero = d[d != 0]
    if nonzero.size <= EXACT_UP_TO:
        m = nonzero.size
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m))) if m else np.ones((1, 0))
        sums = np.abs(signs @ nonzero)
        return float(np.mean(sums >= observed - 1e-12))
    total = 0
    hits = 0
    step = max(1, 2_000_000 // n)
    while total < N_PERM:
        k = min(step, N_PERM - total)
        signs = rng.choice((-1.0, 1.0), size=(k, nonzero.size))  # type: ignore[attr-defined]
        hits += int(np.sum(np.abs(signs @ nonzero) >= observed - 1e-12))
        total += k
    return (hits + 1) / (total + 1)
