"""lo.chunk: tokens (MiniLM's tokenizer), chars and sentences, with stable ids."""

from __future__ import annotations

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.chunking import ChunkError, _tokenizer

TEXT = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(60))


def test_token_chunks_have_the_size_and_overlap_asked_and_cover_the_text() -> None:
    chunks = lo.chunk(TEXT, size=50, overlap=10, by="tokens")
    assert chunks.columns[:6] == ["id", "text", "doc_id", "chunk", "start", "end"]
    tok = _tokenizer()
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in chunks["text"]]
    assert all(n <= 50 for n in lengths) and lengths[0] == 50
    rows = chunks.to_dicts()
    for row in rows:
        assert TEXT[row["start"] : row["end"]] == row["text"]
    for a, b in zip(rows, rows[1:]):
        assert b["start"] < a["end"]  # overlapping
        shared = TEXT[b["start"] : a["end"]]
        assert len(tok(shared, add_special_tokens=False)["input_ids"]) == pytest.approx(10, abs=1)
    assert rows[-1]["end"] == len(TEXT)
    assert chunks["id"].to_list() == [f"{rows[0]['doc_id']}#{n}" for n in range(len(rows))]


def test_ids_are_stable_and_follow_documents_not_their_order() -> None:
    docs = pl.DataFrame({"text": [TEXT, "A short second document."], "source": ["a.md", "b.md"]})
    first = lo.chunk(docs, size=300, overlap=30, by="chars")
    again = lo.chunk(docs.reverse(), size=300, overlap=30, by="chars")
    assert sorted(first["id"].to_list()) == sorted(again["id"].to_list())
    assert first.filter(pl.col("source") == "b.md")["text"].to_list() == [
        "A short second document."
    ]
    with_ids = lo.chunk(docs.with_columns(id=pl.Series(["guide", "faq"])), size=300, by="chars")
    assert with_ids["id"].to_list()[-1] == "faq#0"
    assert all(len(t) <= 300 for t in with_ids["text"])
    # a chunk of chars ends at a space when one is near, so words stay whole
    assert all(t.endswith(".") or t[-1].isalnum() for t in first["text"])


def test_sentence_chunks_and_one_line_index_building() -> None:
    chunks = lo.chunk(TEXT, size=4, overlap=1, by="sentences")
    first = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(4))
    assert chunks["text"][0] == first
    assert chunks["text"][1].startswith("Sentence number 3 ")
    idx = lo.index("topics", lo.chunk(TEXT, size=3, overlap=0, by="sentences"))
    hit = idx.search("sentence number 42", k=1)[0]
    assert "Sentence number 42 " in hit.text
    assert hit.metadata["chunk"] == 14 and hit.id.endswith("#14")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "every document is empty"),
        (([],), "the list of texts is empty"),
        ((TEXT, 10, 10), r"overlap \(10\) must be smaller than size \(10\)"),
        ((TEXT, 0), "size must be a whole number of at least 1"),
        ((TEXT, 10, 2, "words"), "by must be one of tokens, chars, sentences"),
        ((pl.DataFrame({"body": ["x"]}),), "no 'text' column"),
        ((pl.DataFrame({"id": ["a", "a"], "text": ["x", "y"]}),), "'a' appears twice"),
        ((42,), "not int"),
    ],
)
def test_bad_input_is_one_clear_error(args: tuple, message: str) -> None:
    with pytest.raises(ChunkError, match=message):
        lo.chunk(*args)
