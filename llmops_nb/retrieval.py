"""Vector indexes: `lo.index(name, texts)` builds an hnswlib (cosine) index of texts.

An index version is immutable and identified by the sha256 of its items (ids, texts,
metadata), its embedding model and its graph settings, so building the same corpus
twice creates nothing (`unchanged: index docs v2`). `idx.add` and `idx.delete` make a
new version from the current one; `lo.index("docs@2")` reopens any live version, from
any kernel that shares the store and LLMOPS_NB_HOME. A version's files (the hnswlib
graph, its unit vectors, its items as Parquet) live under
`LLMOPS_NB_HOME/indexes/<project>/<name>/<hash>/`; its row in the store says where.
Everything is checked, and the files are complete, before the row is written.

Every `search` is a `retriever` span with the query, k, the filter and the hits; a RAG
pipeline's retrievals are also collected in process for the eval runner
(`collect_retrievals`), so scorers read the contexts without a store round trip.
"""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config, tracing
from .errors import NotFound
from .retrieval_items import (
    Items,
    RetrievalError,
    content_hash,
    describe_filter,
    empty,
    filter_fn,
    given_vectors,
    next_id,
    normalise,
    stack,
    unit,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "DEFAULT_EF",
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_M",
    "Hit",
    "Index",
    "IndexNotFound",
    "RetrievalError",
    "collect_retrievals",
    "index",
    "indexes",
]

DEFAULT_M = 16  # links per node: recall vs memory
DEFAULT_EF_CONSTRUCTION = 200  # build breadth: recall vs build time
DEFAULT_EF = 64  # search breadth (raised to k when k is larger): recall vs latency
EMBED_BATCH = 256  # texts per embedding request to a litellm model
EXACT_BELOW = 4096  # a filter leaving fewer candidates is answered exactly, by numpy
FILES_CHECK_S = 1.0  # how often a search checks that its version's files still exist


class IndexNotFound(NotFound):
    """An unknown index, version, or a version that was dropped (or whose files are gone)."""


@dataclass(frozen=True)
class Hit:
    """One search result: the item's id, text, cosine similarity and metadata."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "score": self.score, "metadata": self.metadata}


# --- collecting a pipeline's retrievals (the eval runner) -------------------------------

_collector: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "llmops_nb_retrievals", default=None
)


@contextmanager
def collect_retrievals() -> Iterator[list[dict[str, Any]]]:
    """Every search made inside the block (threads and tasks started in it included)
    appends {index, query, hits} to the yielded list."""
    found: list[dict[str, Any]] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)


# --- the index -----------------------------------------------------------------------


_loaded: dict[str, tuple[Any, Items]] = {}  # folder -> (hnswlib index, items), per process
_load_lock = threading.Lock()


class Index:
    """One version of a vector index. `search`, `add`, `delete`; `ref` is `name@version`."""

    def __init__(self, row: Any, project: str, *, ef: int | None = None, created: bool = False):
        self._row = row
        self.project = project
        self.ef = int(ef or row.ef)
        self.created = created
        self._checked = 0.0  # when the files were last seen (monotonic seconds)
        self._path = config.home() / row.path

    name = property(lambda self: str(self._row.name))
    version = property(lambda self: int(self._row.version))
    hash = property(lambda self: str(self._row.hash))
    embed_model = property(lambda self: str(self._row.embed_model))
    dim = property(lambda self: int(self._row.dim))
    space = property(lambda self: str(self._row.space))
    M = property(lambda self: int(self._row.m))
    ef_construction = property(lambda self: int(self._row.ef_construction))
    created_at: datetime = property(lambda self: self._row.created_at)  # type: ignore[assignment]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def path(self) -> Path:
        """The version's folder (under LLMOPS_NB_HOME as it was when the handle was made)."""
        return self._path

    def __len__(self) -> int:
        return int(self._row.n_items)

    def describe(self) -> str:
        status = "created" if self.created else "unchanged"
        size = f"{len(self)} items, {self.embed_model}"
        return f"{status}: index {self.name} v{self.version} ({size})"

    def __repr__(self) -> str:
        return (
            f"Index({self.ref!r}, items={len(self)}, model={self.embed_model!r}, dim={self.dim}, "
            f"M={self.M}, ef={self.ef})"
        )

    @property
    def items(self) -> pl.DataFrame:
        """The items as polars: id, text, metadata (a JSON string)."""
        import polars as pl

        items = self._load()[1]
        return pl.DataFrame(
            {
                "id": items.ids,
                "text": items.texts,
                "metadata": [json.dumps(m, sort_keys=True) for m in items.metadata],
            }
        )

    # --- search ------------------------------------------------------------------

    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 5,
        filter: Mapping[str, Any] | Callable[[dict[str, Any]], bool] | None = None,
        *,
        ef: int | None = None,
    ) -> list[Hit]:
        """The K items nearest QUERY (a text, or a vector of the index's dimension), best
        first. `filter`: a metadata mapping ({"source": "a.md"}, a list value means any
        of) or a function of an item's metadata. One `retriever` span per search."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise RetrievalError(f"k must be a whole number of at least 1, not {k!r}")
        label = query if isinstance(query, str) else "<vector>"
        with tracing.span(
            f"retrieve {self.name}",
            kind="retriever",
            inputs={"query": label, "k": k, "filter": describe_filter(filter)},
            attributes={"llmops.index": self.ref, "llmops.index.model": self.embed_model},
        ) as sp:
            graph, items = self._load()
            vector = self._query_vector(query)
            hits = self._nearest(graph, items, vector, k, filter, ef or self.ef)
            recorded = [h.as_dict() for h in hits]
            sp.set_outputs(recorded)
            sp.set_attribute("llmops.retrieval.hits", len(hits))
        found = _collector.get()
        if found is not None:
            found.append({"index": self.ref, "query": label, "hits": recorded})
        return hits

    def _query_vector(self, query: Any) -> np.ndarray:
        import numpy as np

        if isinstance(query, str):
            if not query.strip():
                raise RetrievalError("the query is empty: search with some text")
            return self._embed([query])[0]
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise RetrievalError(
                f"the query vector has {vector.shape[0]} dimensions, but index {self.ref} "
                f"holds {self.dim}-dimensional vectors"
            )
        return unit(vector[None, :])[0]

    def _nearest(
        self, graph: Any, items: Items, vector: np.ndarray, k: int, filter: Any, ef: int
    ) -> list[Hit]:
        import numpy as np

        rows: np.ndarray | None = None  # candidate positions, when a filter narrows them
        if filter is not None:
            keep = filter_fn(filter)
            rows = np.array([i for i, m in enumerate(items.metadata) if keep(m)], dtype=np.int64)
            if rows.size == 0:
                return []
        k = min(k, len(items.ids) if rows is None else rows.size)
        if rows is not None and rows.size <= max(EXACT_BELOW, 10 * k):
            return self._exact(items, rows, vector, k)
        position = items.row_of_label
        allowed = None if rows is None else {items.labels[int(r)] for r in rows}
        graph.set_ef(max(ef, k))
        try:
            if allowed is None:
                labels, distances = graph.knn_query(vector, k=k)
            else:
                labels, distances = graph.knn_query(
                    vector, k=k, num_threads=1, filter=allowed.__contains__
                )
        except RuntimeError:  # hnswlib found fewer than k (a sparse filter): answer exactly
            everything = np.arange(len(items.ids), dtype=np.int64)
            return self._exact(items, everything if rows is None else rows, vector, k)
        return [
            self._hit(items, position[int(label)], 1.0 - float(dist))
            for label, dist in zip(labels[0], distances[0])
        ]

    def _exact(self, items: Items, rows: np.ndarray, vector: np.ndarray, k: int) -> list[Hit]:
        import numpy as np

        sims = items.vectors[rows] @ vector
        top = np.argsort(-sims, kind="stable")[:k]
        return [self._hit(items, int(rows[t]), float(sims[t])) for t in top]

    @staticmethod
    def _hit(items: Items, i: int, score: float) -> Hit:
        return Hit(items.ids[i], items.texts[i], round(score, 6), items.metadata[i])

    # --- new versions ---------------------------------------------------------------

    def add(
        self,
        texts: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        *,
        vectors: Any = None,
    ) -> Index:
        """A new version with these items added (this handle moves to it); ids must be
        new. Texts may be a list or a frame of chunks (id, text, metadata columns)."""
        graph, old = self._load()
        texts, ids, metadata = normalise(texts, ids, metadata, first_id=next_id(old.ids))
        clash = sorted(set(ids) & set(old.ids))
        if clash:
            raise RetrievalError(
                f"index {self.ref} already has an item with id {clash[0]!r}: ids must be unique "
                "(delete it first, or give new ids)"
            )
        new_vectors = self._vectors_for(texts, vectors)
        first_label = graph.element_count
        labels = list(range(first_label, first_label + len(texts)))
        merged = Items(
            old.labels + labels,
            old.ids + ids,
            old.texts + texts,
            old.metadata + metadata,
            stack(old.vectors, new_vectors),
        )

        def build(folder: Path) -> None:
            copy = _copy_graph(self, folder, first_label + len(labels))
            copy.add_items(new_vectors, labels)
            copy.save_index(str(folder / "index.bin"))

        self._new_version(merged, build)
        return self

    def delete(self, ids: str | Sequence[str]) -> Index:
        """A new version without these items (this handle moves to it)."""
        wanted = [ids] if isinstance(ids, str) else list(ids)
        if not wanted:
            raise RetrievalError("delete needs at least one id")
        graph, old = self._load()
        position = old.position()
        unknown = [i for i in wanted if i not in position]
        if unknown:
            raise RetrievalError(f"index {self.ref} has no item with id {unknown[0]!r}")
        gone = {position[i] for i in wanted}
        if len(gone) == len(old.ids):
            raise RetrievalError(
                f"deleting {len(gone)} ids would leave index {self.ref} empty; drop it instead"
            )
        keep = [i for i in range(len(old.ids)) if i not in gone]
        merged = Items(
            [old.labels[i] for i in keep],
            [old.ids[i] for i in keep],
            [old.texts[i] for i in keep],
            [old.metadata[i] for i in keep],
            old.vectors[keep],
        )

        def build(folder: Path) -> None:
            copy = _copy_graph(self, folder, graph.max_elements)
            for i in sorted(gone):
                copy.mark_deleted(old.labels[i])
            copy.save_index(str(folder / "index.bin"))

        self._new_version(merged, build)
        return self

    def drop(self) -> None:
        """Drop this version: its row is marked dropped and its files removed."""
        from .store import get_store

        get_store().drop_index_version(self._row.id)
        with _load_lock:
            _loaded.pop(str(self.path), None)
        shutil.rmtree(self.path, ignore_errors=True)

    def _new_version(self, items: Items, build: Callable[[Path], None]) -> None:
        digest = content_hash(items, self.embed_model, self.space, self.M, self.ef_construction)
        row, created = _store_version(
            self.project, self.name, digest, items, build,
            embed_model=self.embed_model, dim=self.dim, space=self.space, m=self.M,
            ef_construction=self.ef_construction, ef=self.ef, parent_id=self._row.id,
        )  # fmt: skip
        self._row, self.created = row, created
        self._path, self._checked = config.home() / row.path, 0.0

    # --- files and embeddings ----------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = _embed(texts, self.embed_model)
        if vectors.shape[1] != self.dim:
            raise RetrievalError(
                f"embedding model {self.embed_model} now gives {vectors.shape[1]}-dimensional "
                f"vectors, but index {self.ref} holds {self.dim}-dimensional ones: "
                "rebuild the index with lo.index(NAME, texts)"
            )
        return vectors

    def _vectors_for(self, texts: list[str], vectors: Any) -> np.ndarray:
        if vectors is None:
            return self._embed(texts)
        matrix = given_vectors(vectors, len(texts))
        if matrix.shape[1] != self.dim:
            raise RetrievalError(
                f"the vectors have {matrix.shape[1]} dimensions, but index {self.ref} holds "
                f"{self.dim}-dimensional ones"
            )
        return matrix

    def _load(self) -> tuple[Any, Items]:
        """The graph and items, loaded once per process. A version dropped by another
        kernel is noticed within FILES_CHECK_S: its files are gone."""
        key = str(self.path)
        now = time.monotonic()
        if now - self._checked > FILES_CHECK_S and not (self.path / "index.bin").exists():
            raise IndexNotFound(
                f"the files of index {self.ref} are not at {self.path}: it was dropped, or "
                "this machine's LLMOPS_NB_HOME is not the one that built it"
            )
        self._checked = now
        with _load_lock:
            found = _loaded.get(key)
        if found is not None:
            return found
        import hnswlib
        import numpy as np
        import polars as pl

        frame = pl.read_parquet(self.path / "items.parquet")
        items = Items(
            frame["label"].to_list(),
            frame["id"].to_list(),
            frame["text"].to_list(),
            [json.loads(m) for m in frame["metadata"].to_list()],
            np.load(self.path / "vectors.npy"),
        )
        graph = hnswlib.Index(space=self.space, dim=self.dim)
        graph.load_index(str(self.path / "index.bin"))
        with _load_lock:
            _loaded[key] = (graph, items)
        return graph, items


def _copy_graph(idx: Index, folder: Path, max_elements: int) -> Any:
    """A fresh hnswlib object loaded from IDX's file, with room for MAX_ELEMENTS."""
    import hnswlib

    copy = hnswlib.Index(space=idx.space, dim=idx.dim)
    copy.load_index(str(idx.path / "index.bin"), max_elements=max_elements)
    return copy


# --- building -------------------------------------------------------------------------


def index(
    name: str,
    texts: Any = None,
    ids: Sequence[str] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    embed: str = "local/minilm",
    *,
    vectors: Any = None,
    M: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef: int = DEFAULT_EF,
    project: str | None = None,
) -> Index:
    """Build (or find, when unchanged) an index of TEXTS, or reopen `name@version`.

    texts: a list of strings, or a frame of chunks (`lo.chunk`: id, text and metadata
    columns). ids default to the frame's `id` column, else "0", "1", ...; metadata is
    one mapping per text. `vectors` skips embedding (then `embed` names the model that
    embeds queries). `M`, `ef_construction` and `ef` are hnswlib's settings.
    """
    project = config.check_name("project", project) if project else config.current_project()
    base, _, tag = str(name).strip().partition("@")
    config.check_name("index", base)
    if texts is None:
        if ids is not None or metadata is not None or vectors is not None:
            raise RetrievalError(f"lo.index({name!r}) needs texts to go with ids or metadata")
        return _open(base, tag, project, ef=None if ef == DEFAULT_EF else ef)
    if tag:
        raise RetrievalError(
            f"{name!r} names a version: build with a plain name (lo.index({base!r}, texts)), "
            f"or reopen it with lo.index({name!r})"
        )
    for key, value, least in (("M", M, 2), ("ef_construction", ef_construction, 1), ("ef", ef, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise RetrievalError(f"{key} must be a whole number of at least {least}, not {value!r}")
    if not isinstance(embed, str) or not embed.strip():
        raise RetrievalError("embed must be an embedding model id such as 'local/minilm'")
    texts, ids, metadata = normalise(texts, ids, metadata, first_id=0)
    matrix_given = None if vectors is None else given_vectors(vectors, len(texts))
    items = Items(list(range(len(texts))), ids, texts, metadata, empty())
    digest = content_hash(items, embed, "cosine", M, ef_construction)
    from .store import get_store

    same = get_store().index_by_hash(project, base, digest)
    if same is not None:
        return Index(same, project, ef=ef)  # unchanged: nothing embedded, nothing written
    matrix = matrix_given if matrix_given is not None else _embed(texts, embed)
    items = Items(items.labels, ids, texts, metadata, matrix)

    def build(folder: Path) -> None:
        import hnswlib

        graph = hnswlib.Index(space="cosine", dim=matrix.shape[1])
        graph.init_index(max_elements=len(texts), ef_construction=ef_construction, M=M)
        graph.add_items(matrix, items.labels)
        graph.save_index(str(folder / "index.bin"))

    row, created = _store_version(
        project, base, digest, items, build, embed_model=embed, dim=int(matrix.shape[1]),
        space="cosine", m=M, ef_construction=ef_construction, ef=ef, parent_id=None,
    )  # fmt: skip
    return Index(row, project, ef=ef, created=created)


def _open(name: str, tag: str, project: str, ef: int | None) -> Index:
    from .store import get_store

    version: int | None = None
    if tag and tag != "latest":
        value = tag[1:] if tag.startswith("v") else tag
        if not value.isdigit():
            raise RetrievalError(f"an index version is a number, as in {name}@2, not {tag!r}")
        version = int(value)
    try:
        row = get_store().index_version(project, name, version)
    except NotFound as exc:
        raise IndexNotFound(str(exc)) from None
    return Index(row, project, ef=ef)


def indexes(project: str | None = None) -> pl.DataFrame:
    """The project's indexes (latest live version each): name, version, items, model, ..."""
    import polars as pl

    from .store import get_store

    rows = get_store().list_indexes(project or config.current_project())
    schema = {
        "name": pl.String, "version": pl.Int64, "n_items": pl.Int64, "embed_model": pl.String,
        "dim": pl.Int64, "space": pl.String, "m": pl.Int64, "ef": pl.Int64,
        "versions": pl.Int64, "author": pl.String, "created_at": pl.Datetime("us", "UTC"),
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def _store_version(
    project: str,
    name: str,
    digest: str,
    items: Items,
    build: Callable[[Path], None],
    **fields: Any,
) -> tuple[Any, bool]:
    """Write the version's files into a fresh folder, then its row; a failure leaves
    neither (the folder is named by the hash, so a concurrent twin finds it whole)."""
    from .store import get_store

    store = get_store()
    same = store.index_by_hash(project, name, digest)
    if same is not None:
        return same, False
    relative = Path("indexes") / project / name / digest[:24]
    final = config.home() / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        _write_items(staging, items)
        build(staging)
        if final.exists():
            shutil.rmtree(final)  # a dropped version's leftovers, or a twin's: same content
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        return store.add_index_version(
            project, name, hash=digest, n_items=len(items.ids), path=str(relative),
            author=config.author(), **fields,
        )  # fmt: skip
    except BaseException:
        if store.index_by_hash(project, name, digest) is None:
            shutil.rmtree(final, ignore_errors=True)
        raise


def _write_items(folder: Path, items: Items) -> None:
    import numpy as np
    import polars as pl

    pl.DataFrame(
        {
            "label": pl.Series(items.labels, dtype=pl.Int64),
            "id": pl.Series(items.ids, dtype=pl.String),
            "text": pl.Series(items.texts, dtype=pl.String),
            "metadata": pl.Series(
                [json.dumps(m, sort_keys=True, default=str) for m in items.metadata],
                dtype=pl.String,
            ),
        }
    ).write_parquet(folder / "items.parquet")
    np.save(folder / "vectors.npy", items.vectors)


def _embed(texts: list[str], model: str) -> np.ndarray:
    """Unit vectors for TEXTS; litellm models get requests of EMBED_BATCH texts."""
    import numpy as np

    from .llm.embeddings import LOCAL_EMBEDDERS, embed

    size = len(texts) if model.lower() in LOCAL_EMBEDDERS else EMBED_BATCH
    parts = [embed(texts[i : i + size], model) for i in range(0, len(texts), size)]
    return unit(np.concatenate(parts) if len(parts) > 1 else parts[0])
