"""Fail fast on an endpoint that does not answer: a small circuit breaker per endpoint.

After `THRESHOLD` calls in a row to one (model, api_base) ended with no response (each
after its own retries: timeouts, refused or dropped connections) and none succeeded in
between, further calls fail at once, with the last error, for `COOLDOWN` seconds; then
calls go through again, and one more failure re-opens it. So a grid against a silent
endpoint costs about one deadline, not one per cell, and each cell records the error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["COOLDOWN", "THRESHOLD", "check", "record_failure", "record_success", "reset"]

THRESHOLD = 3
COOLDOWN = 30.0  # seconds


@dataclass
class _Endpoint:
    failures: int = 0
    last_error: Exception | None = None
    open_until: float = 0.0


_endpoints: dict[tuple[str, str | None], _Endpoint] = {}
_lock = threading.Lock()


def _no_response(error: Exception) -> bool:
    """Errors that say nothing answered (as opposed to an answer that refused the call)."""
    text = str(error)
    return isinstance(error, TimeoutError) or "connection failed" in text


def check(model: str, api_base: str | None) -> None:
    """Raise the endpoint's last error at once while its breaker is open."""
    with _lock:
        state = _endpoints.get((model, api_base))
        if state is None or state.last_error is None:
            return
        wait = state.open_until - time.monotonic()
        if wait <= 0:
            return
        last, failures = state.last_error, state.failures
    error = type(last)(
        f"{last} (not sent: the last {failures} calls to this endpoint got no response; "
        f"it is tried again in {wait:.0f} s)"
    )
    error.trace_id = None  # type: ignore[attr-defined]
    raise error


def record_failure(model: str, api_base: str | None, error: Exception) -> None:
    """Count a call that failed for good; open the breaker at THRESHOLD no-responses."""
    if not _no_response(error):
        return
    with _lock:
        state = _endpoints.setdefault((model, api_base), _Endpoint())
        state.failures += 1
        state.last_error = error
        if state.failures >= THRESHOLD:
            state.open_until = time.monotonic() + COOLDOWN


def record_success(model: str, api_base: str | None) -> None:
    if (model, api_base) in _endpoints:
        with _lock:
            _endpoints.pop((model, api_base), None)


def reset() -> None:
    """Close every breaker (tests, or after fixing an endpoint)."""
    with _lock:
        _endpoints.clear()
