"""What a stored trace reads back as: a Trace with its SpanRecords (plain data).

No display here: `llmops_nb.display` registers the trace viewer for these classes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import TYPE_CHECKING, Any

from ..errors import NotFound

if TYPE_CHECKING:
    from ..store import models as m

__all__ = ["SpanRecord", "Trace", "utc"]


def utc(ns: int | None) -> _dt.datetime | None:
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
        return utc(self.start_ns)  # type: ignore[return-value]

    @property
    def end(self) -> _dt.datetime:
        return utc(self.end_ns)  # type: ignore[return-value]

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
    """One trace: its spans, totals and status (ok, error or cancelled).

    `llmops_nb.display` shows it as the trace viewer; this class knows nothing of display.
    """

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
    eval_run_id: int | None = None
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
        return utc(self.start_ns)  # type: ignore[return-value]

    @property
    def end(self) -> _dt.datetime | None:
        return utc(self.end_ns)

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
            eval_run_id=row.eval_run_id,
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
