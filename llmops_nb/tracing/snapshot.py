"""JSON-safe snapshots of recorded values: containers copied, long text cut, the rest repr'd.

Recorded values are capped so that one huge argument cannot bloat the store.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..redaction import MASK, is_secret_name

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_STR", "MAX_TOTAL", "attribute_value", "jsonable"]

MAX_STR = 20_000  # characters per string
MAX_ITEMS = 200  # items per list or dict
MAX_DEPTH = 8
MAX_TOTAL = 400_000  # characters per recorded value


def jsonable(value: Any) -> Any:
    """A JSON-safe snapshot of VALUE for a span: containers copied, long text cut, else repr."""
    t = type(value)
    if t is str:
        return value if len(value) <= MAX_STR else _cut(value, MAX_STR)
    if value is None or t is int or t is bool:
        return value
    return convert(value, 0, [MAX_TOTAL])


def _cut(text: str, limit: int) -> str:
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def convert(v: Any, depth: int, budget: list[int]) -> Any:
    """`jsonable` at DEPTH, spending BUDGET (characters left, shared by one value's parts)."""
    t = type(v)
    if t is str:
        limit = min(MAX_STR, max(budget[0], 0))
        budget[0] -= len(v)
        return v if len(v) <= limit else _cut(v, limit)
    if v is None or t is int or t is bool:
        return v
    if t is float:
        return v if math.isfinite(v) else str(v)
    if depth >= MAX_DEPTH:
        return _short_repr(v)
    if t is dict or isinstance(v, Mapping):
        out: dict[str, Any] = {}
        for i, (k, item) in enumerate(v.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"{len(v) - MAX_ITEMS} more items"
                break
            key = k if type(k) is str else str(k) if isinstance(k, (int, float, bool)) else repr(k)
            out[key] = MASK if is_secret_name(key) else convert(item, depth + 1, budget)
        return out
    if t is list or t is tuple or isinstance(v, (list, tuple, set, frozenset, deque)):
        items = []
        for i, item in enumerate(v):
            if i >= MAX_ITEMS:
                items.append(f"… {len(v) - MAX_ITEMS} more items")
                break
            items.append(convert(item, depth + 1, budget))
        return items
    if isinstance(v, (int, float)):  # bool/int/float subclasses, numpy-like scalars
        return convert(v.item() if hasattr(v, "item") else float(v), depth, budget)
    if isinstance(v, str):
        return convert(str(v), depth, budget)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, enum.Enum):
        return convert(v.value, depth, budget)
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    dump = getattr(v, "model_dump", None)  # pydantic models (litellm responses too)
    if callable(dump) and not isinstance(v, type):
        try:
            return convert(dump(mode="json"), depth, budget)
        except Exception:
            return _short_repr(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = {f.name: getattr(v, f.name, None) for f in dataclasses.fields(v)}
        return convert(fields, depth, budget)
    tolist = getattr(v, "tolist", None)  # numpy arrays: small ones as lists
    if callable(tolist) and getattr(v, "size", MAX_ITEMS + 1) <= MAX_ITEMS:
        try:
            return convert(tolist(), depth, budget)
        except Exception:
            pass
    return _short_repr(v)


def _short_repr(v: Any) -> str:
    try:
        text = repr(v)
    except Exception:
        return f"<{type(v).__name__}>"
    return text if len(text) <= 2_000 else _cut(text, 2_000)


def attribute_value(value: Any) -> Any:
    """An OpenTelemetry attribute value: primitives and lists of them as is, the rest as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(x, (str, bool, int, float)) for x in value
    ):
        kinds = {type(x) for x in value}
        if len(kinds) <= 1:
            return list(value)
    return json.dumps(jsonable(value), ensure_ascii=False)
