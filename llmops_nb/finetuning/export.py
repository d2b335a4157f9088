"""`job.export(path)`: the fine-tuned model as files other tools load without llmops_nb."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from ..errors import FineTuneError


def export_model(base_path: str, adapter_path: Path, out: Path, *, merge: bool = True) -> Path:
    """Merged weights plus the tokenizer (merge=True: plain transformers loads OUT), or a
    copy of the LoRA adapter (merge=False: load it with peft on the base)."""
    out = out.expanduser()
    if out.exists() and any(out.iterdir()):
        raise FineTuneError(f"cannot export to {str(out)!r}: the folder is not empty")
    if not merge:
        shutil.copytree(adapter_path, out, dirs_exist_ok=True)
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    with warnings.catch_warnings():  # peft's use of deprecated transformers names
        warnings.simplefilter("ignore", FutureWarning)
        merged = PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(adapter_path)).save_pretrained(out)
    return out
