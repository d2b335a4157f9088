"""Time limits for model calls that hold whatever the server does.

An HTTP client's `timeout` limits each socket read, so a server that trickles one byte a
second (or a proxy that keeps a connection alive) holds a call for ever. Here an attempt
is bounded end to end, and a whole call, retries and backoff included, by a deadline:

- async: the attempt runs under `asyncio.timeout`, whose cancellation closes the
  connection;
- sync: the attempt runs in a worker thread that carries the caller's context (so
  tracing nests the same); the caller stops waiting at the limit and the worker is
  stopped by an exception raised in it at its next bytecode (within one read of a
  trickling server; a silent one is ended by the read timeout, set to the same limit).

Defaults, chosen for a notebook (a person waiting at a cell):
- `DEFAULT_TIMEOUT` = 60 s per attempt: a non-streamed reply of a few thousand tokens
  arrives well within it from hosted APIs; pass `timeout=` for longer generations.
- the deadline defaults to twice the timeout: one full retry of an attempt that timed
  out, or several fast retries of 429s and 5xx; a silent server costs 2 minutes, not 8.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = [
    "DEFAULT_TIMEOUT",
    "AttemptTimeout",
    "Deadline",
    "await_within",
    "run_within",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
"""Seconds for one attempt, end to end (connect, send, wait, read the whole reply)."""
DEADLINE_FACTOR = 2.0
"""The whole call's default deadline, in timeouts."""
MIN_ATTEMPT = 1.0  # seconds (or a quarter of the timeout, if less): an attempt given
# less than that of the deadline's rest is not worth a request


class AttemptTimeout(TimeoutError):
    """An attempt did not finish within its time (the caller turns it into ModelTimeout)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no response within {seconds:g} s")
        self.seconds = seconds


class _Abandoned(BaseException):
    """Raised inside a worker whose caller stopped waiting: not an Exception, so no
    library code swallows it, and the HTTP connection it was reading is closed."""


class Deadline:
    """The time left for one call: each attempt gets min(timeout, what remains)."""

    def __init__(self, timeout: float, total: float | None = None) -> None:
        self.timeout = float(timeout)
        self.total = float(total) if total is not None else self.timeout * DEADLINE_FACTOR
        self.started = time.monotonic()

    def remaining(self) -> float:
        return self.total - (time.monotonic() - self.started)

    @property
    def min_attempt(self) -> float:
        return min(MIN_ATTEMPT, self.timeout / 4)

    def attempt_budget(self) -> float:
        """Seconds for the next attempt: the timeout, or what is left of the deadline."""
        return max(self.min_attempt, min(self.timeout, self.remaining()))

    def allows_wait(self, seconds: float) -> bool:
        """Whether waiting SECONDS still leaves room for a worthwhile attempt."""
        return self.remaining() - seconds >= self.min_attempt


async def await_within(make: Callable[[], Awaitable[T]], seconds: float) -> T:
    """await make(), cancelled after SECONDS with AttemptTimeout."""
    async with asyncio.timeout(seconds) as scope:
        try:
            return await make()
        except asyncio.CancelledError:
            if scope.expired():
                raise AttemptTimeout(seconds) from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover  (asyncio.timeout re-raises)


def run_within(fn: Callable[[], T], seconds: float) -> T:
    """fn() in a worker thread with the caller's context; AttemptTimeout after SECONDS.

    Ctrl-C in the caller stops the worker too.
    """
    context = contextvars.copy_context()
    outcome: list[tuple[bool, object]] = []
    finished = threading.Event()
    lock = threading.Lock()
    running = [True]

    def work() -> None:
        try:
            try:
                outcome.append((True, context.run(fn)))
            except Exception as exc:
                outcome.append((False, exc))
            finally:
                with lock:
                    running[0] = False
                finished.set()
        except _Abandoned:
            pass  # the caller has moved on; this attempt's result is not wanted

    worker = threading.Thread(target=work, name="llmops-model-call", daemon=True)
    worker.start()
    try:
        in_time = finished.wait(seconds)
    except BaseException:  # Ctrl-C while waiting: stop the request, then raise it
        _stop(worker, lock, running)
        raise
    if not in_time and _stop(worker, lock, running):
        raise AttemptTimeout(seconds)
    finished.wait()  # it finished just as the time ran out: use its result
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def _stop(worker: threading.Thread, lock: threading.Lock, running: list[bool]) -> bool:
    """Raise _Abandoned in WORKER if it is still running; False when it already finished."""
    with lock:
        if not running[0] or worker.ident is None:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(_Abandoned)
        )
        return True
