"""Store: the shared experiment store, one class over the per-domain query mixins."""

from __future__ import annotations

from .alerts import AlertQueries
from .audit import AuditQueries
from .browse import BrowseQueries
from .cache import CacheQueries
from .datasets import DatasetQueries
from .evals import EvalQueries
from .finetunes import FinetuneQueries
from .indexes import IndexQueries
from .keys import KeyQueries
from .model_aliases import ModelAliasQueries
from .monitoring import MonitorQueries
from .prompts import PromptQueries
from .registry import ModelRegistryQueries
from .retention import RetentionQueries
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
    KeyQueries,
    AuditQueries,
    ModelAliasQueries,
    AlertQueries,
    MonitorQueries,
    RetentionQueries,
    SplitQueries,
    RouterQueries,
):
    """One experiment store, reached by a SQLAlchemy URL. Every query is a method."""
