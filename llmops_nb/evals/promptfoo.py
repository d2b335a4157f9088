"""promptfoo configs -> EvalSpec, run with promptfoo's semantics or refused by name.

`prompts`, `providers` (or `targets`), `tests` and `defaultTest` become a grid whose rows
are promptfoo's test cases (list vars expanded as promptfoo expands them) and whose
columns are `promptfoo` scorers (promptfoo_assertions.py) named after each assertion's
type or `metric`. When a config's verdict is more than "every assertion passed"
(a `threshold`, a `weight`, a scored assertion such as `similar`), two more columns give
promptfoo's own verdict: `test_score` (the weighted score) and `test_pass`, which then
alone decides the row's `passed`. Every key llmops_nb does not implement is refused by
name (or, when it cannot change a verdict, warned about): a run is never silently
different from promptfoo's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .promptfoo_assertions import BOOLEAN_TYPES, HANDLED
from .promptfoo_inputs import (
    expand_vars,
    file_value,
    files,
    load_prompts,
    load_tests,
    parse_assertion_string,
    render_vars,
    resolve_vars,
)
from .promptfoo_transforms import compile_transform
from .spec import EvalSpec, EvalSpecError, ModelSpec, ScorerSpec

__all__ = [
    "KNOWN",
    "PromptfooWarning",
    "SUPPORTED",
    "from_promptfoo",
    "parse_assertion_string",
    "provider_to_model",
]


class PromptfooWarning(UserWarning):
    """A promptfoo setting llmops_nb does not honour but that cannot change a verdict."""


SUPPORTED = HANDLED
# Types promptfoo has that we recognize (so a CSV cell 'javascript: ...' is refused by
# name instead of being read as an `equals` value).
KNOWN = set(HANDLED) | {
    "javascript", "python", "webhook", "rouge-n", "gleu", "meteor", "levenshtein",
    "contains-json", "is-html", "contains-html", "is-sql", "contains-sql", "is-xml",
    "contains-xml", "is-refusal", "icontains-any", "icontains-all", "perplexity",
    "perplexity-score", "is-valid-openai-function-call", "is-valid-openai-tools-call",
    "tool-call-f1", "g-eval", "model-graded-closedqa", "model-graded-factuality",
    "factuality", "answer-relevance", "context-recall", "context-relevance",
    "context-faithfulness", "select-best", "human", "moderation", "finish-reason",
    "classifier", "pi", "word-count", "guardrails", "f-score", "max-score", "assert-set",
    "trace-span-count", "trace-span-duration", "trace-error-spans", "fn", "eval", "grade",
    "grader", "conversation-relevance", "search-rubric", "ruby",
}  # fmt: skip

_PROVIDER_PREFIX = {
    "openai": "openai", "anthropic": "anthropic", "azureopenai": "azure", "azure": "azure",
    "bedrock": "bedrock", "vertex": "vertex_ai", "google": "gemini", "gemini": "gemini",
    "mistral": "mistral", "groq": "groq", "ollama": "ollama", "openrouter": "openrouter",
    "togetherai": "together_ai", "deepseek": "deepseek", "perplexity": "perplexity",
    "cohere": "cohere", "huggingface": "huggingface", "xai": "xai",
    "fireworks": "fireworks_ai", "cerebras": "cerebras", "local": "local",
}  # fmt: skip
_MODES = {"chat", "completion", "messages", "embedding", "embeddings", "responses"}
_PARAMETERS = (
    "temperature", "max_tokens", "top_p", "stop", "seed", "presence_penalty",
    "frequency_penalty", "response_format", "max_completion_tokens",
)  # fmt: skip


def provider_to_model(provider_id: str) -> str:
    """'openai:gpt-4o-mini' / 'openai:chat:gpt-4o' / 'litellm:x' -> a litellm model id."""
    text = provider_id.strip()
    if ":" not in text:
        if "/" in text:
            return text  # already a litellm id
        raise EvalSpecError(
            f"promptfoo provider {text!r}: expected PROVIDER:MODEL such as openai:gpt-4o-mini"
        )
    prefix, rest = text.split(":", 1)
    if prefix == "litellm":
        return rest
    if prefix not in _PROVIDER_PREFIX:
        raise EvalSpecError(
            f"promptfoo provider {text!r} is not supported: use one of "
            f"{', '.join(sorted(_PROVIDER_PREFIX))}, or litellm:<any litellm model id>"
        )
    head, _, tail = rest.partition(":")
    if head in _MODES and tail:
        if prefix == "ollama" and head == "chat":
            return f"ollama_chat/{tail}"
        rest = tail
    return f"{_PROVIDER_PREFIX[prefix]}/{rest}"


_CUSTOM_PROVIDERS = ("file", "exec", "python", "http", "https", "webhook", "websocket", "js")
_TOP_KEYS = {
    "description", "prompts", "providers", "targets", "tests", "defaultTest",
    "evaluateOptions", "outputPath", "sharing", "writeLatestResults", "tags", "metadata",
}  # fmt: skip
_PROMPTFOO_FEATURES = {
    "redteam", "extensions", "scenarios", "derivedMetrics", "nunjucksFilters",
    "commandLineOptions", "env", "tracing", "assertionTemplates",
}  # fmt: skip
_PROVIDER_KEYS = {"id", "label", "config", "prompts"}
_CONNECTION_KEYS = {"apiBaseUrl", "apiHost", "baseUrl", "api_base", "apiKey"}
_TEST_KEYS = {"description", "vars", "assert", "options", "threshold", "metadata", "_base_dir"}
_ASSERT_KEYS = {
    "type",
    "value",
    "threshold",
    "weight",
    "metric",
    "transform",
    "provider",
    "rubricPrompt",
}
_OPTION_KEYS = {"transform", "provider", "rubricPrompt", "transformVars", "disableVarExpansion"}
# our column names for promptfoo's types (the names earlier releases used)
_COLUMN = {
    "equals": "exact", "starts-with": "starts_with", "contains-any": "contains_any",
    "contains-all": "contains_all", "icontains-any": "icontains_any",
    "icontains-all": "icontains_all", "is-json": "is_json", "contains-json": "contains_json",
    "llm-rubric": "judge", "similar": "semantic", "latency": "latency_under",
    "cost": "cost_under", "rouge-n": "rouge_n",
}  # fmt: skip


def _warn(message: str) -> None:
    warnings.warn(message, PromptfooWarning, stacklevel=4)


def _refuse_unknown(keys: Any, allowed: set[str], where: str) -> None:
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise EvalSpecError(
            f"{where}: the promptfoo key {unknown[0]!r} is not supported by llmops_nb, so the "
            "config is refused rather than run differently"
        )


def _custom_provider(text: str) -> bool:
    prefix = text.split(":", 1)[0]
    return prefix in _CUSTOM_PROVIDERS or text.endswith((".js", ".py", ".ts", ".mjs"))


def _provider(item: Any, i: int, where: str = "providers") -> tuple[ModelSpec, list[str] | None]:
    """One provider -> (its ModelSpec, its `prompts:` filter or None)."""
    if isinstance(item, str):
        if _custom_provider(item):
            raise EvalSpecError(
                f"{where}: custom providers ({item}) are a promptfoo feature llmops_nb does not run"
            )
        return ModelSpec(model=provider_to_model(item), label=item), None
    if isinstance(item, dict) and len(item) == 1 and "id" not in item:  # {"openai:x": {...}}
        ((pid, body),) = item.items()
        if isinstance(body, dict):
            return _provider({"id": pid, **body}, i, where)
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise EvalSpecError(f"{where}: item {i + 1} must be an id such as openai:gpt-4o-mini")
    _refuse_unknown(item, _PROVIDER_KEYS, f"{where}: {item['id']}")
    spec, _ = _provider(str(item["id"]), i, where)
    cfg = item.get("config") or {}
    if not isinstance(cfg, dict):
        raise EvalSpecError(f"{where}: the config of {item['id']!r} must be a mapping")
    ignored = [k for k in cfg if k not in _CONNECTION_KEYS and k not in _PARAMETERS]
    if ignored:
        raise EvalSpecError(
            f"{where}: {item['id']}: the provider config key {ignored[0]!r} is not supported "
            "by llmops_nb, so the config is refused rather than run differently"
        )
    api_base = (
        cfg.get("apiBaseUrl") or cfg.get("apiHost") or cfg.get("baseUrl") or cfg.get("api_base")
    )
    if api_base and not str(api_base).startswith("http"):
        api_base = f"https://{api_base}"
    prompts = item.get("prompts")
    if prompts is not None and not isinstance(prompts, list):
        prompts = [prompts]
    spec.label = str(item.get("label") or item["id"])
    spec.api_base = api_base
    spec.api_key = cfg.get("apiKey")
    spec.parameters = {k: cfg[k] for k in _PARAMETERS if k in cfg}
    return spec, [str(p) for p in prompts] if prompts is not None else None


def _grader(value: Any, purpose: str, where: str) -> ModelSpec | None:
    """A grading provider (`options.provider`): an id, {id, config}, or {text:, embedding:}."""
    if value is None:
        return None
    if isinstance(value, dict) and ("text" in value or "embedding" in value) and "id" not in value:
        unknown = sorted(set(value) - {"text", "embedding"})
        if unknown:
            raise EvalSpecError(
                f"{where}: the grading provider key {unknown[0]!r} is not supported"
            )
        value = value.get(purpose)
        if value is None:
            return None
    return _provider(value, 0, f"{where} (grading provider)")[0]


def _options(test: dict[str, Any], where: str) -> dict[str, Any]:
    options = test.get("options") or {}
    if not isinstance(options, dict):
        raise EvalSpecError(f"{where}.options must be a mapping")
    _refuse_unknown(options, _OPTION_KEYS, f"{where}.options")
    return options


def _assertion(raw: Any, where: str) -> dict[str, Any]:
    """A checked copy of one assertion: refused by name unless llmops_nb runs it as promptfoo."""
    assertion = parse_assertion_string(raw) if isinstance(raw, str) else raw
    if not isinstance(assertion, dict) or "type" not in assertion:
        raise EvalSpecError(f"{where}: an assertion needs a 'type', got {raw!r}")
    _refuse_unknown(assertion, _ASSERT_KEYS, where)
    kind = str(assertion["type"])
    base = kind[4:] if kind.startswith("not-") else kind
    if base not in HANDLED:
        raise EvalSpecError(
            f"{where}: promptfoo assertion type {kind!r} is not supported, so the run is "
            f"refused rather than skipping it (supported: {', '.join(sorted(HANDLED))}, and "
            "their not- forms)"
        )
    if base in ("latency", "cost") and assertion.get("threshold") is None:
        raise EvalSpecError(
            f"{where}: a {base!r} assertion without a threshold only records a metric, which "
            "llmops_nb does not support: give it a threshold"
        )
    threshold = assertion.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise EvalSpecError(f"{where}: threshold must be a number, not {threshold!r}")
    weight = assertion.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise EvalSpecError(f"{where}: weight must be a number >= 0, not {weight!r}")
    return dict(assertion)


def _test_threshold(test: dict[str, Any], where: str) -> float | None:
    value = test.get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalSpecError(f"{where}.threshold must be a number, not {value!r}")
    return float(value)


def from_promptfoo(
    data: dict[str, Any], *, base_dir: Path | None = None, lines: dict[str, int] | None = None
) -> EvalSpec:
    lines = lines or {}
    for key in data:
        if key in _PROMPTFOO_FEATURES:
            raise EvalSpecError(
                f"promptfoo key {key!r}{_line(lines, key)} is a promptfoo feature llmops_nb "
                "does not implement"
            )
        if key in ("outputPath", "sharing") and data[key]:
            _warn(f"promptfoo key {key!r} is not honoured: llmops_nb keeps results in its store")
        if key not in _TOP_KEYS:
            raise EvalSpecError(
                f"promptfoo key {key!r}{_line(lines, key)} is not supported; this importer reads "
                "prompts, providers (or targets), tests, defaultTest and evaluateOptions"
            )
    if not data.get("prompts"):
        raise EvalSpecError("the promptfoo config needs 'prompts'")
    providers_raw = data.get("providers") or data.get("targets")
    if not providers_raw:
        raise EvalSpecError("the promptfoo config needs 'providers'")
    prompts = load_prompts(data["prompts"], base_dir)
    raw_list = providers_raw if isinstance(providers_raw, list) else [providers_raw]
    providers = []
    labels = [p.label for p in prompts]
    for i, item in enumerate(raw_list):
        spec, only = _provider(item, i)
        if only is not None and not set(labels) <= set(only):
            raise EvalSpecError(
                f"providers: {spec.label} has a 'prompts:' filter ({', '.join(only)}); llmops_nb "
                "runs every prompt with every provider, so the config is refused rather than "
                "running cells promptfoo would not"
            )
        providers.append(spec)
    concurrency, cache = _evaluate_options(data.get("evaluateOptions"))
    default = data.get("defaultTest") or {}
    if isinstance(default, str) and default.startswith("file://"):
        from ..prompting import load_yaml

        path = files(default, base_dir, "defaultTest")[0]
        default = load_yaml(path.read_text(), "defaultTest") or {}
    if not isinstance(default, dict):
        raise EvalSpecError("defaultTest must be a mapping")
    _refuse_unknown(default, _TEST_KEYS, "defaultTest")
    default_options = _options(default, "defaultTest")
    tests = load_tests(data.get("tests") or [], base_dir) or [{}]
    builder = _Grid(default, default_options, base_dir)
    for t, test in enumerate(tests):
        builder.add_test(test, f"tests[{t}]")
    rows, scorers = builder.finish()
    return EvalSpec(
        prompts=prompts,
        models=providers,
        data=rows,
        scorers=scorers,
        description=data.get("description"),
        concurrency=concurrency,
        cache=cache,
        base_dir=base_dir,
        data_name="promptfoo-tests",
        source="promptfoo",
    )


def _line(lines: dict[str, int], key: str) -> str:
    return f" (line {lines[key]})" if key in lines else ""


def _evaluate_options(options: Any) -> tuple[int | None, bool | None]:
    """evaluateOptions -> (maxConcurrency, cache)."""
    if options is None:
        return None, None
    if not isinstance(options, dict):
        raise EvalSpecError("evaluateOptions must be a mapping")
    for key, value in options.items():
        if key == "maxConcurrency":
            continue
        if key == "repeat" and value in (1, None):
            continue
        if key == "cache" and isinstance(value, bool):
            continue
        if key in ("delay", "showProgressBar"):
            _warn(f"evaluateOptions.{key} is not honoured by llmops_nb (verdicts are unchanged)")
            continue
        raise EvalSpecError(f"evaluateOptions.{key} is not supported by llmops_nb")
    return options.get("maxConcurrency"), options.get("cache")


class _Grid:
    """Accumulates rows (one per expanded test) and the promptfoo columns they use."""

    def __init__(self, default: dict[str, Any], options: dict[str, Any], base_dir: Path | None):
        self.default = default
        self.default_options = options
        self.base_dir = base_dir
        self.rows: list[dict[str, Any]] = []
        self.columns: dict[str, dict[int, dict[str, Any]]] = {}
        self.weights: dict[int, list[list[Any]]] = {}
        self.thresholds: dict[int, float | None] = {}
        self.verdict = False  # promptfoo's verdict needs its own columns

    def add_test(self, test: dict[str, Any], where: str) -> None:
        _refuse_unknown(test, _TEST_KEYS, where)
        options = {**self.default_options, **_options(test, where)}
        base_dir = test.get("_base_dir", self.base_dir)
        variables = {
            **resolve_vars(self.default.get("vars"), self.base_dir, "defaultTest.vars"),
            **resolve_vars(test.get("vars"), base_dir, f"{where}.vars"),
        }
        if options.get("transformVars"):
            fn = compile_transform(
                options["transformVars"], _dir(base_dir), f"{where} transformVars"
            )
            try:
                changed = fn(dict(variables), {"vars": dict(variables)})
            except Exception as exc:
                raise EvalSpecError(
                    f"{where}: transformVars failed: {type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(changed, dict):
                raise EvalSpecError(f"{where}: transformVars must return a mapping of vars")
            variables = {**variables, **changed}
        asserts = [
            *[
                (a, f"defaultTest.assert[{j}]")
                for j, a in enumerate(self.default.get("assert") or [])
            ],
            *[(a, f"{where}.assert[{j}]") for j, a in enumerate(test.get("assert") or [])],
        ]
        checked = [_assertion(a, w) for a, w in asserts]
        for a, (_, w) in zip(checked, asserts, strict=True):
            if isinstance(a.get("value"), str) and a["value"].startswith("file://"):
                a["value"] = file_value(a["value"], base_dir, w)
        graders = [self._grader(a, options, w) for a, (_, w) in zip(checked, asserts, strict=True)]
        threshold = _test_threshold(test, where)
        if threshold is None:
            threshold = _test_threshold(self.default, "defaultTest")
        context = {"transform": options.get("transform"), "base_dir": _dir(base_dir)}
        if context["transform"]:
            compile_transform(
                context["transform"], context["base_dir"], f"{where}.options.transform"
            )
        for a, (_, w) in zip(checked, asserts, strict=True):
            if a.get("transform"):
                compile_transform(a["transform"], context["base_dir"], f"{w}.transform")
        expand = not options.get("disableVarExpansion")
        for combo in expand_vars(variables, base_dir, expand):
            self._add_row(render_vars(combo), checked, graders, threshold, context)

    def _grader(
        self, assertion: dict[str, Any], options: dict[str, Any], where: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        base = str(assertion["type"]).removeprefix("not-")
        if base not in ("llm-rubric", "similar"):
            return None, None
        purpose = "text" if base == "llm-rubric" else "embedding"
        spec = _grader(assertion.get("provider") or options.get("provider"), purpose, where)
        if spec is None and base == "llm-rubric":
            raise EvalSpecError(
                f"{where}: llm-rubric needs a grading provider: set defaultTest.options.provider "
                "(promptfoo would pick its own default grader, which llmops_nb does not guess)"
            )
        if spec is None:
            _warn(
                f"{where}: similar has no embedding provider; llmops_nb embeds with local/minilm, "
                "where promptfoo would use OpenAI's text-embedding-3-large (scores differ)"
            )
            return None, None
        if "rubricPrompt" in options and "rubricPrompt" not in assertion:
            assertion["rubricPrompt"] = options["rubricPrompt"]
        grader = {"model": spec.model, "api_base": spec.api_base, "parameters": spec.parameters}
        return grader, spec.api_key

    def _add_row(
        self,
        variables: dict[str, Any],
        asserts: list[dict[str, Any]],
        graders: list[Any],
        threshold: float | None,
        context: dict[str, Any],
    ) -> None:
        i = len(self.rows)
        self.rows.append(variables)
        seen: dict[str, int] = {}
        weights = []
        for key, (assertion, (grader, api_key)) in enumerate(zip(asserts, graders, strict=True)):
            entry = {**assertion, **({"grader": grader} if grader else {})}
            entry.pop("provider", None)
            kind = str(assertion["type"])
            base = kind.removeprefix("not-")
            weight = assertion.get("weight", 1)
            metric = assertion.get("metric")
            if metric:
                name = str(metric)
            else:
                column = _COLUMN.get(base, base)
                plain = f"not_{column}" if kind != base else column
                seen[plain] = seen.get(plain, 0) + 1
                name = plain if seen[plain] == 1 else f"{plain}_{seen[plain]}"
            cell = self.columns.setdefault(name, {}).get(i)
            if cell is None:
                cell = self.columns[name][i] = {
                    "assertions": [],
                    "test": context,
                    "metric": bool(metric),
                }
            elif not metric:
                raise EvalSpecError(f"two assertions of one test share the column {name!r}")
            else:
                self.verdict = True  # a metric averaged over several assertions
            cell["assertions"].append({"key": key, "weight": weight, "assertion": entry})
            if api_key and "api_key" not in cell:
                cell["api_key"] = api_key
            weights.append([key, weight])
            if weight != 1 or base not in BOOLEAN_TYPES:
                self.verdict = True
        self.weights[i] = weights
        self.thresholds[i] = threshold
        if threshold is not None:
            self.verdict = True

    def finish(self) -> tuple[list[dict[str, Any]], list[ScorerSpec]]:
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        rows = [{k: _cell(r.get(k)) for k in columns} for r in self.rows]
        if not columns:  # tests with no vars: a column that names the test
            rows = [{"test": str(i + 1)} for i in range(len(self.rows))]
        scorers = [
            ScorerSpec(
                kind="promptfoo",
                args={"name": name, "threshold": 0.0 if self.verdict else 1.0},
                rows=cells,
            )
            for name, cells in self.columns.items()
        ]
        if self.verdict:
            verdict_rows = {
                i: {"weights": self.weights[i], "test_threshold": self.thresholds[i]}
                for i in range(len(self.rows))
            }
            scorers.append(
                ScorerSpec(
                    kind="promptfoo_score",
                    args={"name": "test_score", "threshold": 0.0},
                    rows=verdict_rows,
                )
            )
            scorers.append(
                ScorerSpec(
                    kind="promptfoo_pass",
                    args={"name": "test_pass", "threshold": 1.0},
                    rows=dict(verdict_rows),
                )
            )
        return rows, scorers


def _dir(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _cell(value: Any) -> str:
    """promptfoo vars render as text, as JavaScript prints them; a var a test lacks (or a
    null) renders empty, as Nunjucks renders undefined."""
    from .promptfoo_transforms import js_string

    return "" if value is None else js_string(value)
