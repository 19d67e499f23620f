"""A SQLite writer that has waited too long gets in before writers that keep coming; none waits unbounded.

The scene: something holds the write lock (as the ``sqlite3`` shell or a long import would); a writer
("the patient one") comes and waits past the starving threshold; then a second writer comes that
commits in a tight loop ("the hammering one"), as a busy process does. When the lock is let go, the
patient writer must be next: not one of the hammering writer's commits may come before it. With
SQLite's busy handler alone the hammering writer, fresh and on the CPU, usually wins and keeps winning.

Ordering is asserted, never timings: the patient writer stores how many of the other's rows it saw.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import Database
from db.writer_turns import (
    FAIRNESS_ENV,
    STARVE_ENV,
    SUPPORTED,
    WAIT_ENV,
    WriteWaitTimeout,
    lock_path,
    reset_write_wait_stats,
    someone_starving,
    write_wait_stats,
)
from labeling.platform.failures import plain_failure

HAMMER_COMMITS = 300
PATIENCE_S = 300  # bounds for the test's own waits, far above any wait that passes on a loaded machine

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="needs Linux open-file-description locks")


def _patient(url: str, out) -> None:
    db = Database.from_url(url)
    try:
        with db.write() as s:
            before = s.execute(text("SELECT count(*) FROM t WHERE who = 'hammer'")).scalar_one()
            s.execute(text("INSERT INTO t (who, seen) VALUES ('patient', :n)"), {"n": before})
        out.put(("patient", None))
    except Exception as exc:
        out.put(("patient", f"{type(exc).__name__}: {exc}"))
    finally:
        db.dispose()


def _hammer(url: str, started, out) -> None:
    db = Database.from_url(url)
    try:
        started.set()
        for i in range(HAMMER_COMMITS):
            with db.write() as s:
                s.execute(text("INSERT INTO t (who, seen) VALUES ('hammer', :i)"), {"i": i})
        out.put(("hammer", None))
    except Exception as exc:
        out.put(("hammer", f"{type(exc).__name__}: {exc}"))
    finally:
        db.dispose()


def _make_table(url: str) -> None:
    db = Database.from_url(url)
    with db.write() as s:
        s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL, seen INTEGER)"))
    db.dispose()


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_starving_writer_goes_before_one_that_hammers(tmp_path: Path, monkeypatch, kind):
    # Spawned children re-import the parent's __main__ by path; after an AppTest in the same worker
    # that is the app script, which a child must never run.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setenv(STARVE_ENV, "50")
    monkeypatch.setenv(WAIT_ENV, str(PATIENCE_S))
    monkeypatch.delenv(FAIRNESS_ENV, raising=False)
    path = tmp_path / "turns.db"
    url = f"sqlite:///{path}"
    _make_table(url)

    if kind == "process":
        ctx = mp.get_context("spawn")
        out, started = ctx.Queue(), ctx.Event()
        start = lambda target, *args: ctx.Process(target=target, args=args).start()  # noqa: E731
    else:
        import queue

        out, started = queue.Queue(), threading.Event()
        start = lambda target, *args: threading.Thread(target=target, args=args).start()  # noqa: E731

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the lock is taken, as by a long import
    try:
        start(_patient, url, out)
        _wait_until(lambda: someone_starving(path), "the patient writer starving")
        start(_hammer, url, started, out)
        assert started.wait(PATIENCE_S)
        time.sleep(0.2)  # let the hammering writer reach the lock (the order holds either way)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    reports = dict(out.get(timeout=PATIENCE_S) for _ in range(2))
    assert reports == {"patient": None, "hammer": None}

    db = Database.from_url(url)
    with db.read() as s:
        rows = s.execute(text("SELECT who, seen FROM t ORDER BY id")).all()
    db.dispose()
    assert rows[0] == ("patient", 0)  # first in, having seen none of the other's commits
    assert len(rows) == 1 + HAMMER_COMMITS
    assert not someone_starving(path)


def test_a_write_that_cannot_start_in_time_says_so_and_writes_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(STARVE_ENV, "20")
    monkeypatch.setenv(WAIT_ENV, "0.3")
    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    _make_table(url)
    db = Database.from_url(url)
    reset_write_wait_stats()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WriteWaitTimeout) as caught, db.write() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('late')"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = plain_failure(caught.value)  # what the command line prints instead of a traceback
    assert message is not None
    assert "waited" in message
    assert "EARMARK_SQLITE_WRITE_WAIT_S" in message
    assert "nothing was changed" in message
    stats = write_wait_stats()
    assert (stats.timeouts, stats.starved) == (1, 1)
    assert not someone_starving(path)  # the starving lock went with the refused write

    with db.write() as s:  # the same connection writes again once the lock is free
        s.execute(text("INSERT INTO t (who) VALUES ('after')"))
    with db.read() as s:
        assert s.execute(text("SELECT who FROM t")).scalars().all() == ["after"]
    assert write_wait_stats().writes == 1
    db.dispose()


def test_with_fairness_off_writers_use_sqlite_s_busy_handler_alone(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(FAIRNESS_ENV, "off")
    path = tmp_path / "plain.db"
    url = f"sqlite:///{path}"
    _make_table(url)
    db = Database.from_url(url)
    with db.write() as s:
        s.execute(text("INSERT INTO t (who) VALUES ('plain')"))
    with db.read() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    db.dispose()
    assert not lock_path(path).exists()
