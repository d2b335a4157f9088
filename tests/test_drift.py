"""lo.drift with the real MiniLM: a topic shift is drift, a resample is not, stored LLM
calls read by time window (SQLite and PostgreSQL), and one clear message for bad input."""

from __future__ import annotations

import datetime as _dt
import random
import time

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.drifting import DriftError
from llmops_nb.testing import OpenAIServer

SUPPORT = [
    f"{opening} {issue}?"
    for opening in ("How do I", "Can I", "Why can't I", "Where do I", "Is it possible to")
    for issue in (
        "reset my password",
        "change the email on my account",
        "cancel my subscription",
        "download my invoice",
        "update my billing address",
        "enable two-factor login",
        "track my order",
        "return a damaged item",
    )
]
POEMS = [
    f"Write a {form} about {topic}."
    for form in ("long poem", "sonnet", "ballad")
    for topic in ("the sea at night", "autumn forests", "a lighthouse keeper", "the moon and tides")
]


@pytest.fixture(scope="session")
def minilm() -> None:
    """Load MiniLM once for the session (the first lo.drift call would otherwise)."""
    lo.embed(["warm up"], model="local/minilm")


def test_a_topic_shift_is_drift_and_the_examples_show_it(minilm: None) -> None:
    current = SUPPORT[:4] + POEMS + ["<script>alert('x')</script> write a limerick"]
    result = lo.drift(reference=SUPPORT, current=current, permutations=200)
    assert isinstance(result, lo.DriftResult) and result.drifted is True
    assert (result.n_reference, result.n_current) == (40, 17)
    assert set(result.tests) == {"length", "tokens", "embedding"}
    assert result.tests["embedding"].p_value < 0.05 / 3
    assert result.tests["length"].current_mean > result.tests["length"].reference_mean
    # the current texts farthest from the reference are the new topic, each with a neighbour
    assert len(result.examples) == 5
    for example in result.examples:
        assert example.current not in SUPPORT and example.nearest_reference in SUPPORT
        assert -1.0 <= example.similarity < 0.6
    page = result._repr_html_()
    assert "drifted" in page and "<script>" not in page
    assert "&lt;script&gt;" in page or "limerick" not in page
    assert "drifted" in repr(result)


def test_a_resample_of_the_same_texts_is_not_drift(minilm: None) -> None:
    pool = SUPPORT * 2
    random.Random(7).shuffle(pool)
    reference = pl.DataFrame({"input": pool[:40]})
    lo.dataset("questions", pl.DataFrame({"question": pool[40:]}))
    result = lo.drift(reference["input"], "dataset:questions", column="question", permutations=200)
    assert result.drifted is False
    assert min(t.p_value for t in result.tests.values()) >= 0.05 / 3
    again = lo.drift(reference, pool[40:], permutations=200)  # a DataFrame: its "input" column
    assert again.tests["embedding"] == result.tests["embedding"]  # seeded: the same p-value


def test_windows_of_stored_calls(store_url: str, openai_server: OpenAIServer, minilm: None) -> None:
    def ask(questions: list[str]) -> None:
        for q in questions:
            lo.complete(
                "openai/gpt-4o-mini", q, api_base=openai_server.base_url, api_key="sk-test",
                cache=False,
            )  # fmt: skip

    start = _dt.datetime.now(_dt.UTC)
    ask(SUPPORT[:6])
    time.sleep(0.05)
    middle = _dt.datetime.now(_dt.UTC)
    ask(POEMS[:6])
    before, after = {"since": start, "until": middle}, {"since": "1h"}
    result = lo.drift(before, {"since": middle.isoformat()}, permutations=100)
    assert (result.n_reference, result.n_current) == (6, 6)
    assert {x.current for x in result.examples} <= set(POEMS[:6])
    assert {x.nearest_reference for x in result.examples} <= set(SUPPORT[:6])

    replies = lo.drift(before, after, on="output", permutations=100)
    assert replies.n_current == 12  # the last hour holds every call
    assert all(x.nearest_reference.startswith("echo: ") for x in replies.examples)
    with pytest.raises(DriftError, match="current has 0 text"):
        lo.drift(before, {"since": "1h", "model": "openai/other"})


def test_bad_input_is_one_clear_message() -> None:
    with pytest.raises(
        DriftError,
        match=r"reference since='last tuesday' is neither a duration \('7d', '12h', '30m', "
        r"'2w'\) nor a date",
    ):
        lo.drift({"since": "last tuesday"}, ["a", "b"])
    with pytest.raises(DriftError, match="reference has 0 text"):
        lo.drift([], ["a", "b"])
    with pytest.raises(DriftError, match="current has 1 text"):
        lo.drift(["a", "b"], ["", "only one", None])
    with pytest.raises(DriftError, match="on must be 'input' or 'output'"):
        lo.drift(["a", "b"], ["c", "d"], on="prompt")
    with pytest.raises(DriftError, match=r"no column 'input' \(columns: text\); pass column=NAME"):
        lo.drift(pl.DataFrame({"text": ["a", "b"]}), ["c", "d"])
    with pytest.raises(DriftError, match="item 1 is int, not text"):
        lo.drift(["a", 3], ["c", "d"])
    with pytest.raises(DriftError, match="'until' is not after its 'since'"):
        lo.drift({"since": "1d", "until": "2d"}, ["c", "d"])
    with pytest.raises(DriftError, match="unknown key 'from'"):
        lo.drift({"since": "1d", "from": "x"}, ["c", "d"])
