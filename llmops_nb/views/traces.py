"""The trace view: the one span tree that the trace viewer, its static HTML and the
sidebar's trace detail show.

Spans nest under their parents (siblings by start time); a span whose parent is not
stored yet (the exporter wrote the child first) is a root. Clocks leave as
milliseconds from the trace's start, because JavaScript numbers lose nanoseconds.
Values stay as recorded: every face renders them as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tracing import SpanRecord, Trace

__all__ = ["MAX_COMMENT_CHARS", "NS_PER_MS", "flatten", "trace_view"]

NS_PER_MS = 1_000_000
MAX_COMMENT_CHARS = 10_000  # a feedback comment: a note, not a document


def _span_node(s: SpanRecord, trace_start_ns: int, depth: int) -> dict[str, Any]:
    attrs = dict(s.attributes or {})
    return {
        "id": s.id,
        "parent_id": s.parent_id,
        "name": s.name,
        "kind": s.kind,
        "status": s.status,
        "error": s.error,
        "depth": depth,
        "offset_ms": (s.start_ns - trace_start_ns) / NS_PER_MS,
        "duration_ms": (s.end_ns - s.start_ns) / NS_PER_MS,
        "model": attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
        "input_tokens": attrs.get("gen_ai.usage.input_tokens"),
        "output_tokens": attrs.get("gen_ai.usage.output_tokens"),
        "cost": attrs.get("llmops.cost"),
        "inputs": s.inputs,
        "outputs": s.outputs,
        "attributes": attrs,
        "children": [],
    }


def _tree(spans: list[SpanRecord], trace_start_ns: int) -> list[dict[str, Any]]:
    ids = {s.id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.id)):
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    roots: list[dict[str, Any]] = []
    # Iterative, so a deep agent loop cannot hit the recursion limit.
    stack: list[tuple[SpanRecord, int, list[dict[str, Any]]]] = [
        (s, 0, roots) for s in reversed(children.get(None, []))
    ]
    seen: set[str] = set()
    while stack:
        s, depth, siblings = stack.pop()
        if s.id in seen:
            continue
        seen.add(s.id)
        node = _span_node(s, trace_start_ns, depth)
        siblings.append(node)
        stack.extend((c, depth + 1, node["children"]) for c in reversed(children.get(s.id, [])))
    return roots


def flatten(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The tree's spans depth-first (the order a waterfall lists them)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node["children"]))


def trace_view(trace: Trace) -> dict[str, Any]:
    """One trace as plain JSON-able data: totals, the span tree, its feedback."""
    duration = None if trace.end_ns is None else (trace.end_ns - trace.start_ns) / NS_PER_MS
    return {
        "id": trace.id,
        "name": trace.name,
        "status": trace.status,
        "error": trace.error,
        "start": trace.start.isoformat(),
        "start_ms": trace.start_ns / NS_PER_MS,
        "duration_ms": duration,
        "n_spans": trace.n_spans,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cost": trace.cost,
        "notebook_path": trace.notebook_path,
        "spans": _tree(trace.spans, trace.start_ns),
        "feedback": list(trace.feedback),
    }
