"""What an OpenTelemetry backend receives: our spans in the GenAI conventions' terms.

The store keeps spans as llmops_nb records them; the OTLP copy of each one (made by the
writer, after redaction) speaks the backends' languages too:
- the OpenTelemetry GenAI conventions (`gen_ai.*`, checked against
  opentelemetry-semantic-conventions 0.66b2): messages in their JSON shape, operations
  for our span kinds, the conventions' provider names, `gen_ai.request.stream`;
- OpenInference (`openinference.span.kind`, `input.value`, `llm.*`,
  `retrieval.documents.*`, `session.id`, `openinference.project.name`), which Arize
  Phoenix reads;
- `llmops.*` for what has no standard name (our kind, the eval run, prompt versions, scores).

Content (messages, inputs, outputs, tool arguments, documents' text) is exported unless
`config.settings.otlp_content` is False or OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
says no. Where spans go: `config.otlp_endpoint()` and `config.otlp_protocol()`, the
standard OTEL_EXPORTER_OTLP_* variables, with LLMOPS_NB_OTLP_ENDPOINT first. The resource
honours OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES and names the project.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import config

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "KINDS",
    "PROVIDERS",
    "base_resource",
    "capture_content",
    "export_attributes",
    "input_messages",
    "otlp_copy",
    "output_messages",
    "span_processor",
]

log = logging.getLogger("llmops_nb.tracing")

# our span kind -> (gen_ai.operation.name, openinference.span.kind); LLM spans keep the
# operation the litellm callback gave them (chat, text_completion, embeddings...)
KINDS: dict[str, tuple[str | None, str]] = {
    "llm": (None, "LLM"),
    "chain": (None, "CHAIN"),
    "eval": (None, "CHAIN"),
    "tool": ("execute_tool", "TOOL"),
    "retriever": ("retrieval", "RETRIEVER"),
    "retrieval": ("retrieval", "RETRIEVER"),
    "agent": ("invoke_agent", "AGENT"),
    "embedding": ("embeddings", "EMBEDDING"),
    "embeddings": ("embeddings", "EMBEDDING"),
    "reranker": (None, "RERANKER"),
    "guardrail": (None, "GUARDRAIL"),
    "evaluator": (None, "EVALUATOR"),
    "prompt": (None, "PROMPT"),
}

# litellm provider id -> gen_ai.provider.name (GenAiProviderNameValues)
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.bedrock",
    "watsonx": "ibm.watsonx.ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
}
# gen_ai.provider.name -> OpenInference's llm.provider (OpenInferenceLLMProviderValues)
_OI_PROVIDERS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "anthropic": "anthropic",
    "cohere": "cohere",
    "mistral_ai": "mistralai",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "aws.bedrock": "aws",
    "x_ai": "xai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
}
_DEPRECATED_SYSTEM = {"x_ai": "xai"}  # gen_ai.system's spelling where it differs

_CONTENT_OFF = {"false", "0", "no", "off", "no_content", "none"}
_QUERY_KEYS = ("query", "question", "q", "text", "input", "prompt")
_MAX_FLAT = 50  # messages or documents flattened into llm.* / retrieval.documents.* keys


# --- where spans go -------------------------------------------------------------------


def capture_content() -> bool:
    """Whether messages, inputs and outputs travel to the OTLP backend: the setting
    (`config.settings.otlp_content`) when set, else what
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT says (false or NO_CONTENT: no),
    else yes."""
    chosen = config.settings.otlp_content
    if chosen is not None:
        return bool(chosen)
    value = config.otel_capture_message_content()
    return value is None or value.strip().lower() not in _CONTENT_OFF


def base_resource() -> Resource:
    """service.name llmops_nb unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say
    otherwise (Resource.create lets its argument win over the environment: undo that)."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    return Resource.create({"service.name": "llmops_nb"}).merge(OTELResourceDetector().detect())


_resources: dict[str, Resource] = {}  # project -> resource, for the base in _resources_of
_resources_of: list[Any] = [None]


def _project_resource(base: Resource, project: str) -> Resource:
    """BASE naming PROJECT, for backends that split by project (Phoenix reads
    openinference.project.name); a value set in OTEL_RESOURCE_ATTRIBUTES stays."""
    if _resources_of[0] is not base:  # a new pipeline: its own resource
        _resources.clear()
        _resources_of[0] = base
    found = _resources.get(project)
    if found is None:
        from opentelemetry.sdk.resources import Resource

        names = Resource({"llmops.project": project, "openinference.project.name": project})
        found = _resources[project] = names.merge(base)
    return found


def span_processor() -> Any:
    """A batch processor exporting to the configured OTLP endpoint, or None (no endpoint,
    or an exporter that cannot be used: then one warning line, and spans are only stored)."""
    target = config.otlp_endpoint()
    if target is None:
        return None
    url, is_base = target
    protocol = config.otlp_protocol()
    try:
        exporter = _exporter(protocol, url, is_base)
    except _Unavailable as exc:
        log.warning("llmops_nb tracing: %s; spans are stored but not exported", exc)
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter, schedule_delay_millis=500)


class _Unavailable(Exception):
    """The configured OTLP export cannot run here (a missing exporter, a bad protocol)."""


def _exporter(protocol: str, url: str, is_base: bool) -> Any:
    url = url.rstrip("/")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise _Unavailable(
                "OTLP protocol grpc needs the gRPC exporter: pip install 'llmops_nb[otlp-grpc]'"
            ) from None
        return OTLPSpanExporter(endpoint=url.removesuffix("/v1/traces"))
    if protocol in ("http/protobuf", "http"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise _Unavailable(
                "OTLP export needs its exporter: pip install 'llmops_nb[otlp]'"
            ) from None
        if is_base and not url.endswith("/v1/traces"):
            url = f"{url}/v1/traces"
        return OTLPSpanExporter(endpoint=url)
    raise _Unavailable(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")


# --- the OTLP copy of a span ----------------------------------------------------------


def otlp_copy(
    readable: ReadableSpan,
    row: dict[str, Any],
    *,
    project: str,
    eval_run: int | None,
    content: bool,
) -> ReadableSpan:
    """A copy of the span for OTLP: the stored (masked) row's attributes in the
    conventions' terms, under a resource that names PROJECT."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Status, StatusCode

    return ReadableSpan(
        name=readable.name,
        context=readable.context,
        parent=readable.parent,
        resource=_project_resource(readable.resource, project),
        attributes=export_attributes(row, eval_run=eval_run, content=content),
        events=_masked_events(readable.events),
        links=readable.links,
        kind=readable.kind,
        status=Status(StatusCode.ERROR, row["error"]) if row["error"] else readable.status,
        start_time=readable.start_time,
        end_time=readable.end_time,
        instrumentation_scope=readable.instrumentation_scope,
    )


def _masked_events(events: Any) -> Any:
    """Span events (an exception's message and stack) masked like the stored row."""
    if not events:
        return events
    from opentelemetry.sdk.trace import Event

    from .. import redaction

    return tuple(
        Event(e.name, redaction.redact(dict(e.attributes or {}), refresh=False), e.timestamp)
        for e in events
    )


def export_attributes(
    row: dict[str, Any], *, eval_run: int | None = None, content: bool = True
) -> dict[str, Any]:
    """The attributes a backend receives for one span row (already redacted)."""
    attrs = dict(row["attributes"])
    kind = row["kind"]
    inputs, outputs = row["inputs"], row["outputs"]
    operation, oi_kind = KINDS.get(kind, (None, "UNKNOWN"))
    attrs["llmops.span.kind"] = kind
    if kind == "llm":
        _llm(attrs, inputs, outputs, content)
        if attrs.get("gen_ai.operation.name") == "embeddings":
            oi_kind = "EMBEDDING"
    elif operation is not None:
        attrs.setdefault("gen_ai.operation.name", operation)
    attrs["openinference.span.kind"] = oi_kind
    if kind == "tool":
        _tool(attrs, row["name"], inputs, outputs, content)
    elif operation == "retrieval":
        _retrieval(attrs, inputs, outputs, content)
    elif operation == "invoke_agent":
        attrs.setdefault("gen_ai.agent.name", row["name"])
        attrs.setdefault("agent.name", row["name"])
    if eval_run is not None:
        attrs.setdefault("llmops.eval.run_id", eval_run)
        attrs.setdefault("session.id", f"llmops-eval-run-{eval_run}")  # Phoenix: one session
    if content:
        _values(attrs, inputs, outputs)
    return attrs


def _values(attrs: dict[str, Any], inputs: Any, outputs: Any) -> None:
    """Inputs and outputs as ours (llmops.*) and OpenInference's input/output.value."""
    for value, ours, key in (
        (inputs, "llmops.inputs", "input"),
        (outputs, "llmops.outputs", "output"),
    ):
        if value is None:
            continue
        text = _json(value)
        attrs[ours] = text
        if isinstance(value, str):
            attrs.setdefault(f"{key}.value", value)
            attrs.setdefault(f"{key}.mime_type", "text/plain")
        else:
            attrs.setdefault(f"{key}.value", text)
            attrs.setdefault(f"{key}.mime_type", "application/json")


def _llm(attrs: dict[str, Any], inputs: Any, outputs: Any, content: bool) -> None:
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    if isinstance(provider, str) and provider:
        name = PROVIDERS.get(provider, provider)
        attrs["gen_ai.provider.name"] = name
        if "gen_ai.system" in attrs:
            attrs["gen_ai.system"] = _DEPRECATED_SYSTEM.get(name, name)
        attrs["llm.provider"] = _OI_PROVIDERS.get(name, name)
    if attrs.pop("llmops.stream", None):  # spans stored before the attribute's rename
        attrs["gen_ai.request.stream"] = True
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if model:
        attrs["llm.model_name"] = model
    prompt, completion = (
        attrs.get("gen_ai.usage.input_tokens"),
        attrs.get("gen_ai.usage.output_tokens"),
    )
    if isinstance(prompt, int) and isinstance(completion, int):
        attrs["llm.token_count.prompt"] = prompt
        attrs["llm.token_count.completion"] = completion
        attrs["llm.token_count.total"] = prompt + completion
    cache_read = attrs.get("gen_ai.usage.cache_read.input_tokens")
    if isinstance(cache_read, int):
        attrs["llm.token_count.prompt_details.cache_read"] = cache_read
    params = {
        k.removeprefix("gen_ai.request."): v
        for k, v in attrs.items()
        if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"
    }
    if params:
        attrs["llm.invocation_parameters"] = _json(params)
    if not content:
        return
    messages = inputs.get("messages") if isinstance(inputs, Mapping) else None
    if isinstance(messages, list) and messages:
        system, chat = input_messages(messages)
        if system:
            attrs["gen_ai.system_instructions"] = _json(system)
        if chat:
            attrs["gen_ai.input.messages"] = _json(chat)
        _flatten_messages(attrs, "llm.input_messages", messages)
    replies = output_messages(outputs, attrs.get("gen_ai.response.finish_reasons"))
    if replies:
        attrs["gen_ai.output.messages"] = _json(replies)
        raw = outputs if isinstance(outputs, list) else [outputs]
        _flatten_messages(attrs, "llm.output_messages", [r for r in raw if isinstance(r, Mapping)])


def _tool(attrs: dict[str, Any], name: str, inputs: Any, outputs: Any, content: bool) -> None:
    attrs.setdefault("gen_ai.tool.name", name)
    attrs.setdefault("gen_ai.tool.type", "function")
    attrs.setdefault("tool.name", name)
    if content:
        if inputs is not None:
            attrs.setdefault("gen_ai.tool.call.arguments", _json(inputs))
        if outputs is not None:
            attrs.setdefault("gen_ai.tool.call.result", _json(outputs))


def _retrieval(attrs: dict[str, Any], inputs: Any, outputs: Any, content: bool) -> None:
    query = _query(inputs)
    if content and query is not None:
        attrs.setdefault("gen_ai.retrieval.query.text", query)
    docs = outputs.get("documents") if isinstance(outputs, Mapping) else outputs
    if not isinstance(docs, list):
        return
    found = [_document(d) for d in docs]
    listed = [{k: v for k, v in d.items() if content or k != "content"} for d in found]
    attrs.setdefault("gen_ai.retrieval.documents", _json(listed))
    for i, doc in enumerate(listed[:_MAX_FLAT]):
        for key, value in doc.items():
            attrs[f"retrieval.documents.{i}.document.{key}"] = value


def _query(inputs: Any) -> str | None:
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, Mapping):
        for key in _QUERY_KEYS:
            if isinstance(inputs.get(key), str):
                return inputs[key]
    return None


def _document(doc: Any) -> dict[str, Any]:
    """One retrieved document as {id, score, content} (what it has of them)."""
    if not isinstance(doc, Mapping):
        return {"content": doc if isinstance(doc, str) else _json(doc)}
    out: dict[str, Any] = {}
    for key in ("id", "doc_id", "document_id", "chunk_id"):
        if doc.get(key) is not None:
            out["id"] = str(doc[key])
            break
    for key in ("score", "similarity", "distance"):
        if isinstance(doc.get(key), (int, float)) and not isinstance(doc.get(key), bool):
            out["score"] = float(doc[key])
            break
    for key in ("content", "text", "page_content", "document", "chunk"):
        if doc.get(key) is not None:
            value = doc[key]
            out["content"] = value if isinstance(value, str) else _json(value)
            break
    return out


# --- messages in the conventions' JSON shape ------------------------------------------


def input_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI-style chat messages as (gen_ai.system_instructions parts,
    gen_ai.input.messages): system and developer messages become the instructions."""
    system: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            chat.append({"role": "user", "parts": _parts(message)})
            continue
        role = str(message.get("role") or "user")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "tool":
            part = {"type": "tool_call_response", "response": message.get("content")}
            if message.get("tool_call_id"):
                part["id"] = message["tool_call_id"]
            chat.append({"role": "tool", "parts": [part]})
            continue
        out: dict[str, Any] = {"role": role, "parts": _parts(message.get("content"))}
        out["parts"].extend(_tool_calls(message.get("tool_calls")))
        if message.get("name"):
            out["name"] = message["name"]
        chat.append(out)
    return system, chat


def output_messages(outputs: Any, finish_reasons: Any = None) -> list[dict[str, Any]]:
    """The reply (or the choices) the callback stored, as gen_ai.output.messages."""
    if outputs is None:
        return []
    choices = outputs if isinstance(outputs, list) else [outputs]
    reasons = list(finish_reasons) if isinstance(finish_reasons, (list, tuple)) else []
    out = []
    for i, choice in enumerate(choices):
        if isinstance(choice, Mapping):
            text = choice.get("content", choice.get("text"))
            parts = _parts(text) + _tool_calls(choice.get("tool_calls"))
            role = str(choice.get("role") or "assistant")
        else:
            parts, role = _parts(choice), "assistant"
        reply: dict[str, Any] = {"role": role, "parts": parts}
        reply["finish_reason"] = str(reasons[i]) if i < len(reasons) else "stop"
        out.append(reply)
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message content (text, or OpenAI content parts) as the conventions' parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return [{"type": "text", "content": _json(content)}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
        elif isinstance(part, Mapping) and part.get("type") == "text":
            parts.append({"type": "text", "content": part.get("text")})
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append({"type": "uri", "modality": "image", "uri": url})
        elif isinstance(part, Mapping):
            parts.append({**part, "type": str(part.get("type") or "unknown")})
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    """OpenAI tool calls (or the callback's {id, name, arguments}) as tool_call parts."""
    if not isinstance(calls, list):
        return []
    parts = []
    for call in calls:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        part: dict[str, Any] = {"type": "tool_call", "name": function.get("name")}
        if call.get("id"):
            part["id"] = call["id"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
        if arguments is not None:
            part["arguments"] = arguments
        parts.append(part)
    return parts


def _flatten_messages(attrs: dict[str, Any], prefix: str, messages: list[Any]) -> None:
    """OpenInference's flattened llm.input_messages.N.message.* keys (what Phoenix lists)."""
    for i, message in enumerate(messages[:_MAX_FLAT]):
        if not isinstance(message, Mapping):
            continue
        key = f"{prefix}.{i}.message"
        attrs[f"{key}.role"] = str(message.get("role") or "user")
        body = message.get("content", message.get("text"))
        if body is not None:
            attrs[f"{key}.content"] = body if isinstance(body, str) else _json(body)
        for j, call in enumerate(_tool_calls(message.get("tool_calls"))):
            attrs[f"{key}.tool_calls.{j}.tool_call.function.name"] = str(call.get("name"))
            if "arguments" in call:
                attrs[f"{key}.tool_calls.{j}.tool_call.function.arguments"] = _json(
                    call["arguments"]
                )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
