"""promptfoo inputs read as promptfoo reads them: prompt files (text with `---`
separators, JSON/YAML chat-message lists), tests files (CSV with its special columns,
YAML, JSON, JSONL), vars files and `file://` vars, list vars expanded into one test per
combination, vars that reference other vars. What promptfoo can do and llmops_nb cannot
(prompt functions, test generators, remote datasets, Nunjucks' `dump`/`load` filters,
`_conversation`) is refused by name."""

from __future__ import annotations

import csv
import glob
import json
import re
from pathlib import Path
from typing import Any

from .spec import EvalSpecError, PromptSpec

__all__ = [
    "expand_vars",
    "file_value",
    "files",
    "load_prompts",
    "load_tests",
    "parse_assertion_string",
    "render_vars",
    "resolve_vars",
]

_SCRIPT_SUFFIXES = (".js", ".py", ".ts", ".mjs", ".cjs")
_NUNJUCKS_ONLY = re.compile(r"\|\s*(dump|load)\b|\b(_conversation)\b")
_ASSERTION = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::(.*))?$", re.S)


def files(ref: str, base_dir: Path | None, what: str) -> list[Path]:
    """The files a `file://` reference (or a glob) names; one clear error if none."""
    pattern = ref[len("file://") :] if ref.startswith("file://") else ref
    path = Path(pattern).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if any(c in pattern for c in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if not matches:
            raise EvalSpecError(f"no {what} file matches {str(path)!r}")
        return matches
    if not path.is_file():
        raise EvalSpecError(f"cannot read the {what} file {str(path)!r}: no such file")
    return [path]


def _script_ref(ref: str) -> tuple[str, str | None]:
    """'x.py:fn' -> ('x.py', 'fn'); other refs unchanged."""
    match = re.match(r"^(.*\.(?:py|js|ts|mjs|cjs)):([A-Za-z_$][\w$]*)$", ref)
    return (match.group(1), match.group(2)) if match else (ref, None)


def _check_template(text: str, where: str) -> str:
    found = _NUNJUCKS_ONLY.search(text)
    if found:
        name = found.group(1) or found.group(2)
        what = f"the Nunjucks filter '{name}'" if found.group(1) else "the _conversation variable"
        raise EvalSpecError(
            f"{where} uses {what}, a promptfoo feature llmops_nb does not implement"
        )
    return text


# --- prompts -------------------------------------------------------------------------------


def _messages_template(data: Any, where: str) -> str:
    if isinstance(data, list) and all(isinstance(m, dict) and "role" in m for m in data):
        return json.dumps(data, ensure_ascii=False)
    raise EvalSpecError(f"{where}: a structured prompt file must be a list of chat messages")


def _prompt_file(path: Path, label: str | None) -> list[PromptSpec]:
    suffix = path.suffix.lower()
    where = f"prompt file {path.name}"
    if suffix in _SCRIPT_SUFFIXES:
        raise EvalSpecError(
            f"prompts: prompt functions ({path.name}) are a promptfoo feature llmops_nb does "
            "not run; use a text, .json or .yaml chat file"
        )
    text = path.read_text()
    if suffix in (".yaml", ".yml"):
        from ..prompting import load_yaml

        templates = [_messages_template(load_yaml(text, where), where)]
    elif suffix == ".json":
        templates = [
            _messages_template(json.loads(text), where) if text.strip().startswith("[") else text
        ]
    elif suffix == ".jsonl":
        templates = [line for line in text.splitlines() if line.strip()]
    else:  # .txt, .md, .j2, ...: prompts separated by lines of ---
        templates = (
            [t.strip() for t in re.split(r"^---$", text, flags=re.M)]
            if "\n---\n" in text
            else [text]
        )
    out = []
    for k, template in enumerate(templates, start=1):
        name = label or path.name
        out.append(
            PromptSpec(
                label=name if len(templates) == 1 else f"{name}:{k}",
                template=_check_template(template, where),
            )
        )
    return out


def load_prompts(value: Any, base_dir: Path | None) -> list[PromptSpec]:
    """`prompts:` -> PromptSpecs: text, `{raw|id, label}` mappings, `file://` paths/globs."""
    items = value if isinstance(value, list) else [value]
    out: list[PromptSpec] = []
    for item in items:
        label = None
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"raw", "id", "label", "config"})
            if unknown or item.get("config"):
                key = unknown[0] if unknown else "config"
                raise EvalSpecError(f"prompts: the prompt key {key!r} is not supported")
            label = item.get("label")
            if item.get("raw") is not None:
                text = _check_template(str(item["raw"]), "prompts")
                out.append(PromptSpec(label=str(label or f"prompt{len(out) + 1}"), template=text))
                continue
            item = item.get("id")
            if not isinstance(item, str):
                raise EvalSpecError("prompts: a prompt mapping needs 'raw' or 'id'")
        if isinstance(item, str) and item.startswith("file://"):
            ref, fn = _script_ref(item)
            if fn is not None:
                raise EvalSpecError(
                    f"prompts: prompt functions ({Path(ref).name}:{fn}) are a promptfoo feature "
                    "llmops_nb does not run"
                )
            for path in files(ref, base_dir, "prompt"):
                out.extend(_prompt_file(path, label))
        elif isinstance(item, str):
            text = _check_template(item, "prompts")
            out.append(PromptSpec(label=str(label or f"prompt{len(out) + 1}"), template=text))
        else:
            raise EvalSpecError(f"prompts: cannot use {item!r} as a prompt")
    return out


# --- tests ---------------------------------------------------------------------------------


def load_tests(value: Any, base_dir: Path | None) -> list[dict[str, Any]]:
    """`tests:` -> test mappings (each with its base_dir under '_base_dir')."""
    items = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            if re.match(r"^[a-z][a-z0-9+.-]*://", item) and not item.startswith("file://"):
                scheme = item.split("://", 1)[0]
                raise EvalSpecError(
                    f"tests: {scheme}:// test sources ({item[:60]}) are a promptfoo feature "
                    "llmops_nb does not read; download them to a .csv or .yaml file"
                )
            ref, fn = _script_ref(item)
            if ref.lower().endswith(_SCRIPT_SUFFIXES):
                raise EvalSpecError(
                    f"tests: test generators ({Path(ref).name}{':' + fn if fn else ''}) are a "
                    "promptfoo feature llmops_nb does not run; write the tests to a .csv or .yaml"
                )
            for path in files(ref, base_dir, "tests"):
                out.extend(_tests_file(path))
        elif isinstance(item, dict):
            out.append({"_base_dir": base_dir, **item})
        else:
            raise EvalSpecError(f"tests: cannot use {item!r} as a test")
    return out


def _tests_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        from ..prompting import load_yaml

        data = load_yaml(path.read_text(), f"tests file {path.name}")
        return load_tests(data or [], path.parent)
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return load_tests(rows, path.parent)
    if suffix not in (".csv", ".tsv"):
        raise EvalSpecError(f"tests file {path.name}: use .csv, .tsv, .yaml, .json or .jsonl")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise EvalSpecError(f"cannot read the tests file {str(path)!r}: {exc}") from None
    return [_csv_test(row, number, path) for number, row in enumerate(rows, start=2)]


def parse_assertion_string(text: str) -> dict[str, Any]:
    """A CSV `__expected` cell -> an assertion ('contains: x', 'not-regex: ...',
    'similar(0.8): text', 'grade: rubric', 'is-json'); anything else is an `equals`."""
    from .promptfoo import KNOWN

    stripped = text.strip()
    match = _ASSERTION.match(stripped)
    if match:
        negate, kind, threshold, value = match.groups()
        if kind == "grade":
            kind = "llm-rubric"
        elif kind in ("fn", "eval"):
            kind = "javascript"
        if kind in KNOWN:
            out: dict[str, Any] = {"type": f"{'not-' if negate else ''}{kind}"}
            if value is not None:
                out["value"] = value.strip()
            if threshold is not None:
                out["threshold"] = float(threshold)
            return out
    return {"type": "equals", "value": stripped}


def _csv_test(row: dict[str | None, Any], number: int, path: Path) -> dict[str, Any]:
    test: dict[str, Any] = {"vars": {}, "assert": [], "_base_dir": path.parent}
    where = f"{path.name} line {number}"
    configs: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        if key is None:
            raise EvalSpecError(f"{where}: more cells than columns")
        value = value or ""
        if re.fullmatch(r"__expected\d*", key):
            if value.strip():
                test["assert"].append((key, parse_assertion_string(value)))
        elif key == "__description":
            test["description"] = value
        elif key == "__metric":
            test["_metric"] = value or None
        elif key == "__threshold":
            if value.strip():
                test["threshold"] = _number(value, f"{where}: __threshold")
        elif key.startswith("__metadata:"):
            test.setdefault("metadata", {})[key[len("__metadata:") :]] = value
        elif key.startswith("__config:"):
            parts = key.split(":")
            if (
                len(parts) != 3
                or parts[2] != "threshold"
                or not re.fullmatch(r"__expected\d*", parts[1])
            ):
                raise EvalSpecError(f"{path.name}: the special column {key!r} is not supported")
            if value.strip():
                configs.setdefault(parts[1], {})["threshold"] = _number(value, f"{where}: {key}")
        elif key.startswith("__"):
            raise EvalSpecError(f"{path.name}: the special column {key!r} is not supported")
        else:
            test["vars"][key] = value
    asserts = []
    for column, assertion in test["assert"]:
        assertion.update(configs.get(column, {}))
        if test.get("_metric"):
            assertion["metric"] = test["_metric"]
        asserts.append(assertion)
    test["assert"] = asserts
    test.pop("_metric", None)
    return test


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EvalSpecError(f"{where} must be a number, not {text!r}") from None


# --- vars ----------------------------------------------------------------------------------


def _vars_file(path: Path) -> dict[str, Any]:
    from ..prompting import load_yaml

    data = load_yaml(path.read_text(), f"vars file {path.name}")
    if not isinstance(data, dict):
        raise EvalSpecError(f"vars file {path.name} must be a mapping of name: value")
    return data


def resolve_vars(value: Any, base_dir: Path | None, where: str) -> dict[str, Any]:
    """A test's `vars`: a mapping, or a path/glob (or list of them) of YAML/JSON vars files
    merged in order."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    refs = value if isinstance(value, list) else [value]
    if not all(isinstance(r, str) for r in refs):
        raise EvalSpecError(f"{where}: vars must be a mapping or vars file paths")
    merged: dict[str, Any] = {}
    for ref in refs:
        for path in files(ref, base_dir, "vars"):
            merged.update(_vars_file(path))
    return merged


def _file_var(ref: str, base_dir: Path | None, name: str) -> str:
    path_text, fn = _script_ref(ref[len("file://") :])
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix in _SCRIPT_SUFFIXES:
        raise EvalSpecError(
            f"var {name!r}: {path.name}{':' + fn if fn else ''} is a script var, a promptfoo "
            "feature llmops_nb does not run"
        )
    if suffix in (".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp3", ".wav", ".mp4"):
        raise EvalSpecError(f"var {name!r}: {suffix} files are not read by llmops_nb")
    (found,) = files("file://" + path_text, base_dir, f"var {name!r}")
    text = found.read_text()
    if suffix in (".yaml", ".yml"):
        from ..prompting import load_yaml

        return json.dumps(load_yaml(text, f"var file {found.name}"), ensure_ascii=False)
    return text


def file_value(ref: str, base_dir: Path | None, where: str) -> Any:
    """A `file://` assertion value: JSON and YAML files parsed, other files as text."""
    path_text, fn = _script_ref(ref[len("file://") :])
    if Path(path_text).suffix.lower() in _SCRIPT_SUFFIXES:
        raise EvalSpecError(
            f"{where}: the value {ref!r} is a script, a promptfoo feature llmops_nb does not run"
        )
    (path,) = files("file://" + path_text, base_dir, "assertion value")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        return json.loads(text)
    if path.suffix.lower() in (".yaml", ".yml"):
        from ..prompting import load_yaml

        return load_yaml(text, f"assertion value {path.name}")
    return text


def expand_vars(
    variables: dict[str, Any], base_dir: Path | None, expand: bool = True
) -> list[dict[str, Any]]:
    """promptfoo's combinations: a list var whose first item is a string gives one test per
    item, a `file://` glob one per file; other lists are one value. `file://` vars are
    read."""
    combos: list[dict[str, Any]] = [{}]
    for key, value in variables.items():
        if isinstance(value, str) and value.startswith("file://"):
            paths = (
                files(value, base_dir, f"var {key!r}") if any(c in value for c in "*?[") else None
            )
            options = [f"file://{p}" for p in paths] if paths else [value]
            options = [_file_var(o, base_dir, key) for o in options]
        elif expand and isinstance(value, list) and value and isinstance(value[0], str):
            options = list(value)
        else:
            options = [value]
        combos = [{**c, key: o} for c in combos for o in options]
    return combos


def render_vars(variables: dict[str, Any]) -> dict[str, Any]:
    """Vars whose text uses other vars (`{{name}}`) are rendered with them, as promptfoo does."""
    import jinja2

    env = jinja2.Environment(autoescape=False)
    out = dict(variables)
    for key, value in variables.items():
        if isinstance(value, str) and "{{" in value:
            others = {k: v for k, v in variables.items() if k != key}
            try:
                out[key] = env.from_string(value).render(others)
            except jinja2.TemplateError as exc:
                raise EvalSpecError(f"var {key!r}: cannot render {value[:60]!r}: {exc}") from None
    return out
