import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from db.engine import Database
from db.migrate import SchemaOutOfDate, downgrade, head_revision, schema_status, upgrade
from db.models import Base
from labeling.config import Settings
from labeling.workspace import Workspace


def test_upgrade_from_empty_to_head_and_back(db_url):
    db = Database.from_url(db_url)
    assert schema_status(db).current is None
    upgrade(db)
    assert schema_status(db).up_to_date
    tables = set(inspect(db.engine).get_table_names())
    assert {"projects", "clips", "annotations", "resolutions", "audit_events", "model_runs"} <= tables
    downgrade(db, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(db)
    assert schema_status(db).current == head_revision()
    db.dispose()


def test_models_match_migrations(db_url):
    db = Database.from_url(db_url)
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    db.dispose()
    assert diff == []


def test_an_out_of_date_schema_is_refused_with_the_upgrade_command(tmp_path, db_url):
    settings = Settings(data_dir=tmp_path, database_url=db_url)
    with pytest.raises(SchemaOutOfDate, match="earmark db upgrade"):
        Workspace.open(settings)
    db = Database.from_url(db_url)
    upgrade(db)
    downgrade(db, "base")
    upgrade(db, head_revision())
    db.dispose()
    Workspace.open(settings).close()


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url):
    db = Database.from_url(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    db.dispose()
