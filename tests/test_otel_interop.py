"""What an OpenTelemetry backend receives: real OTLP receivers (HTTP, and gRPC) in the test
process decode the protobuf with opentelemetry-proto, and each test checks the received
spans: messages in the GenAI conventions' JSON shape (after redaction, switchable), span
kinds as gen_ai operations and OpenInference kinds, the resource (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, the project), the standard endpoint and protocol variables,
provider names, streams, and an eval run's attributes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)

import llmops_nb as lo
from llmops_nb import config, tracing
from llmops_nb.llm import runtime
from llmops_nb.testing import OpenAIServer
from llmops_nb.tracing.calls import settle
from llmops_nb.tracing.otel import export_attributes

MODEL = "openai/gpt-4o-mini"
OTEL_VARS = (
    "LLMOPS_NB_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
)


@dataclass
class Received:
    """One received span: its attributes decoded, its resource's attributes, the URL path."""

    name: str
    span_id: str
    parent_id: str
    trace_id: str
    kind: int
    attrs: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    path: str


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def _kv(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


def _decode(body: bytes, path: str) -> list[Received]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return _spans(request, path)


def _spans(request: Any, path: str) -> list[Received]:
    out = []
    for rs in request.resource_spans:
        resource = _kv(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    Received(
                        name=s.name,
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        trace_id=s.trace_id.hex(),
                        kind=s.kind,
                        attrs=_kv(s.attributes),
                        resource=resource,
                        events=[(e.name, _kv(e.attributes)) for e in s.events],
                        path=path,
                    )
                )
    return out


@dataclass
class Receiver:
    """An OTLP/HTTP collector on 127.0.0.1: what it received, by span name."""

    url: str
    spans: list[Received] = field(default_factory=list)

    def wait(self, n: int, timeout: float = 15.0) -> dict[str, Received]:
        tracing.flush()
        deadline = time.monotonic() + timeout
        while len(self.spans) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return {s.name: s for s in self.spans}


def _http_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.spans.extend(_decode(body, self.path))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_port}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No OTLP variable from the outside; the pipeline restarts to read them again."""
    for var in OTEL_VARS:
        monkeypatch.delenv(var, raising=False)
    tracing.shutdown()
    yield monkeypatch
    settle(None, timeout=5)
    tracing.shutdown()


@pytest.fixture
def receiver(otel_env: pytest.MonkeyPatch) -> Iterator[Receiver]:
    rec, server = _http_receiver()
    otel_env.setenv("LLMOPS_NB_OTLP_ENDPOINT", rec.url)
    yield rec
    tracing.shutdown()
    server.shutdown()


@pytest.fixture(scope="module")
def litellm() -> Any:
    module = runtime.litellm()
    module.suppress_debug_info = True
    return module


def _json(attrs: dict[str, Any], key: str) -> Any:
    return json.loads(attrs[key])


# --- 1. messages ----------------------------------------------------------------------


@pytest.mark.usefixtures("llm_path")
def test_llm_span_carries_messages_in_the_conventions_shape(
    receiver: Receiver, openai_server: OpenAIServer, otel_env: pytest.MonkeyPatch
) -> None:
    otel_env.setenv("INTEROP_TEST_API_KEY", "sk-interop-secret-123")
    c = lo.complete(
        MODEL,
        messages=[
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "capital of France? key sk-interop-secret-123"},
        ],
        api_base=openai_server.base_url,
        api_key="sk-test",
        temperature=0.2,
        cache=False,
    )
    got = receiver.wait(1)
    llm = got["chat gpt-4o-mini"].attrs
    assert got["chat gpt-4o-mini"].trace_id == c.trace_id
    assert _json(llm, "gen_ai.system_instructions") == [
        {"type": "text", "content": "Answer in one word."}
    ]
    # redacted before export: the key in the prompt is masked, as in the store
    assert _json(llm, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "capital of France? key ***"}]}
    ]
    assert _json(llm, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "echo: capital of France? key ***"}],
            "finish_reason": "stop",
        }
    ]
    assert c.text.startswith("echo:")
    assert "sk-interop-secret-123" not in str(receiver.spans) and "sk-test" not in str(
        receiver.spans
    )
    assert (llm["gen_ai.operation.name"], llm["openinference.span.kind"]) == ("chat", "LLM")
    assert llm["gen_ai.provider.name"] == "openai" and llm["llm.provider"] == "openai"
    assert llm["gen_ai.request.temperature"] == 0.2
    # what Phoenix lists: OpenInference's flattened messages, input and output values
    assert llm["llm.input_messages.0.message.role"] == "system"
    assert llm["llm.input_messages.1.message.content"] == "capital of France? key ***"
    assert llm["llm.output_messages.0.message.content"] == "echo: capital of France? key ***"
    assert _json(llm, "input.value")["messages"][0]["content"] == "Answer in one word."
    assert llm["output.mime_type"] == "application/json"
    assert llm["llm.token_count.prompt"] == c.usage.input_tokens > 0
    assert llm["llm.token_count.total"] == c.usage.input_tokens + c.usage.output_tokens


@pytest.mark.parametrize(
    ("env", "setting", "exported"),
    [
        ("false", None, False),
        ("NO_CONTENT", None, False),
        ("false", True, True),
        ("true", False, False),
    ],
)
@pytest.mark.usefixtures("llm_path")
def test_content_capture_is_switchable(
    receiver: Receiver,
    openai_server: OpenAIServer,
    otel_env: pytest.MonkeyPatch,
    env: str,
    setting: bool | None,
    exported: bool,
) -> None:
    otel_env.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", env)
    config.settings.otlp_content = setting
    with lo.span("lookup", kind="tool") as s:
        s.set_inputs(city="Paris")
        s.set_outputs({"weather": "sunny"})
    lo.complete(MODEL, "private words", api_base=openai_server.base_url, api_key="sk-test")
    got = receiver.wait(2)
    llm, tool = got["chat gpt-4o-mini"].attrs, got["lookup"].attrs
    content_keys = {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "llmops.inputs",
        "llmops.outputs",
        "input.value",
        "output.value",
        "llm.input_messages.0.message.content",
    }
    assert (content_keys <= set(llm)) is exported
    assert ("gen_ai.tool.call.arguments" in tool) is exported
    if not exported:
        assert not content_keys & set(llm) and "private words" not in str(receiver.spans)
    # the numbers travel either way
    assert llm["gen_ai.usage.input_tokens"] > 0 and tool["gen_ai.tool.name"] == "lookup"


def test_exception_events_are_masked_like_the_store(
    receiver: Receiver, otel_env: pytest.MonkeyPatch
) -> None:
    otel_env.setenv("INTEROP_TEST_TOKEN", "tok-very-secret-42")

    @lo.trace
    def fails() -> None:
        raise RuntimeError("upstream refused tok-very-secret-42")

    with pytest.raises(RuntimeError):
        fails()
    span = receiver.wait(1)["fails"]
    (name, event), *_ = span.events
    assert name == "exception"
    assert event["exception.message"] == "upstream refused ***"
    assert "tok-very-secret-42" not in str(receiver.spans)


# --- 2. span kinds --------------------------------------------------------------------


def test_span_kinds_map_to_gen_ai_operations(receiver: Receiver) -> None:
    @lo.trace(kind="tool")
    def get_weather(city: str) -> dict[str, str]:
        return {"city": city, "sky": "clear"}

    @lo.trace(name="planner", kind="agent")
    def plan(question: str) -> str:
        with lo.span("retrieve", kind="retriever") as s:
            s.set_inputs(query=question)
            s.set_outputs(
                [
                    {"id": "doc-1", "score": 0.9, "text": "Paris is in France."},
                    {"id": "doc-2", "score": 0.4, "text": "Lyon is too."},
                ]
            )
        get_weather("Paris")
        with lo.span("format"):
            pass
        return "done"

    plan("where is Paris?")
    got = receiver.wait(4)
    agent, ret, tool, chain = (
        got[n].attrs for n in ("planner", "retrieve", "get_weather", "format")
    )
    assert (agent["gen_ai.operation.name"], agent["openinference.span.kind"]) == (
        "invoke_agent",
        "AGENT",
    )
    assert agent["gen_ai.agent.name"] == "planner"
    assert (ret["gen_ai.operation.name"], ret["openinference.span.kind"]) == (
        "retrieval",
        "RETRIEVER",
    )
    assert ret["gen_ai.retrieval.query.text"] == "where is Paris?"
    assert _json(ret, "gen_ai.retrieval.documents") == [
        {"id": "doc-1", "score": 0.9, "content": "Paris is in France."},
        {"id": "doc-2", "score": 0.4, "content": "Lyon is too."},
    ]
    assert ret["retrieval.documents.1.document.content"] == "Lyon is too."
    assert ret["retrieval.documents.0.document.score"] == 0.9
    assert (tool["gen_ai.operation.name"], tool["openinference.span.kind"]) == (
        "execute_tool",
        "TOOL",
    )
    assert tool["gen_ai.tool.name"] == "get_weather" and tool["tool.name"] == "get_weather"
    assert _json(tool, "gen_ai.tool.call.arguments") == {"city": "Paris"}
    assert _json(tool, "gen_ai.tool.call.result") == {"city": "Paris", "sky": "clear"}
    assert chain["openinference.span.kind"] == "CHAIN" and "gen_ai.operation.name" not in chain
    assert {got[n].attrs["llmops.span.kind"] for n in got} == {
        "agent",
        "retriever",
        "tool",
        "chain",
    }
    assert got["retrieve"].parent_id == got["planner"].span_id


# --- 3. the resource ------------------------------------------------------------------


def test_resource_honours_otel_variables_and_names_the_project(
    receiver: Receiver, otel_env: pytest.MonkeyPatch
) -> None:
    otel_env.setenv("OTEL_SERVICE_NAME", "churn-notebook")
    otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=ml")
    config.set_project("interop")
    with lo.span("in interop"):
        pass
    config.set_project("other")
    with lo.span("in other"):
        pass
    got = receiver.wait(2)
    res = got["in interop"].resource
    assert res["service.name"] == "churn-notebook"
    assert (res["deployment.environment"], res["team"]) == ("staging", "ml")
    assert res["openinference.project.name"] == res["llmops.project"] == "interop"
    assert got["in other"].resource["openinference.project.name"] == "other"


def test_service_name_defaults_to_llmops_nb(receiver: Receiver) -> None:
    with lo.span("plain"):
        pass
    res = receiver.wait(1)["plain"].resource
    assert res["service.name"] == "llmops_nb"
    assert res["openinference.project.name"] == "default"


# --- 4. endpoints and protocols -------------------------------------------------------


def test_standard_endpoint_variables_alone_export(otel_env: pytest.MonkeyPatch) -> None:
    base, base_server = _http_receiver()
    traces, traces_server = _http_receiver()
    try:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base.url)
        with lo.span("via base"):
            pass
        assert base.wait(1)["via base"].path == "/v1/traces"
        tracing.shutdown()

        # the traces variable is a full URL, used as is, and wins over the base one
        otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{traces.url}/custom/traces")
        with lo.span("via traces url"):
            pass
        assert traces.wait(1)["via traces url"].path == "/custom/traces"
        tracing.shutdown()
        assert "via traces url" not in {s.name for s in base.spans}
    finally:
        base_server.shutdown()
        traces_server.shutdown()


def test_llmops_endpoint_takes_precedence(receiver: Receiver, otel_env: pytest.MonkeyPatch) -> None:
    other, other_server = _http_receiver()
    try:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", other.url)
        otel_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{other.url}/v1/traces")
        tracing.shutdown()
        with lo.span("ours"):
            pass
        assert receiver.wait(1)["ours"].path == "/v1/traces"
        time.sleep(0.3)
        assert other.spans == []
    finally:
        other_server.shutdown()


def test_grpc_protocol_exports_to_a_grpc_collector(otel_env: pytest.MonkeyPatch) -> None:
    grpc = pytest.importorskip("grpc")
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list[Received] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC name)
            received.extend(_spans(request, "grpc"))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        with lo.span("over grpc", kind="tool"):
            pass
        tracing.flush()
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        (span,) = received
        assert span.name == "over grpc" and span.attrs["gen_ai.operation.name"] == "execute_tool"
        assert span.resource["service.name"] == "llmops_nb"
    finally:
        tracing.shutdown()
        server.stop(0)


def test_grpc_without_its_exporter_says_so_in_one_line(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.exporter.otlp.proto.grpc'] = None  # not installed\n"
        "import llmops_nb as lo\n"
        "with lo.span('kept'):\n"
        "    pass\n"
        "print(lo.last_trace().name)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_NB_HOME": str(tmp_path),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "kept"  # the span is still stored
    lines = [line for line in out.stderr.splitlines() if "grpc" in line.lower()]
    assert lines == [
        "llmops_nb tracing: OTLP protocol grpc needs the gRPC exporter: "
        "pip install 'llmops_nb[otlp-grpc]'; spans are stored but not exported"
    ]
    assert "Traceback" not in out.stderr


# --- 5. providers, streams, cache tokens ----------------------------------------------


def test_litellm_provider_ids_become_the_conventions_names(
    receiver: Receiver, openai_server: OpenAIServer, litellm: Any
) -> None:
    # mistral speaks the OpenAI wire format: the test server answers it
    litellm.completion(
        model="mistral/mistral-small",
        messages=[{"role": "user", "content": "bonjour"}],
        api_base=openai_server.base_url,
        api_key="sk-test",
    )
    chunks = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "stream me"}],
        api_base=openai_server.base_url,
        api_key="sk-test",
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    got = receiver.wait(2)
    mistral, stream = got["chat mistral-small"].attrs, got["chat gpt-4o-mini"].attrs
    assert (
        mistral["gen_ai.provider.name"] == "mistral_ai" and mistral["llm.provider"] == "mistralai"
    )
    assert stream["gen_ai.request.stream"] is True and "llmops.stream" not in stream
    assert text and _json(stream, "gen_ai.output.messages")[0]["parts"][0]["content"] == text


@pytest.mark.parametrize(
    ("litellm_id", "name", "system"),
    [
        ("azure", "azure.ai.openai", "azure.ai.openai"),
        ("azure_ai", "azure.ai.inference", "azure.ai.inference"),
        ("vertex_ai", "gcp.vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini", "gcp.gemini"),
        ("bedrock", "aws.bedrock", "aws.bedrock"),
        ("xai", "x_ai", "xai"),
        ("watsonx", "ibm.watsonx.ai", "ibm.watsonx.ai"),
        ("someone_new", "someone_new", "someone_new"),
    ],
)
def test_provider_table(litellm_id: str, name: str, system: str) -> None:
    row = {
        "kind": "llm",
        "name": "chat m",
        "inputs": None,
        "outputs": None,
        "attributes": {"gen_ai.provider.name": litellm_id, "gen_ai.system": litellm_id},
    }
    attrs = export_attributes(row)
    assert (attrs["gen_ai.provider.name"], attrs["gen_ai.system"]) == (name, system)


def test_cache_read_tokens_are_exported(receiver: Receiver) -> None:
    """A provider's cached prompt tokens (the callback's gen_ai.usage.cache_read.input_tokens)
    reach the backend under the conventions' and OpenInference's names."""
    tracing.start_call_span(
        "cache-call",
        "chat cached-model",
        attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"},
        inputs={"messages": [{"role": "user", "content": "again"}]},
    )
    tracing.end_call_span(
        "cache-call",
        outputs={"role": "assistant", "content": "same"},
        attributes={
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.usage.cache_read.input_tokens": 1024,
        },
    )
    llm = receiver.wait(1)["chat cached-model"].attrs
    assert llm["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert llm["llm.token_count.prompt_details.cache_read"] == 1024
    assert llm["gen_ai.provider.name"] == "anthropic"


# --- 6. eval runs ---------------------------------------------------------------------


@pytest.mark.usefixtures("llm_path")
def test_eval_run_calls_carry_the_run(receiver: Receiver, openai_server: OpenAIServer) -> None:
    run = lo.evaluate(
        prompts=[{"template": "user:\nSay {{word}}", "label": "say"}],
        models=[{"model": MODEL, "api_base": openai_server.base_url, "api_key": "sk-test"}],
        data=[{"word": w} for w in ("alpha", "beta")],
        scorers=[{"contains": {"value": "{{word}}"}}],
        name="interop",
        progress=False,
        cache=False,
    )
    assert run.status == "done"
    receiver.wait(4)
    evals = [s for s in receiver.spans if s.name == "eval"]
    calls = [s for s in receiver.spans if s.name == "chat gpt-4o-mini"]
    assert len(evals) == len(calls) == 2
    session = f"llmops-eval-run-{run.id}"
    for span in evals + calls:
        assert span.attrs["llmops.eval.run_id"] == run.id
        assert span.attrs["session.id"] == session  # Phoenix groups the run as one session
    assert {c.parent_id for c in calls} == {e.span_id for e in evals}
    assert set(run.results["trace_id"].to_list()) == {e.trace_id for e in evals}


@pytest.mark.usefixtures("llm_path")
def test_eval_cell_attributes_and_scores(receiver: Receiver, openai_server: OpenAIServer) -> None:
    with tracing.eval_span(41, prompt="say", prompt_version=7, model="mini", row=3) as cell:
        c = lo.complete(MODEL, "Say alpha", api_base=openai_server.base_url, api_key="sk-test")
    tracing.eval_scores(cell, {"contains": 1.0, "judge": {"score": 0.5, "reason": "half right"}})
    got = receiver.wait(3)
    ev, scores, call = got["eval"], got["eval scores"], got["chat gpt-4o-mini"]
    assert (ev.attrs["llmops.eval.run_id"], ev.attrs["llmops.eval.prompt"]) == (41, "say")
    assert (ev.attrs["llmops.eval.prompt_version_id"], ev.attrs["llmops.eval.row_index"]) == (7, 3)
    assert ev.attrs["llmops.eval.model"] == "mini"
    assert scores.parent_id == ev.span_id == call.parent_id
    assert scores.trace_id == ev.trace_id == c.trace_id
    assert scores.attrs["llmops.eval.score.contains"] == 1.0
    assert scores.attrs["llmops.eval.score.judge"] == 0.5
    assert scores.attrs["openinference.span.kind"] == "EVALUATOR"
    assert scores.attrs["session.id"] == "llmops-eval-run-41"
    assert (
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "judge",
            "gen_ai.evaluation.score.value": 0.5,
            "gen_ai.evaluation.explanation": "half right",
        },
    ) in scores.events
    # the store has the scores span too, in the cell's trace
    t = lo.get_trace(cell.trace_id or "")
    assert t.span("eval scores").outputs == {
        "contains": 1.0,
        "judge": {"score": 0.5, "reason": "half right"},
    }
