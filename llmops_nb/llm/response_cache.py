"""The response cache as model calls use it: never a reason for a call to wait or fail.

A lookup that would wait on another connection's lock is a miss, and an entry that
cannot be written for a lock is skipped (the next identical call fills it), silently:
contention is not worth a warning. A store that is down
makes calls go uncached, with one warning line, and is not asked again for
`RETRY_AFTER` seconds (so an outage costs one connection attempt, not one per call).
What is stored is redacted first: a reply that echoes a key is kept masked.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .. import config, redaction
from ..errors import StoreBusy

__all__ = ["RETRY_AFTER", "lookup", "reset", "store"]

RETRY_AFTER = 30.0
"""Seconds the cache is skipped after the store could not be reached."""

_down_until: dict[str, float] = {}  # store URL -> when to try it again
_warned: set[str] = set()
_lock = threading.Lock()


def lookup(key: str | None) -> dict[str, Any] | None:
    """The cached response for KEY (with the `trace_id` of the call that filled it), or
    None on a miss, a busy store or a store that cannot be reached."""
    if key is None or _skipping():
        return None
    from ..store import get_store

    try:
        return get_store().cache_get(key)  # type: ignore[no-any-return]
    except Exception as exc:
        if not _locked(exc):
            _store_down(exc)
        return None


def store(key: str | None, model: str, row: dict[str, Any], trace_id: str | None) -> None:
    """Keep ROW (redacted) under KEY; skipped when the store is busy or down."""
    if key is None or _skipping():
        return
    from ..store import get_store

    try:
        get_store().cache_put(key, model, redaction.redact(row), trace_id=trace_id)
    except Exception as exc:
        if not _locked(exc):
            _store_down(exc)


def _locked(exc: BaseException) -> bool:
    """The store answered, but another connection held the lock the cache needed."""
    return isinstance(exc, StoreBusy) and exc.kind == "lock"


def _skipping() -> bool:
    return time.monotonic() < _down_until.get(config.store_url(), 0.0)


def _store_down(exc: BaseException) -> None:
    """Note an unreachable store: one warning line per store, then quiet retries."""
    url = config.store_url()
    with _lock:
        _down_until[url] = time.monotonic() + RETRY_AFTER
        if url in _warned:
            return
        _warned.add(url)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(
        f"llmops_nb: response cache unavailable, calling models without it "
        f"({redaction.redact_text(reason)[:300]})",
        file=sys.stderr,
    )


def reset() -> None:
    """Forget an earlier outage (tests, or after fixing the store)."""
    with _lock:
        _down_until.clear()
        _warned.clear()
