"""The litellm callback that turns every litellm call into an LLM span.

`install(litellm)` (run by `llm.runtime` when litellm is imported, by whoever) adds one
`CustomLogger` to `litellm.callbacks`, which litellm runs for sync and async calls.
The span opens in litellm's pre-call hook, which runs in the caller's thread and
context, so it nests under the caller's current span and its trace id is known before
the call returns (`tracing.trace_id_for_call`). It closes in the success or failure
hook: inline for async calls (`async_post_call_success_deployment_hook`) and for
failures; from litellm's logging thread for sync successes, which is why the post-call
hook (the response is in) tells tracing that the end is on its way
(`tracing.expect_call_end`), so readers wait for it. A cancelled async call reports no
outcome: tracing ends its span as cancelled when its task is cancelled.

Only named fields are recorded (model, messages, a few request parameters, the reply,
usage, cost): never litellm's kwargs wholesale, so API keys and auth headers cannot
reach a span; any key-like value is also scrubbed from messages, replies and errors.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from .. import redaction, tracing
from .call_span import failure, request_attributes, response_fields

__all__ = ["install"]

_MARK = "_llmops_nb_tracing"

# litellm call type -> gen_ai.operation.name
_OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "image_generation": "image_generation",
    "aimage_generation": "image_generation",
    "responses": "chat",
    "aresponses": "chat",
}

_PLAIN = (bool, int, float)  # values that cannot be secrets: skipped fast


def install(litellm: ModuleType) -> None:
    """Trace every call of this litellm module (idempotent)."""
    callbacks = litellm.callbacks
    if any(getattr(cb, _MARK, False) for cb in callbacks):
        return
    callbacks.append(_logger_class(litellm)())


def _logger_class(litellm: ModuleType) -> type:
    base = litellm.integrations.custom_logger.CustomLogger

    class LLMOpsTracer(base):  # type: ignore[misc, valid-type]
        """Opens an LLM span before each litellm request and closes it with the outcome."""

        _llmops_nb_tracing = True

        # before the request: in the caller's thread and context, sync and async
        def log_pre_api_call(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> None:
            _start(kwargs, messages)

        # the response is in (caller's thread): a sync success is logged from another thread
        def log_post_api_call(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            call_id = _call_id(kwargs)
            if call_id is not None:
                tracing.expect_call_end(call_id)

        # sync success: litellm's logging thread
        def log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            _succeed(kwargs, response_obj, kwargs.get("response_cost"), end_time)

        # async success: inline, before `await acompletion(...)` returns
        async def async_post_call_success_deployment_hook(
            self, request_data: dict[str, Any], response: Any, call_type: Any
        ) -> None:
            cost = _cost(litellm, request_data, response)
            hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, dict) and cost is not None:
                hidden.setdefault("response_cost", cost)  # so lo.acomplete need not price it again
            _succeed(request_data, response, cost, None)
            return None

        # async streams and anything the deployment hook did not see
        async def async_log_success_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            _succeed(kwargs, response_obj, kwargs.get("response_cost"), end_time)

        def log_failure_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            _fail(kwargs, kwargs.get("exception"), end_time)

        async def async_post_call_failure_deployment_hook(
            self,
            request_data: Mapping[str, Any],
            exception: Exception,
            call_type: Any,
            fallback_depth: int | None = None,
        ) -> None:
            _fail(request_data, exception, None)

        async def async_log_failure_event(
            self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            _fail(kwargs, kwargs.get("exception"), end_time)

    return LLMOpsTracer


# --- span contents --------------------------------------------------------------------


def _call_id(kwargs: Mapping[str, Any]) -> str | None:
    call_id = kwargs.get("litellm_call_id")
    if not call_id:
        call_id = (kwargs.get("litellm_params") or {}).get("litellm_call_id")
    return str(call_id) if call_id else None


def _ns(value: Any) -> int | None:
    """litellm's naive local datetimes (or epoch floats) as epoch nanoseconds."""
    if isinstance(value, _dt.datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)) and value > 0:
        return int(value * 1e9)
    return None


def _start(kwargs: Mapping[str, Any], messages: Any = None) -> str | None:
    call_id = _call_id(kwargs)
    if call_id is None or tracing.is_call_open(call_id):
        return None  # litellm may run its pre-call hook more than once per attempt
    params: Mapping[str, Any] = kwargs.get("litellm_params") or {}
    optional: Mapping[str, Any] = kwargs.get("optional_params") or {}
    provider = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider") or ""
    model = str(kwargs.get("model") or "")
    call_type = str(kwargs.get("call_type") or "completion")
    operation = _OPERATIONS.get(call_type, call_type)
    attributes = request_attributes(
        operation,
        provider,
        model,
        optional,
        params.get("api_base") or kwargs.get("api_base"),
        fallback=kwargs,
    )
    if messages is None:
        messages = kwargs.get("messages")
    if operation == "embeddings" or not messages:
        inputs: dict[str, Any] = {"input": kwargs.get("input", messages)}
    else:
        inputs = {"messages": messages}
    secrets = _secrets(kwargs)  # registered by _scrub: masked wherever else they show up
    trace_id = tracing.start_call_span(
        call_id,
        f"{operation} {model}".strip(),
        attributes=attributes,
        inputs=_scrub(tracing.jsonable(inputs), secrets),
        start_ns=_ns(kwargs.get("start_time")),
    )
    return trace_id


def _ensure_started(kwargs: Mapping[str, Any]) -> str | None:
    """The call id whose span is open; opens one for calls that skipped the pre-call hook
    (cache hits, failures before the request), but never twice for one outcome."""
    call_id = _call_id(kwargs)
    if call_id is None:
        return None
    if tracing.is_call_open(call_id):
        return call_id
    if tracing.trace_id_for_call(call_id) is not None:
        return None  # already closed: a second hook reporting the same outcome
    return call_id if _start(kwargs) else None


def _succeed(kwargs: Mapping[str, Any], response: Any, cost: Any, end_time: Any) -> None:
    call_id = _ensure_started(kwargs)
    if call_id is None:
        return
    secrets = _secrets(kwargs)
    attributes: dict[str, Any] = {}
    outputs: Any = None
    try:
        attributes, outputs = response_fields(response)
    except Exception as exc:  # an unexpected response shape must not lose the span
        attributes["llmops.response_error"] = str(exc)
    cost_value = _number(cost)
    if cost_value is None:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost_value = _number(hidden.get("response_cost"))
    if cost_value is not None:
        attributes["llmops.cost"] = cost_value
    if kwargs.get("cache_hit"):
        attributes["llmops.cached"] = True
    tracing.end_call_span(
        call_id,
        outputs=_scrub(tracing.jsonable(outputs), secrets),
        attributes=attributes,
        end_ns=_ns(end_time) or time.time_ns(),
    )


def _fail(kwargs: Mapping[str, Any], exception: Any, end_time: Any) -> None:
    call_id = _ensure_started(kwargs)
    if call_id is None:
        return
    name, message = failure(exception)
    message = _scrub(message, _secrets(kwargs))
    tracing.end_call_span(
        call_id,
        attributes={"error.type": name},
        error=message,
        end_ns=_ns(end_time) or time.time_ns(),
    )


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _cost(litellm: ModuleType, request: Mapping[str, Any], response: Any) -> float | None:
    """The call's cost from litellm's local price table (async responses carry none yet)."""
    logging_obj = request.get("litellm_logging_obj")
    calculate = getattr(logging_obj, "response_cost_calculator", None)
    try:
        if callable(calculate):
            return _number(calculate(result=response))
        return _number(litellm.completion_cost(completion_response=response))
    except Exception:  # unknown model: no price
        return None


# --- keeping secrets out ----------------------------------------------------------------


def _secrets(kwargs: Mapping[str, Any]) -> set[str]:
    """Every key-like string this call could carry: api keys, auth headers, key env vars."""
    found: set[str] = set()
    sources: list[Any] = [kwargs, kwargs.get("litellm_params"), kwargs.get("optional_params")]
    for source in sources:
        if isinstance(source, dict):
            _collect(source.items(), found, 0)
    return found  # the known ones (key-like environment variables too) are redaction's


def _collect(items: Iterable[tuple[Any, Any]], found: set[str], depth: int) -> None:
    for key, value in items:
        if value is None or value.__class__ in _PLAIN:
            continue
        secret_key = isinstance(key, str) and tracing.is_secret_name(key)
        if isinstance(value, str):
            if secret_key and len(value) >= 6:
                found.add(value)
                scheme, _, rest = value.partition(" ")
                if rest and scheme.lower() in ("bearer", "basic", "token"):
                    found.add(rest)
        elif isinstance(value, dict) and depth < 2 and isinstance(key, str):
            if secret_key or "header" in key.lower():
                _collect(value.items(), found, depth + 1)


def _scrub(value: Any, secrets: set[str]) -> Any:
    """VALUE with every secret masked, through the one redaction: the longest secret first,
    so a key that starts with another key ("sk-test" in "sk-test-SECRET") is never half shown."""
    redaction.add_secrets(secrets)
    return redaction.redact(value, refresh=False)  # the span writer refreshes the env's keys
