"""Store: the shared experiment store, one class over the per-domain query mixins."""

from __future__ import annotations

from .audit import AuditQueries
from .browse import BrowseQueries
from .cache import CacheQueries
from .datasets import DatasetQueries
from .evals import EvalQueries
from .finetunes import FinetuneQueries
from .indexes import IndexQueries
from .monitoring import MonitorQueries
from .prompts import PromptQueries
from .registry import ModelRegistryQueries
from .routers import RouterQueries
from .splits import SplitQueries
from .traces import TraceQueries


class Store(
    PromptQueries,
    TraceQueries,
    CacheQueries,
    BrowseQueries,
    ModelRegistryQueries,
    EvalQueries,
    DatasetQueries,
    FinetuneQueries,
    IndexQueries,
    AuditQueries,
    SplitQueries,
    RouterQueries,
    MonitorQueries,
):
    """One experiment store, reached by a SQLAlchemy URL. Every query is a method."""
