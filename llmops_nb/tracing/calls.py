"""The spans of external calls (litellm requests), opened and closed by the litellm callback.

A call span opens in the caller's thread and context (litellm's pre-call hook), so it
nests under the current span and its trace id is known before the call returns
(`trace_id_for_call`). It may close from another thread (litellm runs sync success
callbacks in a background thread): `expect_call_end` says that end is on its way, and
readers wait for it, briefly. A call that never reports an outcome does not stay open:
when its asyncio task is cancelled, or when the span around it ends cancelled (Ctrl-C,
task cancel), it ends with status "cancelled"; at exit whatever is still open is stored
as cancelled too.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import pipeline
from .rows import CANCELLED
from .snapshot import attribute_value, jsonable

__all__ = [
    "call_attributes",
    "cancel_calls_under",
    "end_call_span",
    "expect_call_end",
    "is_call_open",
    "settle",
    "start_call_span",
    "trace_id_for_call",
]

SETTLE_TIMEOUT = 5.0  # seconds a reader waits for the end of a call that has returned
_EXIT_SETTLE = 0.5  # the same at exit: a returned call's end is milliseconds away
_CALLS_KEPT = 100_000  # call id -> trace id entries remembered for trace_id_for_call


class _Call:
    """An open call span, keyed by litellm's call id."""

    __slots__ = ("span", "payload", "trace_id", "parent_id", "waitable", "task_calls")

    def __init__(self, span: Any, payload: list[Any], parent_id: int | None) -> None:
        self.span = span
        self.payload = payload
        ctx = span.get_span_context()
        self.trace_id: int = ctx.trace_id
        self.parent_id = parent_id
        self.waitable = False
        self.task_calls: set[str] | None = None  # the open calls of its asyncio task


_calls: dict[str, _Call] = {}
_call_traces: OrderedDict[str, str] = OrderedDict()
_calls_cond = threading.Condition()
_task_calls: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


_call_attrs: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "llmops_nb_call_attributes", default=None
)


@contextmanager
def call_attributes(attributes: Mapping[str, Any]) -> Iterator[None]:
    """Every call span opened inside the block (this context, its threads and tasks)
    carries ATTRIBUTES too: the prompt version and split arm a call used, the router
    that chose its model. Nested blocks add to the outer ones."""
    outer = _call_attrs.get()
    token = _call_attrs.set({**outer, **attributes} if outer else dict(attributes))
    try:
        yield
    finally:
        _call_attrs.reset(token)


def start_call_span(
    call_id: str,
    name: str,
    *,
    kind: str = "llm",
    attributes: Mapping[str, Any] | None = None,
    inputs: Any = None,
    start_ns: int | None = None,
    waitable: bool = False,
) -> str:
    """Open the span of an external call (a litellm request) under the current span.

    Its trace id is known at once (`trace_id_for_call`); `end_call_span` closes it, from
    any thread. `waitable` says readers may wait for its end right away (else from
    `expect_call_end` on). Returns the trace id.
    """
    from opentelemetry.trace import SpanKind

    pipe = pipeline.get()
    extra = _call_attrs.get()
    if extra:
        attributes = {**extra, **(attributes or {})}
    attrs = {k: attribute_value(v) for k, v in (attributes or {}).items() if v is not None}
    sp = pipe.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=start_ns)
    payload = [kind, jsonable(inputs), None]
    ctx = sp.get_span_context()
    pipeline.payloads[ctx.span_id] = payload
    parent = sp.parent
    call = _Call(sp, payload, parent.span_id if parent is not None else None)
    call.waitable = waitable
    task = _current_task()
    trace_hex = f"{ctx.trace_id:032x}"
    with _calls_cond:
        _calls[call_id] = call
        _call_traces[call_id] = trace_hex
        _call_traces.move_to_end(call_id)
        while len(_call_traces) > _CALLS_KEPT:
            _call_traces.popitem(last=False)
        if task is not None:
            group = _task_calls.get(task)
            if group is None:
                group = _task_calls[task] = set()
                task.add_done_callback(_task_done)
            group.add(call_id)
            call.task_calls = group
    return trace_hex


def _current_task() -> Any:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None


def _task_done(task: Any) -> None:
    """A task ended: its calls still open were cancelled with it (no outcome will come)."""
    with _calls_cond:
        open_ids = list(_task_calls.pop(task, ()))
    if not open_ids:
        return
    if not task.cancelled():
        return  # it handed its call on (a stream): the call ends when consumed
    for call_id in open_ids:
        _cancel(call_id, "CancelledError: the task was cancelled")


def expect_call_end(call_id: str) -> None:
    """The call has returned and its end comes from another thread: readers wait for it."""
    call = _calls.get(call_id)
    if call is not None:
        call.waitable = True


def is_call_open(call_id: str) -> bool:
    """Whether `start_call_span` opened a span for CALL_ID that has not ended yet."""
    return call_id in _calls


def end_call_span(
    call_id: str,
    *,
    outputs: Any = None,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
    end_ns: int | None = None,
    cancelled: bool = False,
) -> bool:
    """Close the span `start_call_span` opened for CALL_ID; False when none is open."""
    from opentelemetry.trace import Status, StatusCode

    with _calls_cond:
        call = _calls.pop(call_id, None)
        if call is not None and call.task_calls is not None:
            call.task_calls.discard(call_id)
    if call is None:
        return False
    try:
        sp = call.span
        for key, value in (attributes or {}).items():
            if value is not None:
                sp.set_attribute(key, attribute_value(value))
        if outputs is not None:
            call.payload[2] = jsonable(outputs)
        if cancelled:
            sp.set_attribute(CANCELLED, True)
        if error is not None or cancelled:
            sp.set_status(Status(StatusCode.ERROR, error or "cancelled"))
        start = sp.start_time or 0
        sp.end(end_time=max(end_ns, start) if end_ns is not None else None)
    finally:
        with _calls_cond:
            _calls_cond.notify_all()
    return True


def _cancel(call_id: str, reason: str) -> None:
    end_call_span(call_id, error=reason, cancelled=True, end_ns=time.time_ns())


def cancel_calls_under(span_id: int, reason: str) -> None:
    """End, as cancelled, the open calls whose parent is SPAN_ID (which was cancelled)."""
    with _calls_cond:
        ids = [cid for cid, c in _calls.items() if c.parent_id == span_id]
    for call_id in ids:
        _cancel(call_id, reason)


def trace_id_for_call(call_id: str) -> str | None:
    """The trace id (32 hex) of the LLM span made for litellm call CALL_ID, or None.

    Known as soon as litellm sent the request (the span starts in litellm's pre-call
    hook, in the caller's thread), so `lo.complete` can ask right after the call returns.
    """
    return _call_traces.get(call_id)


def settle(trace_id: int | None, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait (bounded) for the open calls of TRACE_ID (None: all) that another thread ends.

    Waited for: sync calls that have returned (`expect_call_end`) and, off the event
    loop's thread, async calls (streams close when consumed). Never the calls of the
    reader's own trace, nor those of a task that is done.
    """
    from opentelemetry.trace import get_current_span

    try:
        import asyncio

        asyncio.get_running_loop()
        on_loop = True
    except RuntimeError:
        on_loop = False
    current = get_current_span().get_span_context()
    inside = current.trace_id if current.is_valid else None

    def pending() -> bool:
        return any(
            (trace_id is None or c.trace_id == trace_id)
            and c.trace_id != inside
            and (c.waitable or (not on_loop and c.task_calls is not None))
            for c in list(_calls.values())
        )

    deadline = time.monotonic() + timeout
    with _calls_cond:
        while pending():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _calls_cond.wait(min(left, 0.05))


def _close_all_at_exit() -> None:
    """Before the pipeline stops: let returned calls end, store the rest as cancelled."""
    settle(None, timeout=_EXIT_SETTLE)
    for call_id in list(_calls):
        _cancel(call_id, "the process exited before the call finished")


pipeline.before_shutdown.append(_close_all_at_exit)


def _after_fork() -> None:
    global _calls_cond
    _calls_cond = threading.Condition()
    _calls.clear()
    _call_traces.clear()
    _task_calls.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
