"""StoreBase: the engine, migrations, sessions, retrying writes and projects.

SQLite (WAL, bounded busy timeout, foreign keys) by default, PostgreSQL by URL (with a
lock timeout and a statement timeout on every session). Writes go through `write`,
which serializes writers (SQLite: BEGIN IMMEDIATE; PostgreSQL: row locks) and retries
lock contention, unique-key races and lost connections (a server restart) with backoff,
for a bounded time. Every driver error on a read or a write surfaces as one line: a
`StoreUnavailable` (or its `StoreBusy` kind) naming the store, its password masked.
"""

from __future__ import annotations

import fcntl
import logging
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ..config import mask_url
from ..errors import StoreBusy, StoreUnavailable
from . import models as m

T = TypeVar("T")

HEAD_REVISION = "0004_rollup_writer"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

LOCK_WAIT_S = 10.0
"""How long one statement waits for another connection's lock (SQLite busy timeout,
PostgreSQL lock_timeout) before the attempt fails and `write` retries or reports it."""
WRITE_DEADLINE_S = 30.0
"""How long `write` keeps retrying lock contention or a lost connection before it gives
up with one clear message: long enough to ride out a server restart, short enough that a
notebook is never stuck silently."""
STATEMENT_TIMEOUT_S = 300.0
"""PostgreSQL statement_timeout for the store's sessions: no query runs unbounded."""
_UNIQUE_RACE_RETRIES = 40
PG_POOL_SIZE = 5
"""Connections each process keeps open to PostgreSQL: a kernel's writer thread, its
readers and the sidebar's handlers rarely need more at once."""
PG_POOL_OVERFLOW = 5
"""Extra connections a burst may open (closed when returned), so a team of kernels stays
well under the server's max_connections (100 by default): at most 10 per process."""
PG_POOL_RECYCLE_S = 1800
"""Connections older than this are replaced, before a server or proxy drops idle ones."""


class _IgnoredDriverErrors(logging.Filter):
    """psycopg logs a second error it ignored while cleaning up after a lost connection
    ("error ignored terminating <psycopg.Pipeline [BAD]>: ..."); the first error is what
    `write` retries or reports in one line, so the echo is only a raw line on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored")


for _name in ("psycopg", "psycopg.transaction"):
    logging.getLogger(_name).addFilter(_IgnoredDriverErrors())


class StoreBase:
    """One experiment store, reached by a SQLAlchemy URL; queries live in mixins."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self.is_sqlite = url.startswith("sqlite")
        self._wait_noticed = 0.0
        try:
            self.engine = self._make_engine(immediate=False)
            # SQLite writers take the write lock at BEGIN, so a read never has to be
            # upgraded to a write mid-transaction (the source of "database is locked").
            self.write_engine = self._make_engine(immediate=True) if self.is_sqlite else self.engine
            self._migrate()
        except StoreUnavailable as exc:
            if getattr(exc, "kind", None) == "schema":
                raise exc from None
            raise StoreUnavailable(
                f"cannot open the experiment store at {self.masked_url}: "
                f"{getattr(exc, 'reason', exc)}. "
                "Check LLMOPS_NB_STORE (or LLMOPS_NB_HOME for the default SQLite file)."
            ) from None
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the experiment store at {self.masked_url}: {_reason(exc)}. "
                "Check LLMOPS_NB_STORE (or LLMOPS_NB_HOME for the default SQLite file)."
            ) from None
        self._project_ids: dict[str, int] = {}

    # --- engine, migrations, sessions --------------------------------------------------

    def _make_engine(self, immediate: bool) -> Engine:
        if not self.is_sqlite:
            args: dict[str, Any] = {}
            if self.url.startswith("postgresql"):
                args = {
                    "connect_timeout": 5,
                    "options": f"-c lock_timeout={int(LOCK_WAIT_S * 1000)} "
                    f"-c statement_timeout={int(STATEMENT_TIMEOUT_S * 1000)}",
                }
            engine = create_engine(
                self.url,
                connect_args=args,
                pool_pre_ping=True,
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_POOL_OVERFLOW,
                pool_recycle=PG_POOL_RECYCLE_S,
            )

            @event.listens_for(engine, "begin")
            def _on_pg_begin(conn: Any) -> None:
                wait = conn.get_execution_options().get("llmops_wait")
                if wait is not None:
                    # the statement timeout a second later, so a lock wait is reported
                    # (and retried) as a lock, never as a slow statement
                    ms = max(1, int(wait * 1000))
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms + 1000}")

        else:
            path = self.url.split("///", 1)[1] if "///" in self.url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url, connect_args={"timeout": LOCK_WAIT_S, "check_same_thread": False}
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_S * 1000)}")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                wait = conn.get_execution_options().get("llmops_wait")
                ms = int((LOCK_WAIT_S if wait is None else wait) * 1000)
                conn.exec_driver_sql(f"PRAGMA busy_timeout={max(1, ms)}")
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        @event.listens_for(engine, "handle_error")
        def _on_error(context: ExceptionContext) -> BaseException | None:
            if context.is_pre_ping:
                return None  # the pool reconnects by itself
            return self._translate(context)

        return engine

    def _translate(self, context: ExceptionContext) -> BaseException | None:
        """A driver error -> one clear StoreUnavailable line (unique-key races stay as they
        are: `write` recomputes and retries them)."""
        exc = context.original_exception
        if isinstance(context.sqlalchemy_exception, IntegrityError):
            return None
        kind = _error_kind(exc, context.is_disconnect, self.is_sqlite)
        if kind is None:
            return None
        reason = _reason(exc)
        if kind == "lock":
            error: StoreUnavailable = StoreBusy(
                f"the experiment store at {self.masked_url} is busy: another connection "
                f"holds a lock ({reason}); try again, or find the process holding it"
            )
        elif kind == "timeout":
            error = StoreBusy(
                f"the experiment store at {self.masked_url} did not answer in time ({reason})"
            )
        elif kind == "store":
            error = StoreUnavailable(f"the experiment store at {self.masked_url} failed: {reason}")
        else:
            error = StoreUnavailable(
                f"the experiment store at {self.masked_url} cannot be reached: {reason}"
            )
        error.kind, error.reason = kind, reason
        return error

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
            current = self._current_revision()
            if current == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            if current is not None and current not in _known_revisions(cfg):
                error = StoreUnavailable(
                    f"the experiment store at {self.masked_url} has schema revision "
                    f"{current!r}, newer than this llmops_nb knows (up to {HEAD_REVISION!r}): "
                    "a newer release wrote it; upgrade llmops_nb (pip install -U llmops_nb)"
                )
                error.kind, error.reason = "schema", "newer schema"
                raise error
            with self.write_engine.begin() as conn:
                if not self.is_sqlite:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = 0")  # wait for a peer's upgrade
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

    def session(self, *, wait: float | None = None) -> Session:
        """A read session; objects stay usable after it closes.

        wait: seconds any statement may wait for a lock (and, on PostgreSQL, run, plus a
        second) before it fails with StoreBusy, for callers that must not block, such as
        a cache lookup in front of a model call. Default: LOCK_WAIT_S.
        """
        bind = self.engine if wait is None else self.engine.execution_options(llmops_wait=wait)
        return Session(bind, expire_on_commit=False)

    def write(self, fn: Callable[[Session], T], *, wait: float | None = None) -> T:
        """Run fn(session) in one write transaction; commit or nothing.

        Lock contention and lost connections are retried with backoff for up to
        WRITE_DEADLINE_S (or WAIT seconds, which also bounds each lock wait), then fail
        with one StoreUnavailable/StoreBusy line; a unique-key race is recomputed.
        """
        budget = WRITE_DEADLINE_S if wait is None else wait
        start = time.monotonic()
        bind = self.write_engine
        if wait is not None:
            bind = bind.execution_options(llmops_wait=wait)
        attempt = 0
        while True:
            attempt += 1
            try:
                with Session(bind, expire_on_commit=False) as s:
                    result = fn(s)
                    s.commit()
                    return result
            except IntegrityError:
                if attempt >= _UNIQUE_RACE_RETRIES:
                    raise  # a concurrent writer took the same unique key: recompute and retry
            except StoreUnavailable as exc:
                waited = time.monotonic() - start
                if exc.kind not in ("lock", "connection"):
                    raise
                if waited >= budget:
                    final = type(exc)(f"{exc} (gave up after {waited:.1f} s)")
                    final.kind = exc.kind
                    raise final from None
                if waited >= 1.0:
                    self._notice_wait(exc, budget)
            pause = min(1.0, 0.005 * 2 ** min(attempt, 8)) * (0.5 + random.random())
            time.sleep(max(0.0, min(pause, budget - (time.monotonic() - start))))

    def _notice_wait(self, exc: StoreUnavailable, budget: float) -> None:
        """One line on stderr (at most every 10 s) while a write waits for the store to come
        back or a lock to be released, so no wait is silent."""
        now = time.monotonic()
        if now - self._wait_noticed > 10.0:
            self._wait_noticed = now
            print(f"{exc}: retrying for up to {budget:g} s", file=sys.stderr)

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


def _known_revisions(cfg: Any) -> set[str]:
    """Every revision this package's migrations define (a store at another one is newer)."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}


_LOCK_WORDS = (
    "database is locked",
    "database table is locked",
    "busy",
    "deadlock",
    "could not serialize",
    "lock timeout",
    "could not obtain lock",
)


def _error_kind(exc: BaseException, is_disconnect: bool, is_sqlite: bool) -> str | None:
    """'lock' (contention: retry), 'connection' (lost or refused: retry), 'timeout'
    (a statement ran too long), 'store' (another driver failure), None (a bug in SQL)."""
    msg = str(exc).lower()
    if any(word in msg for word in _LOCK_WORDS):
        return "lock"
    if "statement timeout" in msg:
        return "timeout"
    if is_disconnect:
        return "connection"
    name = type(exc).__name__
    module = type(exc).__module__
    if is_sqlite:
        broken = (
            "unable to open",
            "disk i/o",
            "readonly",
            "malformed",
            "disk is full",
            "not a database",
        )
        return "store" if any(word in msg for word in broken) else None
    if module.startswith("psycopg") and (
        isinstance(exc, _psycopg_errors()) or name in ("OperationalError", "InterfaceError")
    ):
        return "connection"
    return None


def _psycopg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # another driver: judged by is_disconnect alone
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line only, without SQL or parameters."""
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig).strip().splitlines()
    return msg[0] if msg else type(orig).__name__
