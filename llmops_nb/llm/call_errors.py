"""The errors of a model call, and the one way a failed attempt becomes one of them.

Shared by both ways of sending a call (litellm, and the OpenAI-compatible fast path in
`openai_wire`), so a failure reads the same whichever sent it: one line, the provider's
own message without client prefixes, any API key masked, and `retryable` set for 429s,
5xx, timeouts and connection errors.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from .. import redaction
from ..errors import LLMOpsError

if TYPE_CHECKING:
    from .client import ModelCall

__all__ = [
    "ModelCallError",
    "ModelError",
    "ModelTimeout",
    "UnknownModel",
    "call_trace_id",
    "classify",
    "end_abandoned_span",
    "public_url",
    "retry_after",
]


class ModelError(LLMOpsError):
    """A model call failed; `trace_id` points at the last attempt's trace when there is one."""

    trace_id: str | None = None
    retryable: bool = False


class UnknownModel(ModelError, ValueError):
    """No such provider or model, or no model given and no default set."""


class ModelCallError(ModelError, RuntimeError):
    """The provider refused the call, or kept failing after every retry."""


class ModelTimeout(ModelCallError, TimeoutError):
    """No response within the timeout, on every attempt."""


def public_url(url: str | None) -> str | None:
    """The endpoint without user:password or query string (which may carry a key)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def classify(litellm: ModuleType | None, exc: Exception, call: ModelCall) -> ModelError:
    """The one-line error for a failed attempt; `retryable` says whether to try again.

    LITELLM is None for the fast path: its errors carry `status_code` like litellm's."""
    status = getattr(exc, "status_code", None)
    detail = _detail(exc, call.api_key)
    where = f" at {public_url(call.api_base)}" if call.api_base else ""
    retryable = False
    error: ModelError

    def kind(name: str) -> bool:
        return litellm is not None and isinstance(exc, getattr(litellm, name))

    if kind("Timeout") or isinstance(exc, TimeoutError):
        waited = call.budget or call.timeout
        limit = (
            f"timeout={call.timeout:g}"
            if waited >= call.timeout
            else f"what was left of the call's deadline of {call.deadline.total:g} s"
        )
        error = ModelTimeout(f"{call.model}: no response within {waited:.3g} s{where} ({limit})")
        retryable = True
    elif kind("NotFoundError") or status == 404:
        error = UnknownModel(f"{call.model}: model not found{where}: {detail}")
    elif kind("AuthenticationError") or status in (401, 403):
        error = ModelCallError(
            f"{call.model}: authentication failed{where}: set the provider's API key "
            f"(e.g. OPENAI_API_KEY) or pass api_key=... ({detail})"
        )
    elif kind("RateLimitError") or status == 429:
        error = ModelCallError(f"{call.model}: rate limited (429){where}: {detail}")
        retryable = True
    elif kind("APIConnectionError") or (isinstance(status, int) and status >= 500):
        refused = "connection error" in detail.lower() or not isinstance(status, int)
        what = "connection failed" if refused else f"server error ({status})"
        error = ModelCallError(f"{call.model}: {what}{where}: {detail}")
        retryable = True
    elif isinstance(exc, ConnectionError | OSError):
        error = ModelCallError(f"{call.model}: connection failed{where}: {detail}")
        retryable = True
    else:
        error = ModelCallError(f"{call.model}: the call failed{where}: {detail}")
    if retryable and call.attempt >= call.retries and call.retries > 0:
        error = type(error)(f"{error} (after {call.retries + 1} attempts)")
    error = type(error)(redaction.redact_text(str(error)))  # a 401 may quote the key
    error.retryable = retryable
    return error


_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def _detail(exc: Exception, api_key: str | None) -> str:
    """The provider's own message, first line, without litellm's prefixes or any key."""
    lines = str(exc).strip().splitlines()
    text = _PREFIX.sub("", lines[0]) if lines else ""
    text = text or type(exc).__name__
    if api_key:
        text = text.replace(api_key, redaction.MASK)
    return redaction.redact_text(text)[:600]


def retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms or Retry-After), if any."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def end_abandoned_span(call_id: str, exc: Exception) -> None:
    """Close the LLM span of an attempt we stopped waiting for (neither litellm nor the
    fast path reports one it was not allowed to finish), as an error."""
    if not call_id:
        return
    from ..tracing import end_call_span

    end_call_span(call_id, attributes={"error.type": "ModelTimeout"}, error=str(exc))


def call_trace_id(call_id: str) -> str | None:
    """The trace the call's LLM span belongs to (None before any attempt)."""
    if not call_id:
        return None
    from ..tracing import trace_id_for_call

    return trace_id_for_call(call_id)
