"""An eval run's calls are grouped under it: each cell's call is the child of an "eval"
span carrying the run id, the trace row records the run, and lo.traces(run=) filters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.errors import LLMOpsError
from llmops_nb.evals import EvalRun
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer, serve


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with serve() as srv:
        yield srv


def grid(srv: OpenAIServer, name: str) -> EvalRun:
    return lo.evaluate(
        prompts=[{"template": "user:\nSay {{word}}", "label": "say"}],
        models=[{"model": "openai/gpt-4o-mini", "api_base": srv.base_url, "api_key": "sk-test"}],
        data=[{"word": w} for w in ("alpha", "beta", "gamma")],
        scorers=[{"contains": {"value": "{{word}}"}}],
        name=name,
        progress=False,
    )


def test_traces_filter_by_eval_run(store_url: str, server: OpenAIServer) -> None:
    first, second = grid(server, "first"), grid(server, "second")
    assert first.status == second.status == "done"

    frame = lo.traces(run=first.id)
    assert frame.height == 3 and set(frame["run_id"]) == {first.id}
    assert set(frame["name"]) == {"eval"}
    # every result links to one of its run's traces, and no other run's
    linked = set(first.results["trace_id"].to_list())
    assert linked == set(frame["id"].to_list())
    assert linked.isdisjoint(lo.traces(run=second).get_column("id").to_list())
    assert lo.traces(run=second.id).height == 3

    t = lo.get_trace(frame["id"][0])
    assert (t.eval_run_id, t.n_spans, t.status) == (first.id, 3, "ok")
    root, llm = t.root, next(s for s in t.spans if s.kind == "llm")
    assert root is not None and (root.name, root.kind) == ("eval", "eval")
    assert llm.parent_id == root.id and "Say" in llm.outputs["content"]
    # the cell's scores are a span of the same trace, beside the call
    scored = next(s for s in t.spans if s.name == "eval scores")
    assert scored.parent_id == root.id and scored.outputs == {"contains": 1.0}
    assert root.attributes["llmops.eval.run_id"] == first.id
    assert get_store().count_traces("default", eval_run_id=first.id) == 3
    # traces made outside a run carry none
    lo.trace(lambda: 1)()
    assert lo.traces(limit=1)["run_id"].to_list() == [None]


def test_eval_span_starts_its_own_trace_inside_another() -> None:
    with lo.span("notebook cell") as outer:
        with tracing.eval_span(7) as cell:
            pass
    assert cell.trace_id != outer.trace_id
    t = lo.get_trace(cell.trace_id or "")
    assert (t.name, t.eval_run_id, t.n_spans) == ("eval", 7, 1)
    assert lo.get_trace(outer.trace_id or "").eval_run_id is None


def test_run_filter_rejects_what_is_no_run() -> None:
    with pytest.raises(LLMOpsError, match="run must be an eval run or its id"):
        lo.traces(run="last")
