"""Queries for traces, spans and feedback."""

from __future__ import annotations

from .base import StoreBase


class TraceQueries(StoreBase):
    """Queries for traces, spans and feedback."""
