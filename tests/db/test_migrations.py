import pytest
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, delete, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.migrate import (
    SchemaOutOfDate,
    allow_table_rebuilds,
    downgrade,
    head_revision,
    schema_status,
    upgrade,
)
from db.models import Base, Clip, Project, Region, Resolution
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace


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


def test_a_later_batch_rebuild_of_clips_keeps_final_labels_flagged(sqlite_url):
    """Batch migrations rebuild SQLite tables by copy and rename; the triggers that flag clips with a
    final label name ``clips`` and must survive that (and keep working) for the queue's order."""
    db = Database.from_url(sqlite_url)
    upgrade(db)
    with db.engine.begin() as conn:
        allow_table_rebuilds(conn)  # as the migration environment does
        conn.execute(insert(Project).values(name="p", classes=["yes"]))
        conn.execute(
            insert(Clip).values(
                project_id=1,
                sha256="a" * 64,
                storage_key="k",
                original_name="a.wav",
                duration_s=1.0,
                sample_rate=8000,
                channels=1,
                frames=8000,
                audio_format="WAV",
            )
        )
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table("clips", recreate="always") as batch:
            batch.add_column(Column("later", Integer()))
        conn.execute(insert(Resolution).values(clip_id=1, project_id=1, label="yes", method="imported"))
        assert conn.execute(select(Clip.resolved)).scalar() is True
        conn.execute(delete(Resolution))
        assert conn.execute(select(Clip.resolved)).scalar() is False
    db.dispose()


def test_downgrading_the_queue_orders_keeps_the_priority_index_in_order(sqlite_url):
    db = Database.from_url(sqlite_url)
    upgrade(db)
    downgrade(db, "0014")
    with db.engine.connect() as conn:
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ix_clips_open'").scalar()
    assert "priority DESC" in ddl
    upgrade(db)
    db.dispose()


def _project_with_a_clip(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute(insert(Project).values(name="calls", classes=["speech"]))
    conn.execute(
        insert(Clip).values(
            project_id=1,
            sha256="b" * 64,
            storage_key="k",
            original_name="call.wav",
            duration_s=60.0,
            sample_rate=16000,
            channels=1,
            frames=960000,
            audio_format="WAV",
        )
    )


def test_the_regions_kind_arrives_without_losing_a_clip(db_url):
    """Widening the project kinds must not rebuild ``projects`` (its cascades would empty clips)."""
    db = Database.from_url(db_url)
    upgrade(db, "0015_queue_order")
    with db.engine.begin() as conn:
        _project_with_a_clip(conn)
    upgrade(db)
    with db.engine.begin() as conn:
        assert conn.execute(select(Clip.original_name)).scalars().all() == ["call.wav"]
        conn.execute(insert(Project).values(name="meetings", classes=["speech"], task_kind="regions"))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(Project).values(name="other", classes=[], task_kind="segments"))
    db.dispose()


def test_regions_refuse_a_backwards_span_and_an_unnamed_annotator(db_url):
    db = Database.from_url(db_url)
    upgrade(db)
    with db.engine.begin() as conn:
        _project_with_a_clip(conn)
    base = {"project_id": 1, "clip_id": 1, "label": "speech", "tags": []}
    with db.engine.begin() as conn:
        conn.execute(insert(Region).values(**base, start_s=1.0, end_s=2.5, source="proposal"))
    for bad in (
        {"start_s": 2.0, "end_s": 1.0, "source": "proposal"},
        {"start_s": -1.0, "end_s": 1.0, "source": "proposal"},
        {"start_s": 0.0, "end_s": 1.0, "source": "annotator"},
        {"start_s": 0.0, "end_s": 1.0, "source": "guess"},
    ):
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(insert(Region).values(**base, **bad))
    with db.engine.begin() as conn:
        assert conn.execute(select(Region.start_s, Region.end_s)).all() == [(1.0, 2.5)]
    db.dispose()


def test_downgrading_below_regions_refuses_while_a_regions_project_exists(db_url):
    db = Database.from_url(db_url)
    upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(insert(Project).values(name="meetings", classes=["speech"], task_kind="regions"))
    with pytest.raises(RuntimeError, match="label time regions"):
        downgrade(db, "0015_queue_order")
    with db.engine.begin() as conn:
        conn.execute(delete(Project))
    downgrade(db, "0015_queue_order")
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(Project).values(name="meetings", classes=["speech"], task_kind="regions"))
    db.dispose()
