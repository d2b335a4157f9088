"""Fine-tunes from the notebook: `lo.finetune(...)` starts a job in its own process and
returns a FineTuneJob at once; `lo.finetunes()` lists jobs, `lo.finetune_job(...)`
reattaches. The package is `finetuning` (like `prompting`): a submodule named
`finetune` would shadow the function `lo.finetune` once imported. Light to import:
torch, transformers, peft and trl load in the worker."""

from __future__ import annotations

from .job import FineTuneJob, FineTuneTimeout
from .launcher import finetune, finetune_job, finetunes

__all__ = ["FineTuneJob", "FineTuneTimeout", "finetune", "finetune_job", "finetunes"]
