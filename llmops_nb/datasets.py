"""Versioned datasets: `lo.dataset(name, data)` stores a copy, `lo.dataset("name@2")` reads it.

A version's identity is the sha256 of its canonical content (column names, types and
rows), so storing the same rows twice creates nothing. Data comes from a polars or
pandas frame, a list of dicts, a dict of lists, a .csv/.jsonl/.json/.parquet path, or
`dataset:NAME@VERSION`. The rows are kept as Parquet bytes in the store.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import LLMOpsError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DatasetError",
    "DatasetVersion",
    "dataset",
    "datasets",
    "load_frame",
    "parse_dataset_ref",
]

PREFIX = "dataset:"
_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


class DatasetError(LLMOpsError, ValueError):
    """Data that cannot be read or used: an unreadable path, an empty table, a bad type."""


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version of a dataset; `.df` is its rows as polars."""

    name: str
    version: int
    hash: str
    n_rows: int
    columns: list[str]
    source: str | None
    author: str
    created_at: datetime
    project: str
    id: int
    created: bool = False
    _data: bytes = b""

    @property
    def ref(self) -> str:
        return f"{PREFIX}{self.name}@{self.version}"

    @property
    def df(self) -> pl.DataFrame:
        import polars as pl

        return pl.read_parquet(io.BytesIO(self._data))

    def describe(self) -> str:
        status = "created" if self.created else "unchanged"
        return f"{status}: dataset {self.name} v{self.version} ({self.n_rows} rows)"

    def __repr__(self) -> str:
        return (
            f"DatasetVersion({self.name!r}, version={self.version}, rows={self.n_rows}, "
            f"hash={self.hash[:12]!r})"
        )

    def _repr_html_(self) -> str:
        import html

        head = self.df.head(5)._repr_html_()
        return (
            f"<div><b>{html.escape(self.name)}</b> v{self.version} · {self.n_rows} rows · "
            f"{html.escape(', '.join(self.columns))} · {self.hash[:12]}</div>{head}"
        )


def _store():  # type: ignore[no-untyped-def]
    from .store import get_store

    return get_store()


def _project(project: str | None) -> str:
    return config.check_name("project", project) if project else config.current_project()


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """'name', 'name@3', 'dataset:name@3' or 'name@latest' -> (name, version or None)."""
    text = ref.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    name, _, tag = text.partition("@")
    config.check_name("dataset", name)
    if not tag or tag == "latest":
        return name, None
    value = tag[1:] if tag.startswith("v") else tag
    if not value.isdigit():
        raise DatasetError(f"dataset version must be a number, as in {name}@2, not {tag!r}")
    return name, int(value)


def _version(name: str, project: str, row: Any, created: bool = False) -> DatasetVersion:
    return DatasetVersion(
        name=name,
        version=row.version,
        hash=row.hash,
        n_rows=row.n_rows,
        columns=list(row.columns or []),
        source=row.source,
        author=row.author,
        created_at=row.created_at,
        project=project,
        id=row.id,
        created=created,
        _data=row.data,
    )


def get_version(ref: str, *, project: str | None = None) -> DatasetVersion:
    """The stored version for 'name@3' (latest without a version)."""
    project = _project(project)
    name, version = parse_dataset_ref(ref)
    return _version(name, project, _store().dataset_version(project, name, version))


def get_version_by_id(version_id: int, *, project: str | None = None) -> DatasetVersion:
    name, row = _store().dataset_version_by_id(version_id)
    return _version(name, _project(project), row)


def dataset(
    name: str,
    data: Any = None,
    *,
    source: str | None = None,
    project: str | None = None,
) -> Any:
    """`lo.dataset("faq@2")` -> the rows as polars; `lo.dataset("faq", df)` -> a stored
    DatasetVersion (a new version only when the content changed)."""
    if data is None:
        return get_version(name, project=project).df
    config.check_name("dataset", name)
    frame, origin = load_frame(data, project=project)
    return store_frame(name, frame, source=source or origin, project=project)


def store_frame(
    name: str, frame: pl.DataFrame, *, source: str | None = None, project: str | None = None
) -> DatasetVersion:
    """Store FRAME as a version of dataset NAME (unchanged content: the existing version)."""
    project = _project(project)
    check_rows(frame, name)
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    row, created = _store().add_dataset_version(
        project,
        name,
        hash=content_hash(frame),
        n_rows=frame.height,
        columns=list(frame.columns),
        data=buffer.getvalue(),
        source=source,
        author=config.author(),
    )
    return _version(name, project, row, created)


def datasets(*, project: str | None = None) -> pl.DataFrame:
    """The project's datasets: name, latest version, rows, columns, updated."""
    import polars as pl

    schema = {
        "name": pl.String,
        "latest": pl.Int64,
        "rows": pl.Int64,
        "columns": pl.String,
        "updated": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(_store().list_datasets(_project(project)), schema=schema)


def content_hash(frame: pl.DataFrame) -> str:
    """sha256 over the column names and types, then the rows as NDJSON."""
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in frame.schema.items()]).encode())
    digest.update(b"\n")
    digest.update(frame.write_ndjson().encode())
    return digest.hexdigest()


def check_rows(frame: pl.DataFrame, what: str) -> None:
    if frame.width == 0 or frame.height == 0:
        raise DatasetError(
            f"dataset {what!r} is empty ({frame.height} rows, {frame.width} columns): "
            "an eval needs at least one row"
        )


def load_frame(
    data: Any, *, project: str | None = None, base_dir: Path | None = None
) -> tuple[pl.DataFrame, str | None]:
    """Any accepted form of data -> (polars frame, where it came from)."""
    import polars as pl

    if isinstance(data, DatasetVersion):
        return data.df, data.ref
    if isinstance(data, pl.DataFrame):
        return data, None
    if isinstance(data, pl.LazyFrame):
        return data.collect(), None
    if type(data).__module__.startswith("pandas") and hasattr(data, "to_dict"):
        try:
            return pl.from_pandas(data), None
        except Exception as exc:
            raise DatasetError(f"cannot convert the pandas frame to polars: {exc}") from None
    if isinstance(data, str) and data.strip().startswith(PREFIX):
        version = get_version(data, project=project)
        return version.df, version.ref
    if isinstance(data, str | Path):
        path = Path(data).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return read_path(path), str(data)
    if isinstance(data, list):
        if data and not all(isinstance(r, dict) for r in data):
            raise DatasetError("a list of data must hold dicts, one per row")
        try:
            return pl.DataFrame(data, infer_schema_length=None), None
        except Exception as exc:
            raise DatasetError(f"cannot build a table from the rows: {exc}") from None
    if isinstance(data, dict):
        try:
            return pl.DataFrame(data), None
        except Exception as exc:
            raise DatasetError(f"cannot build a table from the columns: {exc}") from None
    raise DatasetError(
        f"cannot use a {type(data).__name__} as data: give a polars or pandas DataFrame, "
        "a list of dicts, a .csv/.jsonl/.parquet path, or 'dataset:NAME@VERSION'"
    )


def read_path(path: Path) -> pl.DataFrame:
    """Read a .csv/.tsv/.jsonl/.ndjson/.json/.parquet file; one clear error when it cannot."""
    import polars as pl

    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DatasetError(
            f"cannot read {str(path)!r}: unknown file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(_SUFFIXES)}"
        )
    if not path.is_file():
        raise DatasetError(f"cannot read {str(path)!r}: no such file")
    if suffix != ".parquet":
        _check_text(path, suffix)
    try:
        if suffix in (".csv", ".tsv"):
            return pl.read_csv(
                path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=10_000
            )
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path)
        if suffix == ".json":
            return pl.read_json(path)
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"cannot read {str(path)!r}: {reason}") from None


def _check_text(path: Path, suffix: str) -> None:
    """A text format must hold text: binary bytes are refused by name, instead of being
    parsed into an empty or garbled table."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        head.decode("utf-8")
        binary = b"\x00" in head
    except UnicodeDecodeError as exc:
        binary = exc.start < len(head) - 4  # not just a character cut at the block's end
    if binary:
        kind = suffix.lstrip(".").upper()
        raise DatasetError(
            f"cannot read {str(path)!r}: it is not a {kind} file (binary content, not "
            "UTF-8 text); give a text file, or a .parquet file for binary tables"
        )
