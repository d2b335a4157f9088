"""Scorers: (output, row) -> a score in [0, 1], with a pass threshold, and the registry.

A scorer's string arguments are Jinja2 templates rendered per row with the row's
columns and `output` (`{{answer}}`), so `contains: {value: "{{keyword}}"}` checks each
row's own keyword. The text scorers compare with `expected` (default `{{expected}}`).
Booleans score 1.0 or 0.0 and pass at 1.0; continuous scores (bleu, rouge_l, semantic,
judge) pass at their threshold. `@lo.scorer` registers a custom one.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import LLMOpsError
from .judge import JUDGE_SYSTEM, judge_messages, parse_judgement  # noqa: F401 (re-exported)
from .judge import judge as _judge

__all__ = [
    "BUILTINS",
    "CustomScorer",
    "Score",
    "ScoreContext",
    "Scorer",
    "ScorerError",
    "UnknownScorer",
    "build_scorer",
    "scorer",
]


class ScorerError(LLMOpsError, ValueError):
    """A scorer given wrong arguments, or arguments naming a column the data lacks."""


class UnknownScorer(ScorerError):
    """A scorer name that is neither built in nor registered with @lo.scorer."""


@dataclass
class Score:
    """One scorer's verdict on one row; value None means it could not score."""

    value: float | None
    reason: str | None = None
    trace_id: str | None = None

    def stored(self) -> Any:
        """The JSON kept in eval_result.scores: a number, or a dict when there is more."""
        if self.reason is None and self.trace_id is None:
            return self.value
        out: dict[str, Any] = {"score": self.value}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.trace_id is not None:
            out["trace_id"] = self.trace_id
        return out


@dataclass
class ScoreContext:
    """What a scorer may look at besides the output: the row, the call's numbers."""

    row: dict[str, Any]
    latency_ms: float | None = None
    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_text: str = ""  # the rendered prompt, for the judge
    cache: bool | None = None
    cached: bool = False  # the output came from the cache (its latency is not the model's)
    call: Callable[..., Any] | None = None  # async (model, messages, **kw) -> Completion
    memo: dict[str, Any] = field(default_factory=dict)  # shared by one cell's scorers


# --- the built-in scorers ------------------------------------------------------------


@dataclass(frozen=True)
class Builtin:
    fn: Callable[..., Any]  # (output, args, ctx) -> bool | float | Score (sync or async)
    defaults: dict[str, Any]  # argument defaults; templates allowed
    required: tuple[str, ...] = ()
    threshold: float = 1.0  # pass when score >= threshold
    allowed: tuple[str, ...] = ()  # accepted args besides defaults/required
    thread: bool = False  # run in a worker thread (CPU-heavy)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _exact(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return output.strip() == _text(a["expected"]).strip()


def _contains(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return _text(a["value"]) in output


def _icontains(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return _text(a["value"]).lower() in output.lower()


def _values(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return [v.strip() for v in _text(value).split(",") if v.strip()]


def _contains_any(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return any(v in output for v in _values(a["value"]))


def _contains_all(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return all(v in output for v in _values(a["value"]))


def _starts_with(output: str, a: dict[str, Any], ctx: ScoreContext) -> bool:
    return output.startswith(_text(a["value"]))


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regex_match(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    try:
        return Score(1.0 if _regex(_text(a["pattern"])).search(output) else 0.0)
    except re.error as exc:
        return Score(None, f"bad regex {a['pattern']!r}: {exc}")


def _parse_json(output: str) -> Any:
    text = output.strip()
    fenced = re.match(r"^```(?:json)?\s*\n(.*)\n```$", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


def _schema(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _json_check(output: str, schema: Any) -> Score:
    try:
        data = _parse_json(output)
    except ValueError as exc:
        return Score(0.0, f"not JSON: {exc}")
    if schema is None:
        return Score(1.0)
    import jsonschema

    try:
        jsonschema.validate(data, _schema(schema))
    except jsonschema.ValidationError as exc:
        return Score(0.0, f"does not match the schema: {exc.message}")
    except (jsonschema.SchemaError, ValueError) as exc:
        return Score(None, f"invalid JSON schema: {str(exc).splitlines()[0]}")
    return Score(1.0)


def _is_json(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    return _json_check(output, a.get("schema"))


def _json_schema(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    return _json_check(output, a["schema"])


def _bleu(output: str, a: dict[str, Any], ctx: ScoreContext) -> float:
    import sacrebleu

    refs = a["reference"]
    refs = [_text(r) for r in refs] if isinstance(refs, list | tuple) else [_text(refs)]
    return min(1.0, max(0.0, sacrebleu.sentence_bleu(output, refs).score / 100.0))


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _rouge_l(output: str, a: dict[str, Any], ctx: ScoreContext) -> float:
    return float(_rouge().score(_text(a["reference"]), output)["rougeL"].fmeasure)


def _latency_under(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    if ctx.latency_ms is None:
        return Score(None, "no latency recorded")
    return Score(1.0 if ctx.latency_ms < float(a["ms"]) else 0.0)


def _cost_under(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    if ctx.cost is None:
        return Score(None, "no cost known for this model")
    return Score(1.0 if ctx.cost < float(a["usd"]) else 0.0)


# semantic similarity: embeddings from llm.aembed (the packaged MiniLM offline, or any
# litellm embedding model)


def _cosine(a: Any, b: Any) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


async def _semantic(output: str, a: dict[str, Any], ctx: ScoreContext) -> Score:
    reference = _text(a["reference"])
    model = str(a.get("model") or "local/minilm")
    from ..llm import aembed

    try:
        vectors = await aembed(
            [output or " ", reference or " "],
            model,
            api_base=a.get("api_base") or None,
            api_key=a.get("api_key") or None,
            cache=ctx.cache,
        )
    except LLMOpsError as exc:  # recorded on the row: one failing call never sinks the run
        return Score(None, f"embedding call failed: {str(exc)[:200]}")
    return Score(max(0.0, min(1.0, _cosine(vectors[0], vectors[1]))))


_EXPECTED = "{{expected}}"
BUILTINS: dict[str, Builtin] = {
    "exact": Builtin(_exact, {"expected": _EXPECTED}),
    "contains": Builtin(_contains, {"value": _EXPECTED}),
    "icontains": Builtin(_icontains, {"value": _EXPECTED}),
    "contains_any": Builtin(_contains_any, {}, ("value",)),
    "contains_all": Builtin(_contains_all, {}, ("value",)),
    "starts_with": Builtin(_starts_with, {"value": _EXPECTED}),
    "regex": Builtin(_regex_match, {}, ("pattern",)),
    "is_json": Builtin(_is_json, {}, allowed=("schema",)),
    "json_schema": Builtin(_json_schema, {}, ("schema",)),
    "bleu": Builtin(_bleu, {"reference": _EXPECTED}, threshold=0.5),
    "rouge_l": Builtin(_rouge_l, {"reference": _EXPECTED}, threshold=0.5),
    "semantic": Builtin(
        _semantic,
        {"reference": _EXPECTED, "model": "local/minilm"},
        threshold=0.75,
        allowed=("api_base", "api_key"),
    ),  # fmt: skip
    "judge": Builtin(
        _judge,
        {},
        ("rubric", "model"),
        threshold=0.5,
        allowed=("expected", "api_base", "api_key", "parameters"),
    ),  # fmt: skip
    "latency_under": Builtin(_latency_under, {}, ("ms",)),
    "cost_under": Builtin(_cost_under, {}, ("usd",)),
}
ALIASES = {"equals": "exact", "rouge": "rouge_l", "rougel": "rouge_l", "similar": "semantic"}
# arguments of every scorer: its column name, pass threshold, negation
COMMON_ARGS = ("name", "threshold", "negate")
# arguments that are not templates (numbers, schemas, model settings)
_RAW_ARGS = frozenset({"schema", "ms", "usd", "parameters", "model", "api_base", "api_key"})
# what a template may use besides the data's columns
CONTEXT_VARIABLES = frozenset({"output"})


# --- the scorer object -----------------------------------------------------------------


@dataclass
class Scorer:
    """One column of scores in a grid: a kind (built in or custom), arguments, threshold.

    `rows`, when set, holds per-row arguments (promptfoo tests carry their own
    assertions); rows without an entry are not scored by it.
    """

    name: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    threshold: float = 1.0
    negate: bool = False
    rows: dict[int, dict[str, Any]] | None = None
    fn: Callable[..., Any] | None = field(default=None, repr=False)  # a custom scorer
    thread: bool = False

    def describe(self) -> dict[str, Any]:
        """JSON-able description kept in the run's spec (no keys, no functions)."""
        args = {k: v for k, v in self.args.items() if k != "api_key"}
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "args": args}
        out["threshold"] = self.threshold
        if self.negate:
            out["negate"] = True
        if self.rows is not None:
            out["rows"] = {
                str(i): {k: v for k, v in a.items() if k != "api_key"} for i, a in self.rows.items()
            }
        return out

    def args_for(self, row_index: int) -> dict[str, Any] | None:
        if self.rows is None:
            return self.args
        extra = self.rows.get(row_index)
        return None if extra is None else {**self.args, **extra}

    def check_columns(self, columns: list[str]) -> None:
        """Every template variable must be a column (or `output`); one clear error if not."""
        known = set(columns) | CONTEXT_VARIABLES
        sets = (
            [self.args] if self.rows is None else [{**self.args, **a} for a in self.rows.values()]
        )
        for args in sets:
            for key, value in args.items():
                for template in _templates(key, value):
                    for var in _variables(template, self.name, key):
                        if var not in known:
                            cols = ", ".join(columns)
                            raise ScorerError(
                                f"scorer {self.name!r}: argument {key!r} uses {{{{{var}}}}}, "
                                f"but the data has no column {var!r} (columns: {cols})"
                            )

    def render(self, args: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        from ..prompting import compile_template

        out = {}
        for key, value in args.items():
            if key in _RAW_ARGS or key in COMMON_ARGS:
                out[key] = value
            elif isinstance(value, str):
                out[key] = compile_template(value).render(variables) if "{" in value else value
            elif isinstance(value, list):
                out[key] = [
                    compile_template(v).render(variables) if isinstance(v, str) and "{" in v else v
                    for v in value
                ]
            else:
                out[key] = value
        return out

    async def score(self, row_index: int, output: str, ctx: ScoreContext) -> Score | None:
        """This scorer's verdict on one row; None when it does not apply to the row."""
        args = self.args_for(row_index)
        if args is None:
            return None
        try:
            rendered = self.render(args, {**ctx.row, "output": output})
            if self.fn is not None:
                result = self.fn(output, ctx.row)
                if inspect.isawaitable(result):
                    result = await result
            else:
                builtin = BUILTINS[self.kind]
                if inspect.iscoroutinefunction(builtin.fn):
                    result = await builtin.fn(output, rendered, ctx)
                elif builtin.thread or self.thread:
                    result = await asyncio.to_thread(builtin.fn, output, rendered, ctx)
                else:
                    result = builtin.fn(output, rendered, ctx)
            score = to_score(result)
        except Exception as exc:  # a scorer's failure is recorded on its row
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Score(None, f"scorer error: {type(exc).__name__}: {detail[:200]}")
        if self.negate and score.value is not None:
            score.value = 1.0 - score.value
        return score

    def passed(self, value: float | None) -> bool:
        if value is None:
            return False
        threshold = (
            (1.0 - self.threshold) if self.negate and self.threshold < 1.0 else self.threshold
        )
        return value >= threshold - 1e-12


def to_score(result: Any) -> Score:
    """bool | number | dict(score/pass, reason) | Score -> Score."""
    if isinstance(result, Score):
        return result
    if result is None:
        return Score(None, "the scorer returned None")
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0)
    if isinstance(result, int | float):
        value = float(result)
        return Score(value if math.isfinite(value) else None)
    if isinstance(result, dict):
        value = result.get("score", result.get("pass", result.get("passed")))
        reason = result.get("reason")
        score = to_score(value)
        return Score(score.value, str(reason) if reason is not None else score.reason)
    raise TypeError(f"a scorer must return a bool, a number or a dict, not {type(result).__name__}")


def _templates(key: str, value: Any) -> list[str]:
    if key in _RAW_ARGS or key in COMMON_ARGS:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _variables(template: str, scorer_name: str, key: str) -> list[str]:
    from ..errors import PromptSyntaxError
    from ..prompting import compile_template, template_variables

    try:
        compile_template(template)
    except PromptSyntaxError as exc:
        raise ScorerError(f"scorer {scorer_name!r}: argument {key!r}: {exc}") from None
    return template_variables(template)


# --- custom scorers --------------------------------------------------------------------


class CustomScorer:
    """A function made a scorer by `@lo.scorer`; still callable as the function."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, threshold: float = 0.5):
        self.fn = fn
        self.name = name or fn.__name__
        self.threshold = float(threshold)
        self.__doc__ = fn.__doc__
        self.__name__ = self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"

    def build(self, args: dict[str, Any] | None = None) -> Scorer:
        args = dict(args or {})
        name = str(args.pop("name", self.name))
        threshold = _threshold(args.pop("threshold", self.threshold), name)
        negate = bool(args.pop("negate", False))
        if args:
            raise ScorerError(
                f"custom scorer {self.name!r} takes no arguments besides name, threshold and "
                f"negate (got {', '.join(args)})"
            )
        return Scorer(name, self.name, {}, threshold, negate, fn=self.fn)


_custom: dict[str, CustomScorer] = {}


def scorer(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, threshold: float = 0.5
) -> Any:
    """`@lo.scorer` on `def f(output, row) -> bool | float | dict`: usable by name in
    `%%eval` and as an object in `lo.evaluate(scorers=[...])`. A dict may carry
    `score` and `reason`. A row passes when the score is >= threshold (default 0.5)."""

    def wrap(f: Callable[..., Any]) -> CustomScorer:
        custom = CustomScorer(f, name=name, threshold=threshold)
        if custom.name in BUILTINS or custom.name in ALIASES:
            raise ScorerError(f"{custom.name!r} is a built-in scorer: give yours another name")
        _custom[custom.name] = custom
        return custom

    return wrap(fn) if fn is not None else wrap


def build_scorer(
    kind: str, args: dict[str, Any] | None = None, namespace: dict[str, Any] | None = None
) -> Scorer:
    """A Scorer for KIND (built-in or custom) with ARGS; unknown kinds and arguments fail."""
    args = dict(args or {})
    key = ALIASES.get(kind.replace("-", "_").lower(), kind.replace("-", "_").lower())
    if key not in BUILTINS:
        custom = _custom.get(kind)
        candidate = (namespace or {}).get(kind)
        if isinstance(candidate, CustomScorer):
            custom = candidate
        if custom is None:
            raise UnknownScorer(
                f"unknown scorer {kind!r}; built-in scorers: {', '.join(sorted(BUILTINS))}"
                + (f"; custom: {', '.join(sorted(_custom))}" if _custom else "")
                + " (define your own with @lo.scorer)"
            )
        return custom.build(args)
    builtin = BUILTINS[key]
    name = str(args.pop("name", key))
    threshold = _threshold(args.pop("threshold", builtin.threshold), name)
    negate = bool(args.pop("negate", False))
    allowed = set(builtin.defaults) | set(builtin.required) | set(builtin.allowed)
    unknown = sorted(set(args) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed | set(COMMON_ARGS)))
        raise ScorerError(f"scorer {key!r} has no argument {unknown[0]!r} (it takes: {accepted})")
    full = {**builtin.defaults, **args}
    missing = [r for r in builtin.required if full.get(r) in (None, "")]
    if missing:
        raise ScorerError(f"scorer {key!r} needs the argument {missing[0]!r}")
    if key == "regex":
        _check_pattern(name, full.get("pattern"))
    return Scorer(name, key, full, threshold, negate)


def _threshold(value: Any, scorer_name: str) -> float:
    """A scorer's pass threshold: a number, or one clear error."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScorerError(
            f"scorer {scorer_name!r}: threshold must be a number such as 0.8, not {value!r}"
        )
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ScorerError(
            f"scorer {scorer_name!r}: threshold must be a number such as 0.8, not {value!r}"
        )
    return number


def _check_pattern(scorer_name: str, pattern: Any) -> None:
    """A regex without template variables is compiled now, so a typo fails before the
    run instead of scoring every row empty."""
    if not isinstance(pattern, str) or "{{" in pattern or "{%" in pattern:
        return
    try:
        _regex(pattern)
    except re.error as exc:
        raise ScorerError(f"scorer {scorer_name!r}: invalid regex {pattern!r}: {exc}") from None


# promptfoo's assertion kinds and the retrieval scorers live in their own modules
from .promptfoo_scorers import PROMPTFOO_BUILTINS  # noqa: E402
from .retrieval_scorers import RETRIEVAL_SCORERS  # noqa: E402

BUILTINS.update(PROMPTFOO_BUILTINS)
BUILTINS.update(RETRIEVAL_SCORERS)

# guardrails' checks as scorers: a row passes when its output has no finding
from ..guardrails import DEFAULT_CHECKS as _GUARD_CHECKS  # noqa: E402
from ..guardrails import guard_scorer  # noqa: E402

BUILTINS.update({check: Builtin(guard_scorer(check), {}) for check in _GUARD_CHECKS})
