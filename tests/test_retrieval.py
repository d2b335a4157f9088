"""lo.index: real hnswlib over the real MiniLM, versions in the store and files under
LLMOPS_NB_HOME, reopened from a second process; every search a retriever span."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import llmops_nb as lo
from llmops_nb.retrieval import IndexNotFound, RetrievalError
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer

DOCS = [
    "To reset your password, open the login page and click 'Forgot password'.",
    "Our office is in Paris, near the Gare du Nord.",
    "Invoices are emailed on the first day of every month.",
    "The API allows 60 requests per minute per key.",
    "Refunds are paid back to the original card within ten days.",
]
META = [{"source": "account.md"}, {"source": "about.md"}, {"source": "billing.md"},
        {"source": "api.md"}, {"source": "billing.md"}]  # fmt: skip


def _rows(name: str) -> list[tuple[int, str, int, str]]:
    with get_store().engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT version, hash, n_items, path FROM vector_index WHERE name = ? ORDER BY version",
            (name,),
        ).fetchall()


def test_search_finds_the_relevant_text_and_is_a_retriever_span(llmops_home: Path) -> None:
    idx = lo.index("docs", DOCS, metadata=META)
    assert (idx.ref, len(idx), idx.dim, idx.embed_model) == ("docs@1", 5, 384, "local/minilm")
    assert idx.describe() == "created: index docs v1 (5 items, local/minilm)"

    hits = idx.search("how do I reset my password?", k=3)
    assert [h.id for h in hits][0] == "0"
    assert hits[0].text == DOCS[0] and hits[0].metadata == {"source": "account.md"}
    assert hits[0].score > 0.5 and hits[0].score > hits[1].score >= hits[2].score

    trace = lo.last_trace()
    (retriever,) = [s for s in trace.spans if s.kind == "retriever"]
    assert retriever.name == "retrieve docs" and retriever.parent_id is None
    assert retriever.inputs == {"query": "how do I reset my password?", "k": 3, "filter": None}
    assert [h["id"] for h in retriever.outputs] == [h.id for h in hits]
    assert [h["score"] for h in retriever.outputs] == [h.score for h in hits]
    assert retriever.attributes["llmops.index"] == "docs@1"
    (embedding,) = [s for s in trace.spans if s.kind == "embedding"]
    assert embedding.parent_id == retriever.id  # the query's embedding, under the search

    # the version's files live under LLMOPS_NB_HOME, its row in the store
    ((version, digest, n_items, path),) = _rows("docs")
    assert (version, n_items) == (1, 5) and len(digest) == 64
    folder = llmops_home / path
    assert sorted(p.name for p in folder.iterdir()) == ["index.bin", "items.parquet", "vectors.npy"]
    assert np.load(folder / "vectors.npy").shape == (5, 384)


def test_versions_by_content_add_and_delete(llmops_home: Path) -> None:
    idx = lo.index("docs", DOCS, metadata=META)
    again = lo.index("docs", DOCS, metadata=META)
    assert again.describe() == "unchanged: index docs v1 (5 items, local/minilm)"
    assert len(_rows("docs")) == 1

    idx.add(["Support answers the phone from 9 to 5 on weekdays."], metadata=[{"source": "x"}])
    assert (idx.ref, len(idx)) == ("docs@2", 6)
    assert idx.search("when can I call support?", k=1)[0].id == "5"
    idx.delete(["1", "3"])
    assert (idx.ref, len(idx)) == ("docs@3", 4)
    assert "1" not in {h.id for h in idx.search("where is the office?", k=4)}

    # every version stays as it was, reopened by ref
    first = lo.index("docs@1")
    assert len(first) == 5 and first.search("where is the office?", k=1)[0].id == "1"
    assert lo.index("docs").ref == "docs@3" and lo.index("docs@latest").ref == "docs@3"
    assert lo.index("docs@v2").items["id"].to_list() == ["0", "1", "2", "3", "4", "5"]
    assert [r[0] for r in _rows("docs")] == [1, 2, 3]

    listing = lo.indexes()
    columns = ("name", "version", "n_items", "embed_model", "dim", "versions")
    assert listing.select(columns).rows() == [("docs", 3, 4, "local/minilm", 384, 3)]


_SECOND_PROCESS = """
import json, sys
import llmops_nb as lo
idx = lo.index(sys.argv[1])
hits = idx.search(sys.argv[2], k=2)
print(json.dumps({"ref": idx.ref, "n": len(idx), "hits": [h.as_dict() for h in hits]}))
"""


def test_an_index_reopens_in_another_process(llmops_home: Path) -> None:
    idx = lo.index("docs", DOCS, metadata=META, M=8, ef=32)
    idx.add(["Support answers the phone from 9 to 5 on weekdays."])
    here = [h.as_dict() for h in lo.index("docs@2").search("monthly invoice email", k=2)]
    env = {**os.environ, "LLMOPS_NB_HOME": str(llmops_home)}
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_PROCESS, "docs@2", "monthly invoice email"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there["ref"] == "docs@2" and there["n"] == 6
    assert [h["id"] for h in there["hits"]] == [h["id"] for h in here]
    assert [h["score"] for h in there["hits"]] == pytest.approx([h["score"] for h in here])
    reopened = lo.index("docs@1")
    assert (reopened.M, reopened.ef, reopened.ef_construction) == (8, 32, 200)


def test_filters_narrow_the_hits_exactly_or_through_hnswlib() -> None:
    idx = lo.index("docs", DOCS, metadata=META)
    hits = idx.search("money", k=5, filter={"source": "billing.md"})
    assert {h.id for h in hits} == {"2", "4"}
    hits = idx.search("money", k=5, filter={"source": ["api.md", "about.md"]})
    assert {h.id for h in hits} == {"1", "3"}
    assert idx.search("money", filter=lambda m: m["source"].startswith("acc"))[0].id == "0"
    assert idx.search("money", filter={"source": "none.md"}) == []

    # a large index: the filter goes into hnswlib's search
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6000, 16)).astype(np.float32)
    big = lo.index(
        "big", [f"item {i}" for i in range(6000)], vectors=vectors,
        metadata=[{"even": i % 2 == 0} for i in range(6000)],
    )  # fmt: skip
    hits = big.search(vectors[10], k=10, filter={"even": True})
    assert hits[0].id == "10" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(int(h.id) % 2 == 0 for h in hits) and len(hits) == 10


def test_recall_against_brute_force_with_the_default_settings() -> None:
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(50, 32))
    vectors = (centers[rng.integers(0, 50, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(
        np.float32
    )
    idx = lo.index("recall", [f"v{i}" for i in range(3000)], vectors=vectors)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    found = 0
    for q in queries:
        exact = set(np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10].tolist())
        found += len(exact & {int(h.id) for h in idx.search(q, k=10)})
    assert found / 500 >= 0.95


def test_a_litellm_embedding_model_and_a_dimension_that_changes(
    fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", fresh_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-retrieval")
    idx = lo.index("remote", DOCS, embed="openai/text-embedding-3-small")
    assert idx.dim == 64
    assert idx.search(DOCS[2], k=1)[0].id == "2"  # the test server's vectors are per text
    fresh_server.configure(embedding_dim=16)
    with pytest.raises(RetrievalError, match="now gives 16-dimensional vectors.*remote@1 holds 64"):
        idx.search("anything else")
    with pytest.raises(RetrievalError, match="query vector has 3 dimensions"):
        idx.search([0.1, 0.2, 0.3])


def _nothing_written(home: Path) -> None:
    with get_store().engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM vector_index").scalar() == 0
    assert not (home / "indexes").exists() or not any((home / "indexes").rglob("*.bin"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": []}, "the corpus is empty"),
        ({"texts": ["  ", ""]}, "the corpus is empty: every text is blank"),
        ({"texts": ["a", "b", "c"], "ids": ["x", "y", "x"]}, "ids must be unique: 'x' appears 2"),
        ({"texts": ["a", "b"], "ids": ["x"]}, "1 ids for 2 texts"),
        ({"texts": ["a", 3]}, "text 1 is a int, not a string"),
        ({"texts": ["a"], "metadata": ["nope"]}, "one mapping"),
        ({"texts": ["a"], "M": 0}, "M must be a whole number of at least 2"),
        ({"texts": ["a"], "vectors": [[1.0, 2.0], [3.0, 4.0]]}, "matrix of 1 rows"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    llmops_home: Path, kwargs: dict, message: str
) -> None:
    texts = kwargs.pop("texts")
    with pytest.raises(RetrievalError, match=message) as err:
        lo.index("docs", texts, **kwargs)
    assert "\n" not in str(err.value)
    _nothing_written(llmops_home)


def test_unknown_and_dropped_versions(llmops_home: Path) -> None:
    with pytest.raises(IndexNotFound, match="unknown index 'docs'.*no indexes yet"):
        lo.index("docs@1")
    idx = lo.index("docs", DOCS)
    with pytest.raises(IndexNotFound, match=r"'docs' has no version 7 \(the latest is docs@1\)"):
        lo.index("docs@7")
    with pytest.raises(RetrievalError, match="names a version"):
        lo.index("docs@1", DOCS)
    with pytest.raises(RetrievalError, match="has no item with id 'zz'"):
        idx.delete(["zz"])
    with pytest.raises(RetrievalError, match="already has an item with id '2'"):
        idx.add(["new text"], ids=["2"])
    with pytest.raises(RetrievalError, match="would leave index docs@1 empty"):
        idx.delete([str(i) for i in range(5)])
    assert len(_rows("docs")) == 1

    other_handle = lo.index("docs@1")
    idx.add(["Support answers the phone from 9 to 5 on weekdays."])  # docs@2
    first = lo.index("docs@1")
    first.drop()
    with pytest.raises(IndexNotFound, match=r"docs@1 was dropped .*the latest is docs@2"):
        lo.index("docs@1")
    with pytest.raises(IndexNotFound, match="files of index docs@1 are not at"):
        other_handle.search("password")  # a handle opened before the drop
    assert lo.index("docs").search("reset password", k=1)[0].id == "0"


def test_indexes_are_per_project() -> None:
    lo.index("docs", DOCS)
    lo.set_project("other")
    with pytest.raises(IndexNotFound, match="unknown index 'docs' in project 'other'"):
        lo.index("docs")
    assert lo.indexes().height == 0
