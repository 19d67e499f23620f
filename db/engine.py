"""One engine and one session factory per process: ``Database.from_url(url)``.

Callers own transactions, one per user event::

    db = Database.from_url(url)
    with db.write() as s:      # BEGIN IMMEDIATE on SQLite: take the write lock up front
        submit_annotation(s, ...)
    with db.read() as s:       # plain deferred BEGIN: readers never block writers under WAL
        next_clip_for(s, ...)

SQLite runs in WAL mode with a busy timeout and foreign keys on. pysqlite's own deferred BEGIN would
turn a read-then-write transaction into SQLITE_BUSY under concurrency, so we issue BEGIN ourselves.

On PostgreSQL a pooled connection that sat unused for more than :data:`PING_IDLE_S` is checked with a
ping before it is handed out, and replaced if the server has gone away (restarted, or closed idle
sessions). A connection in steady use is not: a ping on every checkout is one more trip to the server
per transaction, a quarter of a hand-out's. A server restart while connections are busy fails the
transactions then running, and SQLAlchemy replaces the whole pool when it sees the disconnect.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from db.writer_turns import WriteWaitTimeout, begin_immediate, is_busy

__all__ = [
    "PING_IDLE_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Database",
    "DriverStatement",
    "WriteWaitTimeout",
    "execute_once",
    "make_engine",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A PostgreSQL connection back in the pool for longer than this is pinged before its next use.
PING_IDLE_S = 5.0


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

    database = _database_file(parsed)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        raw = conn.connection.driver_connection
        info = conn.connection.info
        if mode != "IMMEDIATE":
            _set_busy_timeout(raw, info, SQLITE_BUSY_TIMEOUT_MS)
            conn.exec_driver_sql(f"BEGIN {mode}")
            return

        def try_begin(timeout_ms: int) -> bool:
            _set_busy_timeout(raw, info, timeout_ms)
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    return False
                raise
            return True

        begin_immediate(database, try_begin)

    return engine


def _database_file(parsed: URL) -> Path | None:
    """The SQLite file of ``parsed``, or None for an in-memory (or ``file:`` URI) database."""
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(name).expanduser().resolve()


def _set_busy_timeout(raw: Any, info: dict[str, Any], timeout_ms: int) -> None:
    # Write transactions wait for the lock as long as their turn allows; reads and everything else
    # as long as SQLITE_BUSY_TIMEOUT_MS. Set only when it changes: most writes use the same value.
    if info.get("busy_timeout_ms", SQLITE_BUSY_TIMEOUT_MS) != timeout_ms:
        raw.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
        info["busy_timeout_ms"] = timeout_ms


def _server_engine(url: str, **kwargs: Any) -> Engine:
    """A PostgreSQL (or other server) engine whose pool pings connections that sat idle (see the
    module docstring)."""
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")  # None: connected just now
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool drops this connection and checks out a new one.
            raise DisconnectionError(f"connection lost while idle: {exc}") from exc

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for Earmark: SQLite pragmas and explicit BEGIN, or PostgreSQL with a
    ping for connections that sat idle."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return _server_engine(url, **kwargs)


class DriverStatement:
    """A SQLAlchemy statement rendered once for a dialect and sent as the driver's SQL.

    ``conn.execute(statement)`` looks the statement up in SQLAlchemy's compiled cache on every call
    (hashing a key that for the queue's CTE statements is some 80 kB of nested tuples), then builds its
    parameters and matches each result column to the statement's: 0.1–0.2 ms of the client's CPU
    per call, against 0.3–0.4 ms the server spends on the hand-out. :meth:`execute` sends the rendered
    SQL through ``exec_driver_sql`` instead (same connection, transaction and engine events), with the
    parameters converted by their types as SQLAlchemy would.

    For statements whose rendering does not depend on the parameters (no expanding ``IN``) and whose
    result columns need no conversion beyond the driver's own: numbers, strings, booleans, JSON.
    """

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement rendered per execution cannot be rendered once")
        self.sql: str = compiled.string
        self._compiled = compiled
        self._processors: dict[str, Callable[[Any], Any]] = {}
        escaped = compiled.escaped_bind_names or {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[escaped.get(name, name)] = process

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        values = self._compiled.construct_params(dict(params))
        for name, process in self._processors.items():
            values[name] = process(values[name])
        if self._compiled.positional:
            return conn.exec_driver_sql(self.sql, tuple(values[n] for n in self._compiled.positiontup or ()))
        return conn.exec_driver_sql(self.sql, values)


_RENDERED: dict[Any, DriverStatement] = {}


def execute_once(
    conn: Connection, build: Callable[..., Any], *args: Any, params: Mapping[str, Any]
) -> CursorResult[Any]:
    """Execute the statement ``build(*args)`` makes (``build`` a cached builder, ``args`` hashable).

    On PostgreSQL it is rendered once per process, keyed by the builder and its arguments, and sent as
    the driver's SQL (:class:`DriverStatement`), for statements on a hot path. Elsewhere it goes
    through SQLAlchemy as usual: SQLite's driver hands JSON back as text, which SQLAlchemy decodes.
    """
    dialect = conn.dialect
    if dialect.name != "postgresql":
        return conn.execute(build(*args), params)
    key = (build, args, dialect.driver, dialect.paramstyle)
    rendered = _RENDERED.get(key)
    if rendered is None:
        rendered = _RENDERED[key] = DriverStatement(build(*args), dialect)
    return rendered.execute(conn, params)


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

        On SQLite, ``BEGIN IMMEDIATE`` takes the write lock directly; a writer that has waited past
        ``EARMARK_SQLITE_WRITE_STARVE_MS`` makes the others step aside until it has it, and one that
        cannot start within ``EARMARK_SQLITE_WRITE_WAIT_S`` raises
        :class:`~db.writer_turns.WriteWaitTimeout` before anything is written (:mod:`db.writer_turns`).
        """
        with self._writer.begin() as session:
            yield session

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
