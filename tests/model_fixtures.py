"""Pytest plugin: the models tests run on, built or converted once.

The tiny Hugging Face model (and a LoRA adapter for it) is built once per session, offline.
`local/smollm2` is converted from its GGUF once per machine into one shared cache
(LLMOPS_NB_MODELS_CACHE, default ~/.cache/llmops_nb/models): every test, and every kernel
a notebook test starts, reads that copy instead of converting into its own LLMOPS_NB_HOME.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops_nb.llm.builtin_models import MODELS_CACHE_ENV


def pytest_configure(config: pytest.Config) -> None:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault(MODELS_CACHE_ENV, str(cache / "llmops_nb" / "models"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a tiny random Llama and its tokenizer (`local/<this path>`)."""
    import torch

    from llmops_nb.testing.tiny_model import build_tiny_model

    torch.set_num_threads(1)  # two shared cores: one thread is faster for a model this small
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter directory for `tiny_model` that really changes its outputs."""
    from llmops_nb.testing.tiny_model import build_tiny_adapter

    return build_tiny_adapter(tiny_model, tmp_path_factory.mktemp("tiny-adapter") / "adapter")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The converted SmolLM2-135M-Instruct folder (`local/smollm2`), shared by the session."""
    from llmops_nb.llm.builtin_models import smollm2_dir

    return smollm2_dir()
