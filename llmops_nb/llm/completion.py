"""The result of one model call: what `lo.complete` returns and the eval runner records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Completion:
    """One model response. `cached` is True when it came from the store's response cache."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    latency_ms: float = 0.0
    cached: bool = False
    trace_id: str | None = None
    finish_reason: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)
    guard_findings: list[Any] = field(default_factory=list, repr=False)  # lo.complete(guard=)

    def __str__(self) -> str:
        return self.text
