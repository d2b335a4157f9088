"""Token prices from litellm's own table, without importing litellm.

The fast path prices a call with the JSON file litellm ships
(`model_prices_and_context_window_backup.json`), read once, lazily, by its path: the
same prices litellm uses offline (LITELLM_LOCAL_MODEL_COST_MAP), for a few ms instead of
litellm's seconds-long import. Once litellm is imported its live table is used instead,
so a price added with `litellm.register_model` counts on both paths.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["cost", "price_table"]

PRICE_FILE = "model_prices_and_context_window_backup.json"

_table: dict[str, Any] | None = None
_lock = threading.Lock()


def price_table() -> Mapping[str, Any]:
    """Model name -> litellm's price entry: litellm's live table once it is imported,
    else its bundled file (empty when litellm is not installed)."""
    litellm = sys.modules.get("litellm")
    live = getattr(litellm, "model_cost", None) if litellm is not None else None
    if isinstance(live, dict) and live:
        return live
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _read_bundled()
    return _table


def _read_bundled() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return {}
    try:
        with open(Path(spec.origin).parent / PRICE_FILE, "rb") as f:
            table = json.load(f)
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def cost(model: str, usage: Mapping[str, Any] | None) -> float | None:
    """What a call to MODEL ('openai/gpt-4o-mini', or the bare name) with USAGE (the
    provider's usage JSON) cost, in USD; None for a model the table has no price for.
    Cached prompt tokens are charged at the cache-read price where the table has one."""
    table = price_table()
    entry = table.get(model)
    if entry is None and "/" in model:
        entry = table.get(model.partition("/")[2])
    if not isinstance(entry, Mapping):
        return None
    per_in, per_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if per_in is None and per_out is None:
        return None
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
    per_cached = entry.get("cache_read_input_token_cost")
    if per_cached is None:
        cached = 0
    total = (prompt - cached) * float(per_in or 0.0) + completion * float(per_out or 0.0)
    return total + cached * float(per_cached or 0.0)
