"""Versioned datasets on both backends: content-hash versions, every input form, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb import datasets
from llmops_nb.datasets import DatasetError
from llmops_nb.errors import NotFound

ROWS = {"question": ["How do I reset?", "Where is my invoice?"], "answer": ["Settings", "Billing"]}


def test_versions_by_content_hash(store_url: str) -> None:
    v1 = lo.dataset("faq", pl.DataFrame(ROWS))
    assert (v1.version, v1.n_rows, v1.columns, v1.created) == (1, 2, ["question", "answer"], True)
    assert v1.describe() == "created: dataset faq v1 (2 rows)"
    same = lo.dataset("faq", pd.DataFrame(ROWS))  # same content from pandas: no new version
    assert (same.version, same.created, same.hash) == (1, False, v1.hash)
    v2 = lo.dataset("faq", pl.DataFrame(ROWS).with_columns(pl.col("answer").str.to_uppercase()))
    assert v2.version == 2 and v2.hash != v1.hash
    back = lo.dataset("faq@1")
    assert isinstance(back, pl.DataFrame) and back.to_dict(as_series=False) == ROWS
    assert lo.dataset("faq")["answer"].to_list() == ["SETTINGS", "BILLING"]  # latest
    assert lo.dataset("dataset:faq@2").equals(v2.df)
    listing = datasets.datasets()
    assert listing.select("name", "latest", "rows").rows() == [("faq", 2, 2)]


def test_every_input_form(tmp_path: Path) -> None:
    frame = pl.DataFrame(ROWS)
    frame.write_csv(tmp_path / "faq.csv")
    frame.write_ndjson(tmp_path / "faq.jsonl")
    frame.write_parquet(tmp_path / "faq.parquet")
    hashes = {
        lo.dataset("csv", str(tmp_path / "faq.csv")).hash,
        lo.dataset("jsonl", tmp_path / "faq.jsonl").hash,
        lo.dataset("parquet", str(tmp_path / "faq.parquet")).hash,
        lo.dataset(
            "dicts", [dict(zip(ROWS, r, strict=True)) for r in zip(*ROWS.values(), strict=True)]
        ).hash,
        lo.dataset("columns", ROWS).hash,
    }
    assert len(hashes) == 1
    assert lo.dataset("copy", "dataset:csv@1").source == "dataset:csv@1"
    assert lo.dataset("csv", str(tmp_path / "faq.csv")).source == str(tmp_path / "faq.csv")


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read '.*nope.csv': no such file"):
        lo.dataset("x", str(tmp_path / "nope.csv"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match=r"cannot read '.*bad.parquet': "):
        lo.dataset("x", str(tmp_path / "bad.parquet"))
    with pytest.raises(DatasetError, match=r"dataset 'x' is empty \(0 rows, 1 columns\)"):
        lo.dataset("x", pl.DataFrame({"a": []}))
    with pytest.raises(DatasetError, match="cannot use a int as data"):
        lo.dataset("x", 3)
    with pytest.raises(NotFound, match="unknown dataset 'ghost'"):
        lo.dataset("ghost@1")
    lo.dataset("real", ROWS)
    with pytest.raises(NotFound, match=r"dataset 'real' has no version 4 \(latest is v1\)"):
        lo.dataset("real@4")
    with pytest.raises(lo.LLMOpsError, match="invalid dataset name"):
        lo.dataset("bad name", ROWS)
