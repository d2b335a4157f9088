"""llmops_nb: versioned prompts, eval grids, traces, fine-tunes and reports in the notebook.

`import llmops_nb as lo`. Attributes load their module on first use, so that
`import llmops_nb` and `%load_ext llmops_nb` stay fast (no litellm, torch, polars...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import display as _display
from ._version import __version__

# Submodules named like their function: bound now (both are light), or importing the
# submodule later would leave `lo.audit` / `lo.alerts` pointing at the module.
from .alerts import alerts
from .audit import audit  # light; bound now: the submodule `audit` would shadow its function

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # store and projects
    "set_project": "llmops_nb.config",
    "current_project": "llmops_nb.config",
    # prompts
    "PromptVersion": "llmops_nb.prompting",
    "prompt": "llmops_nb.prompting",
    "prompts": "llmops_nb.prompting",
    "register_prompt": "llmops_nb.prompting",
    "prompt_history": "llmops_nb.prompting",
    "set_alias": "llmops_nb.prompting",
    "rollback": "llmops_nb.prompting",
    # model calls
    "Completion": "llmops_nb.llm.completion",
    "complete": "llmops_nb.llm.client",
    "acomplete": "llmops_nb.llm.client",
    "embed": "llmops_nb.llm.embeddings",
    "aembed": "llmops_nb.llm.embeddings",
    # traces
    "trace": "llmops_nb.tracing",
    "span": "llmops_nb.tracing",
    "last_trace": "llmops_nb.tracing",
    "get_trace": "llmops_nb.tracing",
    "traces": "llmops_nb.tracing",
    # evaluations
    "evaluate": "llmops_nb.evals",
    "scorer": "llmops_nb.evals",
    "EvalRun": "llmops_nb.evals",
    "dataset": "llmops_nb.datasets",
    # retrieval
    "chunk": "llmops_nb.chunking",
    "index": "llmops_nb.retrieval",
    "indexes": "llmops_nb.retrieval",
    # the model registry
    "ModelVersion": "llmops_nb.registry",
    "models": "llmops_nb.registry",
    "model": "llmops_nb.registry",
    "lineage": "llmops_nb.registry",
    # reports
    "report": "llmops_nb.reporting",
    # fine-tunes
    "finetune": "llmops_nb.finetuning",
    "finetunes": "llmops_nb.finetuning",
    "finetune_job": "llmops_nb.finetuning",
    "FineTuneJob": "llmops_nb.finetuning",
    # serving
    "serve": "llmops_nb.serving",
    # errors
    "LLMOpsError": "llmops_nb.errors",
    # operating in production: guardrails, drift
    "guard": "llmops_nb.guardrails",
    "GuardResult": "llmops_nb.guardrails",
    "GuardBlocked": "llmops_nb.guardrails",
    "drift": "llmops_nb.drifting",
    "DriftResult": "llmops_nb.drifting",
    # operating in production
    "monitor": "llmops_nb.monitoring",
    "dashboard": "llmops_nb.display",
    # operations: audit log, model aliases
    "audit": "llmops_nb.audit",
    "set_model_alias": "llmops_nb.registry",
    "rollback_model": "llmops_nb.registry",
    "alert": "llmops_nb.alerts",
    "alerts": "llmops_nb.alerts",
    "check_alerts": "llmops_nb.alerts",
    # retention
    "prune": "llmops_nb.retention",
    # A/B splits and model routers
    "set_split": "llmops_nb.splits",
    "split_report": "llmops_nb.splits",
    "router": "llmops_nb.routing",
    "routers": "llmops_nb.routing",
}

__all__ = ["__version__", "load_ipython_extension", *_EXPORTS]

if TYPE_CHECKING:
    from .alerts import alert, check_alerts
    from .chunking import chunk
    from .config import current_project, set_project
    from .datasets import dataset
    from .display import dashboard
    from .drifting import DriftResult, drift
    from .errors import LLMOpsError
    from .evals import EvalRun, evaluate, scorer
    from .finetuning import FineTuneJob, finetune, finetune_job, finetunes
    from .guardrails import GuardBlocked, GuardResult, guard
    from .llm.client import acomplete, complete
    from .llm.completion import Completion
    from .llm.embeddings import aembed, embed
    from .monitoring import monitor
    from .prompting import (
        PromptVersion,
        prompt,
        prompt_history,
        prompts,
        register_prompt,
        rollback,
        set_alias,
    )
    from .registry import ModelVersion, lineage, model, models, rollback_model, set_model_alias
    from .reporting import report
    from .retention import prune
    from .retrieval import index, indexes
    from .routing import router, routers
    from .serving import serve
    from .splits import set_split, split_report
    from .tracing import get_trace, last_trace, span, trace, traces


_display.register()  # inside IPython, service objects display as their panels


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmops_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext llmops_nb`: magics, panels, tracing of litellm calls, one banner line."""
    from .magics import load

    _display.register(ipython)
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server finds the sidebar's API here (enabled by jupyter-config on install)."""
    return [{"module": "llmops_nb.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab sidebar, for `jupyter labextension develop`."""
    return [{"src": "labextension", "dest": "llmops_nb"}]
