"""LLM-as-judge for the `judge` scorer: the grading prompt, the call, and reading the
judge's reply (JSON, PASS/FAIL, or a score on a 1-5 or 1-10 scale)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import LLMOpsError

__all__ = ["JUDGE_SYSTEM", "judge", "judge_messages", "parse_judgement"]

JUDGE_SYSTEM = (
    "You are an impartial grader of an AI assistant's reply. Apply the rubric strictly. "
    'Answer with only a JSON object: {"score": <a number from 0 to 1>, "reason": '
    '"<one sentence>"}, where 1 means the reply fully meets the rubric and 0 not at all.'
)


def judge_messages(
    rubric: str, input_text: str, output: str, expected: str | None
) -> list[dict[str, str]]:
    parts = [f"Rubric:\n{rubric}", f"Input:\n{input_text}", f"Reply:\n{output}"]
    if expected:
        parts.append(f"Reference answer:\n{expected}")
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


_SCORE_RE = re.compile(r"score\"?\s*[:=]\s*\"?([0-9]*\.?[0-9]+)", re.I)


def parse_judgement(text: str) -> tuple[float | None, str]:
    """The judge's reply -> (score in [0, 1] or None, reason)."""
    stripped = text.strip()
    match = re.search(r"\{.*\}", stripped, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
            if isinstance(data, dict) and "score" in data:
                value = data["score"]
                if isinstance(value, bool):
                    value = 1.0 if value else 0.0
                value = float(value)
                if value > 1.0 and value <= 10.0:  # a 1-5 or 1-10 scale
                    value = value / (5.0 if value <= 5.0 else 10.0)
                return max(0.0, min(1.0, value)), str(data.get("reason") or "")
        except (ValueError, TypeError):
            pass
    upper = stripped.upper()
    if upper.startswith("PASS"):
        return 1.0, stripped[4:].strip(" :-")
    if upper.startswith("FAIL"):
        return 0.0, stripped[4:].strip(" :-")
    found = _SCORE_RE.search(stripped)
    if found:
        value = float(found.group(1))
        return max(0.0, min(1.0, value / 10.0 if value > 1 else value)), stripped[:300]
    return None, f"unreadable judge reply: {stripped[:200]!r}"


async def judge(output: str, a: dict[str, Any], ctx: Any) -> Any:
    """The `judge` scorer: one call to the judge model, its reply read as a Score."""
    from .scorers import Score, _text

    assert ctx.call is not None
    messages = judge_messages(
        _text(a["rubric"]), ctx.input_text, output, _text(a.get("expected")) or None
    )
    params = dict(a.get("parameters") or {})
    params.setdefault("temperature", 0)
    try:
        completion = await ctx.call(
            a["model"],
            messages=messages,
            cache=ctx.cache,
            api_base=a.get("api_base"),
            api_key=a.get("api_key"),
            **params,
        )
    except LLMOpsError as exc:
        return Score(None, f"judge call failed: {exc}", getattr(exc, "trace_id", None))
    value, reason = parse_judgement(completion.text)
    return Score(value, reason, completion.trace_id)
