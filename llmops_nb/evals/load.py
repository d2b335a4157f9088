"""A spec's text or file -> one EvalSpec: our `%%eval` YAML (`spec.py`) or a promptfoo
config (`promptfoo.py`); this is the one place that tells them apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import LLMOpsError
from .spec import EvalSpec, EvalSpecError, from_mapping, safe_name

__all__ = ["parse_file", "parse_spec"]

_PROMPTFOO_KEYS = ("providers", "targets", "tests", "defaultTest")
# Our spec names its rows `data` and its checks `scorers`; promptfoo has neither key (its
# `targets` is a synonym of `providers`, ours names Python callables).
_OUR_KEYS = ("data", "scorers")


def parse_spec(
    text: str,
    *,
    namespace: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    line_offset: int = 0,
) -> EvalSpec:
    """A `%%eval` body or spec file: our YAML, a promptfoo config, or a path to either."""
    from ..prompting import load_yaml

    stripped = text.strip()
    if stripped and "\n" not in stripped and re.search(r"\.ya?ml$", stripped, re.I):
        path = Path(stripped).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return parse_file(path, namespace=namespace)
    try:
        data = load_yaml(text, "eval spec", line_offset)
    except LLMOpsError as exc:
        raise EvalSpecError(str(exc)) from None
    if data is None:
        raise EvalSpecError(
            "the eval spec is empty: give prompts, models, data and scorers (see %%eval?)"
        )
    if not isinstance(data, dict):
        raise EvalSpecError("the eval spec must be a YAML mapping of key: value lines")
    lines = _key_lines(text, line_offset)
    ours = any(key in data for key in _OUR_KEYS)
    if not ours and any(key in data for key in _PROMPTFOO_KEYS):
        from .promptfoo import from_promptfoo

        try:
            return from_promptfoo(data, base_dir=base_dir, lines=lines)
        except (TypeError, ValueError, KeyError, AttributeError, OSError) as exc:
            if isinstance(exc, LLMOpsError):
                raise
            # a shape the importer does not expect: one clear line (exit 2), never a traceback
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise EvalSpecError(
                f"promptfoo config: cannot read it ({type(exc).__name__}: {detail[:200]})"
            ) from None
    return from_mapping(data, namespace=namespace, base_dir=base_dir, lines=lines)


def parse_file(path: Path, *, namespace: dict[str, Any] | None = None) -> EvalSpec:
    """A spec file of either format; the run is named after the file unless it says."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise EvalSpecError(f"cannot read the spec {str(path)!r}: {reason}") from None
    spec = parse_spec(text, namespace=namespace, base_dir=path.parent)
    if spec.name is None:
        spec.name = safe_name(path.stem)
    return spec


def _key_lines(text: str, offset: int) -> dict[str, int]:
    """Top-level key -> its line number, so errors can say where."""
    out = {}
    for number, line in enumerate(text.splitlines(), start=1 + offset):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match and match.group(1) not in out:
            out[match.group(1)] = number
    return out
