"""The OpenAI wire shapes the endpoint answers with: errors, completions, stream chunks."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..llm.completion import Completion

__all__ = ["RequestError", "chunks", "completion_body", "error_body", "models_body"]


class RequestError(Exception):
    """A request the endpoint refuses: its HTTP status and the OpenAI error fields (and
    the trace that recorded it, once there is one)."""

    trace_id: str | None = None

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type, param, code,
        )  # fmt: skip

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`{"error": {"message", "type", "param", "code"}}`, what every OpenAI client parses."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _usage(result: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.input_tokens,
        "completion_tokens": result.usage.output_tokens,
        "total_tokens": result.usage.total_tokens,
    }


def completion_body(response_id: str, model: str, result: Completion) -> dict[str, Any]:
    """A `chat.completion` object for RESULT."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason or "stop",
            }
        ],
        "usage": _usage(result),
    }


_PIECE = re.compile(r"\s*\S+\s*|\s+")


def chunks(
    response_id: str, model: str, result: Completion, include_usage: bool
) -> list[dict[str, Any]]:
    """RESULT as `chat.completion.chunk` objects: the role, the text word by word, the
    finish reason, then (when the client asked with stream_options) the usage."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _PIECE.findall(result.text)]
    out.append(chunk({}, result.finish_reason or "stop"))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = _usage(result)
        out.append(last)
    return out


def models_body(routes: list[str]) -> dict[str, Any]:
    """`/v1/models`: one model object per route."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmops_nb"}
            for name in routes
        ],
    }
