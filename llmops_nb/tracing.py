"""Traces: OpenTelemetry spans for decorated functions, code blocks and every litellm call.

`@trace` and `span()` make nested spans on a private OpenTelemetry SDK tracer provider
(a user's own global provider is left alone, but spans nest under its current span);
the litellm callback (`llm/callback.py`) makes the LLM spans through `start_call_span`
and `end_call_span`. A span processor hands each ended span to a background writer
that stores batches with `Store.record_spans`: a traced call pays microseconds, never a
database write. The writer is woken as soon as a trace's root span ends, and drained at
exit; readers (`last_trace`, `get_trace`, `traces`) flush it first, so they always see
a trace that just finished. With LLMOPS_NB_OTLP_ENDPOINT set, the same spans (with
their inputs and outputs as attributes) also go to any OpenTelemetry backend over
OTLP/HTTP.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as _dt
import enum
import functools
import inspect
import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import config
from .errors import LLMOpsError, NotFound

if TYPE_CHECKING:
    import polars as pl
    from opentelemetry.sdk.trace import ReadableSpan

    from .store import models as m

__all__ = [
    "InvalidFeedback",
    "SpanHandle",
    "SpanRecord",
    "Trace",
    "add_secrets",
    "end_call_span",
    "feedback",
    "flush",
    "get_trace",
    "jsonable",
    "last_trace",
    "shutdown",
    "span",
    "start_call_span",
    "trace",
    "trace_id_for_call",
    "traces",
]

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("llmops_nb.tracing")

# Recorded values are capped so that one huge argument cannot bloat the store.
MAX_STR = 20_000  # characters per string
MAX_ITEMS = 200  # items per list or dict
MAX_DEPTH = 8
MAX_TOTAL = 400_000  # characters per recorded value

_BATCH = 2_000  # spans per write transaction
_INTERVAL = 0.5  # seconds between background writes when no trace ends
_DEBOUNCE = 0.05  # seconds the writer waits after a trace ends, to batch its neighbours
_SETTLE_TIMEOUT = 5.0  # seconds a reader waits for litellm's background success callbacks
_CALLS_KEPT = 100_000  # call id -> trace id entries remembered for trace_id_for_call


class InvalidFeedback(LLMOpsError, ValueError):
    """A feedback score that is not thumbs up (+1) or thumbs down (-1)."""


# --- secrets ---------------------------------------------------------------------------

# Names whose values are never recorded (like pydantic logfire's default scrubbing):
# api_key, password, secret, authorization, credential, private_key, cookie, bearer, and
# names ending in token (access_token, hf_token; not max_tokens or token_ids).
_SECRET_NAME = re.compile(
    r"passw(or)?d|secret|api[._ -]?key|apikey|private[._ -]?key|credential|auth(?!ors?\b)"
    r"|(?<![a-z])token\Z|cookie|bearer",
    re.IGNORECASE,
)
_secret_names: dict[str, bool] = {}
REDACTED = "[redacted]"

_known_secrets: set[str] = set()
_secret_values: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def _is_secret_name(key: str) -> bool:
    found = _secret_names.get(key)
    if found is None:
        found = _SECRET_NAME.search(key) is not None
        if len(_secret_names) < 10_000:
            _secret_names[key] = found
    return found


def add_secrets(values: Iterable[Any]) -> None:
    """Strings (API keys, tokens) that must never be stored: the writer masks them as ***.

    The litellm callback registers every key a call carries; key-like environment
    variables are registered when tracing starts.
    """
    global _secret_values
    new = {v for v in values if isinstance(v, str) and len(v) >= 6} - _known_secrets
    if not new:
        return
    with _secrets_lock:
        _known_secrets.update(new)
        ordered = sorted(_known_secrets, key=len, reverse=True)
        _secret_values = re.compile("|".join(re.escape(v) for v in ordered))


# Environment variables that hold credentials: OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY...
_SECRET_ENV = re.compile(r"(?:^|_)(?:API_?KEY|KEY|KEY_ID|TOKEN|SECRET|PASSWORD|PASSWD)$", re.I)


def _env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if len(v) >= 12 and _SECRET_ENV.search(k)]


def _mask(value: Any, rx: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return rx.sub("***", value) if rx.search(value) else value
    if isinstance(value, list):
        return [_mask(v, rx) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v, rx) for k, v in value.items()}
    return value


# --- JSON-safe values -------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A JSON-safe snapshot of VALUE for a span: containers copied, long text cut, else repr."""
    t = type(value)
    if t is str:
        return value if len(value) <= MAX_STR else _cut(value, MAX_STR)
    if value is None or t is int or t is bool:
        return value
    return _conv(value, 0, [MAX_TOTAL])


def _cut(text: str, limit: int) -> str:
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def _conv(v: Any, depth: int, budget: list[int]) -> Any:
    t = type(v)
    if t is str:
        limit = min(MAX_STR, max(budget[0], 0))
        budget[0] -= len(v)
        return v if len(v) <= limit else _cut(v, limit)
    if v is None or t is int or t is bool:
        return v
    if t is float:
        return v if math.isfinite(v) else str(v)
    if depth >= MAX_DEPTH:
        return _short_repr(v)
    if t is dict or isinstance(v, Mapping):
        out: dict[str, Any] = {}
        for i, (k, item) in enumerate(v.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"{len(v) - MAX_ITEMS} more items"
                break
            key = k if type(k) is str else str(k) if isinstance(k, (int, float, bool)) else repr(k)
            out[key] = REDACTED if _is_secret_name(key) else _conv(item, depth + 1, budget)
        return out
    if t is list or t is tuple or isinstance(v, (list, tuple, set, frozenset, deque)):
        items = []
        for i, item in enumerate(v):
            if i >= MAX_ITEMS:
                items.append(f"… {len(v) - MAX_ITEMS} more items")
                break
            items.append(_conv(item, depth + 1, budget))
        return items
    if isinstance(v, (int, float)):  # bool/int/float subclasses, numpy-like scalars
        return _conv(v.item() if hasattr(v, "item") else float(v), depth, budget)
    if isinstance(v, str):
        return _conv(str(v), depth, budget)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, enum.Enum):
        return _conv(v.value, depth, budget)
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    dump = getattr(v, "model_dump", None)  # pydantic models (litellm responses too)
    if callable(dump) and not isinstance(v, type):
        try:
            return _conv(dump(mode="json"), depth, budget)
        except Exception:
            return _short_repr(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = {f.name: getattr(v, f.name, None) for f in dataclasses.fields(v)}
        return _conv(fields, depth, budget)
    tolist = getattr(v, "tolist", None)  # numpy arrays: small ones as lists
    if callable(tolist) and getattr(v, "size", MAX_ITEMS + 1) <= MAX_ITEMS:
        try:
            return _conv(tolist(), depth, budget)
        except Exception:
            pass
    return _short_repr(v)


def _short_repr(v: Any) -> str:
    try:
        text = repr(v)
    except Exception:
        return f"<{type(v).__name__}>"
    return text if len(text) <= 2_000 else _cut(text, 2_000)


def _attribute_value(value: Any) -> Any:
    """An OpenTelemetry attribute value: primitives and lists of them as is, the rest as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(x, (str, bool, int, float)) for x in value
    ):
        kinds = {type(x) for x in value}
        if len(kinds) <= 1:
            return list(value)
    return json.dumps(jsonable(value), ensure_ascii=False)


# --- the pipeline: provider, processor, background writer --------------------------------

# Bound when the pipeline starts, so that importing this module stays light.
_attach: Callable[..., Any]
_detach: Callable[..., Any]
_in_context: Callable[..., Any]
_get_current_span: Callable[..., Any]
_Status: Any
_ERROR: Any


class SpanHandle:
    """One open span: `with lo.span(...) as s` gives it; set inputs, outputs and attributes.

    Inputs and outputs are stored as JSON-safe snapshots taken when they are set.
    """

    __slots__ = ("_span", "_name", "_p", "_attrs", "_token")

    def __init__(
        self,
        name: str,
        kind: str = "chain",
        inputs: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
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
        if _is_secret_name(key):
            value = REDACTED
        if self._span is None:
            self._attrs = {**(self._attrs or {}), key: value}
        else:
            self._span.set_attribute(key, _attribute_value(value))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    # context manager: `with lo.span(...) as s:` and `async with`

    def __enter__(self) -> SpanHandle:
        pipe = _pipeline or _start_pipeline()
        attrs = None
        if self._attrs:
            attrs = {
                k: REDACTED if _is_secret_name(k) else _attribute_value(v)
                for k, v in self._attrs.items()
            }
        self._span = sp = pipe.tracer.start_span(self._name, attributes=attrs)
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


# open span id -> its payload [kind, inputs, outputs], which the processor queues at its end
_payloads: dict[int, list[Any]] = {}


class _Call:
    """An LLM span opened by the litellm callback, keyed by litellm's call id."""

    __slots__ = ("handle", "trace_id", "waitable")

    def __init__(self, handle: SpanHandle, trace_id: int, waitable: bool) -> None:
        self.handle = handle
        self.trace_id = trace_id
        self.waitable = waitable


_calls: dict[str, _Call] = {}
_call_traces: OrderedDict[str, str] = OrderedDict()
_calls_cond = threading.Condition()


def _fail(sp: Any, exc: BaseException) -> None:
    sp.set_status(_Status(_ERROR, f"{type(exc).__name__}: {exc}"))
    try:
        sp.record_exception(exc)
    except Exception:
        pass


class _Pipeline:
    """The tracer provider, the store processor, its writer thread and the optional OTLP export."""

    def __init__(self) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from . import __version__

        self.otlp: Any = None
        endpoint = config.otlp_endpoint()
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # fed by the writer, with each span's inputs and outputs added
            self.otlp = BatchSpanProcessor(
                OTLPSpanExporter(endpoint=_traces_url(endpoint)), schedule_delay_millis=500
            )
        self.processor = _StoreProcessor(self)
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,  # record every span, even under a user's unsampled parent
            resource=Resource.create({"service.name": "llmops_nb"}),
            shutdown_on_exit=False,
            # the one processor, called directly (no multi-processor fan-out per span)
            active_span_processor=self.processor,  # type: ignore[arg-type]
        )
        self.tracer = self.provider.get_tracer("llmops_nb", __version__)

    def shutdown(self) -> None:
        self.processor.shutdown()
        if self.otlp is not None:
            self.otlp.shutdown()


def _traces_url(endpoint: str) -> str:
    """LLMOPS_NB_OTLP_ENDPOINT may be a collector's base URL or its /v1/traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


_pipeline: _Pipeline | None = None
_pipeline_lock = threading.Lock()


def _start_pipeline() -> _Pipeline:
    global _pipeline, _attach, _detach, _in_context, _get_current_span, _Status, _ERROR
    with _pipeline_lock:
        if _pipeline is None:
            from opentelemetry import context as otel_context
            from opentelemetry import trace as otel_trace
            from opentelemetry.trace import Status, StatusCode

            _attach, _detach = otel_context.attach, otel_context.detach
            _in_context = otel_trace.set_span_in_context
            _get_current_span = otel_trace.get_current_span
            _Status, _ERROR = Status, StatusCode.ERROR
            add_secrets(_env_secrets())
            _pipeline = _Pipeline()
        return _pipeline


class _StoreProcessor:
    """Queues ended spans; a daemon thread writes them to the store in batches.

    Implements OpenTelemetry's SpanProcessor interface (duck-typed, to keep the SDK import
    lazy). A span whose parent is not one of our open spans is a local root: its end
    wakes the writer, so a finished trace reaches the store within milliseconds.
    """

    def __init__(self, pipeline: _Pipeline) -> None:
        self.pipeline = pipeline
        self.queue: deque[tuple[ReadableSpan, list[Any] | None]] = deque()
        self.live: set[int] = set()
        # trace id -> (root span id, project, notebook path), for the trace row
        self.roots: dict[int, tuple[int, str, str | None]] = {}
        self.done: OrderedDict[int, None] = OrderedDict()  # traces whose root is stored
        self.last_root: int | None = None
        self.wake = threading.Event()
        self.write_lock = threading.Lock()
        self.stopped = False
        self.warned: set[str] = set()
        self.notebook = config.notebook_path()  # fixed for a kernel's life; env reads are slow
        self.thread = threading.Thread(target=self._run, name="llmops-nb-spans", daemon=True)
        self.thread.start()

    # SpanProcessor interface

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        ctx = span.get_span_context()
        parent = span.parent
        # A root: no parent, or a parent that is not ours (another tracer, another process)
        # in a trace we have not seen: a child that outlives its parent is no root.
        if parent is None or (
            parent.span_id not in self.live
            and ctx.trace_id not in self.roots
            and ctx.trace_id not in self.done
        ):
            self.roots[ctx.trace_id] = (ctx.span_id, config.settings.project, self.notebook)
            self.last_root = ctx.trace_id
        self.live.add(ctx.span_id)

    def _on_ending(self, span: Any) -> None:
        pass

    def add_span_processor(self, processor: Any) -> None:
        raise TypeError("llmops_nb's tracer provider is private: add processors to your own")

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        sid = ctx.span_id
        self.live.discard(sid)
        self.queue.append((span, _payloads.pop(sid, None)))
        root = self.roots.get(ctx.trace_id)
        if not self.wake.is_set() and (
            (root is not None and root[0] == sid) or len(self.queue) >= _BATCH
        ):
            self.wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.drain()
        if self.pipeline.otlp is not None:
            return bool(self.pipeline.otlp.force_flush(timeout_millis))
        return True

    def shutdown(self) -> None:
        self.stopped = True
        self.wake.set()
        self.thread.join(timeout=5)
        self.drain()

    # the writer

    def _run(self) -> None:
        while not self.stopped:
            if self.wake.wait(_INTERVAL) and not self.stopped:
                time.sleep(_DEBOUNCE)  # let a burst of traces end, then write them together
            self.wake.clear()
            try:
                self.drain()
            except Exception as exc:  # never let the writer thread die
                self._warn(f"writing spans failed: {exc}", type(exc).__name__)

    def drain(self) -> None:
        """Write every queued span now (in the calling thread)."""
        with self.write_lock:
            while self.queue:
                n = min(len(self.queue), _BATCH)
                batch = [self.queue.popleft() for _ in range(n)]
                try:
                    self._write(batch)
                except Exception as exc:  # a bad batch is dropped, never the writer
                    self._warn(f"could not record {len(batch)} spans: {exc}", type(exc).__name__)

    def _write(self, batch: list[tuple[ReadableSpan, list[Any] | None]]) -> None:
        from .store import get_store
        from .store.traces import TraceDelta

        rows: list[dict[str, Any]] = []
        deltas: dict[str, TraceDelta] = {}
        add_secrets(_env_secrets())  # keys exported since the last batch (cheap, off the hot path)
        secrets = _secret_values
        for readable, payload in batch:
            row = _span_row(readable, payload)
            if secrets is not None:
                for key in ("name", "error", "inputs", "outputs", "attributes"):
                    row[key] = _mask(row[key], secrets)
            rows.append(row)
            tid = readable.context.trace_id
            root = self.roots.get(tid)
            is_root = root is not None and root[0] == readable.context.span_id
            d = deltas.get(row["trace_id"])
            if d is None:
                project = root[1] if root else config.settings.project
                d = deltas[row["trace_id"]] = TraceDelta(
                    id=row["trace_id"],
                    project=project,
                    name=row["name"],
                    start_ns=row["start_ns"],
                    end_ns=row["end_ns"],
                    notebook_path=root[2] if root else None,
                )
            d.n_spans += 1
            d.start_ns = min(d.start_ns, row["start_ns"])
            d.end_ns = max(d.end_ns, row["end_ns"])
            if row["kind"] == "llm":
                attrs = row["attributes"]
                d.input_tokens += _int(attrs.get("gen_ai.usage.input_tokens"))
                d.output_tokens += _int(attrs.get("gen_ai.usage.output_tokens"))
                d.cost += _float(attrs.get("llmops.cost"))
            if row["status"] == "error":
                d.has_error = True
                d.error = d.error or row["error"]
            if is_root:
                d.root = True
                d.name = row["name"]
                d.root_error = row["error"]
                self.roots.pop(tid, None)
                self.done[tid] = None
                if len(self.done) > 10_000:
                    self.done.popitem(last=False)
        try:
            get_store().record_spans(rows, list(deltas.values()))
        except Exception as exc:
            self._warn(f"could not store {len(rows)} spans: {exc}", str(exc))
        if self.pipeline.otlp is not None:
            for (readable, _), row in zip(batch, rows):
                self.pipeline.otlp.on_end(_with_payload(readable, row))

    def _warn(self, message: str, key: str | None = None) -> None:
        """Log a problem once (per kind), not once per batch."""
        key = key or message
        if key not in self.warned:
            self.warned.add(key)
            log.warning("llmops_nb tracing: %s", message)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        result = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return result if math.isfinite(result) else 0.0


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters."""
    return value.replace("\x00", "\\0") if value and "\x00" in value else value


def _span_row(readable: ReadableSpan, payload: list[Any] | None) -> dict[str, Any]:
    ctx = readable.context
    parent = readable.parent
    attrs: dict[str, Any] = {}
    raw = readable.attributes
    if raw:
        for key, value in raw.items():
            attrs[key] = list(value) if isinstance(value, tuple) else value
    is_error = readable.status.status_code is _ERROR
    if is_error:
        for event in readable.events:
            if event.name == "exception" and event.attributes:
                stack = event.attributes.get("exception.stacktrace")
                if stack:
                    attrs["exception.stacktrace"] = stack
                break
    return {
        "id": f"{ctx.span_id:016x}",
        "trace_id": f"{ctx.trace_id:032x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": _text(readable.name) or "",
        "kind": payload[0] if payload is not None else "chain",
        "status": "error" if is_error else "ok",
        "error": _text(readable.status.description or "error") if is_error else None,
        "start_ns": readable.start_time,
        "end_ns": readable.end_time,
        "inputs": payload[1] if payload is not None else None,
        "outputs": payload[2] if payload is not None else None,
        "attributes": attrs,
    }


def _with_payload(readable: ReadableSpan, row: dict[str, Any]) -> ReadableSpan:
    """A copy of the span for OTLP with our kind, inputs and outputs as attributes."""
    from opentelemetry.sdk.trace import ReadableSpan

    attrs = dict(row["attributes"])  # masked, like what the store got
    attrs["llmops.span.kind"] = row["kind"]
    if row["inputs"] is not None:
        attrs["llmops.inputs"] = json.dumps(row["inputs"], ensure_ascii=False)
    if row["outputs"] is not None:
        attrs["llmops.outputs"] = json.dumps(row["outputs"], ensure_ascii=False)
    return ReadableSpan(
        name=readable.name,
        context=readable.context,
        parent=readable.parent,
        resource=readable.resource,
        attributes=attrs,
        events=readable.events,
        links=readable.links,
        kind=readable.kind,
        status=_Status(_ERROR, row["error"]) if row["error"] else readable.status,
        start_time=readable.start_time,
        end_time=readable.end_time,
        instrumentation_scope=readable.instrumentation_scope,
    )


def flush(timeout: float = 30.0) -> None:
    """Write every ended span to the store now (and push pending OTLP exports)."""
    pipe = _pipeline
    if pipe is not None:
        pipe.processor.force_flush(int(timeout * 1000))


def shutdown() -> None:
    """Flush, stop the writer and forget the pipeline; the next span starts a fresh one.

    Tests use it after changing LLMOPS_NB_OTLP_ENDPOINT.
    """
    global _pipeline
    with _pipeline_lock:
        pipe, _pipeline = _pipeline, None
    if pipe is not None:
        _settle(None, timeout=2.0)
        pipe.shutdown()


@atexit.register
def _at_exit() -> None:
    if _pipeline is not None:
        try:
            shutdown()
        except Exception as exc:  # the interpreter is going away: say so, do not raise
            log.warning("llmops_nb tracing: spans not stored at exit: %s", exc)


def _after_fork() -> None:
    """A forked child starts with no writer thread: begin afresh there."""
    global _pipeline, _pipeline_lock, _calls_cond, _secrets_lock
    _pipeline = None
    _pipeline_lock = threading.Lock()
    _calls_cond = threading.Condition()
    _secrets_lock = threading.Lock()
    _payloads.clear()
    _calls.clear()
    _call_traces.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# --- recording: @trace and span() -------------------------------------------------------


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
        # _conv(bound) inlined one level: most arguments are small primitives
        out: dict[str, Any] = {}
        budget: list[int] | None = None
        for key, value in bound.items():
            t = type(value)
            if _is_secret_name(key):
                out[key] = REDACTED
            elif value is None or t is int or t is bool or (t is str and len(value) <= MAX_STR):
                out[key] = value
            else:
                if budget is None:
                    budget = [MAX_TOTAL]
                out[key] = _conv(value, 1, budget)
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
    sp = (_pipeline or _start_pipeline()).tracer.start_span(span_name)
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
            self.items.append(_conv(item, 1, self.budget))

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


# --- LLM spans for the litellm callback ------------------------------------------------


def start_call_span(
    call_id: str,
    name: str,
    *,
    kind: str = "llm",
    attributes: Mapping[str, Any] | None = None,
    inputs: Any = None,
    start_ns: int | None = None,
    waitable: bool = True,
) -> str:
    """Open the span of an external call (a litellm request) under the current span.

    Its trace id is known at once (`trace_id_for_call`); `end_call_span` closes it, from
    any thread. `waitable` says the end comes from another thread (litellm's sync success
    callbacks), so readers may wait for it. Returns the trace id.
    """
    from opentelemetry.trace import SpanKind

    pipe = _pipeline or _start_pipeline()
    attrs = {k: _attribute_value(v) for k, v in (attributes or {}).items() if v is not None}
    sp = pipe.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=start_ns)
    handle = SpanHandle(name, kind, jsonable(inputs))
    handle._span = sp
    ctx = sp.get_span_context()
    _payloads[ctx.span_id] = handle._p
    trace_hex = f"{ctx.trace_id:032x}"
    with _calls_cond:
        _calls[call_id] = _Call(handle, ctx.trace_id, waitable)
        _call_traces[call_id] = trace_hex
        _call_traces.move_to_end(call_id)
        while len(_call_traces) > _CALLS_KEPT:
            _call_traces.popitem(last=False)
    return trace_hex


def end_call_span(
    call_id: str,
    *,
    outputs: Any = None,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
    end_ns: int | None = None,
) -> bool:
    """Close the span `start_call_span` opened for CALL_ID; False when none is open."""
    with _calls_cond:
        call = _calls.pop(call_id, None)
    if call is None:
        return False
    try:
        sp = call.handle._span
        for key, value in (attributes or {}).items():
            if value is not None:
                sp.set_attribute(key, _attribute_value(value))
        call.handle._p[2] = jsonable(outputs)
        if error is not None:
            sp.set_status(_Status(_ERROR, error))
        start = sp.start_time or 0
        sp.end(end_time=max(end_ns, start) if end_ns is not None else None)
    finally:
        with _calls_cond:
            _calls_cond.notify_all()
    return True


def trace_id_for_call(call_id: str) -> str | None:
    """The trace id (32 hex) of the LLM span made for litellm call CALL_ID, or None.

    Known as soon as litellm sent the request (the span starts in litellm's pre-call
    hook, in the caller's thread), so `lo.complete` can ask right after the call returns.
    """
    return _call_traces.get(call_id)


def _settle(trace_id: int | None, timeout: float = _SETTLE_TIMEOUT) -> None:
    """Wait (bounded) for open LLM spans of TRACE_ID (None: all) that another thread ends.

    litellm runs its success callbacks for sync calls in a background thread, so a call
    that has returned may not have closed its span yet. Async calls close theirs before
    returning, except streams; those are waited for only off the event loop's thread.
    """
    import asyncio  # here: importing it costs more than the rest of this module

    try:
        asyncio.get_running_loop()
        on_loop = True
    except RuntimeError:
        on_loop = False
    current = _pipeline and _get_current_span().get_span_context()
    inside = current.trace_id if current and current.is_valid else None

    def pending() -> bool:
        return any(
            (trace_id is None or c.trace_id == trace_id)
            and c.trace_id != inside
            and (c.waitable or not on_loop)
            for c in list(_calls.values())
        )

    deadline = time.monotonic() + timeout
    with _calls_cond:
        while pending():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _calls_cond.wait(min(left, 0.05))


# --- reading traces back -----------------------------------------------------------------


def _utc(ns: int | None) -> _dt.datetime | None:
    if ns is None:
        return None
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.UTC)


@dataclasses.dataclass
class SpanRecord:
    """One stored span: what a step received, returned, cost and how long it took."""

    id: str
    trace_id: str
    parent_id: str | None
    name: str
    kind: str
    status: str
    error: str | None
    start_ns: int
    end_ns: int
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def start(self) -> _dt.datetime:
        return _utc(self.start_ns)  # type: ignore[return-value]

    @property
    def end(self) -> _dt.datetime:
        return _utc(self.end_ns)  # type: ignore[return-value]

    @property
    def latency_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @classmethod
    def from_row(cls, row: m.Span) -> SpanRecord:
        return cls(
            id=row.id,
            trace_id=row.trace_id,
            parent_id=row.parent_id,
            name=row.name,
            kind=row.kind,
            status=row.status,
            error=row.error,
            start_ns=row.start_ns,
            end_ns=row.end_ns,
            inputs=row.inputs,
            outputs=row.outputs,
            attributes=dict(row.attributes or {}),
        )


@dataclasses.dataclass
class Trace:
    """One trace: its spans, totals and status. Displaying it shows the trace viewer."""

    id: str
    name: str
    status: str
    error: str | None
    start_ns: int
    end_ns: int | None
    n_spans: int
    input_tokens: int
    output_tokens: int
    cost: float
    notebook_path: str | None = None
    spans: list[SpanRecord] = dataclasses.field(default_factory=list)
    feedback: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return 0.0 if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6

    @property
    def tokens(self) -> int:
        """Input plus output tokens over the trace's LLM spans."""
        return self.input_tokens + self.output_tokens

    @property
    def start(self) -> _dt.datetime:
        return _utc(self.start_ns)  # type: ignore[return-value]

    @property
    def end(self) -> _dt.datetime | None:
        return _utc(self.end_ns)

    @property
    def root(self) -> SpanRecord | None:
        """The top span (the one whose parent is not in this trace)."""
        ids = {s.id for s in self.spans}
        return next((s for s in self.spans if s.parent_id not in ids), None)

    def children(self, span: SpanRecord | None = None) -> list[SpanRecord]:
        """The direct children of SPAN (the roots when None), by start time."""
        ids = {s.id for s in self.spans}
        if span is None:
            return [s for s in self.spans if s.parent_id not in ids]
        return [s for s in self.spans if s.parent_id == span.id]

    def span(self, name: str) -> SpanRecord:
        """The first span called NAME."""
        for s in self.spans:
            if s.name == name:
                return s
        raise NotFound(f"trace {self.id} has no span {name!r}")

    @classmethod
    def from_rows(
        cls, row: m.Trace, spans: list[m.Span], feedback: list[m.Feedback] | None = None
    ) -> Trace:
        return cls(
            id=row.id,
            name=row.name,
            status=row.status,
            error=row.error,
            start_ns=row.start_ns,
            end_ns=row.end_ns,
            n_spans=row.n_spans,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost=row.cost,
            notebook_path=row.notebook_path,
            spans=[SpanRecord.from_row(s) for s in spans],
            feedback=[
                {
                    "score": f.score,
                    "comment": f.comment,
                    "author": f.author,
                    "span_id": f.span_id,
                    "created_at": f.created_at.isoformat() if f.created_at else None,
                }
                for f in feedback or []
            ],
        )

    def __repr__(self) -> str:
        cost = f" ${self.cost:.6f}" if self.cost else ""
        return (
            f"<Trace {self.name!r} {self.id} {self.status} {self.latency_ms:.1f} ms "
            f"{len(self.spans)} spans {self.tokens} tokens{cost}>"
        )


def _load(trace_id: str) -> Trace:
    from .store import get_store

    store = get_store()
    row, spans = store.get_trace(trace_id)
    return Trace.from_rows(row, spans, store.trace_feedback(row.id))


def get_trace(trace_id: str) -> Trace:
    """The stored trace with this id (or a unique prefix of it), with its spans."""
    ref = (trace_id or "").strip().lower()
    pipe = _pipeline
    if pipe is not None:
        if len(ref) == 32:
            try:
                _settle(int(ref, 16))
            except ValueError:
                pass
        else:
            _settle(None)
        pipe.processor.drain()  # the store only: a slow OTLP collector must not block a reader
    return _load(ref)


def last_trace() -> Trace:
    """The trace that this process started last (else the current project's latest)."""
    pipe = _pipeline
    if pipe is not None and pipe.processor.last_root is not None:
        tid = pipe.processor.last_root
        _settle(tid)
        pipe.processor.drain()
        return _load(f"{tid:032x}")
    from .store import get_store

    rows = get_store().list_traces(config.current_project(), limit=1)
    if not rows:
        raise NotFound(
            f"no traces yet in project {config.current_project()!r}: call a model or a "
            "function decorated with @lo.trace first"
        )
    return _load(rows[0].id)


def _since_ns(since: Any) -> int | None:
    if since is None:
        return None
    if isinstance(since, _dt.timedelta):
        return time.time_ns() - int(since.total_seconds() * 1e9)
    if isinstance(since, str):
        try:
            since = _dt.datetime.fromisoformat(since)
        except ValueError:
            raise LLMOpsError(
                f"since={since!r} is not an ISO date or time (e.g. '2026-11-22T10:00')"
            ) from None
    if isinstance(since, _dt.datetime):
        if since.tzinfo is None:
            since = since.astimezone()  # a naive time is the user's local time
        return int(since.timestamp() * 1e9)
    if isinstance(since, _dt.date):
        return _since_ns(_dt.datetime(since.year, since.month, since.day))
    if isinstance(since, (int, float)):
        return int(since)
    raise LLMOpsError(f"since must be a datetime, timedelta or ISO string, not {since!r}")


def traces(
    limit: int = 50,
    name: str | None = None,
    since: Any = None,
    *,
    status: str | None = None,
    project: str | None = None,
) -> pl.DataFrame:
    """Recent traces of the project, latest first, as a polars DataFrame.

    `since` is a datetime, a timedelta (that long ago) or an ISO string.
    """
    import polars as pl

    from .store import get_store

    if _pipeline is not None:
        _pipeline.processor.drain()
    rows = get_store().list_traces(
        project or config.current_project(),
        limit=limit,
        name=name,
        status=status,
        since_ns=_since_ns(since),
    )
    schema = {
        "id": pl.String,
        "name": pl.String,
        "status": pl.String,
        "error": pl.String,
        "start": pl.Datetime("us", "UTC"),
        "latency_ms": pl.Float64,
        "n_spans": pl.Int64,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "tokens": pl.Int64,
        "cost": pl.Float64,
        "notebook_path": pl.String,
    }
    return pl.DataFrame(
        [
            {
                "id": r.id,
                "name": r.name,
                "status": r.status,
                "error": r.error,
                "start": _utc(r.start_ns),
                "latency_ms": None if r.end_ns is None else (r.end_ns - r.start_ns) / 1e6,
                "n_spans": r.n_spans,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "tokens": r.input_tokens + r.output_tokens,
                "cost": r.cost,
                "notebook_path": r.notebook_path,
            }
            for r in rows
        ],
        schema=schema,
        orient="row",
    )


def _score(score: Any) -> int:
    if isinstance(score, bool):
        return 1 if score else -1
    if isinstance(score, str):
        table = {"up": 1, "+1": 1, "1": 1, "down": -1, "-1": -1}
        if score.strip().lower() in table:
            return table[score.strip().lower()]
    elif isinstance(score, (int, float)) and score in (1, -1):
        return int(score)
    raise InvalidFeedback(
        f"feedback score must be +1 (thumbs up) or -1 (thumbs down), not {score!r}"
    )


def feedback(
    trace_id: str, score: Any, comment: str | None = None, *, span_id: str | None = None
) -> m.Feedback:
    """Store a thumbs up (+1) or down (-1), with an optional comment, on a trace."""
    from .store import get_store

    value = _score(score)
    if _pipeline is not None:
        _pipeline.processor.drain()
    store = get_store()
    row, _ = store.get_trace(trace_id)  # a clear error for an unknown id; resolves prefixes
    return store.add_feedback(row.id, value, (comment or None), config.author(), span_id=span_id)

