"""Store: the shared experiment store, one class over the per-domain query mixins."""

from __future__ import annotations

from .prompts import PromptQueries


class Store(PromptQueries):
    """One experiment store, reached by a SQLAlchemy URL. Every query is a method."""
