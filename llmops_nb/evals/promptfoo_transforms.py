"""promptfoo `transform` / `transformVars` values that llmops_nb can run, and JavaScript's
way of printing a value as the string assertions see.

Runnable: `file://x.py` (or `file://x.py:fn`, default function `get_transform(value,
context)`), and the common JavaScript one-liners over `output`: `output.trim()`,
`.toLowerCase()`, `.toUpperCase()`, `.trimStart()`, `.trimEnd()`, `.length`,
`JSON.parse(output)` with property and index access (`JSON.parse(output).answer`,
`...["items"][0]`). Anything else is refused by name when the config is read.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .spec import EvalSpecError

__all__ = ["Transform", "compile_transform", "js_string"]

Transform = Callable[[Any, dict[str, Any]], Any]

_UNDEFINED = object()
_METHODS: dict[str, Callable[[str], Any]] = {
    "trim": lambda s: s.strip(" \t\n\r\v\f\u00a0\ufeff"),
    "trimStart": lambda s: s.lstrip(" \t\n\r\v\f\u00a0\ufeff"),
    "trimEnd": lambda s: s.rstrip(" \t\n\r\v\f\u00a0\ufeff"),
    "toLowerCase": str.lower,
    "toUpperCase": str.upper,
}
_STEP = re.compile(
    r"\s*(?:\.\s*(?P<method>[A-Za-z_$][\w$]*)\s*\(\s*\)"
    r"|\.\s*(?P<prop>[A-Za-z_$][\w$]*)"
    r"|\[\s*(?:(?P<index>\d+)|'(?P<sq>[^'\\]*)'|\"(?P<dq>[^\"\\]*)\")\s*\])"
)
_BASE = re.compile(r"\s*(?P<json>JSON\.parse\(\s*output\s*\))|\s*(?P<output>output)\b")


def js_string(value: Any) -> str:
    """What promptfoo's assertions compare: strings as they are, objects as
    JSON.stringify, everything else as JavaScript's String()."""
    if value is _UNDEFINED:
        return "undefined"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return str(value)


def _expression(source: str) -> Transform | None:
    """A JavaScript one-liner over `output` as a Python function, or None if not one."""
    text = source.strip().rstrip(";")
    text = re.sub(r"^(?:return\s+)", "", text)
    base = _BASE.match(text)
    if not base:
        return None
    steps: list[tuple[str, Any]] = []
    pos = base.end()
    while pos < len(text):
        step = _STEP.match(text, pos)
        if not step:
            return None
        if step["method"]:
            if step["method"] not in _METHODS:
                return None
            steps.append(("method", step["method"]))
        elif step["prop"] is not None:
            steps.append(("prop", step["prop"]))
        elif step["index"] is not None:
            steps.append(("index", int(step["index"])))
        else:
            steps.append(("prop", step["sq"] if step["sq"] is not None else step["dq"]))
        pos = step.end()
    parse = base["json"] is not None

    def run(output: Any, context: dict[str, Any]) -> Any:
        value: Any = output
        if parse:
            from .promptfoo_json import js_json_parse

            value = js_json_parse(js_string(output))
        for kind, arg in steps:
            value = _step(value, kind, arg)
        return value

    return run


def _step(value: Any, kind: str, arg: Any) -> Any:
    if value is _UNDEFINED or value is None:
        raise TypeError(f"Cannot read properties of {js_string(value)} (reading '{arg}')")
    if kind == "method":
        if not isinstance(value, str):
            raise TypeError(f"{arg} is not a function")
        return _METHODS[arg](value)
    if kind == "prop" and arg == "length" and isinstance(value, str | list):
        return len(value.encode("utf-16-le")) // 2 if isinstance(value, str) else len(value)
    if isinstance(value, dict):
        return value.get(str(arg), _UNDEFINED)
    if isinstance(value, list | str) and (isinstance(arg, int) or str(arg).isdigit()):
        index = int(arg)
        return value[index] if index < len(value) else _UNDEFINED
    return _UNDEFINED


@lru_cache(maxsize=64)
def _python_function(path: str, name: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(f"promptfoo_transform_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise EvalSpecError(f"transform file://{path}: cannot load it as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise EvalSpecError(f"transform file://{path}: it defines no function {name!r}")
    return fn  # type: ignore[no-any-return]


def compile_transform(source: Any, base_dir: str | None, where: str) -> Transform:
    """A promptfoo transform value -> a function (value, context) -> value; one clear error
    naming it when llmops_nb cannot run it the way promptfoo would."""
    if not isinstance(source, str) or not source.strip():
        raise EvalSpecError(f"{where}: a transform must be a non-empty string")
    text = source.strip()
    if text.startswith("file://"):
        ref = text[len("file://") :]
        file_part, _, fn_name = (
            ref.partition(":") if not re.match(r"^[A-Za-z]:[\\/]", ref) else (ref, "", "")
        )
        path = Path(file_part).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        if path.suffix != ".py":
            raise EvalSpecError(
                f"{where}: transform {text!r} is a JavaScript file; llmops_nb runs Python "
                "transforms only (file://x.py)"
            )
        if not path.is_file():
            raise EvalSpecError(f"{where}: transform file {str(path)!r} does not exist")
        fn = _python_function(str(path.resolve()), fn_name or "get_transform")
        return lambda value, context: fn(value, context)
    expression = _expression(text)
    if expression is None:
        raise EvalSpecError(
            f"{where}: transform {text[:80]!r} is JavaScript llmops_nb cannot run; write it as "
            "a Python file (file://x.py defining get_transform(output, context)) or use one of "
            "output.trim(), .toLowerCase(), .toUpperCase(), JSON.parse(output).field"
        )
    return expression
