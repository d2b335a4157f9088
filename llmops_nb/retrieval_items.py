"""The items of an index version, checked: texts, ids and metadata from a list or a
frame (one clear `RetrievalError` for each kind of bad input), unit vectors, the
content hash that identifies a version, and metadata filters."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LLMOpsError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Items",
    "RetrievalError",
    "content_hash",
    "describe_filter",
    "empty",
    "filter_fn",
    "given_vectors",
    "next_id",
    "normalise",
    "stack",
    "unit",
]


class RetrievalError(LLMOpsError, ValueError):
    """Bad input to an index: no texts, ids that repeat, a wrong dimension, a bad filter."""


@dataclass(frozen=True)
class Items:
    """An index version's items: hnswlib labels, ids, texts, metadata, and unit vectors (rows
    aligned with the lists)."""

    labels: list[int]
    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any]]
    vectors: np.ndarray

    def position(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.ids)}

    @functools.cached_property
    def row_of_label(self) -> dict[int, int]:
        """hnswlib label -> row, built once per loaded version (not per search)."""
        return {label: i for i, label in enumerate(self.labels)}


def normalise(
    texts: Any, ids: Any, metadata: Any, *, first_id: int
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(texts, ids, metadata) from a list or a frame, checked: one clear error each."""
    frame_ids, frame_meta = None, None
    if hasattr(texts, "columns") and hasattr(texts, "to_dict"):
        texts, frame_ids, frame_meta = _from_frame(texts)
    elif isinstance(texts, str):
        texts = [texts]
    elif not isinstance(texts, Sequence):
        raise RetrievalError(
            f"texts must be a list of strings or a frame with a 'text' column, not "
            f"{type(texts).__name__}"
        )
    texts = list(texts)
    if not texts:
        raise RetrievalError("the corpus is empty: an index needs at least one text")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise RetrievalError(f"text {bad} is a {type(texts[bad]).__name__}, not a string")
    if not any(t.strip() for t in texts):
        raise RetrievalError("the corpus is empty: every text is blank")
    ids = frame_ids if ids is None else ids
    ids = [str(first_id + i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(texts):
        raise RetrievalError(f"{len(ids)} ids for {len(texts)} texts: give one id per text")
    counts: dict[str, int] = {}
    for item_id in ids:
        counts[item_id] = counts.get(item_id, 0) + 1
    repeated = next((i for i, n in counts.items() if n > 1), None)
    if repeated is not None:
        raise RetrievalError(f"ids must be unique: {repeated!r} appears {counts[repeated]} times")
    metadata = frame_meta if metadata is None else metadata
    if metadata is None:
        metadata = [{} for _ in texts]
    metadata = list(metadata)
    if len(metadata) != len(texts):
        raise RetrievalError(
            f"{len(metadata)} metadata entries for {len(texts)} texts: give one per text"
        )
    if not all(isinstance(m, Mapping) for m in metadata):
        raise RetrievalError("metadata must be one mapping (a dict) per text")
    return texts, ids, [dict(m) for m in metadata]


def _from_frame(frame: Any) -> tuple[list[Any], list[Any] | None, list[dict[str, Any]]]:
    import polars as pl

    df = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    if "text" not in df.columns:
        raise RetrievalError(
            f"the frame has no 'text' column (columns: {', '.join(df.columns)}); "
            "lo.chunk(...) makes one"
        )
    extra = [c for c in df.columns if c not in ("id", "text")]
    meta = df.select(extra).to_dicts() if extra else [{} for _ in range(df.height)]
    ids = df["id"].to_list() if "id" in df.columns else None
    return df["text"].to_list(), ids, meta


def next_id(existing: list[str]) -> int:
    numbers = [int(i) for i in existing if i.isdigit()]
    return max(numbers) + 1 if numbers else len(existing)


def given_vectors(vectors: Any, n: int) -> np.ndarray:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise RetrievalError(f"vectors must be a matrix of {n} rows, not shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise RetrievalError("vectors contain NaN or infinite values")
    return unit(matrix)


def unit(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def empty() -> np.ndarray:
    import numpy as np

    return np.zeros((0, 0), dtype=np.float32)


def stack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.concatenate([a, b]).astype(np.float32)


def content_hash(items: Items, model: str, space: str, m: int, ef_construction: int) -> str:
    """sha256 of the items in order, the model and the graph settings."""
    digest = hashlib.sha256()
    head = {"model": model, "space": space, "M": m, "ef_construction": ef_construction}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for item_id, text, meta in zip(items.ids, items.texts, items.metadata):
        line = json.dumps([item_id, text, meta], sort_keys=True, default=str)
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def filter_fn(filter: Any) -> Callable[[dict[str, Any]], bool]:
    if callable(filter):
        return lambda meta: bool(filter(meta))
    if not isinstance(filter, Mapping) or not filter:
        raise RetrievalError(
            "filter must be a mapping of metadata values (e.g. {'source': 'faq.md'}) or a "
            f"function of an item's metadata, not {filter!r}"
        )
    wanted = {
        k: (set(map(_key, v)) if isinstance(v, list | tuple | set) else {_key(v)})
        for k, v in filter.items()
    }
    return lambda meta: all(_key(meta.get(k)) in values for k, values in wanted.items())


def _key(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


def describe_filter(filter: Any) -> Any:
    if filter is None or isinstance(filter, Mapping):
        return filter
    return getattr(filter, "__name__", "<function>")
