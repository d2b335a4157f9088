"""`complete` / `acomplete`: one model call (OpenAI-compatible endpoints on the fast path,
`openai_wire`; every other provider through litellm), with retries, an
end-to-end timeout per attempt and a deadline for the whole call (see `deadline`), the
store's response cache, token usage, cost and latency.

Our retry loop is the only one (litellm's and the openai client's are turned off), so
the number of requests a provider sees is exact. API keys go to litellm and nowhere
else: never into the cache key, the cached row, or an error message (`redaction`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .. import redaction
from ..config import settings
from . import health, openai_wire, response_cache
from .call_errors import (
    ModelCallError,
    ModelError,
    ModelTimeout,
    UnknownModel,
    call_trace_id,
    classify,
    end_abandoned_span,
    public_url,
    retry_after,
)
from .completion import Completion, Usage
from .deadline import DEFAULT_TIMEOUT, AttemptTimeout, Deadline, await_within, run_within

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ModelCallError",
    "ModelError",
    "ModelTimeout",
    "UnknownModel",
    "acomplete",
    "cache_key",
    "check_model",
    "complete",
]

DEFAULT_RETRIES = 3
"""Retries after the first attempt, on 429, 5xx, timeouts and connection errors."""
BACKOFF_BASE = 0.5  # seconds before the first retry, doubled each time, with jitter
BACKOFF_CAP = 20.0
MAX_RETRY_AFTER = 60.0  # a longer Retry-After fails at once instead of stalling the notebook

Messages = list[dict[str, Any]]


# Parameters that never enter the cache key: secrets (redaction.is_secret_name, and
# headers, which carry them), and what does not change the reply.
_NOT_IN_KEY = frozenset(
    {
        "metadata", "litellm_metadata", "timeout", "request_timeout", "num_retries",
        "max_retries", "deadline",
    }
)  # fmt: skip


class _TruthyZero(int):
    """0 that is truthy: litellm's OpenAI embedding handler reads `max_retries or
    DEFAULT_MAX_RETRIES`, which would turn a plain 0 into 2 hidden retries."""

    def __bool__(self) -> bool:
        return True


_NO_RETRIES = _TruthyZero(0)
_RAW_FIELDS = ("id", "object", "created", "model", "choices", "usage", "system_fingerprint")
_jitter = random.Random()
# Call ids: 128 random bits like uuid4().hex, without a getrandom syscall per call (one
# that releases the GIL costs a thread switch when litellm's logging threads are busy).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_call_id() -> str:
    """A fresh `litellm_call_id`: 32 hex digits, unique per call and per process."""
    return f"{_ids.getrandbits(128):032x}"


def cache_key(
    model: str,
    messages: Messages,
    params: dict[str, Any],
    api_base: str | None = None,
    operation: str = "completion",
) -> str:
    """sha256 of (model, messages, parameters, endpoint): never of a key or a header."""
    kept = {
        k: v
        for k, v in params.items()
        if k not in _NOT_IN_KEY and not (redaction.is_secret_name(k) or k.endswith("headers"))
    }
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "params": kept,
        "api_base": public_url(api_base),
    }
    if operation != "completion":  # completion keys stay what they were
        payload["operation"] = operation
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_key_part)
    return hashlib.sha256(text.encode()).hexdigest()


def _key_part(value: Any) -> Any:
    """A stable stand-in for a parameter JSON cannot hold (e.g. a pydantic response_format)."""
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):
        return schema()
    return repr(value)


@dataclass
class ModelCall:
    """One model call: what to send, and the bookkeeping of its attempts."""

    model: str
    messages: Messages
    params: dict[str, Any]
    deadline: Deadline
    retries: int
    use_cache: bool
    api_base: str | None
    api_key: str | None
    start: float
    key: str | None = None
    call_id: str = ""
    attempt: int = 0
    budget: float = 0.0  # seconds given to the current attempt
    operation: str = "completion"  # or "embedding" (then `messages` holds the inputs)

    @property
    def timeout(self) -> float:
        return self.deadline.timeout

    def restart(self) -> None:
        """Start the clocks again (after a first import of litellm, which can take seconds)."""
        self.start = time.perf_counter()
        self.deadline.started = time.monotonic()

    def next_attempt(self) -> dict[str, Any]:
        """Arguments for one attempt: a fresh call id the tracing callback can find, and
        the time this attempt may take (the timeout, or what is left of the deadline)."""
        self.call_id = new_call_id()
        self.budget = self.deadline.attempt_budget()
        kwargs: dict[str, Any] = {
            **self.params,
            "model": self.model,
            "timeout": self.budget,  # each socket read; `run_within` bounds the whole attempt
            "max_retries": 0,  # the openai client's retries: off
            "num_retries": 0,  # litellm's retries: off
            "litellm_call_id": self.call_id,
        }
        if self.operation == "embedding":
            kwargs["input"] = self.messages
            kwargs["max_retries"] = _NO_RETRIES
        else:
            kwargs["messages"] = self.messages
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        return kwargs

    def after_failure(self, litellm: ModuleType | None, exc: Exception) -> float:
        """Seconds to wait before the next attempt, or raise the clear error for EXC."""
        if isinstance(exc, AttemptTimeout):
            end_abandoned_span(self.call_id, exc)
        error = classify(litellm, exc, self)
        error.trace_id = call_trace_id(self.call_id)
        if not error.retryable or self.attempt >= self.retries:
            health.record_failure(self.model, self.api_base, error)
            raise error from None
        delay = retry_after(exc)
        if delay is None:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**self.attempt) * (0.5 + _jitter.random() / 2)
        elif delay > MAX_RETRY_AFTER:
            raise type(error)(
                f"{error} (the server asks to retry after {delay:g} s; try again later)"
            ) from None
        if not self.deadline.allows_wait(delay):
            attempts = f"{self.attempt + 1} attempt{'s' if self.attempt else ''}"
            error = type(error)(
                f"{error} (gave up after {attempts}: the call's deadline of "
                f"{self.deadline.total:g} s leaves no time for another)"
            )
            error.trace_id = call_trace_id(self.call_id)
            health.record_failure(self.model, self.api_base, error)
            raise error from None
        self.attempt += 1
        return delay

    def completion(self, litellm: ModuleType, response: Any) -> Completion:
        health.record_success(self.model, self.api_base)
        choice = response.choices[0] if response.choices else None
        message = getattr(choice, "message", None)
        usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", None) or {}
        if "response_cost" in hidden:
            cost = hidden["response_cost"]
        else:
            try:
                cost = litellm.completion_cost(completion_response=response)
            except Exception:  # a model missing from the price table has no cost
                cost = None
        dumped = response.model_dump()
        return Completion(
            text=(getattr(message, "content", None) or "") if message is not None else "",
            model=self.model,
            usage=Usage(
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            cost=float(cost) if cost is not None else None,
            latency_ms=(time.perf_counter() - self.start) * 1000,
            cached=False,
            trace_id=call_trace_id(self.call_id),
            finish_reason=getattr(choice, "finish_reason", None),
            raw={k: dumped[k] for k in _RAW_FIELDS if k in dumped},
        )


def prepare_call(
    model: str | None,
    messages: Messages,
    *,
    timeout: float,
    deadline: float | None,
    retries: int,
    cache: bool | None,
    api_base: str | None,
    api_key: str | None,
    params: dict[str, Any],
    operation: str = "completion",
) -> ModelCall:
    """Check the arguments of one call and set up its deadline and cache key."""
    start = time.perf_counter()
    model = model or settings.default_model
    if not model:
        raise UnknownModel(
            "no model given and no default model set: pass a litellm model id such as "
            "'openai/gpt-4o-mini', or set one with %config LLMOps.default_model or LLMOPS_NB_MODEL"
        )
    if params.get("stream"):
        raise ModelCallError("lo.complete does not stream; call it without stream=True")
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if name == "deadline" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ModelCallError(f"{name} must be a positive number of seconds, not {value!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ModelCallError(f"retries must be a whole number ≥ 0, not {retries!r}")
    if api_key:
        redaction.add_secrets([api_key])  # masked wherever it shows up: errors, traces
    use_cache = settings.cache if cache is None else bool(cache)
    call = ModelCall(
        model,
        messages,
        params,
        Deadline(float(timeout), deadline),
        retries,
        use_cache,
        api_base,
        api_key,
        start,
        operation=operation,
    )
    if use_cache:
        call.key = cache_key(model, messages, params, api_base, operation)
    return call


def _messages(prompt: str | Messages | None, messages: Messages | None) -> Messages:
    if (prompt is None) == (messages is None):
        raise ModelCallError("give either a prompt or messages=[...] (not both, not neither)")
    if prompt is not None:
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    assert messages is not None
    return messages


def _cached_completion(call: ModelCall, found: dict[str, Any]) -> Completion:
    usage = found.get("usage") or {}
    return Completion(
        text=found.get("text", ""),
        model=call.model,
        usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
        cost=found.get("cost"),
        latency_ms=(time.perf_counter() - call.start) * 1000,
        cached=True,
        trace_id=found.get("trace_id"),  # the trace of the call that filled the cache
        finish_reason=found.get("finish_reason"),
        raw=found.get("raw"),
    )


def _cache_row(result: Completion) -> dict[str, Any]:
    return {
        "text": result.text,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
        },
        "cost": result.cost,
        "finish_reason": result.finish_reason,
        "latency_ms": result.latency_ms,
        "raw": result.raw,
    }


_observers: contextvars.ContextVar[list[Completion] | None] = contextvars.ContextVar(
    "llmops_nb_completions", default=None
)


@contextmanager
def observe_completions() -> Iterator[list[Completion]]:
    """Collect every Completion that complete/acomplete return inside the block (and in
    the threads and tasks it starts): the eval runner sums a target's tokens and cost."""
    found: list[Completion] = []
    token = _observers.set(found)
    try:
        yield found
    finally:
        _observers.reset(token)


def _observed(result: Completion) -> Completion:
    found = _observers.get()
    if found is not None:
        found.append(result)
    return result


def complete(
    model: str | None = None,
    prompt: str | Messages | None = None,
    *,
    messages: Messages | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    retries: int = DEFAULT_RETRIES,
    cache: bool | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    guard: Any = None,
    guard_action: str = "block",
    **params: Any,
) -> Completion:
    """Call MODEL (a litellm id, e.g. 'openai/gpt-4o-mini') with a prompt or messages.

    `timeout` (default 60 s) bounds each attempt end to end, however slowly the server
    sends; `deadline` (default twice the timeout) bounds the whole call, retries and
    backoff included. 429s, 5xx, timeouts and connection errors are retried `retries`
    times with exponential backoff and jitter, honouring Retry-After, within the
    deadline. With `cache` (default: the `cache` setting) the same model, messages and
    parameters are answered from the store, marked `cached`, with the usage, cost and
    trace id of the call that filled it. Other keyword arguments (temperature,
    max_tokens, ...) go to the model. `latency_ms` is what the caller waited, retries
    included. Failures raise one `ModelError`: `UnknownModel`, `ModelTimeout` or
    `ModelCallError`, with any API key masked. `guard=["pii", ...]` checks the input
    and the reply (`guard_action` "block", "redact" or "flag"; see `guardrails`).
    """
    if guard is not None:  # guardrails: check the input and the reply (see guardrails.py)
        from ..guardrails import guarded_complete

        return guarded_complete(
            guard, guard_action, model, prompt, messages=messages, timeout=timeout,
            deadline=deadline, retries=retries, cache=cache, api_base=api_base,
            api_key=api_key, **params,
        )  # fmt: skip
    if isinstance(model, str) and model.startswith("router/"):  # a stored router picks
        from .. import routing

        return routing.complete(
            model, prompt, messages=messages, timeout=timeout, deadline=deadline,
            retries=retries, cache=cache, api_base=api_base, api_key=api_key, **params,
        )  # fmt: skip
    call = prepare_call(
        model, _messages(prompt, messages), timeout=timeout, deadline=deadline,
        retries=retries, cache=cache, api_base=api_base, api_key=api_key, params=params,
    )  # fmt: skip
    if call.use_cache:
        found = response_cache.lookup(call.key)
        if found is not None:
            return _observed(_cached_completion(call, found))
    wire = openai_wire.route(call)
    if wire is not None:  # an OpenAI-compatible endpoint: no litellm on the way
        call.start = time.perf_counter()
        result = wire.completion(call, send_attempts(call, None, wire.send))
    else:
        litellm = litellm_for(call)
        call.restart()  # latency and deadline are the model's, not litellm's first import
        result = call.completion(litellm, send_attempts(call, litellm, litellm.completion))
    if call.use_cache:
        response_cache.store(call.key, call.model, _cache_row(result), result.trace_id)
    return _observed(result)


async def acomplete(
    model: str | None = None,
    prompt: str | Messages | None = None,
    *,
    messages: Messages | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    retries: int = DEFAULT_RETRIES,
    cache: bool | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    guard: Any = None,
    guard_action: str = "block",
    **params: Any,
) -> Completion:
    """`complete` for asyncio code (the eval runner): same arguments, same result."""
    if guard is not None:  # guardrails: check the input and the reply (see guardrails.py)
        from ..guardrails import aguarded_complete

        return await aguarded_complete(
            guard, guard_action, model, prompt, messages=messages, timeout=timeout,
            deadline=deadline, retries=retries, cache=cache, api_base=api_base,
            api_key=api_key, **params,
        )  # fmt: skip
    if isinstance(model, str) and model.startswith("router/"):  # a stored router picks
        from .. import routing

        return await routing.acomplete(
            model, prompt, messages=messages, timeout=timeout, deadline=deadline,
            retries=retries, cache=cache, api_base=api_base, api_key=api_key, **params,
        )  # fmt: skip
    call = prepare_call(
        model, _messages(prompt, messages), timeout=timeout, deadline=deadline,
        retries=retries, cache=cache, api_base=api_base, api_key=api_key, params=params,
    )  # fmt: skip
    if call.use_cache:
        found = await asyncio.to_thread(response_cache.lookup, call.key)
        if found is not None:
            return _observed(_cached_completion(call, found))
    wire = openai_wire.route(call)
    if wire is not None:  # an OpenAI-compatible endpoint: no litellm on the way
        call.start = time.perf_counter()
        result = wire.completion(call, await asend_attempts(call, None, wire.asend))
    else:
        litellm = litellm_for(call)
        call.restart()  # latency and deadline are the model's, not litellm's first import
        response = await asend_attempts(call, litellm, litellm.acompletion)
        result = call.completion(litellm, response)
    if call.use_cache:
        await asyncio.to_thread(
            response_cache.store, call.key, call.model, _cache_row(result), result.trace_id
        )
    return _observed(result)


def send_attempts(call: ModelCall, litellm: ModuleType | None, send: Any) -> Any:
    """The one retry loop: `send(**kwargs)` (litellm.completion, litellm.embedding, the
    fast path's send) once per attempt, each bounded by its budget, until one succeeds
    or `after_failure` raises (LITELLM None: the fast path's errors)."""
    health.check(call.model, call.api_base)
    while True:
        kwargs = call.next_attempt()
        try:
            return run_within(functools.partial(send, **kwargs), call.budget)
        except Exception as exc:
            time.sleep(call.after_failure(litellm, exc))


async def asend_attempts(call: ModelCall, litellm: ModuleType | None, send: Any) -> Any:
    """`send_attempts` for an async SEND (litellm.acompletion, litellm.aembedding)."""
    health.check(call.model, call.api_base)
    while True:
        kwargs = call.next_attempt()
        try:
            return await await_within(functools.partial(send, **kwargs), call.budget)
        except Exception as exc:
            await asyncio.sleep(call.after_failure(litellm, exc))


# --- litellm, providers and errors ---------------------------------------------------------

_known_models: set[tuple[str, str | None]] = set()
_OWN_PROVIDERS = frozenset({"openai", "local"})  # no litellm import needed to know them


def check_model(model: str, api_base: str | None = None) -> None:
    """Raise UnknownModel unless litellm knows MODEL's provider (no request is sent).

    The providers llmops_nb speaks itself (`openai/`, `local/`) are known without
    importing litellm, so checking a grid's models costs nothing."""
    from . import runtime

    if (model, api_base) in _known_models or model.partition("/")[0] in _OWN_PROVIDERS:
        return
    litellm = runtime.litellm()
    try:
        litellm.get_llm_provider(model, api_base=api_base)
    except Exception:
        raise UnknownModel(
            f"unknown model {model!r}: litellm needs a known provider prefix, "
            "e.g. 'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest' or "
            "'local/<name>' (providers: https://docs.litellm.ai/docs/providers)"
        ) from None
    _known_models.add((model, api_base))


def litellm_for(call: ModelCall) -> ModuleType:
    """litellm (imported on first use), after checking that it knows the model's provider."""
    from . import runtime

    litellm = runtime.litellm()
    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners in notebooks
    check_model(call.model, call.api_base)
    return litellm
