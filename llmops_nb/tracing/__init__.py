"""Traces: OpenTelemetry spans for decorated functions, code blocks and every litellm call.

One job per module:
- secrets are kept out of spans by `llmops_nb.redaction`, the one redaction of the project;
- `snapshot`: JSON-safe, capped copies of recorded values;
- `api`: `@trace`, `span()`, `SpanHandle`, and `eval_span` for eval runs;
- `calls`: the LLM call spans the litellm callback (`llm/callback.py`) opens and closes;
- `pipeline` (with `rows`): the private tracer provider and the batch writer that stores
  spans off the hot path (bounded queue, retries, start-up spool; what can be lost is
  documented there);
- `otel`: what an OTLP backend receives (GenAI conventions, OpenInference), and where;
- `records`: `Trace` and `SpanRecord`, what a stored trace reads back as;
- `reading`: `get_trace`, `last_trace`, `traces`, `feedback`, `show`.

Importing this package stays light: OpenTelemetry's SDK loads with the first span.
"""

from __future__ import annotations

from ..redaction import add_secrets, is_secret_name, known_secrets
from .api import SpanHandle, eval_scores, eval_span, span, trace
from .calls import (
    call_attributes,
    end_call_span,
    expect_call_end,
    is_call_open,
    start_call_span,
    trace_id_for_call,
)
from .pipeline import flush, shutdown, stats
from .reading import InvalidFeedback, feedback, get_trace, last_trace, show, traces
from .records import SpanRecord, Trace
from .snapshot import MAX_ITEMS, jsonable

__all__ = [
    "MAX_ITEMS",
    "InvalidFeedback",
    "SpanHandle",
    "SpanRecord",
    "Trace",
    "add_secrets",
    "call_attributes",
    "end_call_span",
    "eval_scores",
    "eval_span",
    "expect_call_end",
    "feedback",
    "flush",
    "get_trace",
    "is_call_open",
    "is_secret_name",
    "jsonable",
    "known_secrets",
    "last_trace",
    "show",
    "shutdown",
    "span",
    "start_call_span",
    "stats",
    "trace",
    "trace_id_for_call",
    "traces",
]
