"""``earmark db backup`` and ``earmark db restore`` on both engines: a round trip into an empty database
gives the same rows, the app opens the result, and every file made is readable by its owner only."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from db.engine import Database
from db.models import Clip, Project
from labeling.annotate.annotations import submit_annotation
from labeling.cli import main as cli
from labeling.data.importer import import_path
from labeling.data.projects import list_projects, update_project
from labeling.platform import auth
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace
from tests.audio import speechlike, write_wav
from tests.conftest import make_workspace

SECRET = "backup-secret"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _contents(url: str) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a hash of every row, in primary-key order."""
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            found = {}
            for table in sorted(inspect(conn).get_table_names()):
                pk = inspect(conn).get_pk_constraint(table)["constrained_columns"] or ["1"]
                order = ", ".join(f'"{c}"' if c != "1" else c for c in pk)
                rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}')).all()
                digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
                found[table] = (len(rows), digest)
            return found
    finally:
        db.dispose()


def _fill(ws, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    for i in range(4):
        write_wav(tmp_path / "src" / f"c{i}.wav", speechlike(200 + i))
    import_path(ws, tmp_path / "src", "kept")
    with ws.db.write() as s:
        update_project(s, "kept", classes=["yes", "no"], annotations_per_clip=2)
        ana = auth.add_user(s, name="ana", role="annotator", password="correct horse")
        pid = s.scalar(select(Project.id).where(Project.name == "kept"))
        for clip_id in s.scalars(select(Clip.id).where(Clip.project_id == pid)):
            submit_annotation(s, pid, ana.id, clip_id, label="yes", tags=["noise:car"])
        return auth.issue_session_token(s, ana.id, SECRET)


@pytest.fixture
def empty_url(workspace, tmp_path, request):  # type: ignore[no-untyped-def]
    """Another empty database on the workspace's engine."""
    if workspace.db.is_sqlite:
        yield f"sqlite:///{tmp_path / 'restored' / 'earmark.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    name = f"earmark_restore_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(workspace.db.url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _use(monkeypatch, data_dir: Path, url: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EARMARK_DATA_DIR", str(data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", url)
    monkeypatch.setenv("EARMARK_SECRET", SECRET)


def test_backup_and_restore_round_trip_into_an_empty_db(workspace, empty_url, tmp_path, monkeypatch, capsys):
    token = _fill(workspace, tmp_path)
    before = _contents(workspace.db.url)
    _use(monkeypatch, workspace.settings.data_dir, workspace.db.url)
    archive = tmp_path / "backups" / "earmark.backup"
    assert cli(["db", "backup", str(archive)]) == 0
    assert _mode(archive) == 0o600  # it holds password hashes
    assert cli(["db", "backup", str(archive)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err

    _use(monkeypatch, workspace.settings.data_dir, empty_url)
    assert cli(["db", "restore", str(archive)]) == 0
    after = _contents(empty_url)
    assert after == before
    assert after["clips"][0] == 4
    assert after["annotations"][0] == 4

    # The app opens the restored database (schema current) and the session signed in before the backup
    # is the same session.
    restored = Workspace.open(Settings(data_dir=workspace.settings.data_dir, database_url=empty_url))
    try:
        with restored.db.read() as s:
            assert [p.name for p in list_projects(s)] == ["kept"]
            assert auth.user_for_token(s, token, SECRET).name == "ana"
    finally:
        restored.close()

    # A database that is not empty is never restored over.
    assert cli(["db", "restore", str(archive)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert _contents(empty_url) == before


def test_a_backup_of_one_engine_is_refused_by_the_other(tmp_path, monkeypatch, capsys, postgres_url):
    ws = make_workspace(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'earmark.db'}")
    ws.close()
    _use(monkeypatch, tmp_path / "data", ws.settings.database_url)
    archive = tmp_path / "sqlite.backup"
    assert cli(["db", "backup", str(archive)]) == 0
    _use(monkeypatch, tmp_path / "data", postgres_url)
    assert cli(["db", "restore", str(archive)]) == 1
    assert "is a sqlite backup and the configured database is postgresql" in capsys.readouterr().err
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    assert cli(["db", "restore", str(not_a_backup)]) == 1
    assert "is not an Earmark backup" in capsys.readouterr().err


def test_missing_or_too_old_postgres_tools_are_named(tmp_path, monkeypatch, capsys, postgres_url):
    make_workspace(tmp_path / "data", postgres_url).close()
    _use(monkeypatch, tmp_path / "data", postgres_url)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert cli(["db", "backup", str(tmp_path / "a.backup")]) == 1
    assert "pg_dump is not installed" in capsys.readouterr().err
    assert not (tmp_path / "a.backup").exists()

    # A client older than the server (the version string as an old pg_dump prints it).
    old = tmp_path / "old-bin"
    old.mkdir()
    fake = old / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(old))
    assert cli(["db", "backup", str(tmp_path / "b.backup")]) == 1
    err = capsys.readouterr().err
    assert "pg_dump is version 9" in err
    assert "postgresql-client-" in err
    assert not (tmp_path / "b.backup").exists()


def test_the_database_and_the_data_dir_are_created_private(tmp_path):
    old = os.umask(0o022)  # the usual umask, under which SQLite would make the file 0644
    try:
        data = tmp_path / "fresh"
        ws = Workspace.open(
            Settings(data_dir=data, database_url=f"sqlite:///{data / 'earmark.db'}"), require_schema=False
        )
        try:
            from db.migrate import upgrade

            upgrade(ws.db)
            with ws.db.write() as s:
                auth.add_user(s, name="ana", role="annotator", password="correct horse")
        finally:
            ws.close()
    finally:
        os.umask(old)
    assert _mode(data) == 0o700
    assert _mode(data / "earmark.db") == 0o600
    for extra in ("earmark.db-wal", "earmark.db-shm"):
        if (data / extra).exists():
            assert _mode(data / extra) == 0o600
