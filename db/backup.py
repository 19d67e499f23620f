"""Back up and restore the database: :func:`backup` and :func:`restore` (``earmark db backup|restore``).

SQLite is copied with its online backup API (consistent while the app writes); PostgreSQL is dumped
with ``pg_dump --format=custom`` and restored with ``pg_restore``, in one transaction, into an empty
database. Backups are created readable by their owner only (0600): they hold password hashes.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from db.engine import Database

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    engine: str
    size_bytes: int


def create_private_file(path: Path) -> int:
    """Create ``path`` (never an existing one) readable and writable by its owner only; return the fd."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"{path} already exists; choose a new file name") from None


def _sqlite_copy(source: str, target: Path) -> None:
    """SQLite's online backup of ``source`` (a path or a ``file:`` URI) into the file ``target``."""
    src = sqlite3.connect(source, uri=source.startswith("file:"))
    dst = sqlite3.connect(str(target))
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(url.database).expanduser()


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the PostgreSQL tools, and an environment carrying the password
    (so it never shows in the process list)."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed or not on PATH; install the PostgreSQL client tools of your "
            f"server's version (e.g. apt-get install postgresql-client)"
        )
    return found


def _tool_major(tool: str) -> int:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise BackupError(f"cannot tell the version of {tool} from {out.strip()!r}")
    return int(match.group(1))


def _server_major(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _check_versions(db: Database, tool: str) -> None:
    server, client = _server_major(db), _tool_major(tool)
    if client < server:
        name = Path(tool).name
        raise BackupError(
            f"{name} is version {client} but the server runs PostgreSQL {server}: {name} cannot read a "
            f"newer server. Install postgresql-client-{server} and put it first on PATH."
        )


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        name, err = Path(cmd[0]).name, done.stderr.strip()
        if "version mismatch" in err or "unsupported version" in err:
            raise BackupError(f"{name} and the backup or server versions do not match: {err}")
        raise BackupError(f"{name} failed: {err or f'exit status {done.returncode}'}")


def backup(db: Database, target: Path) -> BackupResult:
    """Write a consistent backup of ``db`` to ``target`` (a new file, created 0600).

    Nothing is left at ``target`` if the backup fails.
    """
    url = make_url(db.url)
    target = Path(target).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = _sqlite_path(url)
        if not source.exists():
            raise BackupError(f"there is no database at {source}")
        os.close(create_private_file(target))
        try:
            _sqlite_copy(str(source), target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return BackupResult(target, "sqlite", target.stat().st_size)
    if url.get_backend_name() != "postgresql":
        raise BackupError(f"backups of {url.get_backend_name()} databases are not supported")
    tool = _tool("pg_dump")
    _check_versions(db, tool)
    uri, env = _libpq(url)
    fd = create_private_file(target)
    try:
        with os.fdopen(fd, "wb") as out:
            errors = subprocess.run(
                [tool, "--format=custom", "--no-owner", "--no-privileges", uri],
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                check=False,
            )
        if errors.returncode != 0:
            err = errors.stderr.decode(errors="replace").strip()
            if "version mismatch" in err:
                raise BackupError(f"pg_dump and the server's versions do not match: {err}")
            raise BackupError(f"pg_dump failed: {err or f'exit status {errors.returncode}'}")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return BackupResult(target, "postgresql", target.stat().st_size)


def backup_kind(path: Path) -> str:
    """``"sqlite"`` or ``"postgresql"``: which engine's backup ``path`` holds (by its first bytes)."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise BackupError(f"there is no backup at {path}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    raise BackupError(
        f"{path} is not an Earmark backup (neither a SQLite database nor a pg_dump custom archive)"
    )


def _tables(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return inspect(conn).get_table_names()


def restore(db: Database, source: Path) -> None:
    """Restore the backup at ``source`` into ``db``, which must be empty (no tables).

    A SQLite backup restores into SQLite, a ``pg_dump`` archive into PostgreSQL; anything else is
    refused with the reason, and a failed PostgreSQL restore changes nothing (one transaction).
    """
    url = make_url(db.url)
    engine = "sqlite" if url.get_backend_name() == "sqlite" else url.get_backend_name()
    kind = backup_kind(Path(source))
    if kind != engine:
        raise BackupError(
            f"{source} is a {kind} backup and the configured database is {engine}; restore it into a "
            f"{kind} database (set EARMARK_DATABASE_URL)"
        )
    where = url.render_as_string(hide_password=True)
    if engine == "sqlite":
        target = _sqlite_path(url)
        if target.exists() and target.stat().st_size > 0 and _tables(db):
            raise BackupError(f"{where} is not empty; restore into a new, empty database")
        db.dispose()
        fd = None if target.exists() else create_private_file(target)
        if fd is not None:
            os.close(fd)
        try:
            _sqlite_copy(f"file:{source}?mode=ro", target)
        except BaseException:
            if fd is not None:
                with suppress(OSError):
                    target.unlink()
            raise
        return
    if _tables(db):
        raise BackupError(f"{where} is not empty; create a new database (createdb) and restore into it")
    tool = _tool("pg_restore")
    _check_versions(db, tool)
    uri, env = _libpq(url)
    options = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    _run([tool, *options, "--dbname", uri, str(source)], env)
