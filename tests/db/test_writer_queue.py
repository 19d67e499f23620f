"""SQLite writers take turns first come, first served, across processes and threads, and a writer
that cannot start within its bound gets a message and writes nothing."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from db.engine import Database
from db.models import User
from db.writer_queue import (
    SUPPORTED,
    WriteWaitTimeout,
    reset_write_wait_stats,
    write_wait_stats,
    writer_queue,
)
from tests.db.test_clear_messages import ROOT, _env

needs_queue = pytest.mark.skipif(not SUPPORTED, reason="open-file-description locks are Linux-only")


def _database(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "earmark.db"
    url = f"sqlite:///{path}"
    db = Database.from_url(url)
    with db.write() as s:
        s.execute(text("CREATE TABLE arrivals (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
    db.dispose()
    return url, path


def _arrivals(url: str) -> list[str]:
    db = Database.from_url(url)
    try:
        with db.read() as s:
            return list(s.scalars(text("SELECT name FROM arrivals ORDER BY id")))
    finally:
        db.dispose()


def _arrive(url: str, name: str) -> None:
    db = Database.from_url(url)
    try:
        with db.write() as s:
            s.execute(text("INSERT INTO arrivals (name) VALUES (:name)"), {"name": name})
    finally:
        db.dispose()


def _wait_for_tickets(path: Path, n: int, timeout_s: float = 120.0) -> None:
    queue = writer_queue(path)
    deadline = time.monotonic() + timeout_s
    while queue.tickets_drawn() < n:
        assert time.monotonic() < deadline, "a writer never joined the queue"
        time.sleep(0.01)


@needs_queue
def test_writer_processes_get_the_lock_in_the_order_they_asked_for_it(tmp_path, monkeypatch):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_S", "600")  # starting six processes takes a while
    ctx = mp.get_context("spawn")
    names = ["A", "B", "C", "D", "E", "F"]
    procs = []
    holder = Database.from_url(url)
    with holder.write() as s:  # a long write holds the lock while the others arrive
        s.execute(text("INSERT INTO arrivals (name) VALUES ('holder')"))
        for name in names:
            before = writer_queue(path).tickets_drawn()
            proc = ctx.Process(target=_arrive, args=(url, name))
            proc.start()
            procs.append(proc)
            _wait_for_tickets(path, before + 1)  # queued before the next one starts
    holder.dispose()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert _arrivals(url) == ["holder", *names]


@needs_queue
def test_writer_threads_of_one_process_take_turns_in_order_too(tmp_path, monkeypatch):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_S", "600")
    names = ["A", "B", "C", "D"]
    threads = []
    holder = Database.from_url(url)
    with holder.write() as s:
        s.execute(text("INSERT INTO arrivals (name) VALUES ('holder')"))
        for name in names:
            before = writer_queue(path).tickets_drawn()
            thread = threading.Thread(target=_arrive, args=(url, name))
            thread.start()
            threads.append(thread)
            _wait_for_tickets(path, before + 1)
    holder.dispose()
    for thread in threads:
        thread.join(timeout=60)
    assert _arrivals(url) == ["holder", *names]


@needs_queue
def test_many_processes_hammering_writes_lose_nothing(tmp_path):
    url, _ = _database(tmp_path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(url, f"p{i}", 40)) for i in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    rows = _arrivals(url)
    assert len(rows) == 6 * 40
    assert {f"p{i}" for i in range(6)} == set(rows)


def _hammer(url: str, name: str, n: int) -> None:
    db = Database.from_url(url)
    try:
        for _ in range(n):
            with db.write() as s:
                s.execute(text("INSERT INTO arrivals (name) VALUES (:name)"), {"name": name})
    finally:
        db.dispose()


@needs_queue
def test_a_writer_past_its_bound_gets_a_message_and_writes_nothing(tmp_path, monkeypatch):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_S", "0.3")
    db = Database.from_url(url)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with db.write() as s:
                s.execute(text("INSERT INTO arrivals (name) VALUES ('late')"))
        except BaseException as exc:
            failure.append(exc)

    with writer_queue(path).turn(60):
        thread = threading.Thread(target=write)
        thread.start()
        thread.join(timeout=60)
    db.dispose()
    assert len(failure) == 1
    assert isinstance(failure[0], WriteWaitTimeout)
    assert "did not start within the limit of 0.3 s (EARMARK_SQLITE_WRITE_WAIT_S)" in str(failure[0])
    assert "nothing was changed" in str(failure[0])
    assert _arrivals(url) == []
    # The writer that gave up left the queue: the next one goes straight in.
    _arrive(url, "next")
    assert _arrivals(url) == ["next"]


def test_a_writer_behind_a_lock_held_outside_earmark_is_bounded_too(tmp_path, monkeypatch):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_S", "0.3")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the sqlite3 shell, say: it does not queue
    try:
        with pytest.raises(WriteWaitTimeout, match="stayed locked by another process"):
            _arrive(url, "late")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _arrivals(url) == []


@needs_queue
def test_a_writer_that_dies_holding_the_lock_does_not_block_the_queue(tmp_path):
    url, path = _database(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from db.writer_queue import writer_queue\n"
            "with writer_queue(Path(sys.argv[1])).turn(60):\n"
            "    print('holding', flush=True); time.sleep(600)",
            str(path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait(timeout=60)
    _arrive(url, "after")
    assert _arrivals(url) == ["after"]


@needs_queue
def test_waits_are_counted_and_long_ones_logged(tmp_path, monkeypatch, caplog):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_WARN_S", "0.05")
    reset_write_wait_stats()
    waiter = threading.Thread(target=_arrive, args=(url, "waited"))
    with caplog.at_level(logging.WARNING, logger="earmark"), writer_queue(path).turn(60):
        before = writer_queue(path).tickets_drawn()
        waiter.start()
        _wait_for_tickets(path, before + 1)
        time.sleep(0.2)  # the holder's write goes on; the waiter waits at least this long
    waiter.join(timeout=60)
    stats = write_wait_stats()
    assert stats.waited >= 1
    assert stats.slow >= 1
    assert stats.timeouts == 0
    assert stats.max_wait_s >= 0.2
    assert any("waited" in r.getMessage() and "for its turn" in r.getMessage() for r in caplog.records)


@needs_queue
def test_the_command_line_says_the_database_is_busy_instead_of_a_traceback(sqlite_workspace):
    path = Path(sqlite_workspace.settings.database_url.removeprefix("sqlite:///"))
    with writer_queue(path).turn(60):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "labeling.cli",
                "user",
                "add",
                "zed",
                "--role",
                "annotator",
                "--no-password",
            ],
            cwd=ROOT,
            env={**os.environ, **_env(sqlite_workspace), "EARMARK_SQLITE_WRITE_WAIT_S": "0.5"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 1
    assert "the database is busy" in done.stderr
    assert "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    with sqlite_workspace.db.read() as s:
        assert s.scalar(select(User).where(User.name == "zed")) is None


@needs_queue
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_write_does_not_keep_the_writers_place(tmp_path, monkeypatch):
    url, path = _database(tmp_path)
    monkeypatch.setenv("EARMARK_SQLITE_WRITE_WAIT_S", "5")
    with writer_queue(path).turn(60):
        child = os.fork()
        if child == 0:  # a pool worker living on after the write that forked it
            time.sleep(120)
            os._exit(0)
    try:
        _arrive(url, "next")  # within 5 s, or WriteWaitTimeout
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    assert _arrivals(url) == ["next"]
