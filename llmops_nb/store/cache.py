"""Queries for the response cache: sha256 key -> a model's response, with a hit count.

The cache sits in front of model calls, so it never makes one wait long: its writes
wait at most `lock_wait` seconds for another connection's write lock (a hit count a
quarter second, a new entry two) and then give up with `CacheBusy`, which the caller
treats as an uncounted hit or a skipped write. Everything else in the store waits as
long as `StoreBase.write` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from ..errors import StoreUnavailable
from . import models as m
from .base import StoreBase

T = TypeVar("T")

CACHE_LOCK_WAIT = 0.25
"""Seconds counting a hit waits for another connection's write lock before giving up."""
CACHE_PUT_WAIT = 2.0
"""Seconds storing an entry waits: enough for a grid's own concurrent writers to take
turns, short enough that a lock held elsewhere costs a call two seconds, not minutes."""
CACHE_READ_WAIT = 2.0
"""Seconds a cache read may take on PostgreSQL (SQLite readers never wait, in WAL mode)."""


class CacheBusy(StoreUnavailable):
    """Another connection holds the lock the cache needed; the cache step was skipped."""


class CacheQueries(StoreBase):
    """Queries for the response cache (table `response_cache`)."""

    def cache_get(
        self, key: str, count_hit: bool = True, lock_wait: float = CACHE_LOCK_WAIT
    ) -> dict[str, Any] | None:
        """The cached response for KEY (with its `trace_id`), or None; a hit is counted
        unless count_hit=False, or unless counting would wait more than LOCK_WAIT seconds.

        Reads first, so a miss (the common case on a first run) takes no write lock.
        """
        with self.session() as s:
            if not self.is_sqlite:
                ms = int(CACHE_READ_WAIT * 1000)
                s.exec(text(f"SET LOCAL statement_timeout = {ms}"))  # type: ignore[call-overload]
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
                self._quick_write(hit, lock_wait)
            except CacheBusy:
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
        writer of the same key wins or loses whole. Raises CacheBusy after LOCK_WAIT s."""

        def put(s: Session) -> None:
            entry = s.get(m.CacheEntry, key)
            if entry is None:
                s.add(m.CacheEntry(key=key, model=model, response=response, trace_id=trace_id))
            else:
                entry.model = model
                entry.response = response
                entry.trace_id = trace_id
                s.add(entry)

        self._quick_write(put, lock_wait)

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

    # --- writes that give up instead of waiting ----------------------------------------

    def _quick_write(self, fn: Callable[[Session], T], lock_wait: float) -> T:
        """fn(session) in one transaction that waits at most LOCK_WAIT s for a lock."""
        try:
            with self._short_lock_session(lock_wait) as s:
                result = fn(s)
                s.commit()
                return result
        except DBAPIError as exc:
            message = str(getattr(exc, "orig", exc)).lower()
            if any(w in message for w in ("locked", "busy", "lock timeout", "statement timeout")):
                raise CacheBusy(
                    f"the response cache in {self.masked_url} is busy (another connection "
                    "holds its write lock)"
                ) from None
            raise StoreUnavailable(
                f"the response cache in {self.masked_url} failed: "
                f"{(message.splitlines() or ['error'])[0]}"
            ) from None

    @contextmanager
    def _short_lock_session(self, lock_wait: float) -> Iterator[Session]:
        ms = max(1, int(lock_wait * 1000))
        if not self.is_sqlite:
            with Session(self.write_engine, expire_on_commit=False) as s:
                s.exec(text(f"SET LOCAL lock_timeout = {ms}"))  # type: ignore[call-overload]
                s.exec(text(f"SET LOCAL statement_timeout = {ms + 2000}"))  # type: ignore[call-overload]
                yield s
            return
        # SQLite: the pooled connection's busy timeout, shortened for this one transaction
        # (set before BEGIN IMMEDIATE, which is where a writer waits), then put back.
        with self.write_engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            usual = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.execute(f"PRAGMA busy_timeout={ms}")
            try:
                with Session(bind=conn, expire_on_commit=False) as s:
                    yield s
            finally:
                raw.execute(f"PRAGMA busy_timeout={int(usual)}")
