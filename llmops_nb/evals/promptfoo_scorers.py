"""The scorer kinds a promptfoo config's grid uses (registered into scorers.BUILTINS).

`promptfoo`: one column of assertions (per row, the test's assertions of that column);
its value is their score, and each verdict is kept in the cell's memo. `promptfoo_score`
and `promptfoo_pass` come after every assertion column and read those verdicts back to
give the test's own score (weighted mean) and verdict (promptfoo's rule).
"""

from __future__ import annotations

from typing import Any

from .promptfoo_assertions import PromptfooError, Verdict, evaluate, test_output
from .scorers import Builtin, Score

__all__ = ["PROMPTFOO_BUILTINS"]


def _verdicts(ctx: Any) -> dict[int, Verdict | str]:
    return ctx.memo.setdefault("promptfoo", {}).setdefault("verdicts", {})  # type: ignore[no-any-return]


async def _column(output: str, a: dict[str, Any], ctx: Any) -> Score:
    test = a.get("test") or {}
    entries = a.get("assertions") or []
    memo = _verdicts(ctx)
    try:
        text = test_output(output, test, ctx)
    except PromptfooError as exc:
        for entry in entries:
            memo[entry["key"]] = str(exc)
        return Score(None, f"error: {exc}")
    results: list[tuple[Verdict, float]] = []
    for entry in entries:
        try:
            verdict = await evaluate(entry["assertion"], text, ctx, test, a.get("api_key"))
        except PromptfooError as exc:
            memo[entry["key"]] = str(exc)
            return Score(None, f"error: {exc}")
        except Exception as exc:  # a bug in a handler is this row's error, not the run's
            memo[entry["key"]] = f"{type(exc).__name__}: {exc}"
            return Score(None, f"error: {type(exc).__name__}: {exc}")
        memo[entry["key"]] = verdict
        results.append((verdict, float(entry.get("weight", 1))))
    reasons = "; ".join(v.reason for v, _ in results if v.reason and not v.passed)
    if len(results) == 1 and not a.get("metric"):
        verdict = results[0][0]
        return Score(verdict.score, verdict.reason or None)
    total = sum(w for _, w in results)  # a named metric: promptfoo's weighted mean
    value = sum(v.score * w for v, w in results) / total if total > 0 else 0.0
    return Score(value, reasons or None)


def _test_verdict(a: dict[str, Any], ctx: Any) -> tuple[float | None, bool, str]:
    """(score, pass, reason) of the whole test, from the verdicts its columns kept."""
    memo = _verdicts(ctx)
    total = weight_sum = 0.0
    failed: str | None = None
    for key, weight in a.get("weights") or []:
        verdict = memo.get(key)
        if verdict is None:
            return None, False, "an assertion of this test was not scored"
        if isinstance(verdict, str):
            return None, False, f"error: {verdict}"
        total += verdict.score * weight
        weight_sum += weight
        if not verdict.passed and failed is None:
            failed = verdict.reason or "an assertion failed"
    score = total / weight_sum if weight_sum > 0 else 0.0
    if not a.get("weights"):
        return 1.0, True, "No assertions"
    threshold = a.get("test_threshold")
    if isinstance(threshold, int | float):
        passed = score >= threshold
        return (
            score,
            passed,
            f"Aggregate score {score:.2f} {'≥' if passed else '<'} {threshold} threshold",
        )
    return score, failed is None, failed or "All assertions passed"


def _score(output: str, a: dict[str, Any], ctx: Any) -> Score:
    score, _, reason = _test_verdict(a, ctx)
    return Score(score, reason)


def _pass(output: str, a: dict[str, Any], ctx: Any) -> Score:
    score, passed, reason = _test_verdict(a, ctx)
    return Score(1.0 if passed else 0.0, reason)


_ROW_ARGS = ("assertions", "test", "metric", "api_key")
_VERDICT_ARGS = ("weights", "test_threshold")
PROMPTFOO_BUILTINS = {
    "promptfoo": Builtin(_column, {}, allowed=_ROW_ARGS),
    "promptfoo_score": Builtin(_score, {}, threshold=0.0, allowed=_VERDICT_ARGS),
    "promptfoo_pass": Builtin(_pass, {}, allowed=_VERDICT_ARGS),
}
