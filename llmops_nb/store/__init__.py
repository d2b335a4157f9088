"""The shared experiment store: the only package that talks SQL."""

from __future__ import annotations

import threading

from .. import config
from .store import Store

__all__ = ["Store", "get_store", "reset_store"]

_lock = threading.Lock()
_stores: dict[str, Store] = {}


def get_store(url: str | None = None) -> Store:
    """The Store for URL (default: the configured one), opened once per process."""
    url = url or config.store_url()
    with _lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = Store(url)
        return store


def reset_store() -> None:
    """Forget opened stores (tests, or after changing LLMOPS_NB_STORE)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
