"""The span pipeline: a private tracer provider, the store processor and its writer thread.

The processor queues each ended span; a daemon thread writes them to the store in
batches (`Store.record_spans`), so a traced call pays microseconds, never a database
write. The writer is woken as soon as a trace's root span ends, and drained at exit.
With an OTLP endpoint configured (LLMOPS_NB_OTLP_ENDPOINT or the standard OTEL_EXPORTER_OTLP_*
variables), the stored spans also go to any OpenTelemetry backend, in the GenAI
conventions' terms (`otel`).

What can be lost, and when:
- A store blip loses nothing: a batch stays queued until it is stored, and the store is
  retried with backoff for up to RETRY_FOR seconds of continuous failure. Only after
  that are batches dropped, counted, and reported in a warning line.
- The queue holds at most QUEUE_LIMIT spans. When it is full, a traced call waits (up to
  FULL_WAIT seconds) for the writer to make room: backpressure, so memory stays capped.
  While the store is failing nobody waits: spans beyond the limit are dropped, counted
  and reported.
- While the writer is still opening the store (a kernel's first seconds: imports,
  migrations), ended spans are spooled to a file under LLMOPS_NB_HOME/spool and stored
  once the store is open; a process killed meanwhile leaves its spool to the next
  process that traces into the same store.
- kill -9 therefore loses only the spans that ended since the writer's last pass: at
  most INTERVAL (0.5 s) of spans, and DEBOUNCE (50 ms) after a trace's root ends, plus
  the spans still open.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, redaction
from . import otel
from .rows import add_to_delta, eval_run_of, new_delta, span_row

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["Pipeline", "current", "flush", "get", "payloads", "shutdown", "stats"]

log = logging.getLogger("llmops_nb.tracing")

BATCH = 2_000  # spans per write transaction
INTERVAL = 0.5  # seconds between background writes when no trace ends
DEBOUNCE = 0.05  # seconds the writer waits after a trace ends, to batch its neighbours
QUEUE_LIMIT = 50_000  # ended spans waiting for the writer (about 3 KB each)
FULL_WAIT = 30.0  # seconds a traced call waits for room in a full queue, then drops its span
RETRY_FOR = 30.0  # seconds of continuous store failure before batches are dropped
EXIT_WAIT = 5.0  # seconds the exit hook keeps retrying a failing store
_REPORT_EVERY = 10.0  # seconds between two warnings about dropped spans
_OPEN_WAIT = 60.0  # seconds a flush waits for the store's first opening

# open span id -> its payload [kind, inputs, outputs], which the processor queues at its end
payloads: dict[int, list[Any]] = {}


@dataclass
class _Batch:
    """Spans prepared once as rows and trace deltas, kept until they are stored."""

    rows: list[dict[str, Any]]
    deltas: list[dict[str, Any]]
    attempts: int = 0


class Pipeline:
    """The tracer provider, the store processor, its writer thread and the optional OTLP export."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from .._version import __version__

        # fed by the writer with each span's OTLP copy (`otel.otlp_copy`), or None
        self.otlp: Any = otel.span_processor()
        self.processor = StoreProcessor(self)
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,  # record every span, even under a user's unsampled parent
            resource=otel.base_resource(),
            shutdown_on_exit=False,
            # the one processor, called directly (no multi-processor fan-out per span)
            active_span_processor=self.processor,  # type: ignore[arg-type]
        )
        self.tracer = self.provider.get_tracer("llmops_nb", __version__)
        self.processor.start()

    def shutdown(self, wait: float = EXIT_WAIT) -> None:
        self.processor.shutdown(wait)
        if self.otlp is not None:
            self.otlp.shutdown()


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()
# called with the new pipeline when one starts and with None when it goes (api binds here)
listeners: list[Callable[[Pipeline | None], None]] = []
# run before a pipeline shuts down (calls: settle the LLM spans still open)
before_shutdown: list[Callable[[], None]] = []


def current() -> Pipeline | None:
    """The running pipeline, or None before the first span."""
    return _pipeline


def get() -> Pipeline:
    """The running pipeline, started on first use (so importing tracing stays light)."""
    global _pipeline
    pipe = _pipeline
    if pipe is not None:
        return pipe
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = Pipeline()
            for listener in listeners:
                listener(_pipeline)
        return _pipeline


class StoreProcessor:
    """Queues ended spans; a daemon thread writes them to the store in batches.

    Implements OpenTelemetry's SpanProcessor interface (duck-typed, to keep the SDK import
    lazy). A span whose parent is not one of our open spans is a local root: its end
    wakes the writer, so a finished trace reaches the store within milliseconds.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.queue: deque[tuple[ReadableSpan, list[Any] | None]] = deque()
        self.pending: deque[_Batch] = deque()  # prepared, not yet stored
        self.live: set[int] = set()
        # trace id -> (root span id, project, notebook path, eval run id), for the trace row
        self.roots: dict[int, tuple[int, str, str | None, int | None]] = {}
        # traces whose root is stored -> their eval run id (for spans that come later)
        self.done: OrderedDict[int, int | None] = OrderedDict()
        self.last_root: int | None = None
        self.wake = threading.Event()
        self.room = threading.Event()  # set by the writer whenever it took spans off the queue
        self.stop = threading.Event()
        self.write_lock = threading.Lock()
        self.warned: set[str] = set()
        self.failing_since: float | None = None
        self.stored = 0
        self.dropped = 0
        self._unreported = 0
        self._reported_at = 0.0
        self.notebook = config.notebook_path()  # fixed for a kernel's life; env reads are slow
        self.spool = _Spool()
        self.store_ready = threading.Event()  # set once the first attempt to open the store ended
        self.recovered = False
        self.thread = threading.Thread(target=self._run, name="llmops-nb-spans", daemon=True)

    def start(self) -> None:
        threading.Thread(target=self._open_store, name="llmops-nb-store", daemon=True).start()
        self.thread.start()

    # SpanProcessor interface

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        ctx = span.get_span_context()
        parent = span.parent
        # A root: no parent, or a parent that is not ours (another tracer, another process)
        # in a trace we have not seen: a child that outlives its parent is no root.
        if parent is None or (
            parent.span_id not in self.live
            and ctx.trace_id not in self.roots
            and ctx.trace_id not in self.done
        ):
            self.roots[ctx.trace_id] = (
                ctx.span_id,
                config.settings.project,
                self.notebook,
                eval_run_of(span.attributes) if span.name == "eval" else None,
            )
            self.last_root = ctx.trace_id
        self.live.add(ctx.span_id)

    def _on_ending(self, span: Any) -> None:
        pass

    def add_span_processor(self, processor: Any) -> None:
        raise TypeError("llmops_nb's tracer provider is private: add processors to your own")

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        sid = ctx.span_id
        self.live.discard(sid)
        queue = self.queue
        if len(queue) >= QUEUE_LIMIT and not self._make_room():
            payloads.pop(sid, None)
            root = self.roots.get(ctx.trace_id)
            if root is not None and root[0] == sid:
                self.roots.pop(ctx.trace_id, None)
            self.report_drop(1, f"the span queue is full ({QUEUE_LIMIT:,} spans)")
            return
        queue.append((span, payloads.pop(sid, None)))
        root = self.roots.get(ctx.trace_id)
        if not self.wake.is_set() and (
            (root is not None and root[0] == sid) or len(queue) >= BATCH
        ):
            self.wake.set()

    def _make_room(self) -> bool:
        """Backpressure: wait (bounded) until the writer has taken spans off a full queue.

        Never waits in the writer's own thread, nor while the store is failing (the
        writer cannot make room then, and a traced call must not hang on an outage).
        """
        if threading.current_thread() is self.thread:
            return False
        deadline = time.monotonic() + FULL_WAIT
        while len(self.queue) >= QUEUE_LIMIT:
            if self.failing_since is not None or self.stop.is_set():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.room.clear()
            self.wake.set()
            self.room.wait(min(left, 0.1))
        return True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        stored = self.flush(timeout_millis / 1000)
        if self.pipeline.otlp is not None:
            return bool(self.pipeline.otlp.force_flush(timeout_millis)) and stored
        return stored

    def shutdown(self, wait: float = EXIT_WAIT) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=5)
        if not self.flush(wait):
            left = len(self.queue) + sum(len(b.rows) for b in self.pending)
            self.queue.clear()
            self.pending.clear()
            if left:
                self.report_drop(left, "the store could not be reached before exit")
        self.spool.close()
        if self._unreported:
            self._report(force=True)

    # the writer

    def _run(self) -> None:
        backoff = 0.05
        while not self.stop.is_set():
            if self.failing_since is not None:
                self.stop.wait(backoff)  # a failing store: retry with backoff, not per span
                backoff = min(backoff * 2, 2.0)
            elif self.wake.wait(INTERVAL) and not self.stop.is_set():
                time.sleep(DEBOUNCE)  # let a burst of traces end, then write them together
            self.wake.clear()
            try:
                if self.write_pass():
                    backoff = 0.05
            except Exception as exc:  # never let the writer thread die
                self._warn(f"writing spans failed: {exc}", type(exc).__name__)

    def flush(self, timeout: float) -> bool:
        """Store every queued span now (in the calling thread), retrying a failing store
        for up to TIMEOUT seconds; True when nothing is left queued."""
        deadline = time.monotonic() + timeout
        # a reader must find the spans in the store, not in the spool: let the store open
        # (bounded by its own connect and lock timeouts)
        self.store_ready.wait(max(timeout, _OPEN_WAIT))
        backoff = 0.05
        while True:
            if self.write_pass():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(backoff, left))
            backoff = min(backoff * 2, 1.0)

    def write_pass(self) -> bool:
        """Store what is queued; False when the store failed (the batch stays queued)."""
        with self.write_lock:
            if not self.queue and not self.pending:
                return True
            if not self.store_ready.is_set():
                self._spool_queued()  # still opening the store: keep the spans on disk
                return True
            from ..store import get_store

            try:
                store = get_store()
                if not self.recovered or self.spool.file is not None:
                    self._recover(store)
            except Exception as exc:
                self._failed(exc)
                return False
            while True:
                if not self.pending:
                    if not self.queue:
                        return True
                    self.pending.append(self._prepare())
                    self.room.set()
                    # spans that ended after the store was changed (LLMOPS_NB_STORE, a new
                    # LLMOPS_NB_HOME) go to the new one, even within one long pass
                    store = get_store()
                batch = self.pending[0]
                try:
                    self._store(store, batch)
                except Exception as exc:
                    batch.attempts += 1
                    self._failed(exc)
                    return False
                self.pending.popleft()
                self.failing_since = None

    def _store(self, store: Any, batch: _Batch) -> None:
        from ..store.traces import TraceDelta

        # a retried batch may have been committed by an attempt whose reply was lost
        store.record_spans(
            batch.rows, [TraceDelta(**d) for d in batch.deltas], if_absent=batch.attempts > 0
        )
        self.stored += len(batch.rows)

    def _failed(self, exc: Exception) -> None:
        """A store failure: retried for RETRY_FOR seconds, then the oldest batch is dropped."""
        now = time.monotonic()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.failing_since is None:
            self.failing_since = now
            log.warning(
                "llmops_nb tracing: the store failed (%s); spans are kept and retried "
                "for up to %g s",
                reason,
                RETRY_FOR,
            )
        elif now - self.failing_since >= RETRY_FOR and (self.pending or self.queue):
            batch = self.pending.popleft() if self.pending else self._prepare()
            self.report_drop(len(batch.rows), f"the store failed for {RETRY_FOR:g} s: {reason}")

    def _prepare(self) -> _Batch:
        """Take up to BATCH spans off the queue as masked rows and trace deltas."""
        n = min(len(self.queue), BATCH)
        spans = [self.queue.popleft() for _ in range(n)]
        rows: list[dict[str, Any]] = []
        deltas: dict[str, dict[str, Any]] = {}
        groups: list[tuple[str, int | None]] = []  # each span's project and eval run, for OTLP
        redaction.refresh_env()  # keys exported since the last batch
        for readable, payload in spans:
            row = span_row(readable, payload)
            for key in ("name", "error", "inputs", "outputs", "attributes"):
                row[key] = redaction.redact(row[key], refresh=False)
            rows.append(row)
            tid = readable.context.trace_id
            root = self.roots.get(tid)
            is_root = root is not None and root[0] == readable.context.span_id
            groups.append(
                (root[1], root[3]) if root else (config.settings.project, self.done.get(tid))
            )
            d = deltas.get(row["trace_id"])
            if d is None:
                if root is None:
                    d = new_delta(row, config.settings.project, None, None)
                else:
                    d = new_delta(row, root[1], root[2], root[3])
                deltas[row["trace_id"]] = d
            add_to_delta(d, row, is_root)
            if is_root:
                self.roots.pop(tid, None)
                self.done[tid] = root[3]
                if len(self.done) > 10_000:
                    self.done.popitem(last=False)
        otlp = self.pipeline.otlp
        if otlp is not None:  # masked like the store's rows; its own queue and retries
            content = otel.capture_content()
            for (readable, _), row, (project, run) in zip(spans, rows, groups):
                copy = otel.otlp_copy(readable, row, project=project, eval_run=run, content=content)
                otlp.on_end(copy)
        return _Batch(rows, list(deltas.values()))

    # start-up: open the store off the writer, spool meanwhile, recover dead processes' spools

    def _open_store(self) -> None:
        try:
            from ..store import get_store

            store = get_store()
            with self.write_lock:
                self.store_ready.set()
                self._recover(store)
        except Exception:
            pass  # the writer retries (and reports) a store that cannot be opened
        finally:
            self.store_ready.set()
            self.wake.set()

    def _spool_queued(self) -> None:
        while self.queue:
            batch = self._prepare()
            self.room.set()
            if not self.spool.write(batch):
                self.pending.append(batch)  # no spool file: kept in memory instead

    def _recover(self, store: Any) -> None:
        """Store this process's spool, then any left by processes that died."""
        self.pending.extend(self.spool.replay_own())
        if self.recovered:
            return
        for path in _Spool.orphans():
            for batch in _Spool.read(path):
                batch.attempts = 1  # it may have been stored before its process died
                self._store(store, batch)
            path.unlink(missing_ok=True)
        self.recovered = True

    # reporting

    def report_drop(self, n: int, why: str) -> None:
        """Count dropped spans; a warning line at most every few seconds, never silence."""
        self.dropped += n
        self._unreported += n
        self._why = why
        self._report()

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._reported_at >= _REPORT_EVERY:
            log.warning(
                "llmops_nb tracing: %d spans dropped (%d in all): %s",
                self._unreported,
                self.dropped,
                self._why,
            )
            self._unreported = 0
            self._reported_at = now

    def _warn(self, message: str, key: str | None = None) -> None:
        """Log a problem once (per kind), not once per batch."""
        key = key or message
        if key not in self.warned:
            self.warned.add(key)
            log.warning("llmops_nb tracing: %s", message)


class _Spool:
    """A file of prepared batches, one JSON line each, for spans ended before the store
    opened. Its owner holds an exclusive lock on it for life; a file nobody holds belongs
    to a process that died, and its spans are stored by whoever finds it."""

    def __init__(self) -> None:
        self.file: Any = None
        self.path: Path | None = None
        self.url = ""

    def write(self, batch: _Batch) -> bool:
        try:
            if self.file is None:
                self._create()
            self.file.write(json.dumps({"rows": batch.rows, "deltas": batch.deltas}) + "\n")
            self.file.flush()  # in the OS's hands: it survives kill -9
            return True
        except (OSError, TypeError, ValueError):
            return False

    def _create(self) -> None:
        folder = config.home() / "spool"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"spans-{os.getpid()}-{time.time_ns()}"
        tmp = folder / f"{stem}.tmp"
        file = open(tmp, "a+", encoding="utf-8")
        fcntl.flock(file, fcntl.LOCK_EX)  # locked before anyone can see it as .jsonl
        self.url = config.store_url()
        file.write(json.dumps({"store": self.url}) + "\n")
        file.flush()
        self.path = tmp.rename(folder / f"{stem}.jsonl")
        self.file = file

    def replay_own(self) -> list[_Batch]:
        """The batches this process spooled (then the file goes)."""
        if self.file is None or self.path is None:
            return []
        batches = self.read(self.path)
        self.close()
        return batches

    def close(self) -> None:
        if self.file is not None:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            self.file.close()
            self.file = self.path = None

    @staticmethod
    def orphans() -> list[Path]:
        """Spool files for this store whose process is gone (nobody holds their lock)."""
        folder = config.home() / "spool"
        if not folder.is_dir():
            return []
        url = config.store_url()
        found = []
        for path in sorted(folder.glob("spans-*.jsonl")):
            try:
                with open(path, encoding="utf-8") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live process owns it
                    header = json.loads(f.readline() or "{}")
            except (OSError, ValueError):
                continue
            if header.get("store") == url:
                found.append(path)
        return found

    @staticmethod
    def read(path: Path) -> list[_Batch]:
        batches = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()[1:]
        except OSError:
            return []
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            batches.append(_Batch(data["rows"], data["deltas"], attempts=1))
        return batches


def flush(timeout: float = 30.0) -> None:
    """Write every ended span to the store now (and push pending OTLP exports)."""
    pipe = _pipeline
    if pipe is not None:
        pipe.processor.force_flush(int(timeout * 1000))


def stats() -> dict[str, int]:
    """Spans queued, waiting to be retried, stored and dropped by this process's writer."""
    pipe = _pipeline
    if pipe is None:
        return {"queued": 0, "pending": 0, "stored": 0, "dropped": 0}
    p = pipe.processor
    return {
        "queued": len(p.queue),
        "pending": sum(len(b.rows) for b in p.pending),
        "stored": p.stored,
        "dropped": p.dropped,
    }


def shutdown(wait: float = EXIT_WAIT) -> None:
    """Flush, stop the writer and forget the pipeline; the next span starts a fresh one.

    Tests use it after changing the OTLP endpoint or the resource variables.
    """
    global _pipeline
    with _pipeline_lock:
        pipe = _pipeline
        if pipe is not None:
            for hook in before_shutdown:
                hook()
        _pipeline = None
        for listener in listeners:
            listener(None)
    if pipe is not None:
        pipe.shutdown(wait)


@atexit.register
def _at_exit() -> None:
    if _pipeline is not None:
        try:
            shutdown()
        except Exception as exc:  # the interpreter is going away: say so, do not raise
            log.warning("llmops_nb tracing: spans not stored at exit: %s", exc)


def _after_fork() -> None:
    """A forked child starts with no writer thread: begin afresh there."""
    global _pipeline, _pipeline_lock
    pipe, _pipeline = _pipeline, None
    _pipeline_lock = threading.Lock()
    payloads.clear()
    if pipe is not None and pipe.processor.spool.file is not None:
        pipe.processor.spool.file.close()  # the parent's lock stays the parent's
    for listener in listeners:
        listener(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
