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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
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
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for Earmark: SQLite pragmas and explicit BEGIN, or PostgreSQL as given."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
        """A write transaction: committed if the block succeeds, rolled back otherwise."""
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
