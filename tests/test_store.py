"""The experiment store: schema, migrations, backends, concurrency, unreachable URLs."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from llmops_nb.errors import StoreUnavailable
from llmops_nb.store import Store, get_store
from llmops_nb.store import models as m
from llmops_nb.store.base import HEAD_REVISION, MIGRATIONS_DIR

# the monitoring rollups (per minute, per hour): sums and a latency histogram h00..hNN
ROLLUP_COLUMNS = {
    "project_id", "period_ns", "model", "prompt", "calls", "errors", "cache_hits",
    "input_tokens", "output_tokens", "cost", "latency_sum_ms", "latency_min_ms", "latency_max_ms",
    *(m.latency_bin_column(k) for k in range(m.LATENCY_BINS)),
}  # fmt: skip

EXPECTED_SCHEMA = {
    "alembic_version": {"version_num"},
    "alias_event": {
        "id",
        "prompt_id",
        "alias",
        "action",
        "from_version_id",
        "to_version_id",
        "author",
        "created_at",
    },
    "dataset": {"id", "project_id", "name", "created_at"},
    "dataset_version": {
        "id",
        "dataset_id",
        "version",
        "hash",
        "n_rows",
        "columns",
        "data",
        "source",
        "author",
        "created_at",
    },
    "eval_result": {
        "id",
        "run_id",
        "prompt_ref",
        "prompt_version_id",
        "model",
        "model_label",
        "row_index",
        "inputs",
        "expected",
        "output",
        "error",
        "scores",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost",
        "cached",
        "trace_id",
        "created_at",
    },
    "eval_run": {
        "id",
        "project_id",
        "name",
        "status",
        "spec",
        "dataset_version_id",
        "baseline_run_id",
        "n_cells",
        "author",
        "notebook_path",
        "created_at",
        "finished_at",
        "owner",
    },
    "feedback": {"id", "trace_id", "span_id", "score", "comment", "author", "created_at"},
    "finetune_job": {
        "id",
        "project_id",
        "name",
        "base",
        "method",
        "backend",
        "status",
        "params",
        "data_hash",
        "prompt_version_id",
        "target",
        "output_dir",
        "pid",
        "error",
        "author",
        "created_at",
        "started_at",
        "finished_at",
    },
    "finetune_metric": {"id", "job_id", "step", "epoch", "loss", "lr", "extra", "created_at"},
    "project": {"id", "name", "created_at"},
    "prompt": {"id", "project_id", "name", "created_at", "updated_at"},
    "prompt_alias": {"id", "prompt_id", "alias", "version_id", "updated_at"},
    "prompt_version": {
        "id",
        "prompt_id",
        "version",
        "hash",
        "template",
        "model",
        "parameters",
        "meta",
        "variables",
        "message",
        "author",
        "notebook_path",
        "parent_id",
        "created_at",
    },
    "registered_model": {
        "id",
        "project_id",
        "name",
        "version",
        "base",
        "adapter_path",
        "backend",
        "job_id",
        "data_hash",
        "prompt_version_id",
        "params",
        "metrics",
        "author",
        "created_at",
    },
    "response_cache": {"key", "model", "response", "created_at", "hits", "trace_id"},
    "span": {
        "id",
        "trace_id",
        "parent_id",
        "name",
        "kind",
        "status",
        "error",
        "start_ns",
        "end_ns",
        "inputs",
        "outputs",
        "attributes",
    },
    "trace": {
        "id",
        "project_id",
        "name",
        "status",
        "error",
        "start_ns",
        "end_ns",
        "n_spans",
        "input_tokens",
        "output_tokens",
        "cost",
        "notebook_path",
        "eval_run_id",
    },
    "vector_index": {
        "id",
        "project_id",
        "name",
        "version",
        "hash",
        "embed_model",
        "dim",
        "n_items",
        "space",
        "m",
        "ef_construction",
        "ef",
        "path",
        "parent_id",
        "author",
        "created_at",
        "deleted_at",
    },
    "alert_firings": {
        "created_at",
        "id",
        "measured",
        "message",
        "rollback",
        "rule_id",
        "window_end",
        "window_start",
    },
    "alert_rules": {
        "author",
        "condition",
        "created_at",
        "id",
        "model",
        "name",
        "project_id",
        "prompt",
        "rollback",
        "window",
        "window_s",
    },
    "api_keys": {
        "author",
        "created_at",
        "hash",
        "id",
        "key_id",
        "name",
        "revoked_at",
    },
    "audit_events": {
        "action",
        "author",
        "created_at",
        "from_value",
        "id",
        "project_id",
        "reason",
        "target",
        "to_value",
    },
    "llm_rollup": ROLLUP_COLUMNS,
    "llm_rollup_hour": ROLLUP_COLUMNS,
    "model_alias_history": {
        "action",
        "alias",
        "author",
        "created_at",
        "from_version",
        "id",
        "name",
        "project_id",
        "to_version",
    },
    "model_aliases": {
        "alias",
        "id",
        "name",
        "project_id",
        "updated_at",
        "version",
    },
    "prompt_split": {
        "arms",
        "author",
        "id",
        "prompt_id",
        "updated_at",
    },
    "router": {
        "author",
        "created_at",
        "id",
        "max_cost",
        "max_p95_ms",
        "models",
        "name",
        "policy",
        "project_id",
        "stats_window",
        "updated_at",
    },
}


def test_fresh_database_has_exactly_the_expected_tables_and_columns(store_url: str) -> None:
    store = Store(store_url)
    insp = inspect(store.engine)
    actual = {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}
    assert actual == EXPECTED_SCHEMA
    with store.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        )


def test_lookup_indexes_exist(store_url: str) -> None:
    insp = inspect(Store(store_url).engine)
    trace_idx = {tuple(i["column_names"]) for i in insp.get_indexes("trace")}
    assert ("project_id", "start_ns") in trace_idx  # latest N traces of a project
    assert ("trace_id", "start_ns") in {tuple(i["column_names"]) for i in insp.get_indexes("span")}
    assert ("run_id",) in {tuple(i["column_names"]) for i in insp.get_indexes("eval_result")}
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("prompt_version")}
    assert ("prompt_id", "version") in uniques  # versions of a prompt


def test_migrations_match_the_models() -> None:
    """The initial revision creates exactly what models.py declares (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlmodel import SQLModel

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION

    store = get_store()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_sqlite_store_uses_wal_foreign_keys_and_a_busy_timeout(llmops_home: Path) -> None:
    store = get_store()
    assert store.url == f"sqlite:///{llmops_home / 'store.db'}"
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10000
    assert (llmops_home / "store.db").exists()


def test_reopening_an_existing_store_keeps_its_data(store_url: str) -> None:
    first = Store(store_url)
    first.project_id("alpha")
    first.close()
    assert "alpha" in Store(store_url).projects()


def test_unreachable_postgres_names_the_url_and_masks_the_password() -> None:
    url = "postgresql+psycopg://bob:hunter2@127.0.0.1:9/experiments"
    with pytest.raises(StoreUnavailable) as err:
        Store(url)
    msg = str(err.value)
    assert "postgresql+psycopg://bob:***@127.0.0.1:9/experiments" in msg
    assert "hunter2" not in msg
    assert "LLMOPS_NB_STORE" in msg


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "store.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreUnavailable, match="cannot open the experiment store"):
        Store(f"sqlite:///{bad}")


def _add_versions(url: str, worker: int, n: int, barrier, open_first: bool = True) -> list[int]:
    from llmops_nb.store import Store

    if open_first:
        store = Store(url)
        barrier.wait()
    else:  # race on the first open (the migration) too
        barrier.wait()
        store = Store(url)
    versions = []
    for i in range(n):
        row, created = store.add_prompt_version(
            "default",
            "shared",
            hash=f"w{worker}-{i}",
            template=f"text {worker} {i}",
            model=None,
            parameters={},
            meta={},
            variables=[],
            message=None,
            author=f"w{worker}",
            notebook_path=None,
        )
        assert created
        versions.append(row.version)
    return versions


def test_concurrent_processes_get_consecutive_unique_versions(store_url: str) -> None:
    Store(store_url).close()  # migrate once, so the race is on the versions themselves
    ctx = mp.get_context("spawn")
    n_proc, per_proc = 4, 15
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n_proc)
        with ctx.Pool(n_proc) as pool:
            results = pool.starmap(
                _add_versions, [(store_url, w, per_proc, barrier) for w in range(n_proc)]
            )
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, n_proc * per_proc + 1))
    rows = Store(store_url).prompt_versions("default", "shared")
    assert [r.version for r in rows] == got
    assert len({r.hash for r in rows}) == n_proc * per_proc
    # each version's parent is the one before it: a single linear history
    assert all(b.parent_id == a.id for a, b in zip(rows, rows[1:]))


def test_concurrent_first_open_of_a_fresh_store_migrates_once(store_url: str) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            results = pool.starmap(
                _add_versions, [(store_url, w, 2, barrier, False) for w in range(4)]
            )
    assert sorted(v for r in results for v in r) == list(range(1, 9))


def test_sqlite_file_is_a_plain_sqlite_database(llmops_home: Path) -> None:
    get_store().project_id("p1")
    conn = sqlite3.connect(llmops_home / "store.db")
    assert conn.execute("select name from project where name='p1'").fetchone() == ("p1",)
