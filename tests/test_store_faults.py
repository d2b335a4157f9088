"""The store under faults, against a private PostgreSQL cluster this module restarts and
stops (so other tests' databases are never touched) and a real SQLite file: no eval
result lost across a server restart, a truthful status when the store stays down,
bounded lock waits with one clear line, and one clear line for every read error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgserver
import polars as pl
import pytest
from sqlalchemy import create_engine, text

import llmops_nb as lo
from llmops_nb.errors import StoreBusy, StoreUnavailable
from llmops_nb.evals.runner import EvalIncomplete
from llmops_nb.store import base, get_store
from llmops_nb.testing import OpenAIServer, serve


@pytest.fixture(scope="module")
def cluster() -> Iterator[pgserver.PgServer]:
    server, reason = pgserver.start()
    if server is None:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    yield server
    server.stop()


def pg_ctl(server: pgserver.PgServer, action: str) -> None:
    """stop (fast: drops every open connection), or start with pgserver's options."""
    cmd = [f"{server.bindir}/pg_ctl", "-D", server.datadir, "-w"]
    if action == "start":
        opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.datadir} -c fsync=off"
        cmd += ["-o", opts, "-l", f"{server.datadir}/server.log", "start"]
    else:
        cmd += ["-m", "fast", action]
    pgserver._run(server, cmd)


_db_names = iter(range(10_000))


@pytest.fixture
def fault_pg(cluster: pgserver.PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the private cluster; LLMOPS_NB_STORE points at it."""
    url = cluster.create_database(f"faults{next(_db_names)}")
    monkeypatch.setenv("LLMOPS_NB_STORE", url)
    return url


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def reply(body: dict[str, Any]) -> str:
    return "answer " + " ".join(str(m.get("content")) for m in body.get("messages", []))


def grid(srv: OpenAIServer, n: int, name: str, concurrency: int = 8, **kwargs: Any) -> lo.EvalRun:
    lo.register_prompt("q", "user:\nQuestion {{i}}?")
    return lo.evaluate(
        ["q"],
        [{"model": "openai/m", "api_base": srv.base_url, "api_key": "k"}],
        pl.DataFrame({"i": list(range(n))}),
        [{"contains": {"value": "Question"}}],
        name=name,
        concurrency=concurrency,
        cache=False,
        progress=False,
        **kwargs,
    )


def test_postgres_restart_mid_grid_loses_no_result(
    cluster: pgserver.PgServer, fault_pg: str
) -> None:
    n = 300
    restarted = threading.Event()

    def restart_when_results_arrive() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if count(fault_pg, "SELECT count(*) FROM eval_result") >= 50:
                    break
            except Exception:
                pass
            time.sleep(0.02)
        pg_ctl(cluster, "stop")  # fast: every open connection is dropped
        time.sleep(1.0)  # cells keep finishing and the writer keeps trying meanwhile
        pg_ctl(cluster, "start")
        restarted.set()

    with serve(latency_ms=50, reply=reply) as srv:
        restarter = threading.Thread(target=restart_when_results_arrive)
        restarter.start()
        run = grid(srv, n, "pgr", concurrency=4)
        restarter.join()
    assert restarted.is_set()
    assert run.status == "done"
    assert count(fault_pg, "SELECT count(*) FROM eval_result") == n
    assert count(fault_pg, "SELECT count(DISTINCT row_index) FROM eval_result") == n
    assert run.results["contains"].to_list() == [1.0] * n


def test_store_down_past_the_retries_ends_incomplete_and_resumes(
    fault_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Result inserts fail with a connection error (SQLSTATE 57P03, raised by a trigger
    in the real server) for longer than the write retries: the run is never 'done'."""
    monkeypatch.setattr(base, "WRITE_DEADLINE_S", 0.5)
    with serve(reply=reply) as srv:
        lo.register_prompt("q", "user:\nQuestion {{i}}?")
        store = get_store()
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                "'the database system is starting up' USING ERRCODE = '57P03'; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON eval_result "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        with pytest.raises(EvalIncomplete) as info:
            grid(srv, 20, "down")
        message = str(info.value)
        assert "\n" not in message
        assert "eval down #1 is incomplete: 20 finished cells could not be stored" in message
        assert "--resume (resume=True)" in message and "starting up" in message
        assert lo.EvalRun.load("down").status == "incomplete"
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse ON eval_result")
        run = grid(srv, 20, "down", resume=True)
    assert run.id == 1 and run.status == "done" and run.results.height == 20


def test_reads_with_postgres_stopped_are_one_clear_line(
    cluster: pgserver.PgServer, fault_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fault_pg.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    monkeypatch.setenv("LLMOPS_NB_STORE", url)
    lo.register_prompt("q", "user:\nQuestion {{i}}?")
    assert lo.prompts()["name"].to_list() == ["q"]
    pg_ctl(cluster, "stop")
    try:
        for read in (lo.prompts, lambda: lo.prompt("q"), lo.EvalRun.list, lo.traces):
            with pytest.raises(StoreUnavailable) as info:
                read()
            message = str(info.value)
            masked = url.replace("s3cret", "***")
            assert message.startswith(f"the experiment store at {masked} cannot be reached: ")
            assert "s3cret" not in message and "\n" not in message and "[SQL" not in message
    finally:
        pg_ctl(cluster, "start")
    assert lo.prompts()["name"].to_list() == ["q"]  # the pool reconnects by itself


def test_postgres_sessions_have_lock_and_statement_timeouts(fault_pg: str) -> None:
    store = get_store()
    with store.session() as s:
        assert s.connection().exec_driver_sql("SHOW lock_timeout").scalar() == "10s"
        assert s.connection().exec_driver_sql("SHOW statement_timeout").scalar() == "5min"
    with store.session(wait=0.25) as s:
        assert s.connection().exec_driver_sql("SHOW lock_timeout").scalar() == "250ms"


def test_a_held_lock_is_a_bounded_wait_with_one_clear_line_postgres(
    fault_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "WRITE_DEADLINE_S", 0.3)
    monkeypatch.setattr(base, "LOCK_WAIT_S", 0.2)
    lo.register_prompt("q", "user:\nQuestion {{i}}?")
    store = get_store()
    other = create_engine(fault_pg)
    try:
        with other.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE prompt, response_cache IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreBusy) as info:
                store.cache_put("k", "m", {"text": "x"})
            assert f"the experiment store at {fault_pg} is busy" in str(info.value)
            assert "lock timeout" in str(info.value) and "\n" not in str(info.value)
            with pytest.raises(StoreBusy):  # a read that must not block gives up
                with store.session(wait=0.2) as s:
                    s.connection().exec_driver_sql("SELECT count(*) FROM prompt").scalar()
            conn.exec_driver_sql("ROLLBACK")
    finally:
        other.dispose()
    store.cache_put("k", "m", {"text": "x"})
    assert store.cache_get("k") == {"text": "x", "trace_id": None}


def test_a_held_lock_is_a_bounded_wait_with_one_clear_line_sqlite(
    llmops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "WRITE_DEADLINE_S", 0.3)
    monkeypatch.setattr(base, "LOCK_WAIT_S", 0.1)
    store = get_store()
    store.project_id("default")
    url = store.url
    other = create_engine(url, connect_args={"isolation_level": None})
    try:
        with other.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # another kernel holds the write lock
            with pytest.raises(StoreBusy) as info:
                store.cache_put("k", "m", {"text": "x"})
            message = str(info.value)
            assert message.startswith(f"the experiment store at {url} is busy")
            assert "database is locked" in message and "gave up after" in message
            with pytest.raises(StoreBusy):
                store.write(lambda s: s.connection().exec_driver_sql("SELECT 1"), wait=0.05)
            conn.exec_driver_sql("ROLLBACK")
    finally:
        other.dispose()
    store.cache_put("k", "m", {"text": "x"})
    assert store.cache_get("k") == {"text": "x", "trace_id": None}
