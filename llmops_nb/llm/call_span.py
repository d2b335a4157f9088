"""What an LLM span records, whoever sent the call: the litellm callback (`callback`) and
the OpenAI-compatible fast path (`openai_wire`) build the same `gen_ai.*` attributes,
inputs and outputs here, so a call's stored span does not depend on the path it took.

Only named fields are recorded (model, messages, a few request parameters, the reply,
usage, cost): never a client's kwargs wholesale, so API keys and auth headers cannot
reach a span. Responses may be objects (litellm's) or the provider's JSON (mappings).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

__all__ = ["failure", "request_attributes", "response_fields"]

# request parameter -> gen_ai.request.* attribute
_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}


def request_attributes(
    operation: str,
    provider: str,
    model: str,
    params: Mapping[str, Any],
    api_base: Any,
    fallback: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The span's attributes at the start of a call: operation, provider, model, the
    request parameters (from PARAMS, else FALLBACK) and the server's address."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": provider or None,
        "gen_ai.provider.name": provider or None,
        "gen_ai.request.model": model,
        "llmops.model": f"{provider}/{model}" if provider and "/" not in model else model,
    }
    fallback = fallback or {}
    for param, key in _REQUEST_PARAMS.items():
        value = params.get(param, fallback.get(param))
        if value is not None and attributes.get(key) is None:
            attributes[key] = [value] if param == "stop" and isinstance(value, str) else value
    if params.get("stream") or fallback.get("stream"):
        attributes["gen_ai.request.stream"] = True
    if isinstance(api_base, str) and api_base:
        host, port = _server(api_base)
        if host:
            attributes["server.address"] = host
        if port:
            attributes["server.port"] = port
    return attributes


@functools.lru_cache(maxsize=256)
def _server(api_base: str) -> tuple[str | None, int | None]:
    """(host, port) of an endpoint: parsed once per endpoint, not once per call."""
    url = urlparse(api_base)
    try:
        return url.hostname, url.port
    except ValueError:  # a port that is not a number
        return url.hostname, None


def failure(exception: Any) -> tuple[str, str]:
    """(error.type, the span's error message) for a failed call."""
    if isinstance(exception, BaseException):
        name, text = type(exception).__name__, str(exception)
        return name, text if name in text else f"{name}: {text}"
    return "Error", str(exception or "litellm call failed")


def response_fields(response: Any) -> tuple[dict[str, Any], Any]:
    """gen_ai.response.* and usage attributes, and the reply as the span's outputs."""
    attributes: dict[str, Any] = {}
    if response is None:
        return attributes, None
    model = _get(response, "model")
    if model:
        attributes["gen_ai.response.model"] = str(model)
    response_id = _get(response, "id")
    if response_id:
        attributes["gen_ai.response.id"] = str(response_id)
    usage = _get(response, "usage")
    if usage is not None:
        prompt = _get(usage, "prompt_tokens", "input_tokens")
        completion = _get(usage, "completion_tokens", "output_tokens")
        attributes["gen_ai.usage.input_tokens"] = int(prompt or 0)
        attributes["gen_ai.usage.output_tokens"] = int(completion or 0)
        details = _get(usage, "prompt_tokens_details")
        cached = _get(details, "cached_tokens") if details is not None else None
        cached = cached if cached is not None else _get(usage, "cache_read_input_tokens")
        if cached:
            attributes["gen_ai.usage.cache_read.input_tokens"] = int(cached)
    choices = _get(response, "choices")
    if choices:
        finish = [str(r) for r in (_get(c, "finish_reason") for c in choices) if r]
        if finish:
            attributes["gen_ai.response.finish_reasons"] = finish
        replies = [_message(c) for c in choices]
        return attributes, replies[0] if len(replies) == 1 else replies
    data = _get(response, "data")
    if isinstance(data, list):  # embeddings, images
        dims = {len(d.get("embedding") or []) for d in data if isinstance(d, Mapping)}
        return attributes, {"items": len(data), "dimensions": sorted(dims)}
    return attributes, response


def _message(choice: Any) -> Any:
    message = _get(choice, "message") or _get(choice, "delta")
    if message is None:
        return {"text": _get(choice, "text")}
    out: dict[str, Any] = {
        "role": _get(message, "role") or "assistant",
        "content": _get(message, "content"),
    }
    tool_calls = _get(message, "tool_calls")
    if tool_calls:
        out["tool_calls"] = [
            {
                "id": _get(tc, "id"),
                "name": _get(_get(tc, "function"), "name"),
                "arguments": _get(_get(tc, "function"), "arguments"),
            }
            for tc in tool_calls
        ]
    return out


def _get(obj: Any, *names: str) -> Any:
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None
