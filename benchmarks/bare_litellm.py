"""Shared by the benchmarks: bare litellm (llmops_nb's callbacks taken out) for comparison."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CALLBACK_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "input_callback",
)


def ours(callback: Any) -> bool:
    """Whether a litellm callback is one llmops_nb installed."""
    module = getattr(callback, "__module__", None) or type(callback).__module__
    return str(module).startswith("llmops_nb")


@contextmanager
def untraced(litellm: Any) -> Iterator[None]:
    """Bare litellm: take llmops_nb's callbacks out for the block, put them back after."""
    saved = {name: list(getattr(litellm, name, []) or []) for name in CALLBACK_LISTS}
    for name, items in saved.items():
        if hasattr(litellm, name):
            getattr(litellm, name)[:] = [cb for cb in items if not ours(cb)]
    try:
        yield
    finally:
        for name, items in saved.items():
            if hasattr(litellm, name):
                getattr(litellm, name)[:] = items
