"""promptfoo assertions evaluated with promptfoo's semantics, as scorers.

Each promptfoo config column is a `promptfoo` scorer whose per-row arguments carry the
raw assertions of that test; it scores them the way promptfoo's handlers do (values
rendered with the test's vars, `not-` inverting the verdict, `transform` applied to the
output first) and keeps each verdict in the cell's `ScoreContext.memo`, so the
`promptfoo_score` / `promptfoo_pass` scorers that come last can give the test's own
verdict: the weighted mean score, and pass when every assertion passed or, with a test
`threshold`, when the score reaches it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .jsregex import JSRegexError, compile_js
from .promptfoo_json import (
    SchemaError,
    extract_json_objects,
    js_json_parse,
    load_schema,
    schema_errors,
)
from .promptfoo_metrics import bleu, levenshtein, rouge_n
from .promptfoo_transforms import compile_transform, js_string

__all__ = [
    "BOOLEAN_TYPES",
    "HANDLED",
    "PromptfooError",
    "Verdict",
    "evaluate",
    "parse_comma_values",
]


class PromptfooError(Exception):
    """An assertion promptfoo would report as an error (not a failure)."""


@dataclass
class Verdict:
    passed: bool
    score: float
    reason: str = ""


# types whose score is 1 on pass and 0 on fail
BOOLEAN_TYPES = frozenset({
    "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
    "icontains-all", "starts-with", "regex", "is-json", "contains-json", "levenshtein",
    "latency", "cost",
})  # fmt: skip
HANDLED = BOOLEAN_TYPES | {"similar", "bleu", "rouge-n", "llm-rubric"}


def parse_comma_values(value: str) -> list[str]:
    """promptfoo's comma list: `a, b` or `"hello, world",universe` (quotes keep commas;
    `\\"` or `""` is a quote inside them)."""
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            field = []
            while True:
                if i >= n:
                    raise PromptfooError("Unterminated quoted field in contains assertion value")
                if value[i] == "\\" and i + 1 < n and value[i + 1] in '"\\':
                    field.append(value[i + 1])
                    i += 2
                elif value[i] == '"' and i + 1 < n and value[i + 1] == '"':
                    field.append('"')
                    i += 2
                elif value[i] == '"':
                    i += 1
                    break
                else:
                    field.append(value[i])
                    i += 1
            out.append("".join(field))
            while i < n and value[i].isspace():
                i += 1
            if i < n and value[i] != ",":
                raise PromptfooError(
                    "Expected comma after quoted field in contains assertion value"
                )
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            out.append(value[i:end].strip())
            i = end
    return out


def _render(value: Any, variables: dict[str, Any]) -> Any:
    """Nunjucks-style rendering of an assertion value with the test's vars."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        import jinja2

        env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
        try:
            return env.from_string(value).render(variables)
        except jinja2.TemplateError as exc:
            raise PromptfooError(f"cannot render the assertion value: {exc}") from None
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    return value


def _strict_equal(a: Any, b: Any) -> bool:
    """util.isDeepStrictEqual for JSON values (true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _list_value(value: Any, kind: str) -> list[str]:
    if isinstance(value, str) and value:
        value = parse_comma_values(value)
    if not isinstance(value, list) or not value:
        raise PromptfooError(f'"{kind}" assertion type must have an array value')
    return [js_string(v) for v in value]


def _contains_value(value: Any, kind: str) -> str:
    if (isinstance(value, str) and value) or (
        isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    ):
        return js_string(value)
    raise PromptfooError(f'"{kind}" assertion type must have a string or number value')


def _json_check(output: str, value: Any, contains: bool) -> bool:
    if contains:
        candidates = extract_json_objects(output)
    else:
        try:
            candidates = [js_json_parse(output)]
        except ValueError:
            return False
    if not candidates:
        return False
    if value is None or value == "":
        return True
    try:
        schema = load_schema(value)
        return any(schema_errors(c, schema) is None for c in candidates)
    except SchemaError as exc:
        raise _InvalidSchema(str(exc)) from None


class _InvalidSchema(Exception):
    pass


def _check(kind: str, output: str, value: Any, assertion: dict[str, Any], ctx: Any) -> Any:
    """The positive verdict of a deterministic type: bool, or (score, pass) for scored ones."""
    if kind == "equals":
        if isinstance(value, dict | list):
            try:
                return _strict_equal(value, js_json_parse(output))
            except ValueError:
                return False
        return js_string(value) == output
    if kind == "contains":
        return _contains_value(value, kind) in output
    if kind == "icontains":
        return _contains_value(value, kind).lower() in output.lower()
    if kind in ("contains-any", "icontains-any", "contains-all", "icontains-all"):
        items = _list_value(value, kind)
        text = output.lower() if kind.startswith("i") else output
        found = [(v.lower() if kind.startswith("i") else v) in text for v in items]
        return any(found) if kind.endswith("any") else all(found)
    if kind == "starts-with":
        return output.startswith(_contains_value(value, kind))
    if kind == "regex":
        if not isinstance(value, str) or not value:
            raise PromptfooError('"regex" assertion type must have a string value')
        return compile_js(value).search(output) is not None
    if kind in ("is-json", "contains-json"):
        return _json_check(output, value, kind == "contains-json")
    if kind == "levenshtein":
        if not isinstance(value, str):
            raise PromptfooError('"levenshtein" assertion type must have a string value')
        return levenshtein(output, value) <= (assertion.get("threshold") or 5)
    if kind in ("latency", "cost"):
        measured = ctx.latency_ms if kind == "latency" else ctx.cost
        if kind == "latency" and (ctx.cached or measured is None):
            raise PromptfooError(
                "Latency assertion does not support cached results. Rerun the eval with --no-cache"
            )
        if measured is None:
            raise PromptfooError(
                "Cost assertion does not support providers that do not return cost"
            )
        return measured <= float(assertion["threshold"])
    if kind == "bleu":
        refs = value if isinstance(value, list) else [value]
        if not all(isinstance(r, str) for r in refs):
            raise PromptfooError(
                '"bleu" assertion type must have a string or array of strings value'
            )
        threshold = assertion.get("threshold")
        return bleu(output, refs), 0.5 if threshold is None else float(threshold)
    if kind == "rouge-n":
        if not isinstance(value, str):
            raise PromptfooError('"rouge" assertion type must be a string value')
        threshold = assertion.get("threshold")
        return rouge_n(output, value), 0.75 if threshold is None else float(threshold)
    raise PromptfooError(f"assertion type {kind!r} is not handled")


async def evaluate(
    assertion: dict[str, Any], output: str, ctx: Any, test: dict[str, Any], api_key: str | None
) -> Verdict:
    """One promptfoo assertion's verdict on OUTPUT (raises PromptfooError for an error)."""
    full = str(assertion["type"])
    inverse = full.startswith("not-")
    kind = full[4:] if inverse else full
    variables = dict(ctx.row)
    if assertion.get("transform"):
        fn = compile_transform(assertion["transform"], test.get("base_dir"), "transform")
        try:
            output = js_string(fn(output, {"vars": variables, "prompt": ctx.input_text}))
        except Exception as exc:
            raise PromptfooError(f"transform failed: {type(exc).__name__}: {exc}") from None
    value = _render(assertion.get("value"), {**variables, "output": output})
    if kind == "similar":
        return await _similar(output, value, assertion, inverse, ctx, api_key)
    if kind == "llm-rubric":
        return await _rubric(output, value, assertion, inverse, ctx, variables, api_key)
    try:
        result = _check(kind, output, value, assertion, ctx)
    except JSRegexError as exc:
        return Verdict(False, 0.0, f"Invalid regex pattern: {exc}")
    except _InvalidSchema as exc:
        return Verdict(False, 0.0, f"Invalid JSON schema: {exc}")
    except ValueError as exc:
        raise PromptfooError(str(exc)) from None
    if isinstance(result, tuple):
        score, threshold = result
        passed = (score >= threshold) != inverse
        return Verdict(passed, 1.0 - score if inverse else score, f"{kind} score {score:.4f}")
    passed = bool(result) != inverse
    return Verdict(passed, 1.0 if passed else 0.0, "" if passed else f"{full} failed")


async def _similar(
    output: str, value: Any, assertion: dict[str, Any], inverse: bool, ctx: Any, key: str | None
) -> Verdict:
    from ..errors import LLMOpsError
    from ..llm import aembed
    from .scorers import _cosine

    refs = value if isinstance(value, list) else [value]
    if not refs or not all(isinstance(r, str) for r in refs):
        raise PromptfooError(
            "Similarity assertion type must have a string or array of strings value"
        )
    threshold = assertion.get("threshold")
    threshold = 0.75 if threshold is None else float(threshold)
    grader = assertion.get("grader") or {}
    try:
        vectors = await aembed(
            [output or " ", *[r or " " for r in refs]],
            grader.get("model") or "local/minilm",
            api_base=grader.get("api_base"),
            api_key=key,
            cache=ctx.cache,
        )
    except LLMOpsError as exc:
        raise PromptfooError(f"embedding call failed: {str(exc)[:200]}") from None
    sims = [_cosine(vectors[0], v) for v in vectors[1:]]
    if inverse:  # dissimilar to every reference
        passed = all(s < threshold for s in sims)
        return Verdict(passed, 1.0 - max(sims), f"similarity {max(sims):.3f}")
    best = max(sims)
    return Verdict(best >= threshold, best, f"similarity {best:.3f} (threshold {threshold})")


RUBRIC_SYSTEM = (
    "You grade an AI output against a rubric. The output passes when what the rubric "
    'states holds for it. Reply with only a JSON object: {"reason": "<why>", "pass": '
    '<true or false>, "score": <a number from 0.0 to 1.0>}.'
)


def rubric_messages(
    template: Any, output: str, rubric: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """The judge's messages: promptfoo's rubricPrompt (text or chat messages) when given."""
    if template is None:
        user = f"<Output>\n{output}\n</Output>\n<Rubric>\n{rubric}\n</Rubric>"
        return [{"role": "system", "content": RUBRIC_SYSTEM}, {"role": "user", "content": user}]
    context = {**variables, "output": output, "rubric": rubric}
    if isinstance(template, list):
        return [{**m, "content": _render(str(m.get("content", "")), context)} for m in template]
    text = _render(str(template), context)
    try:
        parsed = json.loads(text)
        if isinstance(parsed, list) and all(isinstance(m, dict) and "role" in m for m in parsed):
            return parsed
    except ValueError:
        pass
    return [{"role": "user", "content": text}]


async def _rubric(
    output: str,
    value: Any,
    assertion: dict[str, Any],
    inverse: bool,
    ctx: Any,
    variables: dict[str, Any],
    key: str | None,
) -> Verdict:
    from ..errors import LLMOpsError

    grader = assertion.get("grader") or {}
    messages = rubric_messages(assertion.get("rubricPrompt"), output, js_string(value), variables)
    try:
        completion = await ctx.call(
            grader["model"],
            messages=messages,
            cache=ctx.cache,
            api_base=grader.get("api_base"),
            api_key=key,
            **(grader.get("parameters") or {}),
        )
    except LLMOpsError as exc:
        raise PromptfooError(f"judge call failed: {exc}") from None
    found = extract_json_objects(completion.text)
    if not found:
        return Verdict(False, 0.0, "Could not extract JSON from llm-rubric response")
    reply = found[0]
    passed = reply.get("pass", True)
    if not isinstance(passed, bool):
        passed = str(passed).strip().lower() in ("true", "yes", "pass", "y")
    score = reply.get("score")
    try:
        score = float(score) if not isinstance(score, bool) and score is not None else float(passed)
    except (TypeError, ValueError):
        score = float(passed)
    threshold = assertion.get("threshold")
    if isinstance(threshold, int | float):
        passed = passed and score >= threshold
    if inverse:
        passed, score = not passed, 1.0 - score
    return Verdict(passed, score, str(reply.get("reason") or ""))


def test_output(output: str, test: dict[str, Any], ctx: Any) -> str:
    """The output after the test's own `options.transform` (shared by its assertions)."""
    source = test.get("transform")
    if not source:
        return output
    memo = ctx.memo.setdefault("promptfoo", {})
    if "output" not in memo:
        fn = compile_transform(source, test.get("base_dir"), "options.transform")
        try:
            memo["output"] = js_string(
                fn(output, {"vars": dict(ctx.row), "prompt": ctx.input_text})
            )
        except Exception as exc:
            memo["output"] = PromptfooError(f"transform failed: {type(exc).__name__}: {exc}")
    if isinstance(memo["output"], PromptfooError):
        raise memo["output"]
    return str(memo["output"])
