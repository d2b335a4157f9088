"""Upgrades on open: a store made by the first release is migrated in place, rows intact;
a store from a newer release is refused with one line saying to upgrade llmops_nb.

The chain of revisions is read from alembic's script directory, never spelled out here,
so new revisions need no change to these tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import llmops_nb as lo
from llmops_nb.errors import StoreUnavailable
from llmops_nb.store import Store, get_store, reset_store
from llmops_nb.store.base import HEAD_REVISION, MIGRATIONS_DIR

TRACE_ID = "ab" * 16


def _alembic() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _initial_revision() -> str:
    (base,) = ScriptDirectory.from_config(_alembic()).get_bases()
    return base


def _build_first_release_store(url: str) -> None:
    """The schema of the initial revision, with rows the first release wrote."""
    cfg = _alembic()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, _initial_revision())
        conn.execute(
            text("INSERT INTO project (id, name, created_at) VALUES (1, 'default', :t)"), {"t": now}
        )
        conn.execute(
            text(
                "INSERT INTO prompt (id, project_id, name, created_at, updated_at) "
                "VALUES (1, 1, 'greet', :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO prompt_version (id, prompt_id, version, hash, template, parameters, "
                "meta, variables, author, created_at) VALUES (1, 1, 1, 'h1', "
                "'user:\nHello {{name}}', '{}', '{}', '[\"name\"]', 'ada', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO trace (id, project_id, name, status, start_ns, end_ns, n_spans, "
                "input_tokens, output_tokens, cost) "
                "VALUES (:id, 1, 'answer', 'ok', 1000, 5000, 1, 3, 4, 0.5)"
            ),
            {"id": TRACE_ID},
        )
        conn.execute(
            text(
                "INSERT INTO span (id, trace_id, name, kind, status, start_ns, end_ns, attributes) "
                "VALUES ('00000000000000a1', :id, 'answer', 'chain', 'ok', 1000, 5000, '{}')"
            ),
            {"id": TRACE_ID},
        )
    engine.dispose()


def _revision(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def old_store_url(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A first-release store, built where nothing else opens a store meanwhile (a span a
    previous test left in the writer would open, and migrate, the default SQLite file
    while alembic builds this one), then made the store this test opens."""
    url = store_url.replace("store.db", "first-release.db")
    _build_first_release_store(url)
    monkeypatch.setenv("LLMOPS_NB_STORE", url)
    reset_store()
    return url


def test_a_first_release_store_is_upgraded_in_place_on_open(old_store_url: str) -> None:
    store_url = old_store_url
    assert _revision(store_url) == _initial_revision() != HEAD_REVISION

    store = get_store()  # opening it migrates it

    assert _revision(store_url) == HEAD_REVISION
    assert ScriptDirectory.from_config(_alembic()).get_current_head() == HEAD_REVISION
    version = lo.prompt("greet@1")
    assert (version.template, version.author) == ("user:\nHello {{name}}", "ada")
    trace = lo.get_trace(TRACE_ID)
    assert (trace.name, [s.name for s in trace.spans]) == ("answer", ["answer"])
    assert (trace.input_tokens, trace.output_tokens) == (3, 4)
    # the upgraded store takes new writes with the current schema (columns of later revisions)
    assert lo.register_prompt("greet", "user:\nHi {{name}}").version == 2
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("trace")}
        assert "eval_run_id" in columns
        assert conn.execute(text("SELECT count(*) FROM span")).scalar_one() == 1


def test_opening_twice_does_not_migrate_again(old_store_url: str) -> None:
    store_url = old_store_url
    Store(store_url).close()
    store = Store(store_url)  # at head already: opens without touching the schema
    try:
        assert store._current_revision() == HEAD_REVISION
    finally:
        store.close()


def test_a_store_from_a_newer_release_is_refused_with_a_message_to_upgrade(
    store_url: str,
) -> None:
    Store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_from_the_future'"))
    engine.dispose()

    with pytest.raises(StoreUnavailable) as caught:
        Store(store_url)

    message = str(caught.value)
    assert "\n" not in message
    assert "0999_from_the_future" in message
    assert "upgrade llmops_nb" in message
    assert _revision(store_url) == "0999_from_the_future"  # nothing was touched
