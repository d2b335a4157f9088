"""Fine-tunes from the notebook: `lo.finetune(...)` starts a job in its own process and
returns a FineTuneJob at once; `lo.finetunes()` lists jobs, `lo.finetune_job(...)`
reattaches. Light to import: torch, transformers, peft and trl load in the worker."""

from __future__ import annotations

import sys
import types
from typing import Any

from .job import FineTuneJob, FineTuneTimeout
from .launcher import finetune, finetune_job, finetunes

__all__ = ["FineTuneJob", "FineTuneTimeout", "finetune", "finetune_job", "finetunes"]


class _CallablePackage(types.ModuleType):
    """Importing this package makes `llmops_nb.finetune` the package itself (Python sets
    submodules on their parent), which would shadow the function `lo.finetune`: so
    calling the package is calling the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> FineTuneJob:
        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
