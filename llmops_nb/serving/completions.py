"""One chat-completions request: read it, resolve its route, build the messages, call the
model through `lo.acomplete`, and record it all as one trace.

Prompt variables: `variables` (the openai SDK's `extra_body={"variables": {...}}`) over
`metadata` (the request's own field). A prompt route then takes the request's messages
one of two ways:
- its variables are all given: the rendered prompt, then the request's messages (a
  conversation on top of the prompt);
- exactly one variable is missing: the last user message's text is that variable, and
  the rendered prompt is all that is sent.
Any other missing variable is a 400 naming them. A model route sends the request's
messages as they are. Sampling parameters of the request are used unless the prompt
version sets them: the version is what was evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..errors import LLMOpsError, StoreUnavailable
from .openai_shapes import RequestError

if TYPE_CHECKING:
    from ..llm.completion import Completion
    from .routes import Resolved, RouteTable

__all__ = ["ChatRequest", "Served", "build_messages", "parse_request", "serve_request"]

PASSED_PARAMETERS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "response_format", "logit_bias",
)  # fmt: skip


@dataclass
class ChatRequest:
    """What the endpoint reads from a request body."""

    route: str
    messages: list[dict[str, Any]]
    variables: dict[str, Any]
    params: dict[str, Any]
    stream: bool
    include_usage: bool
    user: str | None


@dataclass
class Served:
    """A request that was answered: what served it, the completion, and its trace."""

    resolved: Resolved
    result: Completion
    trace_id: str


def _bad(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, message, param=param, code=code)


def parse_request(body: Any, user_header: str | None = None) -> ChatRequest:
    """Check a request body's shape; a RequestError (400) names the field at fault."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    route = body.get("model")
    if not isinstance(route, str) or not route:
        raise _bad("'model' is required: it names a route (GET /v1/models lists them)", "model")
    messages = body.get("messages", [])
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
    ):
        raise _bad("'messages' must be a list of {role, content} objects", "messages")
    variables: dict[str, Any] = {}
    for field in ("metadata", "variables"):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _bad(f"'{field}' must be an object of prompt variables", field)
        variables.update(value)
    if body.get("n", 1) != 1:
        raise _bad("only n=1 is supported", "n")
    options = body.get("stream_options") or {}
    user = body.get("user") or user_header
    return ChatRequest(
        route=route,
        messages=messages,
        variables=variables,
        params={k: body[k] for k in PASSED_PARAMETERS if body.get(k) is not None},
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        user=str(user) if user is not None else None,
    )


def message_text(message: dict[str, Any]) -> str:
    """A message's text: a string content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def build_messages(
    resolved: Resolved, req: ChatRequest
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the messages sent to the model, the prompt variables used), as the module says."""
    version = resolved.prompt
    if version is None:
        if not req.messages:
            raise _bad("'messages' is required for a model route", "messages")
        return req.messages, {}
    values = dict(req.variables)
    missing = [v for v in version.variables if v not in values]
    conversation = list(req.messages)
    if len(missing) == 1 and conversation and conversation[-1].get("role") == "user":
        values[missing[0]] = message_text(conversation[-1])
        missing, conversation = [], []
    if missing:
        names = ", ".join(repr(v) for v in missing)
        raise _bad(
            f"missing prompt variable{'s' if len(missing) > 1 else ''} {names} for "
            f"{version.ref}: give them in 'metadata' (or extra_body={{'variables': {{...}}}})",
            "metadata",
            "missing_variable",
        )
    try:
        messages: list[dict[str, Any]] = list(version.render(values))
    except LLMOpsError as exc:
        raise _bad(str(exc), "metadata", "missing_variable") from None
    return messages + conversation, values


def _code(exc: BaseException) -> str:
    """GuardBlocked -> guard_blocked: the error's class as the OpenAI `code`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _model_failure(exc: LLMOpsError) -> RequestError:
    """The HTTP answer for a failed call: 504 timeout, 502 model error, 503 store, else
    400 (bad input caught by the call, such as a guard that blocked it)."""
    from ..guardrails import GuardBlocked
    from ..llm.client import ModelError, ModelTimeout

    if isinstance(exc, GuardBlocked):
        return RequestError(400, str(exc), code="guard_blocked")
    if isinstance(exc, ModelTimeout):
        return RequestError(504, str(exc), type="api_error", code="model_timeout")
    if isinstance(exc, ModelError):
        return RequestError(502, str(exc), type="api_error", code="model_error")
    if isinstance(exc, StoreUnavailable):
        return RequestError(503, str(exc), type="api_error", code="store_unavailable")
    return RequestError(400, str(exc), code=_code(exc))


def _route_attributes(resolved: Resolved) -> dict[str, Any]:
    route = resolved.route
    attrs: dict[str, Any] = {
        "llmops.serve.target": route.target,
        "gen_ai.request.model": resolved.model,
    }
    if resolved.prompt is not None:
        attrs["llmops.prompt.name"] = resolved.prompt.name
        attrs["llmops.prompt.version"] = resolved.prompt.version
        attrs["llmops.prompt.version_id"] = resolved.prompt.id
    if resolved.arm is not None:
        attrs["llmops.prompt.split"] = resolved.prompt.name if resolved.prompt else route.target
        attrs["llmops.prompt.arm"] = resolved.arm
    if route.guard:
        attrs["llmops.serve.guard"] = list(route.guard)
    return attrs


async def _call(resolved: Resolved, messages: list[dict[str, Any]], req: ChatRequest,
                *, guard_action: str, cache: bool) -> Completion:  # fmt: skip
    from ..llm.client import acomplete

    params = {**req.params, **resolved.parameters}
    if resolved.route.guard:
        params["guard"] = list(resolved.route.guard)
        params["guard_action"] = guard_action
    if resolved.prompt is not None:  # the prompt (and split arm) on the LLM span too
        with tracing.call_attributes(resolved.prompt.trace_attributes):
            return await acomplete(resolved.model, messages=messages, cache=cache, **params)
    return await acomplete(resolved.model, messages=messages, cache=cache, **params)


async def serve_request(
    table: RouteTable,
    req: ChatRequest,
    *,
    key_id: str | None,
    guard_action: str,
    cache: bool,
    generation: int | None = None,
) -> Served:
    """Answer REQ as one trace: a root `serve` span (route, resolved version, arm, key id),
    the LLM span of the call below it. A refusal raises RequestError after the span has
    recorded it as an error."""
    attributes: dict[str, Any] = {
        "llmops.serve.route": req.route,
        "llmops.serve.stream": req.stream,
    }
    if key_id is not None:
        attributes["llmops.serve.key_id"] = key_id
    root = tracing.SpanHandle("serve", "chain", None, attributes, new_trace=True)
    try:
        with root:
            root.set_inputs(route=req.route, messages=req.messages, variables=req.variables)
            try:
                resolved, result = await _answer(table, req, root, guard_action, cache, generation)
            except RequestError as exc:
                root.set_attribute("http.response.status_code", exc.status)
                raise
            root.set_outputs(result.text)
            root.set_attributes(
                {"gen_ai.response.model": result.model, "http.response.status_code": 200}
            )
    except RequestError as exc:
        exc.trace_id = root.trace_id
        raise
    assert root.trace_id is not None
    return Served(resolved, result, root.trace_id)


async def _answer(
    table: RouteTable,
    req: ChatRequest,
    root: tracing.SpanHandle,
    guard_action: str,
    cache: bool,
    generation: int | None,
) -> tuple[Resolved, Completion]:
    if req.route not in table.routes:
        known = ", ".join(sorted(table.routes))
        raise RequestError(
            404, f"unknown model {req.route!r}: the routes are {known}",
            param="model", code="model_not_found",
        )  # fmt: skip
    try:
        resolved = await table.resolve(req.route, req.user, generation)
    except LLMOpsError as exc:
        raise _model_failure(exc) from None
    root.set_attributes(_route_attributes(resolved))
    messages, values = build_messages(resolved, req)
    root.set_inputs(route=req.route, messages=messages, variables=values)
    try:
        result = await _call(resolved, messages, req, guard_action=guard_action, cache=cache)
    except LLMOpsError as exc:
        raise _model_failure(exc) from None
    return resolved, result
