"""Turns at a SQLite file's write lock that are fair only to the writer that starves: :func:`begin_immediate`.

:mod:`db.engine` starts every SQLite write transaction through :func:`begin_immediate`.

SQLite's busy handler is not a queue: a writer that finds the lock taken sleeps (1, 2, 5 … up to
100 ms) and tries again, and whoever tries just after a commit goes next, most often the process that
committed, still on the CPU. That unfairness is what makes SQLite fast under many writers, so writers
keep it: each one takes the lock directly with ``BEGIN IMMEDIATE``. Only a writer that has waited
longer than ``EARMARK_SQLITE_WRITE_STARVE_MS`` (200 ms) is *starving*, and for it the others step
aside:

- the starving writer takes the *starving lock* (an exclusive lock on byte 0 of a lock file beside the
  database, ``<database>.writer-lock``) and tries again for the write lock;
- every writer checks that lock before its ``BEGIN IMMEDIATE``; while it is held, the writer blocks on
  a shared lock of the same byte, and the kernel wakes it the moment the starving writer lets go;
- the starving writer lets go as soon as its ``BEGIN IMMEDIATE`` has the write lock (or gives up).

So the queue exists only while someone starves: the writers already past the check finish their one
transaction each, nobody new comes in, and the starving writer is next. Two writers that starve at once
take the starving lock one after the other.

The locks are Linux open-file-description locks (``F_OFD_SETLKW``): they belong to an open file, not
to a process, so threads of one process (each write opens the file for itself) step aside for each
other like processes; the kernel drops them when a writer dies, so a crash never blocks the others;
and a forked child closes, without unlocking, any copy it got of a parent's open lock file.

The wait is bounded: a write that cannot start within ``EARMARK_SQLITE_WRITE_WAIT_S`` (10 s) raises
:class:`WriteWaitTimeout` before anything is written, with a message that says how long it waited.
Starvations and long waits are logged on the ``earmark`` logger and counted in
:func:`write_wait_stats`. ``EARMARK_SQLITE_WRITE_FAIRNESS=off``, platforms without
open-file-description locks and databases in a folder that cannot hold the lock file leave the order
to SQLite's busy handler, under the same bound. PostgreSQL never comes here: it has row locks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("earmark")

WAIT_ENV = "EARMARK_SQLITE_WRITE_WAIT_S"
STARVE_ENV = "EARMARK_SQLITE_WRITE_STARVE_MS"
FAIRNESS_ENV = "EARMARK_SQLITE_WRITE_FAIRNESS"
DEFAULT_WAIT_S = 10.0
DEFAULT_STARVE_MS = 200.0
#: Waits longer than this are logged (a starvation always is, at debug level).
SLOW_WAIT_S = 1.0

_STARVING_BYTE = 0

#: Open-file-description locks: Linux only, and only where ``struct flock`` has a 64-bit ``off_t``.
SUPPORTED = (
    fcntl is not None
    and sys.platform.startswith("linux")
    and hasattr(fcntl, "F_OFD_SETLKW")
    and sys.maxsize > 2**32
)


class WriteWaitTimeout(RuntimeError):
    """A write that could not start within the bound; nothing of it was written."""

    def __init__(self, waited_s: float, bound_s: float) -> None:
        self.waited_s = waited_s
        self.bound_s = bound_s
        super().__init__(
            f"the database is busy: this change waited {waited_s:.1f} s for its turn to write and did "
            f"not get it within the limit of {bound_s:g} s ({WAIT_ENV}); nothing was changed. Try "
            "again; if this happens often, a long write (an import, a restore) or a process outside "
            "Earmark is holding the database, or more people write at once than SQLite serves well: "
            "use PostgreSQL (EARMARK_DATABASE_URL)."
        )


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %g", name, raw, default)
        return default
    return value if value >= 0 else default


def wait_bound_s() -> float:
    """How long a SQLite write may wait to start (``EARMARK_SQLITE_WRITE_WAIT_S``)."""
    return _env_number(WAIT_ENV, DEFAULT_WAIT_S) or DEFAULT_WAIT_S


def starve_after_s() -> float:
    """How long a writer waits on its own before others step aside (``EARMARK_SQLITE_WRITE_STARVE_MS``)."""
    return _env_number(STARVE_ENV, DEFAULT_STARVE_MS) / 1000


def fairness_enabled() -> bool:
    return SUPPORTED and os.environ.get(FAIRNESS_ENV, "").strip().lower() not in {"off", "0", "no", "false"}


@dataclass(frozen=True)
class WriteWaitStats:
    """This process's SQLite writes since it started (or since :func:`reset_write_wait_stats`)."""

    writes: int  # write transactions started
    deferred: int  # writes that stepped aside for a starving writer before trying
    starved: int  # writes that waited past the starving threshold and took the starving lock
    timeouts: int  # writes refused with WriteWaitTimeout
    slow: int  # waits longer than SLOW_WAIT_S (each one logged)
    total_wait_s: float
    max_wait_s: float


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.writes = self.deferred = self.starved = self.timeouts = self.slow = 0
        self.total = self.max = 0.0

    def add(self, wait_s: float, *, deferred: bool, starved: bool, timed_out: bool) -> bool:
        slow = wait_s > SLOW_WAIT_S
        with self.lock:
            self.writes += not timed_out
            self.deferred += deferred
            self.starved += starved
            self.timeouts += timed_out
            self.slow += slow
            self.total += wait_s
            self.max = max(self.max, wait_s)
        return slow


_STATS = _Counters()


def write_wait_stats() -> WriteWaitStats:
    with _STATS.lock:
        return WriteWaitStats(
            _STATS.writes,
            _STATS.deferred,
            _STATS.starved,
            _STATS.timeouts,
            _STATS.slow,
            _STATS.total,
            _STATS.max,
        )


def reset_write_wait_stats() -> None:
    with _STATS.lock:
        _STATS.reset()


class _Flock(ctypes.Structure):
    _fields_ = [
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),
    ]


def _lock(fd: int, kind: int, *, wait: bool) -> None:
    """Set (or with ``F_UNLCK`` clear) this open file's lock on the starving byte."""
    request = bytes(_Flock(kind, os.SEEK_SET, _STARVING_BYTE, 1, 0))
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, request)


def _someone_starving(fd: int) -> bool:
    answer = fcntl.fcntl(
        fd, fcntl.F_OFD_GETLK, bytes(_Flock(fcntl.F_RDLCK, os.SEEK_SET, _STARVING_BYTE, 1, 0))
    )
    return _Flock.from_buffer_copy(answer).l_type != fcntl.F_UNLCK


# Lock files open in this process right now: a forked child closes its copies (never unlocks them:
# unlocking through a copy would drop the parent's lock).
_OPEN: set[int] = set()
_OPEN_LOCK = threading.Lock()


def _close_inherited() -> None:  # pragma: no cover - runs in forked children
    for fd in list(_OPEN):
        with suppress(OSError):
            os.close(fd)
    _OPEN.clear()
    global _OPEN_LOCK
    _OPEN_LOCK = threading.Lock()


if SUPPORTED:
    os.register_at_fork(after_in_child=_close_inherited)


def lock_path(database: Path) -> Path:
    """The lock file beside the SQLite file ``database``."""
    return Path(f"{database.expanduser().resolve()}.writer-lock")


def someone_starving(database: Path) -> bool:
    """Whether a writer of ``database`` holds the starving lock now, so that newcomers step aside."""
    if not SUPPORTED:
        return False
    try:
        fd = os.open(lock_path(database), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _someone_starving(fd)
    finally:
        os.close(fd)


def _open_lock_file(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # a read-only folder: SQLite's busy handler alone, within the same bound
        return None
    with _OPEN_LOCK:
        _OPEN.add(fd)
    return fd


def _close_lock_file(fd: int) -> None:
    with _OPEN_LOCK:
        _OPEN.discard(fd)
    os.close(fd)


#: ``try_begin(timeout_ms)`` runs ``BEGIN IMMEDIATE`` with SQLite's busy handler waiting at most that
#: long, and says whether it got the write lock.
TryBegin = Callable[[int], bool]


def begin_immediate(database: Path | None, try_begin: TryBegin) -> None:
    """Start a write transaction on the SQLite file ``database`` (None: in memory), or raise
    :class:`WriteWaitTimeout` once the bound has passed without it."""
    bound = wait_bound_s()
    started = time.monotonic()
    fd = _open_lock_file(lock_path(database)) if database is not None and fairness_enabled() else None
    deferred = starved = False
    try:
        if fd is None:
            got = try_begin(_ms(bound))
        else:
            if _someone_starving(fd):
                # Step aside: the kernel wakes us when the starving writer has the write lock.
                _lock(fd, fcntl.F_RDLCK, wait=True)
                _lock(fd, fcntl.F_UNLCK, wait=False)
                deferred = True
            got = try_begin(_ms(min(starve_after_s(), _left(started, bound))))
            if not got:
                starved = True
                _lock(fd, fcntl.F_WRLCK, wait=True)
                try:
                    got = try_begin(_ms(_left(started, bound)))
                finally:
                    _lock(fd, fcntl.F_UNLCK, wait=False)
    finally:
        if fd is not None:
            _close_lock_file(fd)
    waited = time.monotonic() - started
    if not got:
        _STATS.add(waited, deferred=deferred, starved=starved, timed_out=True)
        log.warning("a SQLite write gave up after waiting %.2f s for the write lock", waited)
        raise WriteWaitTimeout(waited, bound)
    if _STATS.add(waited, deferred=deferred, starved=starved, timed_out=False):
        log.warning("a SQLite write waited %.2f s for the write lock%s", waited, " (starving)" * starved)
    elif starved:
        log.debug("a SQLite write starved and was let in after %.3f s", waited)


def _left(started: float, bound: float) -> float:
    return max(0.0, bound - (time.monotonic() - started))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the lock."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "database is locked" in str(exc) or "database is busy" in str(exc)
    )
