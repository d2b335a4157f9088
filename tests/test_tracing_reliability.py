"""Spans survive what goes wrong: a PostgreSQL restart mid-run, a burst larger than the
queue, a store that stays down, cancelled calls, and kill -9 while the store opens."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_paths import llm_path  # noqa: F401  (the fixture)
from sqlalchemy import func, select

import llmops_nb as lo
from llmops_nb import tracing
from llmops_nb.store import get_store, reset_store
from llmops_nb.store import models as m
from llmops_nb.testing import OpenAIServer, serve
from llmops_nb.tracing import pipeline

sys.path.insert(0, str(Path(__file__).parent))
import pgserver  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_pipeline() -> Iterator[None]:
    """Each test starts its own writer, and stores what it left before the next one."""
    tracing.shutdown()
    yield
    tracing.shutdown()


def span_count(url: str) -> int:
    with get_store(url).session() as s:
        return int(s.execute(select(func.count()).select_from(m.Span)).scalar_one())


# --- a store restart mid-run ---------------------------------------------------------------

WORKER = """
import sys, time
import llmops_nb as lo
n = int(sys.argv[1])

@lo.trace(name="work")
def work(i):
    with lo.span("step", kind="tool") as s:
        s.set_outputs(i)
    return i

for i in range(n):
    work(i)
    time.sleep(0.004)   # a few seconds of steady tracing, so the restart lands mid-run
"""


@pytest.fixture(scope="module")
def own_pg() -> Iterator[pgserver.PgServer]:
    """A cluster of our own, since the test restarts it."""
    server, why = pgserver.start()
    if server is None:
        pytest.skip(f"PostgreSQL unavailable: {why}")
    yield server
    server.stop()


@pytest.mark.slow
def test_postgres_restart_mid_run_loses_no_span(own_pg: pgserver.PgServer) -> None:
    url = own_pg.create_database("restart")
    get_store(url)  # the schema, before the workers share it
    reset_store()
    n, procs = 600, 4
    env = {**os.environ, "LLMOPS_NB_STORE": url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    # restart once every worker has stored something: mid-run, connections open
    deadline = 60.0
    while span_count(url) < procs * 100 and deadline > 0:
        threading.Event().wait(0.1)
        deadline -= 0.1
    reset_store()
    restarted = pgserver._run(
        own_pg,
        [
            f"{own_pg.bindir}/pg_ctl",
            "-D",
            own_pg.datadir,
            "-m",
            "fast",
            "-w",
            "-l",
            f"{own_pg.datadir}/server.log",
            "restart",
        ],
    )
    assert restarted.returncode == 0, restarted.stderr
    assert span_count(url) < 2 * n * procs  # the workers were still tracing
    outputs = [w.communicate(timeout=180) for w in workers]
    stderr = "".join(err for _, err in outputs)
    assert [w.returncode for w in workers] == [0] * procs, stderr[-2000:]
    assert span_count(url) == 2 * n * procs, stderr[-2000:]  # 0 of 4,800 lost
    store = get_store(url)
    assert store.count_traces("default", name="work") == n * procs
    with store.session() as s:
        per_trace = s.execute(select(m.Trace.n_spans, func.count()).group_by(m.Trace.n_spans))
        assert [tuple(r) for r in per_trace] == [(2, n * procs)]
    # the store's retries rode out the restart: no loss to report, and no raw driver line
    # ("error ignored terminating <psycopg.Pipeline [BAD]>..."); only our one-line notices
    assert "dropped" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    ours = ("the experiment store at ", "llmops_nb tracing: the store failed")
    assert all(line.startswith(ours) for line in lines), lines


# --- a bounded queue ------------------------------------------------------------------------


def test_a_burst_beyond_the_queue_waits_for_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "QUEUE_LIMIT", 50)
    peak = 0

    @lo.trace
    def burst(i: int) -> int:
        return i

    for i in range(3_000):
        burst(i)
        processor = pipeline.current().processor  # type: ignore[union-attr]
        peak = max(peak, len(processor.queue))
    tracing.flush()
    assert peak <= 50  # never more queued than the limit
    assert tracing.stats()["dropped"] == 0
    assert get_store().count_traces("default", name="burst") == 3_000


def test_spans_beyond_a_stuck_queue_are_dropped_counted_and_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline, "QUEUE_LIMIT", 20)
    monkeypatch.setattr(pipeline, "FULL_WAIT", 0.05)

    @lo.trace
    def step(i: int) -> int:
        return i

    step(-1)
    tracing.flush()
    processor = pipeline.current().processor  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="llmops_nb.tracing"):
        with processor.write_lock:  # a writer that cannot keep up
            for i in range(30):
                step(i)
        tracing.flush()
        assert tracing.stats()["dropped"] == 10
        tracing.shutdown()  # the last warning line sums up
    assert get_store().count_traces("default", name="step") == 21
    assert "spans dropped" in caplog.text and "the span queue is full (20 spans)" in caplog.text
    assert caplog.text.rstrip().endswith("(10 in all): the span queue is full (20 spans)")


def test_a_store_that_stays_down_drops_after_the_bound_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline, "RETRY_FOR", 0.3)
    # a PostgreSQL URL where nothing listens
    with pgserver.socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LLMOPS_NB_STORE", f"postgresql+psycopg://u:pw@127.0.0.1:{port}/none")
    with caplog.at_level(logging.WARNING, logger="llmops_nb.tracing"):
        with lo.span("lost"):
            pass
        tracing.flush(timeout=3)
        assert tracing.stats() == {"queued": 0, "pending": 0, "stored": 0, "dropped": 1}
    assert "the store failed" in caplog.text and "retried for up to 0.3 s" in caplog.text
    assert "1 spans dropped (1 in all): the store failed for 0.3 s" in caplog.text
    assert "u:***@127.0.0.1" in caplog.text and "u:pw@" not in caplog.text


# --- cancelled calls ------------------------------------------------------------------------


@pytest.fixture
def slow_server() -> Iterator[OpenAIServer]:
    with serve(latency_ms=3_000) as srv:
        yield srv


@pytest.mark.usefixtures("llm_path")
def test_cancelled_acomplete_tasks_end_their_spans_cancelled(slow_server: OpenAIServer) -> None:
    from llmops_nb.llm import runtime
    from llmops_nb.tracing import calls

    runtime.litellm()  # imported, so the calls below reach the server at once
    kwargs = {"api_base": slow_server.base_url, "api_key": "sk-test", "retries": 0}

    @lo.trace(name="ask")
    async def ask(q: str) -> str:
        return (await lo.acomplete("openai/gpt-4o-mini", q, **kwargs)).text

    async def streaming(call_id: str) -> None:
        # a call whose span litellm has opened and not closed yet (a stream being read)
        tracing.start_call_span(call_id, "chat gpt-4o-mini", inputs={"messages": []})
        await asyncio.sleep(30)

    async def main() -> None:
        tasks = [asyncio.create_task(ask(f"q{i}")) for i in range(3)]
        tasks.append(asyncio.create_task(lo.acomplete("openai/gpt-4o-mini", "bare", **kwargs)))
        tasks.append(asyncio.create_task(streaming("stream-1")))
        while slow_server.stats.requests < 4:  # every request is at the (slow) server
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    asyncio.run(main())
    assert calls._calls == {}  # nothing left open for readers or the exit hook to wait on
    frame = lo.traces()
    # three traced asks, the bare call, the stream: every span ended, as cancelled
    assert sorted(frame["name"].to_list()) == ["ask"] * 3 + ["chat gpt-4o-mini"] * 2
    assert frame["status"].to_list() == ["cancelled"] * 5
    for tid in frame.filter(frame["name"] == "ask")["id"]:
        t = lo.get_trace(tid[:10])  # a prefix: waits for no open call
        assert (t.status, t.error) == ("cancelled", "CancelledError: cancelled")
        assert [s.status for s in t.spans] == ["cancelled", "cancelled"]  # the call too
    stream = lo.get_trace(tracing.trace_id_for_call("stream-1") or "")
    assert stream.spans[0].status == "cancelled"
    assert stream.spans[0].error == "CancelledError: the task was cancelled"


def test_ctrl_c_inside_a_span_marks_it_cancelled() -> None:
    with pytest.raises(KeyboardInterrupt):
        with lo.span("interrupted"):
            raise KeyboardInterrupt
    t = lo.last_trace()
    assert (t.status, t.error) == ("cancelled", "KeyboardInterrupt: cancelled")


# --- kill -9 in a kernel's first seconds ----------------------------------------------------

EARLY_CRASH = """
import os, signal, time
import llmops_nb as lo
for i in range(25):
    with lo.span(f"early {i}"):
        pass
time.sleep(0.3)   # the writer's pass: spans spooled while the store still opens
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_while_the_store_opens_loses_no_span(llmops_home: Path) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", EARLY_CRASH], env=dict(os.environ), capture_output=True, timeout=60
    )
    assert crashed.returncode == -signal.SIGKILL
    with lo.span("next kernel"):  # the next process that traces stores what the dead one left
        pass
    tracing.flush()
    names = lo.traces(limit=100)["name"].to_list()
    assert sorted(n for n in names if n.startswith("early")) == sorted(
        f"early {i}" for i in range(25)
    )
    assert not list((llmops_home / "spool").glob("*.jsonl"))


# --- the store changes while the writer is in a pass ----------------------------------------


def test_spans_that_end_after_the_store_changed_go_to_the_new_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook that points LLMOPS_NB_STORE elsewhere while the writer is still storing
    an earlier burst: the spans that ended after the change belong to the new store."""
    first, second = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'second.db'}"
    monkeypatch.setenv("LLMOPS_NB_STORE", first)

    @lo.trace(name="before")
    def before() -> None:
        pass

    @lo.trace(name="after")
    def after() -> None:
        pass

    processor = pipeline.get().processor
    real_store = processor._store
    switched = []

    def store_then_switch(store, batch):  # type: ignore[no-untyped-def]
        real_store(store, batch)
        if not switched:  # the user changes the store, then traces more, mid-pass
            switched.append(True)
            monkeypatch.setenv("LLMOPS_NB_STORE", second)
            after()

    with processor.write_lock:  # the burst ends while the writer is busy
        before()
    monkeypatch.setattr(processor, "_store", store_then_switch)
    tracing.flush()
    names = {}
    for url in (first, second):
        with get_store(url).session() as s:
            names[url] = sorted(s.execute(select(m.Trace.name)).scalars())
    assert names == {first: ["before"], second: ["after"]}
