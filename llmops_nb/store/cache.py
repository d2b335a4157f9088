"""Queries for the response cache: sha256 key -> a model's response, with a hit count.

The cache sits in front of model calls, so it never makes one wait long: its reads and
writes go through the store's bounded waits (`StoreBase.session(wait=)` and
`write(wait=)`): a hit count waits a quarter second for another connection's write lock,
a new entry two seconds, and then they give up with the store's one-line `StoreBusy`,
which the caller treats as an uncounted hit or a skipped write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, select

from ..errors import StoreBusy
from . import models as m
from .base import StoreBase

CACHE_LOCK_WAIT = 0.25
"""Seconds counting a hit waits for another connection's write lock before giving up."""
CACHE_PUT_WAIT = 2.0
"""Seconds storing an entry waits: enough for a grid's own concurrent writers to take
turns, short enough that a lock held elsewhere costs a call two seconds, not minutes."""
CACHE_READ_WAIT = 2.0
"""Seconds a cache read may wait on PostgreSQL (SQLite readers never wait, in WAL mode)."""


class CacheQueries(StoreBase):
    """Queries for the response cache (table `response_cache`)."""

    def cache_get(
        self, key: str, count_hit: bool = True, lock_wait: float = CACHE_LOCK_WAIT
    ) -> dict[str, Any] | None:
        """The cached response for KEY, with `trace_id` (the call that filled it), or None.

        A hit is counted unless count_hit=False, or unless counting would wait more than
        LOCK_WAIT seconds. Reads first, so a miss takes no write lock; raises StoreBusy
        when the read itself waited CACHE_READ_WAIT seconds.
        """
        with self.session(wait=CACHE_READ_WAIT) as s:
            row = s.exec(
                select(m.CacheEntry.response, m.CacheEntry.trace_id).where(m.CacheEntry.key == key)
            ).first()
        if row is None:
            return None
        response, trace_id = row
        if count_hit:

            def hit(s: Session) -> None:
                s.exec(  # type: ignore[call-overload]
                    update(m.CacheEntry)
                    .where(m.CacheEntry.key == key)  # type: ignore[arg-type]
                    .values(hits=m.CacheEntry.hits + 1)
                )

            try:
                self.write(hit, wait=lock_wait)
            except StoreBusy:
                pass  # an uncounted hit beats a model call kept waiting
        return {**(response or {}), "trace_id": trace_id}

    def cache_put(
        self,
        key: str,
        model: str,
        response: dict[str, Any],
        trace_id: str | None = None,
        lock_wait: float = CACHE_PUT_WAIT,
    ) -> None:
        """Store RESPONSE under KEY, with the trace of the call that made it; a concurrent
        writer of the same key wins or loses whole. Raises StoreBusy after LOCK_WAIT s."""

        def put(s: Session) -> None:
            entry = s.get(m.CacheEntry, key)
            if entry is None:
                s.add(m.CacheEntry(key=key, model=model, response=response, trace_id=trace_id))
            else:
                entry.model = model
                entry.response = response
                entry.trace_id = trace_id
                s.add(entry)

        self.write(put, wait=lock_wait)

    def cache_hits(self, key: str) -> int:
        """How many times KEY was served from the cache (0 when absent)."""
        with self.session() as s:
            hits = s.exec(select(m.CacheEntry.hits).where(m.CacheEntry.key == key)).first()
        return hits or 0

    def cache_clear(self, model: str | None = None) -> int:
        """Drop cached responses (of MODEL only, when given); returns how many."""

        def clear(s: Session) -> int:
            query = delete(m.CacheEntry)
            if model is not None:
                query = query.where(m.CacheEntry.model == model)  # type: ignore[arg-type]
            return s.exec(query).rowcount  # type: ignore[call-overload,no-any-return]

        return self.write(clear)
