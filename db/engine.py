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
from sqlalchemy.orm import Session, sessionmaker

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

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
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for Earmark: SQLite pragmas and explicit BEGIN, or PostgreSQL as given."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


#: How long a writer queues at the gate before leaving the decision to SQLite's busy handler.
GATE_WAIT_S = SQLITE_BUSY_TIMEOUT_MS / 1000


class _WriterGate:
    """One process's turn at a SQLite file's write lock: a thread lock, then an ``flock``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        self.fd_pid = -1

    @contextmanager
    def held(self) -> Iterator[None]:
        # Waits as long as SQLite itself would; past that the writer goes on without the gate and
        # SQLite's busy handler decides (and says "database is locked"), so a stuck writer cannot
        # hang every other one for ever.
        if not self.lock.acquire(timeout=GATE_WAIT_S):
            yield
            return
        try:
            locked = self.depth > 0 or self._acquire()
            if locked:
                self.depth += 1
            try:
                yield
            finally:
                if locked:
                    self.depth -= 1
                    if self.depth == 0 and self.fd is not None:
                        fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.lock.release()

    def _acquire(self) -> bool:
        if self.fd is None or self.fd_pid != os.getpid():
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.fd_pid = os.getpid()
            except OSError:
                self.fd = None  # a read-only folder: SQLite's own busy handler still orders writers
                return False
        deadline = time.monotonic() + GATE_WAIT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.002)


_GATES: dict[str, _WriterGate | None] = {}
_GATES_LOCK = threading.Lock()


def _writer_gate(url: str) -> AbstractContextManager[None]:
    with _GATES_LOCK:
        if url not in _GATES:
            parsed = make_url(url)
            on_file = (
                fcntl is not None
                and parsed.get_backend_name() == "sqlite"
                and parsed.database not in (None, "", ":memory:")
            )
            _GATES[url] = (
                _WriterGate(Path(f"{Path(str(parsed.database)).expanduser().resolve()}.writer-lock"))
                if on_file
                else None
            )
        gate = _GATES[url]
    return gate.held() if gate is not None else nullcontext()


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

        On a SQLite file, writers first queue on a lock file: SQLite's own busy handler polls with
        sleeps growing to 100 ms, so under many writers an unlucky one waited seconds while others
        went ahead; the kernel's lock wakes the next writer as soon as the last one commits.
        """
        with _writer_gate(self.url), self._writer.begin() as session:
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
