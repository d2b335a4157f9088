"""RAG pipelines as eval targets: a traced callable over a real hnswlib index and the
real MiniLM, calling a model over HTTP (the test server), scored by retrieval scorers."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.evals import EvalSpecError, ScorerError, run_cell
from llmops_nb.evals.retrieval_scorers import contexts_from_trace
from llmops_nb.store import get_store
from llmops_nb.testing import serve

DOCS = [
    "To reset your password, open the login page and click Forgot password.",
    "Our office is in Paris, near the Gare du Nord station.",
    "Invoices are emailed on the first day of every month.",
    "The API allows 60 requests per minute for each key.",
    "Refunds are paid back to the original card within ten days.",
]
DATA = pl.DataFrame(
    {
        "question": [
            "How do I reset my password?",
            "Where is the office?",
            "When are invoices sent?",
        ],
        "relevant_ids": [["0"], ["1"], ["4"]],  # the third label is wrong on purpose
    }
)
KEY = "sk-rag-test"


def _reply(body: dict[str, Any]) -> str:
    """The model answers with the first passage it was given; the judge grades."""
    messages = body["messages"]
    if "impartial grader" in messages[0]["content"]:
        return json.dumps({"score": 0.9, "reason": "supported by passage 1"})
    text = messages[-1]["content"]
    if "Passages:" in text:
        return text.split("Passages:\n", 1)[1].splitlines()[0]
    return "I do not know."


@pytest.fixture
def rag() -> Any:
    with serve(reply=_reply) as srv:
        idx = lo.index("docs", DOCS)
        model = {"model": "openai/gpt-4o-mini", "api_base": srv.base_url, "api_key": KEY}

        @lo.trace
        def answer(question: str) -> str:
            hits = idx.search(question, k=2)
            passages = "\n".join(h.text for h in hits)
            reply = lo.complete(
                model["model"], f"{question}\nPassages:\n{passages}",
                api_base=srv.base_url, api_key=KEY,
            )  # fmt: skip
            return reply.text

        yield srv, idx, model, answer


def test_a_target_runs_beside_prompts_traced_and_scored(rag: Any) -> None:
    srv, idx, model, answer = rag
    judge = {"model": "openai/gpt-4o-mini", "api_base": srv.base_url, "api_key": KEY}
    run = lo.evaluate(
        prompts=[{"template": "{{question}}", "label": "bare"}],
        models=[{**model, "label": "mini"}],
        targets=[answer],
        data=DATA,
        scorers=[
            {"recall_at_k": {"k": 2}}, "mrr", {"ndcg": {"k": 2}}, {"precision_at_k": {"k": 2}},
            "context_relevance", "faithfulness",
            {"faithfulness": {"name": "faithful_judge", **judge}},
        ],
        name="rag",
        progress=False,
    )  # fmt: skip
    assert run.status == "done" and run.n_cells == 6
    assert run.prompts == ["bare", "answer"] and run.models == ["mini", "target"]
    assert run.targets == ["answer"]
    results = run.results
    target = results.filter(pl.col("prompt") == "answer").sort("row_index")
    assert target["model"].unique().to_list() == ["target"]

    # the scores follow what the index returned for each question
    for row in target.iter_rows(named=True):
        ranked = [h.id for h in idx.search(DATA["question"][row["row_index"]], k=2)]
        relevant = DATA["relevant_ids"][row["row_index"]].to_list()
        assert row["output"] == DOCS[int(ranked[0])]
        assert row["recall_at_k"] == sum(r in ranked for r in relevant) / len(relevant)
        assert row["precision_at_k"] == sum(r in relevant for r in ranked) / 2
        rank = next((i + 1 for i, r in enumerate(ranked) if r in relevant), None)
        assert row["mrr"] == (1 / rank if rank else 0.0)
        dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(ranked) if r in relevant)
        assert row["ndcg"] == pytest.approx(dcg)
        assert row["faithfulness"] > 0.95  # the answer is a retrieved passage, verbatim
        assert 0.0 < row["context_relevance"] <= 1.0
        assert row["faithful_judge"] == 0.9
        assert row["input_tokens"] > 0 and row["cost"] > 0 and row["latency_ms"] > 0
    assert target["recall_at_k"].to_list()[:2] == [1.0, 1.0]
    assert target["recall_at_k"][2] == 0.0  # the wrong label
    # the judge saw the retrieved passages as the reference
    graded = [r for r in srv.requests if "impartial grader" in r["body"]["messages"][0]["content"]]
    assert len(graded) == 3
    assert any(DOCS[0] in g["body"]["messages"][1]["content"] for g in graded)

    # prompt cells have no retrieval: those scores say so instead of inventing a number
    bare = results.filter(pl.col("prompt") == "bare")
    assert bare["recall_at_k"].null_count() == 3
    assert bare["recall_at_k_reason"][0].startswith("no retrieval in this row's call")

    summary = run.summary()
    cell = summary.filter(pl.col("prompt") == "answer").row(0, named=True)
    assert cell["model"] == "target" and cell["n"] == 3
    assert cell["recall_at_k"] == pytest.approx(2 / 3)

    # each target row is one trace: eval -> answer -> retriever (+ embedding) and llm
    trace = lo.get_trace(target["trace_id"][0])
    by_kind: dict[str, list[Any]] = {}
    for span in trace.spans:
        by_kind.setdefault(span.kind, []).append(span)
    (root,) = by_kind["eval"]
    (chain,) = by_kind["chain"]
    (retriever,) = by_kind["retriever"]
    (llm,) = by_kind["llm"]
    assert chain.name == "answer" and chain.parent_id == root.id
    assert retriever.parent_id == chain.id and llm.parent_id == chain.id
    assert by_kind["embedding"][0].parent_id == retriever.id
    assert root.inputs == {"question": DATA["question"][0]}
    assert root.outputs == target["output"][0]
    expected = [h.id for h in idx.search(DATA["question"][0], k=2)]
    assert [h["id"] for h in retriever.outputs] == expected
    assert trace.input_tokens == target["input_tokens"][0]
    # the same contexts read back from the stored trace
    assert [h["text"] for h in contexts_from_trace(trace)] == [DOCS[int(i)] for i in expected]
    assert KEY not in json.dumps(run.spec)


def test_targets_in_a_cell_and_async_targets(rag: Any) -> None:
    srv, idx, model, answer = rag

    async def lookup(question: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        hits = idx.search(question, k=1)
        return {"answer": hits[0].text, "contexts": [h.text for h in hits]}

    body = """
targets: [answer, lookup]
data: df
scorers:
  - recall_at_k: {k: 1}
  - faithfulness
"""
    run = run_cell(
        "rag-cell", body, namespace={"answer": answer, "lookup": lookup, "df": DATA},
        progress=False,
    )  # fmt: skip
    assert run.prompts == ["answer", "lookup"] and run.models == ["target"]
    results = run.results.sort("prompt", "row_index")
    looked = results.filter(pl.col("prompt") == "lookup")
    assert looked["output"].to_list()[:2] == [DOCS[0], DOCS[1]]
    assert looked["recall_at_k"].to_list() == [1.0, 1.0, 0.0]
    assert looked["faithfulness"].min() > 0.95
    assert run.spec["targets"][1]["function"].endswith("lookup")


def test_a_target_that_raises_is_an_error_in_each_row(rag: Any) -> None:
    def broken(question: str) -> str:
        raise ValueError(f"no retriever for {question!r}")

    run = lo.evaluate(targets=[broken], data=DATA, scorers=["mrr"], name="broken", progress=False)
    assert run.status == "done"
    results = run.results
    assert results["error"].to_list() == [
        f"ValueError: no retriever for {q!r}" for q in DATA["question"]
    ]
    assert results["mrr"].to_list() == [0.0, 0.0, 0.0] and not results["passed"].any()
    assert lo.get_trace(results["trace_id"][0]).status == "error"


def _runs() -> int:
    with get_store().engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM eval_run").scalar()


def test_bad_targets_and_labels_are_one_clear_error_before_any_write(rag: Any) -> None:
    srv, idx, model, answer = rag
    cases = [
        ("targets: [missing]\ndata: df", "no function 'missing' in the notebook"),
        ("targets: [three]\ndata: df", "target 'three' is a int, not a function"),
        ("targets: [needs_topic]\ndata: df", "takes the argument 'topic', but the data has no"),
        ("targets: [answer]\ndata: df\nscorers: [recall_at_k]",
         "argument 'relevant_ids' uses {{relevant_ids}}, but the data has no column"),
    ]  # fmt: skip

    def needs_topic(question: str, topic: str) -> str:
        return topic

    namespace = {"answer": answer, "three": 3, "needs_topic": needs_topic, "df": DATA}
    for body, message in cases:
        ns = dict(namespace)
        if "recall_at_k" in body:
            ns["df"] = DATA.drop("relevant_ids")
        with pytest.raises((EvalSpecError, ScorerError), match=message) as err:
            run_cell("bad", body, namespace=ns, progress=False)
        assert "\n" not in str(err.value)
    assert _runs() == 0


def test_ranking_scorers_match_chunks_by_document() -> None:
    docs = pl.DataFrame(
        {"id": ["pw", "office"], "text": [DOCS[0] + " " + DOCS[3], DOCS[1] + " " + DOCS[2]]}
    )
    idx = lo.index("chunks", lo.chunk(docs, size=1, overlap=0, by="sentences"))

    @lo.trace
    def find(question: str) -> str:
        return idx.search(question, k=3)[0].text

    data = pl.DataFrame({"question": ["reset my password"], "relevant_ids": ["pw"]})
    run = lo.evaluate(
        targets=[find], data=data, scorers=[{"recall_at_k": {"k": 1}}, "mrr"],
        name="by-doc", progress=False,
    )  # fmt: skip
    row = run.results.row(0, named=True)
    assert row["recall_at_k"] == 1.0 and row["mrr"] == 1.0
