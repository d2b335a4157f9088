"""Recording spans from code: `@trace` on functions, `span()` around blocks, `eval_span`.

Spans are made on tracing's private OpenTelemetry tracer provider (a user's own global
provider is left alone, but spans nest under its current span). An exception marks a
span as error and propagates; Ctrl-C and a cancelled asyncio task mark it "cancelled"
(and end, as cancelled, the model calls still open under it).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from ..redaction import MASK, is_secret_name
from . import pipeline
from .calls import cancel_calls_under
from .pipeline import payloads as _payloads
from .rows import CANCELLED, EVAL_RUN, is_cancellation
from .snapshot import MAX_ITEMS, MAX_STR, MAX_TOTAL, attribute_value, convert, jsonable

__all__ = ["SpanHandle", "eval_scores", "eval_span", "span", "trace"]

F = TypeVar("F", bound=Callable[..., Any])

# Bound when the pipeline starts (see _bind), so that importing this module stays light.
_tracer: Any = None
_attach: Callable[..., Any]
_detach: Callable[..., Any]
_in_context: Callable[..., Any]
_Status: Any
_ERROR: Any
_NO_PARENT: Any  # an empty context: a span started in it is a trace's root


def _bind(pipe: pipeline.Pipeline | None) -> None:
    """Cache the running pipeline's tracer and OpenTelemetry's context functions here:
    the hot path then pays a global lookup, not an attribute chain."""
    global _tracer, _attach, _detach, _in_context, _Status, _ERROR, _NO_PARENT
    if pipe is None:
        _tracer = None
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Status, StatusCode

    _attach, _detach = otel_context.attach, otel_context.detach
    _in_context = otel_trace.set_span_in_context
    _Status, _ERROR = Status, StatusCode.ERROR
    _NO_PARENT = otel_context.Context()
    _tracer = pipe.tracer


pipeline.listeners.append(_bind)


def _start_tracer() -> Any:
    pipeline.get()  # its listeners bind _tracer
    return _tracer


def _fail(sp: Any, exc: BaseException) -> None:
    """Mark SP as failed by EXC, or as cancelled by Ctrl-C or a task cancel."""
    if is_cancellation(exc):
        sp.set_attribute(CANCELLED, True)
        sp.set_status(_Status(_ERROR, f"{type(exc).__name__}: cancelled"))
        cancel_calls_under(sp.get_span_context().span_id, f"{type(exc).__name__}: cancelled")
        return
    sp.set_status(_Status(_ERROR, f"{type(exc).__name__}: {exc}"))
    try:
        sp.record_exception(exc)
    except Exception:
        pass


class SpanHandle:
    """One open span: `with lo.span(...) as s` gives it; set inputs, outputs and attributes.

    Inputs and outputs are stored as JSON-safe snapshots taken when they are set.
    """

    __slots__ = ("_span", "_name", "_p", "_attrs", "_token", "_new_trace")

    def __init__(
        self,
        name: str,
        kind: str = "chain",
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
        *,
        new_trace: bool = False,
    ) -> None:
        self._new_trace = new_trace  # the root of a trace of its own, not a child
        self._span: Any = None
        self._name = name
        self._p: list[Any] = [kind, inputs, None]  # the payload the writer stores
        self._attrs = attributes
        self._token: Any = None

    @property
    def id(self) -> str | None:
        """The span id (16 hex digits), once the span has started."""
        return None if self._span is None else f"{self._span.get_span_context().span_id:016x}"

    @property
    def trace_id(self) -> str | None:
        """The trace id (32 hex digits), once the span has started."""
        return None if self._span is None else f"{self._span.get_span_context().trace_id:032x}"

    @property
    def kind(self) -> str:
        return self._p[0]

    @property
    def inputs(self) -> Any:
        return self._p[1]

    @inputs.setter
    def inputs(self, value: Any) -> None:
        self._p[1] = jsonable(value)

    @property
    def outputs(self) -> Any:
        return self._p[2]

    @outputs.setter
    def outputs(self, value: Any) -> None:
        self._p[2] = jsonable(value)

    def set_inputs(self, value: Any = None, /, **kwargs: Any) -> None:
        """Record the block's inputs: one value, or keyword arguments as a dict."""
        self._p[1] = jsonable(kwargs if value is None else value)

    def set_outputs(self, value: Any) -> None:
        """Record the block's result."""
        self._p[2] = jsonable(value)

    def set_attribute(self, key: str, value: Any) -> None:
        """An attribute on the span (kept as OpenTelemetry attribute; objects become JSON)."""
        if is_secret_name(key):
            value = MASK
        if self._span is None:
            self._attrs = {**(self._attrs or {}), key: value}
        else:
            self._span.set_attribute(key, attribute_value(value))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    # context manager: `with lo.span(...) as s:` and `async with`

    def __enter__(self) -> SpanHandle:
        tracer = _tracer or _start_tracer()
        attrs = None
        if self._attrs:
            attrs = {
                k: MASK if is_secret_name(k) else attribute_value(v) for k, v in self._attrs.items()
            }
        context = _NO_PARENT if self._new_trace else None
        self._span = sp = tracer.start_span(self._name, context=context, attributes=attrs)
        if self._p[1] is not None:
            self._p[1] = jsonable(self._p[1])
        _payloads[sp.get_span_context().span_id] = self._p
        self._token = _attach(_in_context(sp))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        _detach(self._token)
        if exc is not None:
            _fail(self._span, exc)
        self._span.end()

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<span {self._name!r} kind={self.kind} id={self.id}>"


def span(
    name: str,
    kind: str = "chain",
    *,
    inputs: Any = None,
    attributes: Mapping[str, Any] | None = None,
) -> SpanHandle:
    """A span around a block: `with lo.span("retrieve", kind="retriever") as s: ...`.

    `s.set_inputs(...)`, `s.set_outputs(...)` and `s.set_attribute(k, v)` record what
    the block did; an exception marks the span as error and propagates. `async with`
    works too.
    """
    return SpanHandle(name, kind, inputs, attributes)


def eval_span(
    run_id: int,
    *,
    inputs: Any = None,
    prompt: str | None = None,
    prompt_version: int | None = None,
    model: str | None = None,
    row: int | None = None,
) -> SpanHandle:
    """The span an eval run puts around each cell's model call: `with eval_span(run.id):`.

    It is the root of a trace of its own (even inside another span) and carries the run
    id, which the trace row records, so `lo.traces(run=run.id)` lists the run's calls;
    the cell's prompt (label and version id), model and row index go with it as
    `llmops.eval.*` attributes, for backends that receive the trace over OTLP.
    """
    attributes: dict[str, Any] = {EVAL_RUN: int(run_id)}
    for key, value in (
        ("llmops.eval.prompt", prompt),
        ("llmops.eval.prompt_version_id", prompt_version),
        ("llmops.eval.model", model),
        ("llmops.eval.row_index", row),
    ):
        if value is not None:
            attributes[key] = value
    return SpanHandle("eval", "eval", inputs, attributes, new_trace=True)


def eval_scores(cell: SpanHandle, scores: Mapping[str, Any]) -> None:
    """Record a cell's scores as an "eval scores" span under its `eval_span` (ended).

    Each score is an attribute `llmops.eval.score.<name>` (a number, or a stored score's
    {"score": ...}) and a `gen_ai.evaluation.result` event, the conventions' name for it.
    """
    if cell._span is None or not scores:
        return
    tracer = _tracer or _start_tracer()
    attrs: dict[str, Any] = {EVAL_RUN: (cell._attrs or {}).get(EVAL_RUN)}
    events = []
    for name, stored in scores.items():
        value = stored.get("score") if isinstance(stored, Mapping) else stored
        event: dict[str, Any] = {"gen_ai.evaluation.name": str(name)}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[f"llmops.eval.score.{name}"] = float(value)
            event["gen_ai.evaluation.score.value"] = float(value)
        reason = stored.get("reason") if isinstance(stored, Mapping) else None
        if isinstance(reason, str):
            event["gen_ai.evaluation.explanation"] = reason
        events.append(event)
    sp = tracer.start_span(
        "eval scores",
        context=_in_context(cell._span),
        attributes={k: attribute_value(v) for k, v in attrs.items() if v is not None},
    )
    for event in events:
        sp.add_event("gen_ai.evaluation.result", event)
    _payloads[sp.get_span_context().span_id] = ["evaluator", None, jsonable(dict(scores))]
    sp.end()


class _Args:
    """Turns a call's arguments into the span's inputs: the bound arguments by name."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        self.sig = sig
        self.names: tuple[str, ...] = ()
        self.skip_first = False
        self.simple = False
        if sig is not None:
            params = list(sig.parameters.values())
            self.skip_first = bool(params) and params[0].name in ("self", "cls")
            kinds = {p.kind for p in params}
            P = inspect.Parameter
            self.simple = not kinds & {P.VAR_POSITIONAL, P.VAR_KEYWORD}
            self.names = tuple(
                p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
            )

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.simple and len(args) <= len(self.names):
            bound = dict(zip(self.names, args))
            if kwargs:
                bound.update(kwargs)
        elif self.sig is not None:
            try:
                bound = dict(self.sig.bind_partial(*args, **kwargs).arguments)
            except TypeError:
                bound = {"args": args, "kwargs": kwargs}
        else:
            bound = {"args": args, "kwargs": kwargs}
        if self.skip_first and self.names:
            bound.pop(self.names[0], None)
        # convert(bound) inlined one level: most arguments are small primitives
        out: dict[str, Any] = {}
        budget: list[int] | None = None
        for key, value in bound.items():
            t = type(value)
            if is_secret_name(key):
                out[key] = MASK
            elif value is None or t is int or t is bool or (t is str and len(value) <= MAX_STR):
                out[key] = value
            else:
                if budget is None:
                    budget = [MAX_TOTAL]
                out[key] = convert(value, 1, budget)
        return out


@overload
def trace(fn: F, /) -> F: ...


@overload
def trace(
    fn: str | None = None, /, *, name: str | None = None, kind: str = "chain"
) -> Callable[[F], F]: ...


def trace(fn: Any = None, /, *, name: str | None = None, kind: str = "chain") -> Any:
    """Record every call of a function as a span, nested under the current one.

    `@lo.trace`, `@lo.trace(name="answer", kind="tool")` (or `@lo.trace("answer")`).
    Works on sync and async functions and generators; the bound arguments are the
    span's inputs, the return value (or the yielded items) its outputs; an exception
    marks the span as error and propagates unchanged.
    """
    if isinstance(fn, str):
        name, fn = fn, None
    if fn is None:
        return lambda f: trace(f, name=name, kind=kind)
    if not callable(fn):
        raise TypeError(f"@lo.trace decorates a function, not {type(fn).__name__}")
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "call")
    span_name = name or qualname.rpartition("<locals>.")[2]  # Class.method, or the function
    capture = _Args(fn)
    if inspect.isasyncgenfunction(fn):
        wrapper = _wrap_async_generator(fn, span_name, kind, capture)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _wrap_generator(fn, span_name, kind, capture)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _wrap_coroutine(fn, span_name, kind, capture)
    else:
        wrapper = _wrap_function(fn, span_name, kind, capture)
    return functools.wraps(fn)(wrapper)


def _open(span_name: str, kind: str, inputs: Any) -> tuple[Any, list[Any]]:
    sp = (_tracer or _start_tracer()).start_span(span_name)
    payload = _payloads[sp.get_span_context().span_id] = [kind, inputs, None]
    return sp, payload


def _wrap_function(fn: Callable[..., Any], span_name: str, kind: str, capture: _Args) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sp, payload = _open(span_name, kind, capture(args, kwargs))
        token = _attach(_in_context(sp))
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            _fail(sp, exc)
            sp.end()
            raise
        _detach(token)
        payload[2] = jsonable(result)
        sp.end()
        return result

    return wrapper


def _wrap_coroutine(fn: Callable[..., Any], span_name: str, kind: str, capture: _Args) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        sp, payload = _open(span_name, kind, capture(args, kwargs))
        token = _attach(_in_context(sp))
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            _fail(sp, exc)
            sp.end()
            raise
        _detach(token)
        payload[2] = jsonable(result)
        sp.end()
        return result

    return wrapper


class _Items:
    """The items a traced generator yielded, as the span's outputs (capped)."""

    __slots__ = ("items", "count", "budget")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.count = 0
        self.budget = [MAX_TOTAL]

    def add(self, item: Any) -> None:
        self.count += 1
        if self.count <= MAX_ITEMS:
            self.items.append(convert(item, 1, self.budget))

    def value(self) -> list[Any]:
        if self.count > MAX_ITEMS:
            return [*self.items, f"… {self.count - MAX_ITEMS} more items"]
        return self.items


def _wrap_generator(fn: Callable[..., Any], span_name: str, kind: str, capture: _Args) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sp, payload = _open(span_name, kind, capture(args, kwargs))
        ctx = _in_context(sp)
        items = _Items()
        gen = None
        try:
            token = _attach(ctx)
            try:
                gen = fn(*args, **kwargs)
            finally:
                _detach(token)
            step: Callable[[Any], Any] = gen.send
            arg: Any = None
            while True:
                token = _attach(ctx)
                try:
                    item = step(arg)
                except StopIteration as stop:
                    result = stop.value
                    break
                finally:
                    _detach(token)
                items.add(item)
                try:
                    arg = yield item
                    step = gen.send
                except GeneratorExit:
                    raise
                except BaseException as exc:  # thrown in by the consumer: pass it on
                    step, arg = gen.throw, exc
        except GeneratorExit:  # the consumer stopped early: not an error
            if gen is not None:
                gen.close()
            payload[2] = items.value()
            sp.end()
            raise
        except BaseException as exc:
            payload[2] = items.value()
            _fail(sp, exc)
            sp.end()
            raise
        payload[2] = items.value()
        sp.end()
        return result

    return wrapper


def _wrap_async_generator(fn: Callable[..., Any], span_name: str, kind: str, capture: _Args) -> Any:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        sp, payload = _open(span_name, kind, capture(args, kwargs))
        ctx = _in_context(sp)
        items = _Items()
        agen = fn(*args, **kwargs)
        try:
            step: Callable[[Any], Any] = agen.asend
            arg: Any = None
            while True:
                token = _attach(ctx)
                try:
                    item = await step(arg)
                except StopAsyncIteration:
                    break
                finally:
                    _detach(token)
                items.add(item)
                try:
                    arg = yield item
                    step = agen.asend
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    step, arg = agen.athrow, exc
        except GeneratorExit:
            await agen.aclose()
            payload[2] = items.value()
            sp.end()
            raise
        except BaseException as exc:
            payload[2] = items.value()
            _fail(sp, exc)
            sp.end()
            raise
        payload[2] = items.value()
        sp.end()

    return wrapper
