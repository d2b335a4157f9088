"""Pytest plugin: the tiny Hugging Face model (and a LoRA adapter for it), built once per
test session, offline, for every test that needs a real local model."""

from __future__ import annotations

from pathlib import Path

import pytest


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
