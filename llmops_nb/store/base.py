"""StoreBase: the engine, migrations, sessions, retrying writes and projects.

SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL by URL. Writes go
through `write`, which serializes writers (SQLite: BEGIN IMMEDIATE; PostgreSQL:
row locks) and retries on lock contention and unique-key races, so concurrent
kernels never see "database is locked".
"""

from __future__ import annotations

import fcntl
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, select

from ..config import mask_url
from ..errors import StoreUnavailable
from . import models as m

T = TypeVar("T")

HEAD_REVISION = "0002_llm"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_RETRIES = 40


class StoreBase:
    """One experiment store, reached by a SQLAlchemy URL; queries live in mixins."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self.is_sqlite = url.startswith("sqlite")
        try:
            self.engine = self._make_engine(immediate=False)
            # SQLite writers take the write lock at BEGIN, so a read never has to be
            # upgraded to a write mid-transaction (the source of "database is locked").
            self.write_engine = self._make_engine(immediate=True) if self.is_sqlite else self.engine
            self._migrate()
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the experiment store at {self.masked_url}: {_reason(exc)}. "
                "Check LLMOPS_NB_STORE (or LLMOPS_NB_HOME for the default SQLite file)."
            ) from None
        self._project_ids: dict[str, int] = {}

    # --- engine, migrations, sessions --------------------------------------------------

    def _make_engine(self, immediate: bool) -> Engine:
        if not self.is_sqlite:
            args = {"connect_timeout": 5} if self.url.startswith("postgresql") else {}
            return create_engine(self.url, connect_args=args, pool_pre_ping=True)
        path = self.url.split("///", 1)[1] if "///" in self.url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _migrate(self) -> None:
        """Bring the schema to HEAD_REVISION; alembic is imported only when needed.

        On SQLite the first connection switches the file to WAL, which fails at once
        (no busy wait) if another process holds a lock: so the check runs under the
        same file lock as the upgrade.
        """
        with self._migration_lock():
            if self._current_revision() == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            with self.write_engine.begin() as conn:
                if not self.is_sqlite:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270113)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        # Pooled connections opened before the upgrade may hold a stale schema cache
        # (SQLite PRAGMAs do not reload it): start afresh.
        self.engine.dispose()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Only one process migrates a SQLite file at a time (PostgreSQL uses an advisory lock)."""
        path = self.url.split("///", 1)[1] if self.is_sqlite and "///" in self.url else ""
        if not path or path == ":memory:":
            yield
            return
        with open(path + ".migrate-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def session(self) -> Session:
        """A read session; objects stay usable after it closes."""
        return Session(self.engine, expire_on_commit=False)

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run fn(session) in one write transaction, retrying on contention; commit or nothing."""
        for attempt in range(_RETRIES):
            try:
                with Session(self.write_engine, expire_on_commit=False) as s:
                    result = fn(s)
                    s.commit()
                    return result
            except (IntegrityError, OperationalError, DBAPIError) as exc:
                if attempt == _RETRIES - 1 or not _retryable(exc):
                    if isinstance(exc, IntegrityError):
                        raise
                    raise StoreUnavailable(
                        f"the experiment store at {self.masked_url} failed: {_reason(exc)}"
                    ) from None
                time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()

    # --- projects ------------------------------------------------------------------

    def project_id(self, name: str) -> int:
        """The id of project NAME, created on first use."""
        if name in self._project_ids:
            return self._project_ids[name]
        with self.session() as s:
            pid = s.exec(select(m.Project.id).where(m.Project.name == name)).first()
        if pid is None:

            def create(s: Session) -> int:
                found = s.exec(select(m.Project.id).where(m.Project.name == name)).first()
                if found is not None:
                    return found
                project = m.Project(name=name)
                s.add(project)
                s.flush()
                assert project.id is not None
                return project.id

            pid = self.write(create)
        self._project_ids[name] = pid
        return pid

    def projects(self) -> list[str]:
        with self.session() as s:
            return list(s.exec(select(m.Project.name).order_by(m.Project.name)))


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer took the same unique key: recompute and retry
    msg = str(getattr(exc, "orig", exc)).lower()
    return any(
        s in msg
        for s in ("database is locked", "busy", "deadlock", "could not serialize", "lock timeout")
    )


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line only, without SQL or parameters."""
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig).strip().splitlines()
    return msg[0] if msg else type(orig).__name__
