"""promptfoo configs -> EvalSpec, for their simple assertion types.

`prompts` (text, `{raw, label}` or `file://` paths), `providers` (ids such as
`openai:gpt-4o-mini` or `{id, label, config}`), `tests` (inline, or `file://x.csv`
with `__expected` columns), `defaultTest`. Each test's assertions become per-row
scorers. An assertion type we cannot evaluate faithfully is refused by name: a run
never silently skips a check the config asked for.
"""

from __future__ import annotations

import csv
import glob
import itertools
import re
from pathlib import Path
from typing import Any

from .spec import EvalSpec, EvalSpecError, ModelSpec, PromptSpec, ScorerSpec

__all__ = ["SUPPORTED", "from_promptfoo", "parse_assertion_string", "provider_to_model"]

# promptfoo type -> (our scorer, the argument its `value` fills)
SUPPORTED: dict[str, tuple[str, str | None]] = {
    "equals": ("exact", "expected"),
    "contains": ("contains", "value"),
    "icontains": ("icontains", "value"),
    "regex": ("regex", "pattern"),
    "starts-with": ("starts_with", "value"),
    "contains-any": ("contains_any", "value"),
    "contains-all": ("contains_all", "value"),
    "is-json": ("is_json", "schema"),
    "llm-rubric": ("judge", "rubric"),
    "similar": ("semantic", "reference"),
    "bleu": ("bleu", "reference"),
    "latency": ("latency_under", None),
    "cost": ("cost_under", None),
}
# Types promptfoo has that we recognize (so a CSV cell 'javascript: ...' is refused by
# name instead of being read as an `equals` value).
KNOWN = set(SUPPORTED) | {
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
_IGNORED_KEYS = {
    "description", "outputPath", "sharing", "writeLatestResults", "tags", "metadata",
    "evaluateOptions", "env", "prompts", "providers", "tests", "defaultTest", "targets",
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


def _provider(item: Any, i: int) -> ModelSpec:
    if isinstance(item, str):
        model = provider_to_model(item)
        return ModelSpec(model=model, label=item)
    if isinstance(item, dict) and "id" in item:
        model = provider_to_model(str(item["id"]))
        cfg = item.get("config") or {}
        if not isinstance(cfg, dict):
            raise EvalSpecError(f"providers: the config of {item['id']!r} must be a mapping")
        api_base = (
            cfg.get("apiBaseUrl") or cfg.get("apiHost") or cfg.get("baseUrl") or cfg.get("api_base")
        )
        if api_base and not str(api_base).startswith("http"):
            api_base = f"https://{api_base}"
        return ModelSpec(
            model=model,
            label=str(item.get("label") or item["id"]),
            api_base=api_base,
            api_key=cfg.get("apiKey"),
            parameters={k: cfg[k] for k in _PARAMETERS if k in cfg},
        )
    if isinstance(item, dict) and len(item) == 1:  # {"openai:gpt-4o": {config: ...}}
        ((pid, body),) = item.items()
        return _provider({"id": pid, **(body or {})}, i)
    raise EvalSpecError(f"providers: item {i + 1} must be an id such as openai:gpt-4o-mini")


def _prompt_items(value: Any, base_dir: Path | None) -> list[PromptSpec]:
    items = value if isinstance(value, list) else [value]
    out: list[PromptSpec] = []
    for item in items:
        if isinstance(item, dict):
            label = item.get("label")
            raw = item.get("raw")
            if raw is None and isinstance(item.get("id"), str):
                for spec in _prompt_items(item["id"], base_dir):
                    out.append(PromptSpec(label=str(label or spec.label), template=spec.template))
                continue
            if raw is None:
                raise EvalSpecError("prompts: a prompt mapping needs 'raw' or 'id'")
            out.append(PromptSpec(label=str(label or f"prompt{len(out) + 1}"), template=str(raw)))
        elif isinstance(item, str) and item.startswith("file://"):
            for path in _files(item, base_dir, "prompt"):
                if path.suffix.lower() in (".js", ".py", ".ts", ".mjs", ".cjs"):
                    raise EvalSpecError(
                        f"prompts: prompt functions ({path.name}) are not supported; "
                        "use a text, .json chat or .j2 file"
                    )
                out.append(PromptSpec(label=path.name, template=path.read_text()))
        elif isinstance(item, str):
            out.append(PromptSpec(label=f"prompt{len(out) + 1}", template=item))
        else:
            raise EvalSpecError(f"prompts: cannot use {item!r} as a prompt")
    return out


def _files(ref: str, base_dir: Path | None, what: str) -> list[Path]:
    pattern = ref[len("file://") :]
    path = Path(pattern).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    matches = (
        sorted(Path(p) for p in glob.glob(str(path)))
        if any(c in pattern for c in "*?[")
        else [path]
    )
    missing = [p for p in matches if not p.is_file()]
    if not matches or missing:
        raise EvalSpecError(
            f"cannot read the {what} file {str(missing[0] if missing else path)!r}: no such file"
        )
    return matches


# --- assertions ----------------------------------------------------------------------------

_ASSERTION = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::\s?(.*))?$", re.S)


def parse_assertion_string(text: str) -> dict[str, Any]:
    """A CSV `__expected` cell -> an assertion dict ('contains: x', 'not-regex: ...',
    'similar(0.8): text', 'is-json'; text with no known type is an `equals` value)."""
    stripped = text.strip()
    match = _ASSERTION.match(stripped)
    if match:
        negate, kind, threshold, value = match.groups()
        if kind in KNOWN:
            out: dict[str, Any] = {"type": f"{'not-' if negate else ''}{kind}"}
            if value is not None:
                out["value"] = value
            if threshold is not None:
                out["threshold"] = float(threshold)
            return out
    return {"type": "equals", "value": stripped}


def _convert(assertion: Any, where: str, judge: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """One promptfoo assertion -> (our scorer kind, arguments, negate)."""
    if isinstance(assertion, str):
        assertion = parse_assertion_string(assertion)
    if not isinstance(assertion, dict) or "type" not in assertion:
        raise EvalSpecError(f"{where}: an assertion needs a 'type', got {assertion!r}")
    kind = str(assertion["type"])
    negate = kind.startswith("not-")
    base = kind[4:] if negate else kind
    if base not in SUPPORTED:
        supported = ", ".join(sorted(SUPPORTED))
        raise EvalSpecError(
            f"{where}: promptfoo assertion type {kind!r} is not supported, so the run is "
            f"refused rather than skipping it (supported: {supported}, and their not- forms)"
        )
    ours, value_arg = SUPPORTED[base]
    args: dict[str, Any] = {}
    value = assertion.get("value")
    threshold = assertion.get("threshold")
    if base in ("latency", "cost"):
        if threshold is None:
            raise EvalSpecError(f"{where}: a {base!r} assertion needs a threshold")
        args["ms" if base == "latency" else "usd"] = float(threshold)
    else:
        if value is None and base != "is-json":
            raise EvalSpecError(f"{where}: a {kind!r} assertion needs a value")
        if value is not None and value_arg is not None:
            if isinstance(value, str) and value.startswith("file://"):
                raise EvalSpecError(f"{where}: file:// assertion values are not supported")
            if base in ("contains-any", "contains-all") and isinstance(value, list):
                args[value_arg] = [str(v) for v in value]
            elif base == "is-json":
                args[value_arg] = value
            else:
                args[value_arg] = value if isinstance(value, str) else str(value)
        if threshold is not None:
            args["threshold"] = float(threshold)
    if base == "llm-rubric":
        provider = assertion.get("provider") or judge.get("provider")
        spec = _provider(provider, 0) if provider else judge.get("default")
        if spec is None:
            raise EvalSpecError(f"{where}: llm-rubric needs a grading provider")
        args["model"] = spec.model
        if spec.api_base:
            args["api_base"] = spec.api_base
        if spec.api_key:
            args["api_key"] = spec.api_key
    if base == "similar" and assertion.get("provider"):
        embed = _provider(assertion["provider"], 0)
        args["model"] = embed.model
        if embed.api_base:
            args["api_base"] = embed.api_base
    return ours, args, negate


# --- tests -----------------------------------------------------------------------------------


def _tests(value: Any, base_dir: Path | None) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str) and item.startswith("file://"):
            for path in _files(item, base_dir, "tests"):
                out.extend(_tests_file(path))
        elif isinstance(item, dict):
            out.append(item)
        else:
            raise EvalSpecError(f"tests: cannot use {item!r} as a test")
    return out


def _tests_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        from ..prompting import load_yaml

        data = load_yaml(path.read_text(), f"tests file {path.name}")
        return _tests(data or [], path.parent)
    if suffix not in (".csv", ".tsv"):
        raise EvalSpecError(f"tests file {path.name}: use .csv, .yaml or .json")
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise EvalSpecError(f"cannot read the tests file {str(path)!r}: {exc}") from None
    tests = []
    for number, row in enumerate(rows, start=2):
        test: dict[str, Any] = {"vars": {}, "assert": []}
        for key, value in row.items():
            if key is None:
                raise EvalSpecError(f"{path.name} line {number}: more cells than columns")
            if re.fullmatch(r"__expected\d*", key):
                if value and value.strip():
                    test["assert"].append(parse_assertion_string(value))
            elif key in ("__description", "__metric", "__threshold", "__metadata"):
                if key == "__description":
                    test["description"] = value
            elif key.startswith("__"):
                raise EvalSpecError(f"{path.name}: the special column {key!r} is not supported")
            else:
                test["vars"][key] = value
        tests.append(test)
    return tests


def _expand_vars(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo runs every combination of list-valued vars."""
    keys = [k for k, v in variables.items() if isinstance(v, list)]
    if not keys:
        return [variables]
    combos = itertools.product(*(variables[k] for k in keys))
    return [{**variables, **dict(zip(keys, combo, strict=True))} for combo in combos]


def from_promptfoo(
    data: dict[str, Any], *, base_dir: Path | None = None, lines: dict[str, int] | None = None
) -> EvalSpec:
    lines = lines or {}
    unknown = [k for k in data if k not in _IGNORED_KEYS]
    if unknown:
        where = f" (line {lines[unknown[0]]})" if unknown[0] in lines else ""
        raise EvalSpecError(
            f"promptfoo key {unknown[0]!r}{where} is not supported; this importer reads "
            "prompts, providers, tests, defaultTest and evaluateOptions"
        )
    if not data.get("prompts"):
        raise EvalSpecError("the promptfoo config needs 'prompts'")
    if not data.get("providers") and not data.get("targets"):
        raise EvalSpecError("the promptfoo config needs 'providers'")
    prompts = _prompt_items(data["prompts"], base_dir)
    providers_raw = data.get("providers") or data.get("targets")
    providers = [
        _provider(p, i)
        for i, p in enumerate(providers_raw if isinstance(providers_raw, list) else [providers_raw])
    ]
    default = data.get("defaultTest") or {}
    if isinstance(default, str) and default.startswith("file://"):
        from ..prompting import load_yaml

        default = (
            load_yaml(_files(default, base_dir, "defaultTest")[0].read_text(), "defaultTest") or {}
        )
    if not isinstance(default, dict):
        raise EvalSpecError("defaultTest must be a mapping")
    judge = {
        "provider": (default.get("options") or {}).get("provider"),
        "default": providers[0] if providers else None,
    }
    tests = _tests(data.get("tests") or [], base_dir)
    rows: list[dict[str, Any]] = []
    row_asserts: list[list[Any]] = []
    for t, test in enumerate(tests):
        if test.get("providers") is not None:
            raise EvalSpecError(f"tests[{t}]: per-test 'providers' filters are not supported")
        variables = {**(default.get("vars") or {}), **(test.get("vars") or {})}
        for expanded in _expand_vars(variables):
            rows.append(expanded)
            row_asserts.append(list(test.get("assert") or []))
    if not rows:
        rows = [dict(default.get("vars") or {})]
        row_asserts = [[]]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{k: _cell(r.get(k)) for k in columns} for r in rows]

    scorers: list[ScorerSpec] = []
    counts: dict[str, int] = {}

    def name_for(kind: str, negate: bool, seen: dict[str, int]) -> str:
        base = f"not_{kind}" if negate else kind
        seen[base] = seen.get(base, 0) + 1
        return base if seen[base] == 1 else f"{base}_{seen[base]}"

    for j, assertion in enumerate(default.get("assert") or []):
        kind, args, negate = _convert(assertion, f"defaultTest.assert[{j}]", judge)
        name = name_for(kind, negate, counts)
        scorers.append(ScorerSpec(kind=kind, args={**args, "name": name, "negate": negate}))
    per_row: dict[str, ScorerSpec] = {}
    base_counts = dict(counts)
    for i, asserts in enumerate(row_asserts):
        seen = dict(base_counts)
        for j, assertion in enumerate(asserts):
            kind, args, negate = _convert(assertion, f"tests[{i}].assert[{j}]", judge)
            name = name_for(kind, negate, seen)
            threshold = args.pop("threshold", None)
            spec = per_row.get(name)
            if spec is None:
                common: dict[str, Any] = {"name": name, "negate": negate}
                if threshold is not None:
                    common["threshold"] = threshold
                # required arguments are filled per row; the builder sees placeholders
                spec = per_row[name] = ScorerSpec(kind=kind, args=common, rows={})
                scorers.append(spec)
            assert spec.rows is not None
            spec.rows[i] = args
    for spec in per_row.values():
        assert spec.rows is not None
        # arguments every row shares move up, so the scorer builder can check them
        shared = set.intersection(*(set(a) for a in spec.rows.values()))
        for key in shared:
            values = [a[key] for a in spec.rows.values()]
            if all(v == values[0] for v in values) and key in ("model", "api_base", "api_key"):
                spec.args[key] = values[0]
                for a in spec.rows.values():
                    a.pop(key)
        first = next(iter(spec.rows.values()))
        for key, value in first.items():
            spec.args.setdefault(key, value)  # a placeholder; each row's own value wins
    options = data.get("evaluateOptions") or {}
    return EvalSpec(
        prompts=prompts,
        models=providers,
        data=rows,
        scorers=scorers,
        description=data.get("description"),
        concurrency=options.get("maxConcurrency") if isinstance(options, dict) else None,
        base_dir=base_dir,
        data_name="promptfoo-tests",
        source="promptfoo",
    )


def _cell(value: Any) -> str | None:
    """promptfoo vars render as text: one type per column, as JavaScript would print it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    import json

    return json.dumps(value)
