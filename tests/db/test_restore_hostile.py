"""``earmark db restore`` on PostgreSQL refuses archives that hold more than Earmark's schema and data:
restoring one with a superuser connection would run whatever SQL it carries on the database server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from db.backup import BackupError, backup, restore
from db.engine import Database
from labeling.platform import auth

pytestmark = pytest.mark.postgres


@pytest.fixture
def databases(postgres_admin, migrated_postgres_url):  # type: ignore[no-untyped-def]
    """An Earmark database with an account in it, and an empty database to restore into."""
    source = Database.from_url(migrated_postgres_url)
    with source.write() as s:
        auth.add_user(s, name="ana", role="admin", password="correct horse")
    name = f"earmark_restore_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = Database.from_url(
        make_url(migrated_postgres_url).set(database=name).render_as_string(hide_password=False)
    )
    yield source, target
    source.dispose()
    target.dispose()
    with postgres_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _untouched(db: Database) -> None:
    with db.engine.connect() as conn:
        assert inspect(conn).get_table_names() == []
        assert "earmark_restore_check" not in inspect(conn).get_schema_names()


def test_an_archive_holding_a_function_of_its_own_is_refused(databases, tmp_path):
    source, target = databases
    with source.engine.begin() as conn:
        conn.exec_driver_sql("CREATE FUNCTION public.grant_me() RETURNS integer LANGUAGE sql AS 'SELECT 1'")
    archive = backup(source, tmp_path / "with-function.dump").path
    with pytest.raises(BackupError, match=r"Not Earmark's: FUNCTION public\.grant_me\(\)"):
        restore(target, archive)
    _untouched(target)


def test_an_archive_whose_copy_runs_a_program_is_refused(databases, tmp_path):
    source, target = databases
    archive = backup(source, tmp_path / "crafted.dump").path
    # Rewrite one table's "COPY … FROM stdin" as "COPY … FROM PROGRAM" of the same length, so every
    # offset in the archive stays right and pg_restore reads it as before.
    marker = Path(f"/tmp/earmark-restore-probe-{uuid.uuid4().hex[:8]}")
    data = archive.read_bytes()
    honest = b"COPY public.users ("
    start = data.index(honest)
    end = data.index(b"FROM stdin;\n", start) + len(b"FROM stdin;\n")
    crafted = f"COPY public.users FROM PROGRAM 'touch {marker}';".encode()
    assert len(crafted) < end - start
    crafted = crafted.ljust(end - start - 1) + b"\n"
    archive.write_bytes(data[:start] + crafted + data[end:])
    try:
        with pytest.raises(BackupError, match=r"Not Earmark's: TABLE DATA public\.users"):
            restore(target, archive)
        assert not marker.exists(), "the archive's program ran on the database server"
    finally:
        marker.unlink(missing_ok=True)
    _untouched(target)


def test_an_honest_archive_restores_with_its_rows(databases, tmp_path):
    source, target = databases
    archive = backup(source, tmp_path / "honest.dump").path
    restore(target, archive)
    with target.read() as s:
        assert [u.name for u in auth.list_users(s)] == ["ana"]
    with target.engine.connect() as conn:
        assert "earmark_restore_check" not in inspect(conn).get_schema_names()
