"""The one way llmops_nb imports litellm: offline price table, then the on-import hooks.

Hooks (the tracing callback, the `local/` provider) register here and run once, the
first time litellm is imported, whoever imports it: llmops_nb itself or user code
that calls litellm directly after `%load_ext llmops_nb`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def _install_tracing(module: ModuleType) -> None:
    from . import callback

    callback.install(module)


def _install_local_provider(module: ModuleType) -> None:
    from . import local

    local.install(module)


# Every litellm call is traced, and `local/<model>` works, however litellm was imported.
_hooks: list[Callable[[ModuleType], None]] = [_install_tracing, _install_local_provider]
_done: set[int] = set()
_lock = threading.RLock()


def on_import(hook: Callable[[ModuleType], None]) -> None:
    """Run hook(litellm) once litellm is imported (now, if it already is)."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
        module = sys.modules.get("litellm")
        if module is not None and hasattr(module, "completion"):
            _run_hooks(module)


def _run_hooks(module: ModuleType) -> None:
    with _lock:
        for hook in _hooks:
            if id(hook) not in _done:
                _done.add(id(hook))
                hook(module)


def litellm() -> ModuleType:
    """Import litellm without network access and with every hook applied."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    _run_hooks(module)
    return module


class _LitellmFinder(importlib.abc.MetaPathFinder):
    """Runs the hooks right after user code imports litellm itself."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "litellm":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _HookedLoader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


class _HookedLoader:
    """Wraps litellm's own loader: runs the hooks after exec_module, forwards the rest
    (importlib.resources needs the original's get_resource_reader for the price table)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        self._loader.exec_module(module)
        _run_hooks(module)


def watch_imports() -> None:
    """Apply the hooks to litellm now if it is imported, else when it is (cheap: no import)."""
    module = sys.modules.get("litellm")
    if module is not None:
        _run_hooks(module)
    elif not any(isinstance(f, _LitellmFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LitellmFinder())
