"""Tracing: nested spans from @lo.trace and lo.span, LLM spans from real litellm calls over
HTTP, errors, secrets, feedback, the store queries, many processes, OTLP export."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)
from sqlalchemy import func, select, text

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.errors import NotFound
from llmops_nb.llm import runtime
from llmops_nb.store import get_store
from llmops_nb.store import models as m
from llmops_nb.testing import OpenAIServer
from llmops_nb.tracing.calls import settle

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(autouse=True)
def settled() -> Iterator[None]:
    """Spans a test leaves in flight are stored before the next test's store takes over."""
    yield
    settle(None, timeout=5)
    tracing.flush()


@pytest.fixture(scope="module")
def litellm() -> Any:
    module = runtime.litellm()
    module.suppress_debug_info = True
    return module


def by_name(t: tracing.Trace) -> dict[str, tracing.SpanRecord]:
    return {s.name: s for s in t.spans}


# --- spans from code ----------------------------------------------------------------------


@lo.trace
def add(x: int, y: int = 2) -> int:
    return x + y


@lo.trace(name="pipeline", kind="agent")
def pipeline(question: str) -> str:
    with lo.span("retrieve", kind="retriever") as s:
        s.set_inputs(query=question)
        docs = ["doc-a", "doc-b"]
        s.set_outputs(docs)
        s.set_attribute("retriever.k", 2)
    total = add(len(docs))
    return f"{question}: {total}"


def test_nested_spans_from_decorator_and_block() -> None:
    assert pipeline("why") == "why: 4"
    t = lo.last_trace()

    assert (t.name, t.status, t.error, t.n_spans) == ("pipeline", "ok", None, 3)
    spans = by_name(t)
    root, retrieve, inner = spans["pipeline"], spans["retrieve"], spans["add"]
    assert root.parent_id is None and root.kind == "agent"
    assert retrieve.parent_id == root.id and inner.parent_id == root.id
    assert retrieve.kind == "retriever" and inner.kind == "chain"
    assert root.inputs == {"question": "why"} and root.outputs == "why: 4"
    assert retrieve.inputs == {"query": "why"} and retrieve.outputs == ["doc-a", "doc-b"]
    assert retrieve.attributes["retriever.k"] == 2
    assert inner.inputs == {"x": 2} and inner.outputs == 4
    assert len(t.id) == 32 and all(len(s.id) == 16 for s in t.spans)
    assert {s.trace_id for s in t.spans} == {t.id}
    assert root.start <= retrieve.start <= retrieve.end <= inner.start <= root.end
    assert t.latency_ms == pytest.approx(root.latency_ms)
    assert t.root is root and t.children(root) == [retrieve, inner]


def test_exception_marks_the_span_and_propagates() -> None:
    @lo.trace
    def fails(n: int) -> None:
        with lo.span("inside"):
            raise ValueError(f"bad input {n}")

    with pytest.raises(ValueError, match="bad input 7"):
        fails(7)
    t = lo.last_trace()
    assert t.status == "error"
    assert t.error == "ValueError: bad input 7"
    spans = by_name(t)
    assert spans["inside"].status == "error" and spans["inside"].parent_id == spans["fails"].id
    assert spans["fails"].error == "ValueError: bad input 7"
    assert "raise ValueError" in spans["fails"].attributes["exception.stacktrace"]


def test_a_handled_failure_inside_leaves_the_trace_ok() -> None:
    @lo.trace
    def tolerant() -> str:
        try:
            with lo.span("flaky_step", kind="tool"):
                raise TimeoutError("too slow")
        except TimeoutError:
            return "fallback"

    assert tolerant() == "fallback"
    t = lo.last_trace()
    assert (t.status, t.error) == ("ok", None)  # the root's outcome is the trace's
    step = t.span("flaky_step")
    assert (step.status, step.error) == ("error", "TimeoutError: too slow")
    assert lo.traces(status="error").height == 0


def test_async_functions_and_generators_nest() -> None:
    @lo.trace
    async def tokens(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i}"

    @lo.trace
    def numbers(n: int):
        for i in range(n):
            with lo.span(f"step{i}"):
                pass
            yield i
        return "done"

    @lo.trace(name="agent")
    async def agent(n: int) -> list[str]:
        words = [w async for w in tokens(n)]
        await asyncio.gather(leaf("a"), leaf("b"))
        return words + [str(x) for x in numbers(2)]

    @lo.trace
    async def leaf(tag: str) -> str:
        await asyncio.sleep(0.01)
        return tag

    assert asyncio.run(agent(3)) == ["t0", "t1", "t2", "0", "1"]
    t = lo.last_trace()
    spans = by_name(t)
    root = spans["agent"]
    assert root.inputs == {"n": 3} and root.outputs == ["t0", "t1", "t2", "0", "1"]
    assert spans["tokens"].outputs == ["t0", "t1", "t2"]
    gen = spans["numbers"]
    assert gen.outputs == [0, 1] and gen.parent_id == root.id
    assert spans["step0"].parent_id == gen.id and spans["step1"].parent_id == gen.id
    leaves = [s for s in t.spans if s.name == "leaf"]
    assert sorted(s.outputs for s in leaves) == ["a", "b"]
    assert all(s.parent_id == root.id for s in leaves)  # concurrent tasks keep their parent


def test_generator_stopped_early_is_not_an_error() -> None:
    @lo.trace
    def count():
        yield from range(100)

    gen = count()
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    span = lo.last_trace().spans[0]
    assert span.status == "ok" and span.outputs == [0, 1]


def test_inputs_are_json_safe_and_capped() -> None:
    class Box:
        def __repr__(self) -> str:
            return "Box()"

        @lo.trace
        def method(self, blob: str, obj: object, data: bytes, **extra: Any) -> dict[str, Any]:
            return {"n": float("nan"), "items": list(range(1000))}

    Box().method("x" * 50_000, Box(), b"\x00" * 10, flag=True)
    span = lo.last_trace().spans[0]
    assert "self" not in span.inputs
    assert span.inputs["blob"].startswith("x" * 1000) and len(span.inputs["blob"]) < 20_100
    assert span.inputs["blob"].endswith("[30000 more characters]")
    assert span.inputs["obj"] == "Box()" and span.inputs["data"] == "<10 bytes>"
    assert span.inputs["extra"] == {"flag": True}
    assert span.outputs["n"] == "nan"
    assert len(span.outputs["items"]) == tracing.MAX_ITEMS + 1


# --- LLM spans from real litellm calls ---------------------------------------------------------


def test_litellm_completion_makes_an_llm_span(litellm: Any, openai_server: OpenAIServer) -> None:
    @lo.trace
    def answer(question: str) -> str:
        nonlocal usage
        r = litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": question}],
            api_base=openai_server.base_url,
            api_key="sk-test",
            temperature=0.2,
            max_tokens=50,
            litellm_call_id="call-sync-1",
        )
        usage = r.usage
        return r.choices[0].message.content

    usage: Any = None

    assert answer("What is tracing?") == "echo: What is tracing?"
    trace_id = tracing.trace_id_for_call("call-sync-1")
    t = lo.last_trace()
    assert trace_id == t.id
    root, llm = by_name(t)["answer"], by_name(t)["chat gpt-4o-mini"]
    assert llm.kind == "llm" and llm.parent_id == root.id and llm.status == "ok"
    assert llm.inputs == {"messages": [{"role": "user", "content": "What is tracing?"}]}
    assert llm.outputs == {"role": "assistant", "content": "echo: What is tracing?"}
    a = llm.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" == a["gen_ai.response.model"]
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == usage.completion_tokens > 0
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["llmops.cost"] > 0
    assert (t.input_tokens, t.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert t.tokens == usage.total_tokens
    assert t.cost == pytest.approx(a["llmops.cost"])
    assert root.start_ns <= llm.start_ns <= llm.end_ns <= root.end_ns


def test_litellm_acompletion_makes_an_llm_span(litellm: Any, openai_server: OpenAIServer) -> None:
    @lo.trace
    async def ask(question: str, call_id: str) -> tuple[str, str | None]:
        r = await litellm.acompletion(
            model=MODEL,
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": question},
            ],
            api_base=openai_server.base_url,
            api_key="sk-test",
            litellm_call_id=call_id,
        )
        # known as soon as the call returns, before any background logging
        return r.choices[0].message.content, tracing.trace_id_for_call(call_id)

    async def both() -> list[tuple[str, str | None]]:
        return list(await asyncio.gather(ask("one", "async-1"), ask("two words", "async-2")))

    results = asyncio.run(both())
    assert [r[0] for r in results] == ["echo: one", "echo: two words"]
    assert results[0][1] != results[1][1]  # concurrent calls: two traces
    for reply, trace_id in results:
        t = lo.get_trace(trace_id or "")
        root, llm = t.root, [s for s in t.spans if s.kind == "llm"][0]
        assert root is not None and root.outputs == [reply, trace_id]
        assert llm.parent_id == root.id and llm.outputs["content"] == reply
        assert llm.attributes["gen_ai.usage.input_tokens"] > 0
        assert llm.attributes["llmops.cost"] > 0
        assert llm.inputs["messages"][0] == {"role": "system", "content": "be brief"}
        assert t.input_tokens == llm.attributes["gen_ai.usage.input_tokens"]


def test_bare_litellm_call_is_its_own_trace(litellm: Any, openai_server: OpenAIServer) -> None:
    t0 = time.monotonic()
    stream = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "streamed reply"}],
        api_base=openai_server.base_url,
        api_key="sk-test",
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: streamed reply"
    t = lo.last_trace()
    assert time.monotonic() - t0 < 10
    (llm,) = t.spans
    assert t.name == "chat gpt-4o-mini" and llm.parent_id is None
    assert llm.outputs == {"role": "assistant", "content": "echo: streamed reply"}
    assert llm.attributes["gen_ai.request.stream"] is True
    assert t.output_tokens == llm.attributes["gen_ai.usage.output_tokens"] > 0


def test_failed_call_is_an_error_span(litellm: Any, fresh_server: OpenAIServer) -> None:
    fresh_server.fail_next(500)

    @lo.trace
    def call() -> None:
        litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": "fail please"}],
            api_base=fresh_server.base_url,
            api_key="sk-test",
            max_retries=0,
            num_retries=0,
            litellm_call_id="call-fails",
        )

    with pytest.raises(Exception, match="InternalServerError"):
        call()
    t = lo.last_trace()
    assert t.id == tracing.trace_id_for_call("call-fails")
    llm = [s for s in t.spans if s.kind == "llm"][0]
    assert llm.status == "error" and "InternalServerError" in (llm.error or "")
    assert llm.attributes["error.type"] == "InternalServerError"
    assert t.status == "error" and "InternalServerError" in (t.error or "")
    assert fresh_server.stats.server_errors == 1


def test_async_failure_is_an_error_span(litellm: Any, fresh_server: OpenAIServer) -> None:
    fresh_server.fail_next(500)

    async def call() -> None:
        await litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            api_base=fresh_server.base_url,
            api_key="sk-test",
            max_retries=0,
            litellm_call_id="call-fails-async",
        )

    with pytest.raises(Exception, match="InternalServerError"):
        asyncio.run(call())
    t = lo.get_trace(tracing.trace_id_for_call("call-fails-async") or "")
    assert t.status == "error" and t.spans[0].status == "error"


@pytest.mark.usefixtures("llm_path")
def test_api_keys_never_reach_the_store(
    litellm: Any, fresh_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-live-0123456789abcdefSECRET"
    env_key = "sk-env-9876543210zyxwvuENVSECRET"
    monkeypatch.setenv("MYPROVIDER_API_KEY", env_key)
    fresh_server.configure(api_key=key)

    @lo.trace
    def call(api_key: str, content: str) -> str:
        r = litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": content}],
            api_base=fresh_server.base_url,
            api_key=api_key,
            extra_headers={"X-Api-Key": key, "Authorization": f"Bearer {key}"},
        )
        return r.choices[0].message.content

    # the key even comes back in the model's reply (the server echoes the message)
    assert key in call(key, f"my key is {key} and {env_key}")
    with pytest.raises(Exception, match="AuthenticationError"):  # nor may its error message
        litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            api_base=fresh_server.base_url,
            api_key=key + "-wrong",
            max_retries=0,
        )
    lo.last_trace()
    store = get_store()
    with store.engine.connect() as conn:
        dump = json.dumps(
            [
                [list(map(str, row)) for row in conn.execute(text(f"SELECT * FROM {table}"))]
                for table in ("trace", "span")
            ]
        )
    assert "echo: my key is ***" in dump  # the spans are there...
    i = dump.find(key)
    assert i < 0, dump[max(0, i - 600) : i + 100]
    assert key not in dump and env_key not in dump  # ...without the secrets
    assert "sk-live-0123456789" not in dump


# --- reading, feedback, the viewer --------------------------------------------------------------


def test_feedback_is_stored() -> None:
    add(1)
    t = lo.last_trace()
    row = tracing.feedback(t.id, 1, "right answer")
    assert (row.trace_id, row.score, row.comment, row.author) == (t.id, 1, "right answer", "tester")
    tracing.feedback(t.id[:10], "down")  # a prefix of the id works, and "up"/"down"
    again = lo.get_trace(t.id)
    assert [(f["score"], f["comment"]) for f in again.feedback] == [(1, "right answer"), (-1, None)]
    with pytest.raises(tracing.InvalidFeedback, match=r"\+1 \(thumbs up\) or -1"):
        tracing.feedback(t.id, 5)
    with pytest.raises(NotFound, match="no trace"):
        tracing.feedback("0" * 32, 1)


def test_get_trace_and_traces_frame() -> None:
    for i in range(3):
        add(i)
    pipeline("q")
    t = lo.last_trace()
    assert lo.get_trace(t.id).spans == t.spans
    assert lo.get_trace(t.id[:12]).id == t.id
    with pytest.raises(NotFound, match="no trace"):
        lo.get_trace("f" * 32)
    with pytest.raises(NotFound, match="not a trace id"):
        lo.get_trace("not-an-id")

    frame = lo.traces()
    assert frame.columns[:6] == ["id", "name", "status", "error", "start", "latency_ms"]
    assert frame["name"].to_list() == ["pipeline", "add", "add", "add"]
    assert lo.traces(name="add", limit=2).height == 2
    assert lo.traces(since=timedelta(minutes=5)).height == 4
    assert lo.traces(since="2999-01-01").height == 0


def test_store_queries(store_url: str) -> None:
    pipeline("a")
    with pytest.raises(RuntimeError):

        @lo.trace(name="broken")
        def broken() -> None:
            raise RuntimeError("nope")

        broken()
    store = get_store()
    tracing.flush()
    rows = store.list_traces("default")
    assert [r.name for r in rows] == ["broken", "pipeline"]
    assert store.count_traces("default") == 2
    assert store.count_traces("default", status="error") == 1
    assert [r.name for r in store.list_traces("default", status="ok")] == ["pipeline"]
    assert [r.name for r in store.list_traces("default", limit=1, offset=1)] == ["pipeline"]
    assert store.list_traces("default", since_ns=time.time_ns()) == []
    assert store.count_traces("default", name="pipeline", until_ns=time.time_ns()) == 1
    assert store.list_traces("other-project") == []
    row, spans = store.get_trace(rows[1].id)
    assert (row.n_spans, [s.name for s in spans]) == (3, ["pipeline", "retrieve", "add"])
    with pytest.raises(NotFound):
        store.get_trace("0" * 32)
    fb = store.add_feedback(row.id, -1, "meh", "ann", span_id=spans[1].id)
    assert store.trace_feedback(row.id)[0].span_id == spans[1].id == fb.span_id
    with pytest.raises(NotFound, match="has no span"):
        store.add_feedback(row.id, 1, None, "ann", span_id="0" * 16)


@pytest.mark.usefixtures("llm_path")
def test_late_child_spans_fold_into_the_trace(store_url: str) -> None:
    """A child that ends after its root (litellm's background callbacks) still counts."""
    opened: dict[str, Any] = {}

    @lo.trace(name="parent")
    def parent() -> None:
        opened["trace"] = tracing.start_call_span(
            "late-call", "chat late", attributes={"gen_ai.request.model": "m"}
        )

    parent()
    tracing.flush()
    tracing.end_call_span(
        "late-call",
        outputs={"role": "assistant", "content": "late"},
        attributes={"gen_ai.usage.input_tokens": 4, "gen_ai.usage.output_tokens": 5},
    )
    t = lo.get_trace(opened["trace"])
    assert (t.name, t.n_spans, t.input_tokens, t.output_tokens) == ("parent", 2, 4, 5)
    assert t.end_ns == max(s.end_ns for s in t.spans)

    # a span that starts after its parent ended (a task the parent spawned) is no new root
    async def later() -> None:
        await asyncio.sleep(0.05)
        with lo.span("after"):
            pass

    @lo.trace(name="spawner")
    async def spawner() -> asyncio.Task[None]:
        return asyncio.create_task(later())

    async def main() -> str:
        task = await spawner()
        tracing.flush()  # the root is stored before its child even starts
        await task
        return lo.last_trace().id

    t = lo.get_trace(asyncio.run(main()))
    assert (t.name, t.n_spans) == ("spawner", 2)
    assert t.span("after").parent_id == t.span("spawner").id


# --- many processes into one store ------------------------------------------------------------

# One launcher imports litellm once, then forks the writers (no threads exist yet):
# each child makes N traced async calls and exits normally, so its spans are flushed at exit.
LAUNCHER = """
import asyncio, atexit, os, sys
import llmops_nb as lo
from llmops_nb.llm import runtime

litellm = runtime.litellm()
litellm.suppress_debug_info = True
base_url, n, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


@lo.trace(name="worker_call")
async def call(tag, i):
    r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=base_url,
        api_key="sk-test", messages=[{"role": "user", "content": f"{tag} {i}"}], max_retries=0)
    return r.choices[0].message.content


async def work(tag):
    limit = asyncio.Semaphore(16)
    async def one(i):
        async with limit:
            return await call(tag, i)
    replies = await asyncio.gather(*(one(i) for i in range(n)))
    assert replies == [f"echo: {tag} {i}" for i in range(n)]


from llmops_nb.store import get_store, reset_store

get_store()  # create the schema once, before the children share the database
reset_store()  # and hand them no open connections
children = []
for p in range(procs):
    pid = os.fork()
    if pid == 0:
        asyncio.run(work(f"p{p}"))
        # exit as the interpreter would: the atexit hooks store the spans still queued
        # (skipping only the teardown of litellm's modules, seconds of CPU per child)
        atexit._run_exitfuncs()
        os._exit(0)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
sys.exit(1 if any(codes) else 0)
"""


@pytest.mark.slow
def test_four_processes_store_every_llm_span(store_url: str, openai_server: OpenAIServer) -> None:
    n, procs = 500, 4
    env = {**os.environ, "LLMOPS_NB_STORE": store_url}
    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCHER, openai_server.base_url, str(n), str(procs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert launcher.returncode == 0, launcher.stderr[-3000:]
    store = get_store(store_url)
    with store.session() as s:
        llm_spans = s.execute(
            select(func.count()).select_from(m.Span).where(m.Span.kind == "llm")
        ).scalar_one()
        all_spans = s.execute(select(func.count()).select_from(m.Span)).scalar_one()
        per_trace = s.execute(select(m.Trace.n_spans, func.count()).group_by(m.Trace.n_spans)).all()
        tokens = s.execute(select(func.sum(m.Trace.input_tokens))).scalar_one()
    assert (llm_spans, all_spans) == (n * procs, 2 * n * procs)
    assert [tuple(r) for r in per_trace] == [(2, n * procs)]
    assert tokens > 0
    assert store.count_traces("default", name="worker_call") == n * procs


# --- OTLP export ------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """A tiny OTLP/HTTP collector: decodes ExportTraceServiceRequest protobufs."""

    spans: list[Any] = []
    paths: list[str] = []

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                type(self).spans.extend(ss.spans)
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Receiver]]:
    _Receiver.spans, _Receiver.paths = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tracing.shutdown()  # the pipeline reads the endpoint when it starts
    monkeypatch.setenv("LLMOPS_NB_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield _Receiver
    tracing.shutdown()
    monkeypatch.delenv("LLMOPS_NB_OTLP_ENDPOINT")
    server.shutdown()


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def test_otlp_export(
    otlp_receiver: type[_Receiver], litellm: Any, openai_server: OpenAIServer
) -> None:
    @lo.trace(name="otlp_root")
    def root() -> str:
        with lo.span("child", kind="tool") as s:
            s.set_outputs({"ok": True})
        r = litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": "export me"}],
            api_base=openai_server.base_url,
            api_key="sk-test",
        )
        return r.choices[0].message.content

    root()
    t = lo.last_trace()  # flushes the store and the OTLP exporter
    deadline = time.monotonic() + 10
    while len(otlp_receiver.spans) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    got = {s.name: s for s in otlp_receiver.spans}
    assert set(got) == {"otlp_root", "child", "chat gpt-4o-mini"}
    assert otlp_receiver.paths[0] == "/v1/traces"
    assert {s.trace_id.hex() for s in got.values()} == {t.id}
    assert got["child"].parent_span_id == got["otlp_root"].span_id
    assert got["chat gpt-4o-mini"].parent_span_id == got["otlp_root"].span_id
    child, llm = _attrs(got["child"]), _attrs(got["chat gpt-4o-mini"])
    assert child["llmops.span.kind"] == "tool" and json.loads(child["llmops.outputs"]) == {
        "ok": True
    }
    assert llm["gen_ai.request.model"] == "gpt-4o-mini"
    assert llm["gen_ai.usage.input_tokens"] == t.input_tokens > 0
    assert json.loads(llm["llmops.outputs"])["content"] == "echo: export me"
    assert "sk-test" not in str(otlp_receiver.spans)


def test_trace_id_for_unknown_call_is_none() -> None:
    assert tracing.trace_id_for_call("never-made") is None


def test_loading_the_extension_does_not_import_tracing(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'llmops_nb')\n"
        "print(sorted(m for m in ('llmops_nb.tracing', 'opentelemetry.sdk.trace', 'litellm')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_cache_read_tokens_reach_the_llm_span_from_either_usage_shape() -> None:
    from types import SimpleNamespace

    from llmops_nb.llm.call_span import response_fields

    openai_shape = {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    anthropic_shape = {"input_tokens": 9, "output_tokens": 2, "cache_read_input_tokens": 4}
    for usage, cached in ((openai_shape, 6), (anthropic_shape, 4), ({"prompt_tokens": 9}, None)):
        # litellm's response objects, and the provider's JSON (the fast path)
        for response in (SimpleNamespace(usage=usage, choices=None), {"usage": usage}):
            attributes, _ = response_fields(response)
            assert attributes["gen_ai.usage.input_tokens"] == 9
            assert attributes.get("gen_ai.usage.cache_read.input_tokens") == cached
