"""Model calls: the only package that imports litellm (lazily, through `runtime`).

`complete`/`acomplete` (client), `embed`/`aembed` (embeddings) and `check_model` are what
the rest of llmops_nb calls; nothing outside llm/ touches litellm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .completion import Completion, Usage

__all__ = ["Completion", "Usage", "acomplete", "aembed", "check_model", "complete", "embed"]

_LAZY = {
    "complete": "client",
    "acomplete": "client",
    "check_model": "client",
    "embed": "embeddings",
    "aembed": "embeddings",
}

if TYPE_CHECKING:
    from .client import acomplete, check_model, complete
    from .embeddings import aembed, embed


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmops_nb.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
