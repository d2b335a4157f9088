"""Test helpers that are real parts: an OpenAI-compatible HTTP server on 127.0.0.1.

Names load on first use, so `python -m llmops_nb.testing.openai_server` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["OpenAIServer", "RemoteServer", "ServerConfig", "ServerStats", "serve", "spawn"]

if TYPE_CHECKING:
    from .openai_server import OpenAIServer, RemoteServer, ServerConfig, ServerStats, serve, spawn


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'llmops_nb.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(".openai_server", __name__), name)
