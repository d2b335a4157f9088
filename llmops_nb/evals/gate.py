"""`llmops-nb eval SPEC.yaml`: run a spec, print the summary, and gate CI on it.

Exit 0 when every prompt x model cell's mean score (each scorer) reaches --fail-under
and no cell regressed against the baseline; 1 otherwise; 2 for bad input (one line on
stderr, nothing half-written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "main"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "eval", help="run an eval spec (ours or promptfoo's) and gate on its scores"
    )
    p.add_argument("spec", help="the spec: %%eval YAML or a promptfoo config")
    p.add_argument("--fail-under", type=float, default=None, metavar="X",
                   help="exit 1 when any cell's mean score (each scorer) is below X")  # fmt: skip
    p.add_argument("--baseline", default=None,
                   help="'latest', a run id or a run name: exit 1 on a regression")  # fmt: skip
    p.add_argument(
        "--name", default=None, help="the run's name (default: the spec's, or its file name)"
    )
    p.add_argument("--project", default=None, help="the project (default: LLMOPS_NB_PROJECT)")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="finish the latest run of this name")
    p.add_argument("--no-cache", dest="no_cache", action="store_true")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for regressions")
    return p


def main(args: argparse.Namespace) -> int:
    from .. import config
    from ..errors import LLMOpsError

    try:
        if args.project:
            config.set_project(args.project)
        return _run(args)
    except LLMOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from . import run_spec
    from .load import parse_file
    from .spec import EvalSpecError

    if args.fail_under is not None and not 0.0 <= args.fail_under <= 1.0:
        raise EvalSpecError(
            f"--fail-under must be a score between 0 and 1, not {args.fail_under:g}"
        )
    spec = parse_file(Path(args.spec))
    if args.name:
        spec.name = args.name
    if args.concurrency is not None:
        spec.concurrency = args.concurrency
    if args.no_cache:
        spec.cache = False
    baseline = args.baseline if args.baseline is not None else spec.baseline
    run = run_spec(spec, resume=args.resume, baseline=baseline, progress=sys.stderr.isatty())
    import polars as pl  # after the run: the first request does not wait for it

    summary = run.summary()
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160, fmt_str_lengths=40,
                   tbl_hide_dataframe_shape=True, float_precision=3):  # fmt: skip
        print(f"eval {run.name} #{run.id}: {run.status}, {summary['n'].sum()} cells, "
              f"{summary['errors'].sum()} errors")  # fmt: skip
        print(summary)
        comparison = None
        if run.baseline_id is not None:
            comparison = run.compare(alpha=args.alpha)
            print(f"compared with run #{run.baseline_id} (paired bootstrap 95% CI, permutation p):")
            columns = ("prompt", "model", "scorer", "baseline", "current", "delta", "ci_low",
                       "ci_high", "p_value", "n_shared", "flag")  # fmt: skip
            print(comparison.select(columns))
    failures = gate(run, summary, comparison, args.fail_under)
    for line in failures:
        print(line)
    print("FAILED" if failures else "PASSED")
    return 1 if failures else 0


def gate(run: Any, summary: Any, comparison: Any, fail_under: float | None) -> list[str]:
    """The reasons to fail, one line each (empty: pass)."""
    failures = []
    if run.status != "done":
        failures.append(f"run #{run.id} is {run.status}, not done")
    scorers = run.scorers or ["pass_rate"]
    if fail_under is not None:
        for row in summary.iter_rows(named=True):
            for s in scorers:
                value = row.get(s)
                if value is None or value < fail_under:
                    shown = "no score" if value is None else f"{value:.3f}"
                    failures.append(
                        f"below {fail_under:g}: {row['prompt']} x {row['model']}: {s} = {shown}"
                    )
    if comparison is not None:
        for row in comparison.filter(comparison["flag"] == "regression").iter_rows(named=True):
            failures.append(
                f"regression: {row['prompt']} x {row['model']}: {row['scorer']} "
                f"{row['baseline']:.3f} -> {row['current']:.3f} (delta {row['delta']:+.3f}, "
                f"95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], p={row['p_value']:.3g}, "
                f"n={row['n_shared']})"
            )
    return failures
