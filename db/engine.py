"""One engine and one session factory per process: ``Database.from_url(url)``.

Callers own transactions, one per user event::

    db = Database.from_url(url)
    with db.write() as s:      # BEGIN IMMEDIATE on SQLite: take the write lock up front
        submit_annotation(s, ...)
    with db.read() as s:       # plain deferred BEGIN: readers never block writers under WAL
        next_clip_for(s, ...)

SQLite runs in WAL mode with a busy timeout and foreign keys on. pysqlite's own deferred BEGIN would
turn a read-then-write transaction into SQLITE_BUSY under concurrency, so we issue BEGIN ourselves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.writer_queue import WriteWaitTimeout, queue_enabled, wait_bound_s, writer_queue

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        path = Path(parsed.database).expanduser().resolve()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SQLite would create the file world-readable (0644 under the usual umask); it holds password
        # hashes. Its -wal and -shm files take the database file's mode.
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to us (see module docstring).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # A write may wait for SQLite's lock only as long as its bound leaves (a writer outside the
        # queue, such as the sqlite3 shell, can still hold it); every other statement as usual.
        busy_ms = _busy_timeout_ms(mode)
        info = conn.connection.info
        if info.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS) != busy_ms:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            info["busy_timeout_ms"] = busy_ms
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for Earmark: SQLite pragmas and explicit BEGIN, or PostgreSQL as given."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


_BUDGET = threading.local()  # .deadline: when the current thread's write must have started


def _busy_timeout_ms(mode: str) -> int:
    deadline = getattr(_BUDGET, "deadline", None) if mode == "IMMEDIATE" else None
    if deadline is None:
        return SQLITE_BUSY_TIMEOUT_MS
    return max(1, int((deadline - time.monotonic()) * 1000))


def _queue_turn(url: str, bound_s: float) -> AbstractContextManager[None]:
    database = make_url(url).database
    if not queue_enabled() or database in (None, "", ":memory:") or str(database).startswith("file:"):
        return nullcontext()
    return writer_queue(Path(str(database))).turn(bound_s)


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc.orig)
    return "database is locked" in text or "database is busy" in text


@dataclass(frozen=True)
class Database:
    """The engine and session factories of one process."""

    url: str
    engine: Engine
    _reader: sessionmaker[Session]
    _writer: sessionmaker[Session]

    @classmethod
    def from_url(cls, url: str, **engine_kwargs: Any) -> Database:
        engine = make_engine(url, **engine_kwargs)
        writer_bind = engine.execution_options(sqlite_begin="IMMEDIATE") if cls._is_sqlite(engine) else engine
        return cls(
            url=url,
            engine=engine,
            _reader=sessionmaker(engine, expire_on_commit=False),
            _writer=sessionmaker(writer_bind, expire_on_commit=False),
        )

    @staticmethod
    def _is_sqlite(engine: Engine) -> bool:
        return engine.dialect.name == "sqlite"

    @property
    def is_sqlite(self) -> bool:
        return self._is_sqlite(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction (rolled back at the end: reads never commit by accident)."""
        with self._reader() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed if the block succeeds, rolled back otherwise.

        On a SQLite file, writers first queue for the write lock, first come first served across
        processes and threads (:mod:`db.writer_queue`): SQLite's own busy handler polls with sleeps
        growing to 100 ms, so under many writers an unlucky one waited seconds while newcomers went
        ahead. A write that cannot start within ``EARMARK_SQLITE_WRITE_WAIT_S`` raises
        :class:`~db.writer_queue.WriteWaitTimeout` before anything is written.
        """
        if not self.is_sqlite:
            with self._writer.begin() as session:
                yield session
            return
        bound = wait_bound_s()
        started = time.monotonic()
        with _queue_turn(self.url, bound):
            outer = getattr(_BUDGET, "deadline", None)
            _BUDGET.deadline = started + bound if outer is None else outer
            try:
                with self._writer.begin() as session:
                    yield session
            except OperationalError as exc:
                # Only BEGIN IMMEDIATE waits for the lock: once it is ours, nothing else can be busy.
                if _is_busy(exc):
                    raise WriteWaitTimeout(time.monotonic() - started, bound, behind="process") from exc
                raise
            finally:
                _BUDGET.deadline = outer

    def analyze(self) -> None:
        """Refresh the query planner's statistics (after a bulk import: PostgreSQL has none for new
        rows until autovacuum gets round to it, and plans the queue and the views badly meanwhile)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")

    def dispose(self) -> None:
        self.engine.dispose()
