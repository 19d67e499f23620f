"""regions: time regions of long recordings, and the "regions" project kind

Revision ID: 0016_regions
Revises: 0015_queue_order
Create Date: 2026-12-10 09:00:00.000000

A region is a span of a recording (a clip) with a class, optionally a transcript and tags, drawn by
an annotator, proposed by the energy VAD, imported from a file or made final by review.

Allowing the new project kind widens the CHECK on ``projects.task_kind``. On SQLite that cannot be
done by a batch copy of ``projects``: with foreign keys on (Earmark always turns them on), dropping
the old table deletes its rows first and the cascades empty clips, annotations and everything else.
So SQLite uses the procedure its documentation gives for relaxing a CHECK ("Making Other Kinds Of
Table Schema Changes"): rewrite the stored CREATE TABLE text, bump the schema version, check
integrity. Every stored row satisfies the wider rule, so nothing on disk changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_regions"
down_revision: str | None = "0015_queue_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "task_kind IN ('classification', 'transcription', 'both')"
NEW_KINDS = "task_kind IN ('classification', 'transcription', 'both', 'regions')"


def _set_task_kinds(old: str, new: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_projects_task_kind"), "projects", type_="check")
        op.create_check_constraint(op.f("ck_projects_task_kind"), "projects", new)
        return
    ddl = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'projects'"
    ).scalar()
    if not ddl or ddl.count(old) != 1:
        raise RuntimeError(f"the projects table does not hold the check {old!r}; it was changed by hand")
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'projects'",
            (ddl.replace(old, new),),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = [row[0] for row in bind.exec_driver_sql("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check failed after widening the project kinds: {problems[:5]}")


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("start_s >= 0", name=op.f("ck_regions_start_nonnegative")),
        sa.CheckConstraint("end_s > start_s", name=op.f("ck_regions_positive_length")),
        sa.CheckConstraint(
            "source IN ('annotator', 'proposal', 'import', 'final')", name=op.f("ck_regions_source")
        ),
        sa.CheckConstraint(
            "source <> 'annotator' OR annotator_id IS NOT NULL", name=op.f("ck_regions_annotator_named")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_regions_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_regions_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["annotator_id"], ["users.id"], name=op.f("fk_regions_annotator_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
    )
    op.create_index("ix_regions_clip_annotator", "regions", ["clip_id", "annotator_id"], unique=False)
    op.create_index("ix_regions_project_source", "regions", ["project_id", "source"], unique=False)
    _set_task_kinds(OLD_KINDS, NEW_KINDS)


def downgrade() -> None:
    n = op.get_bind().exec_driver_sql("SELECT COUNT(*) FROM projects WHERE task_kind = 'regions'").scalar()
    if n:
        raise RuntimeError(
            f"{n} project(s) label time regions; this older schema has no place for them. "
            "Delete those projects (or change their kind) before downgrading."
        )
    _set_task_kinds(NEW_KINDS, OLD_KINDS)
    op.drop_index("ix_regions_project_source", table_name="regions")
    op.drop_index("ix_regions_clip_annotator", table_name="regions")
    op.drop_table("regions")
