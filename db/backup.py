"""Back up and restore the database: :func:`backup` and :func:`restore` (``earmark db backup|restore``).

SQLite is copied with its online backup API (consistent while the app writes); PostgreSQL is dumped
with ``pg_dump --format=custom`` and restored with ``pg_restore``, in one transaction, into an empty
database. Backups are created readable by their owner only (0600): they hold password hashes.

``pg_restore`` runs whatever SQL an archive carries, so a PostgreSQL archive is restored only when its
table of contents holds Earmark's schema objects and data and nothing else (see :mod:`db.pg_archive`),
and with ``--no-owner --no-privileges``: restore with a role that owns the new database, not a
superuser.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from db.engine import Database
from db.pg_archive import NOT_RESTORED, ArchiveRefused, TocEntry, listed_ids, read_toc, unexpected_entries

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
        except BaseException as exc:
            if fd is not None:
                with suppress(OSError):
                    target.unlink()
            if isinstance(exc, sqlite3.DatabaseError):  # it only began like a SQLite database
                raise BackupError(f"{source} is not a SQLite database Earmark can read ({exc})") from None
            raise
        return
    if _tables(db):
        raise BackupError(f"{where} is not empty; create a new database (createdb) and restore into it")
    tool = _tool("pg_restore")
    _check_versions(db, tool)
    uri, env = _libpq(url)
    entries = _checked_archive(db, Path(source), tool, env)
    options = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    with tempfile.TemporaryDirectory(prefix="earmark-restore-") as tmp:
        chosen = Path(tmp) / "entries.list"  # only the entries checked above, nothing else
        chosen.write_text("".join(f"{e.dump_id};\n" for e in entries if e.desc not in NOT_RESTORED))
        _run([tool, *options, "--use-list", str(chosen), "--dbname", uri, str(source)], env)


#: Where Earmark's own schema is built, inside the empty target, to compare an archive with.
CHECK_SCHEMA = "earmark_restore_check"


def _checked_archive(db: Database, source: Path, tool: str, env: dict[str, str]) -> list[TocEntry]:
    """The archive's entries, once they are known to be exactly Earmark's schema objects and data."""
    try:
        entries = read_toc(source)
    except ArchiveRefused as exc:
        raise BackupError(f"{source} is not a backup Earmark restores: {exc}") from None
    listing = subprocess.run(
        [tool, "--list", str(source)], env=env, capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise BackupError(f"pg_restore cannot read {source}: {listing.stderr.strip()}")
    # pg_restore's own reading of the archive must agree with Earmark's, entry by entry.
    mine = {
        e.dump_id: e.desc
        for e in entries
        if e.desc not in ("ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE")
    }
    theirs = listed_ids(listing.stdout)
    if len(theirs) != len(mine) or any(not rest.startswith(f"{mine.get(i)} ") for i, rest in theirs):
        raise BackupError(f"{source} is not a backup Earmark restores: its table of contents is damaged")
    revision = _archive_revision(source, tool, env)
    wrong = unexpected_entries(entries, _reference_toc(db, revision, env), schema=CHECK_SCHEMA)
    if wrong:
        listed = "; ".join(wrong[:5]) + (f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise BackupError(
            f"{source} holds more than Earmark's schema and data, and restoring it would run that too, "
            f"so nothing was restored. Not Earmark's: {listed}"
        )
    return entries


def _archive_revision(source: Path, tool: str, env: dict[str, str]) -> str:
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config

    done = subprocess.run(
        [tool, "--data-only", "--table=alembic_version", "--file=-", str(source)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = (
        done.stdout.split("FROM stdin;\n", 1)[-1].split("\n\\.", 1)[0].split("\n")
        if "FROM stdin;" in done.stdout
        else []
    )
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}
    if len(rows) != 1 or rows[0] not in known:
        raise BackupError(
            f"{source} is not a backup of an Earmark database this version knows (its schema revision "
            f"is {rows[0] if len(rows) == 1 else 'missing'}); restore it with the Earmark that made it"
        )
    return rows[0]


def _reference_toc(db: Database, revision: str, env: dict[str, str]) -> list[TocEntry]:
    """The table of contents of Earmark's schema at ``revision``, built and dumped in a scratch schema."""
    from alembic import command

    from db.migrate import alembic_config

    url = make_url(db.url)
    uri, _ = _libpq(url)
    with tempfile.TemporaryDirectory(prefix="earmark-restore-") as tmp:
        dump = Path(tmp) / "reference.dump"
        try:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {CHECK_SCHEMA} CASCADE")
                conn.exec_driver_sql(f"CREATE SCHEMA {CHECK_SCHEMA}")
                conn.exec_driver_sql(f"SET LOCAL search_path TO {CHECK_SCHEMA}")
                cfg = alembic_config(db.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--schema={CHECK_SCHEMA}",
                    f"--file={dump}",
                    uri,
                ],
                env,
            )
            return read_toc(dump)
        finally:
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {CHECK_SCHEMA} CASCADE")
