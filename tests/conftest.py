"""Shared fixtures: an isolated LLMOPS_NB_HOME per test, and a real PostgreSQL server."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# jp_fetch and the other pytest-jupyter fixtures (the sidebar's server extension tests).
pytest_plugins = ["pytest_jupyter.jupyter_server", "llm_fixtures", "model_fixtures"]

# Offline everywhere: no hub retries, no price-table download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LLMOPS_NB_USER", "tester")

sys.path.insert(0, str(Path(__file__).parent))

import pgserver  # noqa: E402

_pg: pgserver.PgServer | None = None
_pg_reason = ""
_db_counter = itertools.count()


def pytest_sessionstart(session: pytest.Session) -> None:
    global _pg, _pg_reason
    _pg, _pg_reason = pgserver.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pg is not None:
        _pg.stop()


def pytest_report_header(config: pytest.Config) -> str:
    if _pg is not None:
        return f"postgresql: private server on 127.0.0.1:{_pg.port}"
    return f"postgresql: UNAVAILABLE, its tests are skipped: {_pg_reason}"


@pytest.fixture(autouse=True)
def llmops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data dir, store and project, and leaves none behind."""
    from llmops_nb import config
    from llmops_nb.store import reset_store

    home = tmp_path / "llmops_home"
    monkeypatch.setenv("LLMOPS_NB_HOME", str(home))
    monkeypatch.delenv("LLMOPS_NB_STORE", raising=False)
    monkeypatch.delenv("LLMOPS_NB_PROJECT", raising=False)
    saved = config.Settings(**vars(config.settings))
    config.settings.project = "default"
    reset_store()
    yield home
    _store_leftover_spans()
    reset_store()
    for key, value in vars(saved).items():
        setattr(config.settings, key, value)


def _store_leftover_spans() -> None:
    """The spans a test ended (or whose calls returned) go to its own store, not the next's."""
    from llmops_nb.tracing import pipeline
    from llmops_nb.tracing.calls import settle

    pipe = pipeline.current()
    if pipe is not None:
        settle(None, timeout=2.0)
        pipe.processor.flush(3.0)


def postgres_url() -> str:
    """A fresh, empty PostgreSQL database; skips the test when no server could start."""
    if _pg is None:
        pytest.skip(f"PostgreSQL unavailable: {_pg_reason}")
    return _pg.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(
    request: pytest.FixtureRequest, llmops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The store URL on each backend; LLMOPS_NB_STORE points at it for the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{llmops_home / 'store.db'}"
    else:
        url = postgres_url()
    monkeypatch.setenv("LLMOPS_NB_STORE", url)
    return url
