"""A/B splits between prompt versions: real stores (SQLite and PostgreSQL), real calls
over HTTP to the test server, the arm read back from the stored spans, the report
checked against the stored rows."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from sqlmodel import select

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.errors import NotFound
from llmops_nb.splits import SplitError, get_split, pick_arm
from llmops_nb.store import get_store
from llmops_nb.store import models as m
from llmops_nb.testing import OpenAIServer
from llmops_nb.tracing.calls import settle

MODEL = "openai/gpt-4o-mini"  # in litellm's price table: calls have a cost


@pytest.fixture(autouse=True)
def settled() -> Iterator[None]:
    yield
    settle(None, timeout=5)
    tracing.flush()


@pytest.fixture
def two_versions() -> None:
    """support_reply v1 (production) and v2 (candidate)."""
    lo.register_prompt("support_reply", "user:\nAnswer politely: {{question}}")
    lo.register_prompt("support_reply", "system:\nBe brief.\nuser:\n{{question}}")
    lo.set_alias("support_reply", "production", 1)
    lo.set_alias("support_reply", "candidate", 2)


@pytest.fixture
def server_env(fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    """PromptVersion.run reaches the test server through litellm's own variables."""
    monkeypatch.setenv("OPENAI_API_BASE", fresh_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return fresh_server


def stored_split_rows() -> list[m.PromptSplit]:
    with get_store().session() as s:
        return list(s.exec(select(m.PromptSplit)))


def test_arms_are_stable_per_key_and_follow_the_weights(store_url: str, two_versions: None) -> None:
    lo.set_split("support_reply", {"production": 0.9, "candidate": 0.1})
    split = get_split("support_reply")  # as stored
    assert split is not None and [a.label for a in split.arms] == ["production", "candidate"]
    keys = [f"user-{i}" for i in range(2000)]
    arms = {k: pick_arm("support_reply", k, split.arms).label for k in keys}
    counts = Counter(arms.values())
    assert counts["production"] + counts["candidate"] == 2000
    # 10 % of 2,000 keys: 200, standard deviation about 13
    assert 150 <= counts["candidate"] <= 250
    # lo.prompt gives each key its arm's version, the same every time it is asked
    for k in keys[:150]:
        picked = lo.prompt("support_reply@split", key=k)
        assert picked.arm == arms[k]
        assert picked.version == (1 if arms[k] == "production" else 2)
        assert lo.prompt("support_reply@split", key=k).arm == arms[k]
    assert {arms[k] for k in keys[:150]} == {"production", "candidate"}


def test_the_same_key_gets_the_same_arm_in_another_process(two_versions: None) -> None:
    split = lo.set_split("support_reply", {"production": 1, "v2": 1})
    here = [pick_arm("support_reply", f"user-{i}", split.arms).label for i in range(200)]
    code = (
        "from llmops_nb.splits import Arm, pick_arm\n"
        "arms = (Arm('production', 1.0, alias='production'), Arm('v2', 1.0, version=2))\n"
        "print(','.join(pick_arm('support_reply', f'user-{i}', arms).label for i in range(200)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own hash() would differ
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip().split(",") == here
    assert 70 <= here.count("v2") <= 130


def test_versions_as_arms_and_a_moved_alias_is_followed(store_url: str, two_versions: None) -> None:
    lo.register_prompt("support_reply", "user:\nv3: {{question}}")
    lo.set_split("support_reply", {"v3": 0, "production": 1})
    assert lo.prompt("support_reply@split", key="anyone").version == 1
    lo.set_alias("support_reply", "production", 3)
    picked = lo.prompt("support_reply@split", key="anyone")
    assert (picked.arm, picked.version) == ("production", 3)
    lo.set_split("support_reply", {3: 1})
    assert lo.prompt("support_reply@split", key="anyone").arm == "v3"


def test_bad_splits_are_one_clear_message_and_store_nothing(
    store_url: str, two_versions: None
) -> None:
    cases = [
        ({"production": -0.1, "candidate": 1.1}, SplitError, "negative"),
        ({"production": 0, "candidate": 0.0}, SplitError, "sum to 0"),
        ({"production": 0.5, "staging": 0.5}, NotFound, "no alias 'staging'"),
        ({"production": 0.5, "v7": 0.5}, NotFound, "no version 7"),
        ({"production": 0.5, 9: 0.5}, NotFound, "no version 9"),
        ({"production": "half"}, SplitError, "must be a number"),
        ({}, SplitError, "mapping of arm to weight"),
        ({"v1": 1, 1: 1}, SplitError, "given twice"),
    ]
    for weights, error, words in cases:
        with pytest.raises(error) as info:
            lo.set_split("support_reply", weights)
        assert words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(NotFound, match="unknown prompt 'nope'"):
        lo.set_split("nope", {"production": 1})
    assert stored_split_rows() == []
    assert audit_rows() == []


def audit_rows() -> list[dict[str, object]]:
    return lo.audit(action="split set").to_dicts()


def test_asking_for_a_split_arm_wrongly(store_url: str, two_versions: None) -> None:
    with pytest.raises(NotFound, match="has no split"):
        lo.prompt("support_reply@split", key="u1")
    lo.set_split("support_reply", {"production": 1})
    with pytest.raises(SplitError, match="needs key=") as info:
        lo.prompt("support_reply@split")
    assert "\n" not in str(info.value)
    with pytest.raises(SplitError, match="support_reply@split"):
        lo.prompt("support_reply@2", key="u1")
    with pytest.raises(NotFound, match="'split' is reserved"):
        lo.set_alias("support_reply", "split", 1)


def test_a_new_split_replaces_the_old_and_is_audited(store_url: str, two_versions: None) -> None:
    lo.set_split("support_reply", {"production": 0.9, "candidate": 0.1})
    lo.set_split("support_reply", {"production": 0.5, "candidate": 0.5})
    split = get_split("support_reply")
    assert split is not None and [a.weight for a in split.arms] == [0.5, 0.5]
    assert len(stored_split_rows()) == 1
    rows = audit_rows()
    assert [(r["target"], r["who"]) for r in rows] == [("support_reply", "tester")] * 2
    changes = {(r["from"], r["to"]) for r in rows}
    assert (
        "support_reply@split: production 90 %, candidate 10 %",
        "support_reply@split: production 50 %, candidate 50 %",
    ) in changes
    assert (None, "support_reply@split: production 90 %, candidate 10 %") in changes


def test_the_arm_is_on_the_stored_llm_span(
    store_url: str, two_versions: None, server_env: OpenAIServer
) -> None:
    lo.set_split("support_reply", {"production": 0.5, "candidate": 0.5})
    picked = lo.prompt("support_reply@split", key="user-7")
    reply = picked.run(question="Where is my order?", model=MODEL)
    trace = lo.get_trace(reply.trace_id)
    (llm,) = [s for s in trace.spans if s.kind == "llm"]
    assert llm.attributes["llmops.prompt.split"] == "support_reply"
    assert llm.attributes["llmops.prompt.arm"] == picked.arm
    assert llm.attributes["llmops.prompt.version"] == picked.version
    # the store finds the call by its split and arm
    (row,) = get_store().split_calls("default", "support_reply", None)
    assert (row["trace_id"], row["arm"], row["version"]) == (
        reply.trace_id,
        picked.arm,
        picked.version,
    )
    # a plain version records its name and version, and no arm
    plain = lo.prompt("support_reply@1").run(question="hi", model=MODEL)
    attrs = next(s for s in lo.get_trace(plain.trace_id).spans if s.kind == "llm").attributes
    assert attrs["llmops.prompt.name"] == "support_reply" and "llmops.prompt.arm" not in attrs


def test_split_report_agrees_with_the_stored_rows(
    store_url: str, two_versions: None, server_env: OpenAIServer
) -> None:
    server = server_env
    lo.set_split("support_reply", {"production": 0.5, "candidate": 0.5})
    thumbs = {"production": [1, 1, -1], "candidate": [1, -1, -1, -1]}
    given: dict[str, int] = {"production": 0, "candidate": 0}
    for i in range(48):
        picked = lo.prompt("support_reply@split", key=f"user-{i}")
        # the candidate is slower, and one call in six fails (a 400 is not retried)
        server.configure(latency_ms=200 if picked.arm == "candidate" else 0)
        if i % 6 == 0:
            server.fail_next(400)
        try:
            reply = picked.run(question=f"question {i}", model=MODEL)
        except lo.LLMOpsError:
            continue
        arm = str(picked.arm)
        if given[arm] < len(thumbs[arm]):
            tracing.feedback(reply.trace_id, thumbs[arm][given[arm]])
            given[arm] += 1
    report = lo.split_report("support_reply")
    assert report["arm"].to_list() == ["production", "candidate"]
    assert report["version"].to_list() == [1, 2]
    by_arm = {r["arm"]: r for r in report.to_dicts()}

    # the same numbers, straight from the stored span and feedback rows
    store = get_store()
    with store.session() as s:
        spans = list(s.exec(select(m.Span).where(m.Span.kind == "llm")))
        feedback = {f.trace_id: f.score for f in s.exec(select(m.Feedback))}
    expected: dict[str, dict[str, list[float]]] = {}
    for span in spans:
        arm = span.attributes.get("llmops.prompt.arm")
        e = expected.setdefault(arm, {"errors": [], "latency": [], "cost": [], "thumbs": []})
        e["errors"].append(0.0 if span.status == "ok" else 1.0)
        e["cost"].append(float(span.attributes.get("llmops.cost") or 0.0))
        if span.status == "ok":
            e["latency"].append((span.end_ns - span.start_ns) / 1e6)
        if span.trace_id in feedback:
            e["thumbs"].append(float(feedback[span.trace_id]))
    assert sum(len(e["errors"]) for e in expected.values()) == 48
    for arm, e in expected.items():
        row = by_arm[arm]
        assert row["calls"] == len(e["errors"])
        assert row["errors"] == sum(e["errors"]) > 0
        assert row["error_rate"] == pytest.approx(np.mean(e["errors"]))
        assert row["p50_ms"] == pytest.approx(np.quantile(e["latency"], 0.5))
        assert row["p95_ms"] == pytest.approx(np.quantile(e["latency"], 0.95))
        assert row["cost"] == pytest.approx(sum(e["cost"])) and row["cost"] > 0
        assert row["feedback_n"] == len(thumbs[arm])
        assert row["feedback_mean"] == pytest.approx(np.mean(thumbs[arm]))
        assert row["feedback_mean"] == pytest.approx(np.mean(e["thumbs"]))

    control, candidate = by_arm["production"], by_arm["candidate"]
    assert control["error_rate_diff"] is None and control["p50_ms_diff"] is None
    # the error rate's difference and its normal-approximation interval
    p0, n0 = control["error_rate"], control["calls"]
    p1, n1 = candidate["error_rate"], candidate["calls"]
    half = 1.96 * math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    assert candidate["error_rate_diff"] == pytest.approx(p1 - p0)
    assert candidate["error_rate_ci_low"] == pytest.approx(p1 - p0 - half, rel=1e-3)
    assert candidate["error_rate_ci_high"] == pytest.approx(p1 - p0 + half, rel=1e-3)
    # feedback: mean difference, Welch's standard error
    f0, f1 = thumbs["production"], thumbs["candidate"]
    se = math.sqrt(np.var(f0, ddof=1) / len(f0) + np.var(f1, ddof=1) / len(f1))
    assert candidate["feedback_mean_diff"] == pytest.approx(np.mean(f1) - np.mean(f0))
    assert candidate["feedback_mean_ci_low"] == pytest.approx(
        np.mean(f1) - np.mean(f0) - 1.96 * se, rel=1e-3
    )
    # the candidate is about 200 ms slower: the bootstrap interval excludes 0
    assert candidate["p50_ms_diff"] == pytest.approx(candidate["p50_ms"] - control["p50_ms"])
    assert candidate["p50_ms_diff"] > 100
    assert 0 < candidate["p50_ms_ci_low"] <= candidate["p50_ms_diff"] <= candidate["p50_ms_ci_high"]
    # the same rows give the same interval (a fixed seed)
    assert lo.split_report("support_reply").equals(report)
    # nothing since a moment ago
    later = lo.split_report("support_reply", since="2999-01-01")
    assert later["calls"].to_list() == [0, 0]
    with pytest.raises(lo.LLMOpsError, match="neither a duration"):
        lo.split_report("support_reply", since="last tuesday")
