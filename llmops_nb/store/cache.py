"""Queries for the response cache."""

from __future__ import annotations

from .base import StoreBase


class CacheQueries(StoreBase):
    """Queries for the response cache."""
