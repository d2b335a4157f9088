"""Server-sent events in OpenAI's streaming format: `data: {chunk}` lines, then `data: [DONE]`.

The model call itself is not streamed (`lo.acomplete` returns whole completions, with
their retries, cache and trace); its text is sent as chunks once it is complete, so any
OpenAI client's `stream=True` code path works against the endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

__all__ = ["SSE_HEADERS", "event_lines", "send_events"]

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def event_lines(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """EVENTS as SSE lines, then `data: [DONE]` (what every face writes)."""
    for event in events:
        yield ("data: " + json.dumps(event, separators=(",", ":")) + "\n\n").encode()
    yield b"data: [DONE]\n\n"


async def send_events(
    request: web.Request, events: list[dict[str, Any]], headers: Mapping[str, str]
) -> web.StreamResponse:
    """Send EVENTS as one SSE stream with HEADERS; a client that hangs up raises
    ConnectionResetError (the request's span records it)."""
    response = web.StreamResponse(status=200, headers={**headers, **SSE_HEADERS})
    await response.prepare(request)
    for line in event_lines(events):
        await response.write(line)
    await response.write_eof()
    return response
