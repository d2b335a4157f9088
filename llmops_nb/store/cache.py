"""Queries for the response cache: sha256 key -> a model's response, with a hit count."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, select

from . import models as m
from .base import StoreBase


class CacheQueries(StoreBase):
    """Queries for the response cache (table `response_cache`)."""

    def cache_get(self, key: str, count_hit: bool = True) -> dict[str, Any] | None:
        """The cached response for KEY, or None; a hit is counted unless count_hit=False.

        Reads first, so a miss (the common case on a first run) takes no write lock.
        """
        with self.session() as s:
            response = s.exec(select(m.CacheEntry.response).where(m.CacheEntry.key == key)).first()
        if response is not None and count_hit:

            def hit(s: Session) -> None:
                s.exec(  # type: ignore[call-overload]
                    update(m.CacheEntry)
                    .where(m.CacheEntry.key == key)  # type: ignore[arg-type]
                    .values(hits=m.CacheEntry.hits + 1)
                )

            self.write(hit)
        return response

    def cache_put(self, key: str, model: str, response: dict[str, Any]) -> None:
        """Store RESPONSE under KEY; a concurrent writer of the same key wins or loses whole."""

        def put(s: Session) -> None:
            entry = s.get(m.CacheEntry, key)
            if entry is None:
                s.add(m.CacheEntry(key=key, model=model, response=response))
            else:
                entry.model = model
                entry.response = response
                s.add(entry)

        self.write(put)

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
