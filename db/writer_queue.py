"""A first-come, first-served queue for a SQLite file's write lock, across processes and threads.

:meth:`db.engine.Database.write` holds :func:`writer_turn` around every SQLite write transaction.

SQLite's busy handler is not a queue: a writer that finds the lock taken sleeps and retries, and
whoever happens to try just after a commit goes next, so under many writers a few wait for seconds
while newcomers overtake them. Here every writer draws a ticket and goes when all earlier tickets are
done, so the longest wait is the work queued in front of it.

The queue lives in record locks on a lock file beside the database (``<database>.writer-lock``):

- byte 0 is the ticket desk: locked for a few microseconds while a writer reads the counter kept in
  the file, writes it back one higher, and locks its own slot;
- the slot of ticket *t* is byte ``1 + t``, locked by its writer from the moment it draws the ticket
  until its transaction ends (committed, rolled back, or given up);
- a writer's turn comes when no byte of ``[1, 1 + t)`` is locked: every earlier writer has finished
  or given up, and none can come back, since tickets only go up.

The locks are Linux open-file-description locks (``F_OFD_SETLK``): they belong to the open file, not
to the process, so two threads of one process queue like two processes; and the kernel drops them
when the file is closed or its process dies, so a crashed writer never blocks the queue.

The wait is bounded (``EARMARK_SQLITE_WRITE_WAIT_S``, 10 s): a writer whose turn has not come by then
leaves the queue and gets :class:`WriteWaitTimeout`, before anything was written. Waits longer than
``EARMARK_SQLITE_WRITE_WAIT_WARN_S`` (0.5 s) are logged on the ``earmark`` logger, and every wait is
counted in :func:`write_wait_stats`. ``EARMARK_SQLITE_WRITE_QUEUE=off`` leaves the ordering to
SQLite's busy handler (the bound still holds, through the busy timeout); so do platforms without
open-file-description locks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("earmark")

DEFAULT_WAIT_S = 10.0
DEFAULT_WARN_S = 0.5
WAIT_ENV = "EARMARK_SQLITE_WRITE_WAIT_S"
WARN_ENV = "EARMARK_SQLITE_WRITE_WAIT_WARN_S"
QUEUE_ENV = "EARMARK_SQLITE_WRITE_QUEUE"

_DESK = 0
_FIRST_SLOT = 1
_COUNTER = struct.Struct("<Q")

#: Open-file-description locks: Linux only, and only where ``struct flock`` has a 64-bit ``off_t``.
SUPPORTED = (
    fcntl is not None
    and sys.platform.startswith("linux")
    and hasattr(fcntl, "F_OFD_SETLKW")
    and sys.maxsize > 2**32
)


class WriteWaitTimeout(RuntimeError):
    """A write that could not start within the bound; nothing of it was written."""

    def __init__(self, waited_s: float, bound_s: float, *, behind: str = "queue") -> None:
        self.waited_s = waited_s
        self.bound_s = bound_s
        if behind == "queue":
            what = "waited {w:.1f} s for its turn behind other writers"
        else:
            what = "found the database stayed locked by another process for {w:.1f} s"
        super().__init__(
            f"the database is busy: this change {what.format(w=waited_s)} and did not start within "
            f"the limit of {bound_s:g} s ({WAIT_ENV}); nothing was changed. Try again; if this happens "
            "often, a long write (an import, a backup) is holding the database, or there are more "
            "writers than SQLite serves well: use PostgreSQL (EARMARK_DATABASE_URL)."
        )


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", name, raw, default)
        return default
    return value if value > 0 else default


def wait_bound_s() -> float:
    """How long a SQLite write may wait to start (``EARMARK_SQLITE_WRITE_WAIT_S``)."""
    return _env_seconds(WAIT_ENV, DEFAULT_WAIT_S)


def queue_enabled() -> bool:
    return SUPPORTED and os.environ.get(QUEUE_ENV, "").strip().lower() not in {"off", "0", "no", "false"}


@dataclass(frozen=True)
class WriteWaitStats:
    """This process's writes through the queue since it started (or since :func:`reset_write_wait_stats`)."""

    turns: int
    waited: int  # turns that had to wait for an earlier writer
    slow: int  # waits longer than EARMARK_SQLITE_WRITE_WAIT_WARN_S (each logged)
    timeouts: int
    total_wait_s: float
    max_wait_s: float


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.turns = self.waited = self.slow = self.timeouts = 0
        self.total = self.max = 0.0

    def add(self, wait_s: float, *, waited: bool, timed_out: bool = False) -> bool:
        slow = wait_s > _env_seconds(WARN_ENV, DEFAULT_WARN_S)
        with self.lock:
            self.turns += not timed_out
            self.waited += waited
            self.slow += slow
            self.timeouts += timed_out
            self.total += wait_s
            self.max = max(self.max, wait_s)
        return slow


_STATS = _Counters()


def write_wait_stats() -> WriteWaitStats:
    with _STATS.lock:
        return WriteWaitStats(
            _STATS.turns, _STATS.waited, _STATS.slow, _STATS.timeouts, _STATS.total, _STATS.max
        )


def reset_write_wait_stats() -> None:
    with _STATS.lock:
        _STATS.reset()


# Every descriptor of a lock file this process has open. A forked child shares their open file
# descriptions, and with them the locks: a child living on (a worker pool) would hold a writer's
# place for ever. The child closes its copies at once.
_OPEN: set[int] = set()
_OPEN_LOCK = threading.Lock()


def _open(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    with _OPEN_LOCK:
        _OPEN.add(fd)
    return fd


def _close(fd: int) -> None:
    with _OPEN_LOCK:
        _OPEN.discard(fd)
    os.close(fd)


def _close_in_child() -> None:
    global _OPEN_LOCK
    _OPEN_LOCK = threading.Lock()  # the parent's may have been held by a thread the child lacks
    for fd in list(_OPEN):
        with suppress(OSError):
            os.close(fd)
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class _Flock(ctypes.Structure):
    _fields_ = [
        ("l_type", ctypes.c_short),
        ("l_whence", ctypes.c_short),
        ("l_start", ctypes.c_int64),
        ("l_len", ctypes.c_int64),
        ("l_pid", ctypes.c_int),
    ]


def _lock(fd: int, kind: int, start: int, length: int, *, wait: bool) -> bool:
    """Set (or with ``F_UNLCK`` clear) an open-file-description lock; False if it is taken."""
    request = bytes(_Flock(kind, os.SEEK_SET, start, length, 0))
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, request)
    except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: someone holds a conflicting lock
        return False
    return True


def _draw_ticket(fd: int) -> int:
    """Take the next ticket and lock its slot, both under the desk lock."""
    _lock(fd, fcntl.F_WRLCK, _DESK, 1, wait=True)
    try:
        raw = os.pread(fd, _COUNTER.size, 0)
        ticket = _COUNTER.unpack(raw)[0] if len(raw) == _COUNTER.size else 0
        os.pwrite(fd, _COUNTER.pack(ticket + 1), 0)
        if not _lock(fd, fcntl.F_WRLCK, _FIRST_SLOT + ticket, 1, wait=False):  # pragma: no cover
            raise RuntimeError(f"the writer queue's slot {ticket} is taken: the lock file was altered")
        return ticket
    finally:
        _lock(fd, fcntl.F_UNLCK, _DESK, 1, wait=False)


def _earlier_done(fd: int, ticket: int) -> bool:
    if ticket == 0:
        return True
    if not _lock(fd, fcntl.F_RDLCK, _FIRST_SLOT, ticket, wait=False):
        return False
    _lock(fd, fcntl.F_UNLCK, _FIRST_SLOT, ticket, wait=False)
    return True


def _wait_for_earlier(path: Path, ticket: int, timeout_s: float) -> bool:
    """Block until every earlier ticket is done, or ``timeout_s`` passes (False).

    The kernel wakes a blocked lock request the moment the last conflicting lock goes, but a blocked
    ``fcntl`` cannot be given a timeout; a helper thread makes the call on its own open file (so its
    lock request is apart from the caller's slot) and the caller waits for it with one. A helper left
    behind by a timeout gets its lock later, drops it and ends.
    """
    fd = _open(path, os.O_RDWR)
    turn = threading.Event()

    def wait() -> None:
        try:
            _lock(fd, fcntl.F_RDLCK, _FIRST_SLOT, ticket, wait=True)
            turn.set()
        finally:
            _close(fd)

    threading.Thread(target=wait, name="earmark-writer-queue", daemon=True).start()
    return turn.wait(timeout_s)


class WriterQueue:
    """The queue of one SQLite database file; :meth:`turn` holds a place at its head."""

    def __init__(self, lock_path: Path) -> None:
        self.path = lock_path
        self.local = threading.local()

    def tickets_drawn(self) -> int:
        """How many writers have joined this queue since the lock file was made (diagnostics)."""
        try:
            raw = self.path.read_bytes()[: _COUNTER.size]
        except FileNotFoundError:
            return 0
        return _COUNTER.unpack(raw)[0] if len(raw) == _COUNTER.size else 0

    @contextmanager
    def turn(self, bound_s: float) -> Iterator[None]:
        depth = getattr(self.local, "depth", 0)
        if depth:  # the same thread, already at the head of the queue
            self.local.depth = depth + 1
            try:
                yield
            finally:
                self.local.depth -= 1
            return
        try:
            fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        except OSError:  # a read-only folder: SQLite's busy handler alone, within the same bound
            yield
            return
        self._acquire(fd, bound_s)
        self.local.depth = 1
        try:
            yield
        finally:
            self.local.depth = 0
            _close(fd)  # drops this writer's slot: the next ticket's turn

    def _acquire(self, fd: int, bound_s: float) -> None:
        started = time.monotonic()
        try:
            ticket = _draw_ticket(fd)
            waited = not _earlier_done(fd, ticket)
            if waited and not _wait_for_earlier(self.path, ticket, bound_s - (time.monotonic() - started)):
                wait_s = time.monotonic() - started
                _STATS.add(wait_s, waited=True, timed_out=True)
                log.warning(
                    "a SQLite write gave up after %.2f s in the writer queue (%s)", wait_s, self.path.name
                )
                raise WriteWaitTimeout(wait_s, bound_s)
        except BaseException:
            _close(fd)
            raise
        wait_s = time.monotonic() - started
        if _STATS.add(wait_s, waited=waited):
            log.warning("a SQLite write waited %.2f s for its turn (%s)", wait_s, self.path.name)


_QUEUES: dict[Path, WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def writer_queue(database: Path) -> WriterQueue:
    """The (one per process) queue of the SQLite file ``database``."""
    lock_path = Path(f"{database.expanduser().resolve()}.writer-lock")
    with _QUEUES_LOCK:
        queue = _QUEUES.get(lock_path)
        if queue is None:
            queue = _QUEUES[lock_path] = WriterQueue(lock_path)
        return queue
