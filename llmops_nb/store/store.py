"""Store: the shared experiment store, one class over the per-domain query mixins."""

from __future__ import annotations

from .cache import CacheQueries
from .prompts import PromptQueries
from .traces import TraceQueries


class Store(PromptQueries, TraceQueries, CacheQueries):
    """One experiment store, reached by a SQLAlchemy URL. Every query is a method."""
