"""Scorers: what each built-in returns, per-row templates, custom scorers, the judge
and the semantic scorer (offline MiniLM, and a litellm embedding model over HTTP)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.evals.scorers import (
    ScoreContext,
    ScorerError,
    UnknownScorer,
    build_scorer,
    parse_judgement,
)
from llmops_nb.testing import serve


def score(kind: str, output: str, row: dict[str, Any] | None = None, **args: Any) -> float | None:
    s = build_scorer(kind, args)
    ctx = ScoreContext(row=row or {}, latency_ms=120.0, cost=0.002)
    result = asyncio.run(s.score(0, output, ctx))
    assert result is not None
    return result.value


def test_text_scorers() -> None:
    row = {"expected": "Paris", "kw": "capital"}
    assert score("exact", " Paris\n", row) == 1.0
    assert score("exact", "paris", row) == 0.0
    assert score("contains", "It is Paris.", row) == 1.0
    assert score("contains", "the capital is Paris", row, value="{{kw}}") == 1.0
    assert score("icontains", "PARIS!", row) == 1.0
    assert score("contains", "PARIS!", row) == 0.0
    assert score("regex", "order 1234", row, pattern=r"\d{4}") == 1.0
    assert score("regex", "order", row, pattern=r"\d{4}") == 0.0
    assert score("starts_with", "Paris is", row) == 1.0
    assert score("contains_any", "a Lyon b", row, value="Paris, Lyon") == 1.0
    assert score("contains_all", "a Lyon b", row, value=["Paris", "Lyon"]) == 0.0
    assert score("contains", "It is Paris.", row, negate=True) == 0.0


def test_json_scorers() -> None:
    assert score("is_json", '{"a": 1}') == 1.0
    assert score("is_json", "```json\n[1, 2]\n```") == 1.0
    assert score("is_json", "{a: 1}") == 0.0
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    assert score("json_schema", '{"name": "Ann"}', schema=schema) == 1.0
    assert score("json_schema", '{"name": 3}', schema=schema) == 0.0
    assert score("json_schema", '{"name": "x"}', schema=json.dumps(schema)) == 1.0


def test_bleu_and_rouge_l_use_the_libraries() -> None:
    import sacrebleu
    from rouge_score import rouge_scorer

    row = {"expected": "the cat sat on the mat"}
    assert score("bleu", "the cat sat on the mat", row) == pytest.approx(1.0)
    expected_bleu = sacrebleu.sentence_bleu("the cat sat", ["the cat sat on the mat"]).score / 100
    assert score("bleu", "the cat sat", row) == pytest.approx(expected_bleu)
    expected_rouge = (
        rouge_scorer.RougeScorer(["rougeL"])
        .score("the cat sat on the mat", "the cat sat")["rougeL"]
        .fmeasure
    )
    assert (
        score("rouge_l", "the cat sat", row)
        == pytest.approx(expected_rouge)
        == pytest.approx(2 / 3)
    )


def test_latency_and_cost_scorers() -> None:
    assert score("latency_under", "x", ms=500) == 1.0
    assert score("latency_under", "x", ms=100) == 0.0
    assert score("cost_under", "x", usd=0.01) == 1.0
    assert score("cost_under", "x", usd=0.001) == 0.0


def test_scorer_errors_are_one_clear_message() -> None:
    with pytest.raises(UnknownScorer, match="unknown scorer 'bleurt'; built-in scorers: bleu, "):
        build_scorer("bleurt")
    with pytest.raises(ScorerError, match="scorer 'regex' needs the argument 'pattern'"):
        build_scorer("regex")
    with pytest.raises(ScorerError, match="scorer 'contains' has no argument 'valeu'"):
        build_scorer("contains", {"valeu": "x"})
    s = build_scorer("rouge_l", {"reference": "{{answer}}"})
    with pytest.raises(
        ScorerError,
        match=r"argument 'reference' uses \{\{answer\}\}, but the data has no column 'answer' "
        r"\(columns: question, expected\)",
    ):
        s.check_columns(["question", "expected"])


def test_a_failing_scorer_is_recorded_on_its_row() -> None:
    s = build_scorer("regex", {"pattern": "{{p}}"})  # a row's own pattern: known only per row
    result = asyncio.run(s.score(0, "x", ScoreContext(row={"p": "("})))
    assert result is not None and result.value is None and "bad regex" in (result.reason or "")


def test_a_bad_static_regex_or_threshold_fails_when_the_scorer_is_built() -> None:
    with pytest.raises(ScorerError) as info:
        build_scorer("regex", {"pattern": "[oops"})
    assert str(info.value) == (
        "scorer 'regex': invalid regex '[oops': unterminated character set at position 0"
    )
    with pytest.raises(ScorerError) as info:
        build_scorer("contains", {"value": "x", "threshold": "high"})
    assert (
        str(info.value) == "scorer 'contains': threshold must be a number such as 0.8, not 'high'"
    )
    assert build_scorer("contains", {"value": "x", "threshold": "0.5"}).threshold == 0.5


def test_custom_scorer_in_a_grid(openai_server: Any) -> None:
    @lo.scorer
    def short_enough(output: str, row: dict[str, Any]) -> dict[str, Any]:
        return {"score": len(output) <= row["limit"], "reason": f"{len(output)} chars"}

    @lo.scorer(name="mentions_q", threshold=1.0)
    async def mentions(output: str, row: dict[str, Any]) -> float:
        return 1.0 if row["q"] in output else 0.0

    assert short_enough("abc", {"limit": 5}) == {"score": True, "reason": "3 chars"}
    df = pl.DataFrame({"q": ["hi", "a much longer question"], "limit": [10, 10]})
    run = lo.evaluate(
        [{"template": "{{q}}", "label": "raw"}],
        [{"model": "openai/gpt-4o-mini", "api_base": openai_server.base_url, "api_key": "k"}],
        df,
        [short_enough, "mentions_q"],
        name="custom",
        progress=False,
    )
    results = run.results
    assert results["short_enough"].to_list() == [1.0, 0.0]  # "echo: hi" fits in 10 chars
    assert results["short_enough_reason"].to_list() == ["8 chars", "28 chars"]
    assert results["mentions_q"].to_list() == [1.0, 1.0]
    assert run.summary()["pass_rate"].to_list() == [0.5]


def test_judge_scores_with_a_rubric_and_is_traced() -> None:
    def reply(body: dict[str, Any]) -> str:
        messages = body["messages"]
        if "impartial grader" in messages[0]["content"]:
            polite = "please" in messages[-1]["content"].lower()
            return json.dumps(
                {"score": 1 if polite else 0.2, "reason": "polite" if polite else "curt"}
            )
        return "Sure, please find it below." if "nice" in messages[-1]["content"] else "No."

    with serve(reply=reply) as srv:
        m = {"model": "openai/gpt-4o-mini", "api_base": srv.base_url, "api_key": "k"}
        run = lo.evaluate(
            [{"template": "Be {{tone}}.", "label": "p"}],
            [m],
            pl.DataFrame({"tone": ["nice", "rude"]}),
            [
                {
                    "judge": {
                        "rubric": "Is the reply polite?",
                        "model": "openai/gpt-4o-mini",
                        "api_base": srv.base_url,
                        "api_key": "k",
                    }
                }
            ],
            name="judged",
            progress=False,
        )
        graded = [
            r for r in srv.requests if "impartial grader" in r["body"]["messages"][0]["content"]
        ]
    results = run.results
    assert results["judge"].to_list() == [1.0, 0.2]
    assert results["judge_reason"].to_list() == ["polite", "curt"]
    assert results["passed"].to_list() == [True, False]
    assert len(graded) == 2
    assert "Rubric:\nIs the reply polite?" in graded[0]["body"]["messages"][1]["content"]
    assert "api_key" not in json.dumps(run.spec)


def test_parse_judgement_forms() -> None:
    assert parse_judgement('Here: {"score": 4, "reason": "ok"}') == (0.8, "ok")
    assert parse_judgement("PASS: fine")[0] == 1.0
    assert parse_judgement("FAIL - wrong")[0] == 0.0
    assert parse_judgement("score: 0.7")[0] == 0.7
    value, reason = parse_judgement("no idea")
    assert value is None and "unreadable judge reply" in reason


def test_semantic_offline_minilm() -> None:
    row = {"expected": "The capital of France is Paris."}
    same = score("semantic", "Paris is the capital city of France.", row)
    other = score("semantic", "Bananas are rich in potassium.", row)
    assert same is not None and other is not None
    assert same > 0.75 > other


def test_semantic_with_a_litellm_embedding_model(openai_server: Any) -> None:
    args = {
        "model": "openai/text-embedding-3-small",
        "api_base": openai_server.base_url,
        "api_key": "k",
    }
    row = {"expected": "red green blue"}
    assert score("semantic", "red green blue", row, **args) == pytest.approx(1.0)
    assert score("semantic", "kiwi mango", row, **args) < 0.5
