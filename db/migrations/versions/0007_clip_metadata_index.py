"""slice-able clip metadata in its own indexed table; indexes for cheap change detection

``clip_metadata`` holds each clip's scalar metadata values (``speaker``, ``accent``…) as text, one row
per clip and key, so that counting, filtering and slicing by metadata are index scans instead of JSON
decoded per view. ``clip_metadata_indexed`` records how far the table covers each project. Existing
clips are indexed here, in batches.

The other indexes let a project's data fingerprint (what cached views key on) look up the newest
label change, and the soft-deleted and prioritised clips, without scanning every row.

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-30 01:20:00.000000
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 20_000
# As in labeling.data.clip_metadata at the time of writing (a migration must not change with the code).
_KEY_LENGTH = 100
_VALUE_LENGTH = 200


def _value(v: Any) -> str | None:
    if v is None or isinstance(v, dict | list) or not isinstance(v, str | int | float | bool):
        return None
    text = str(v)
    return text if len(text) <= _VALUE_LENGTH else None


def _backfill() -> None:
    bind = op.get_bind()
    clips = sa.table(
        "clips", sa.column("id", sa.Integer), sa.column("project_id", sa.Integer), sa.column("meta", sa.Text)
    )
    meta = sa.table(
        "clip_metadata",
        sa.column("clip_id", sa.Integer),
        sa.column("key", sa.String),
        sa.column("project_id", sa.Integer),
        sa.column("value", sa.String),
    )
    indexed = sa.table(
        "clip_metadata_indexed",
        sa.column("project_id", sa.Integer),
        sa.column("through_clip_id", sa.BigInteger),
    )
    last = 0
    through: dict[int, int] = {}
    while True:
        # Read the JSON as text (a cast): one json.loads per batch, not one decoder call per row.
        rows = bind.execute(
            sa.select(clips.c.id, clips.c.project_id, sa.cast(clips.c.meta, sa.Text))
            .where(clips.c.id > last)
            .order_by(clips.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        decoded = json.loads("[" + ",".join(r[2] or "null" for r in rows) + "]")
        values = [
            {"clip_id": cid, "key": key, "project_id": pid, "value": text}
            for (cid, pid, _), m in zip(rows, decoded, strict=True)
            if isinstance(m, dict)
            for key, v in m.items()
            if len(key) <= _KEY_LENGTH and (text := _value(v)) is not None
        ]
        if values:
            bind.execute(sa.insert(meta), values)
        for cid, pid, _ in rows:
            through[pid] = max(through.get(pid, 0), cid)
        last = rows[-1][0]
    if through:
        bind.execute(
            sa.insert(indexed), [{"project_id": p, "through_clip_id": c} for p, c in through.items()]
        )


def upgrade() -> None:
    op.create_table(
        "clip_metadata",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=_KEY_LENGTH), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=_VALUE_LENGTH), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_metadata_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_clip_metadata_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("clip_id", "key", name=op.f("pk_clip_metadata")),
    )
    with op.batch_alter_table("clip_metadata", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clip_metadata_slice", ["project_id", "key", "value", "clip_id"], unique=False
        )
    op.create_table(
        "clip_metadata_indexed",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("through_clip_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_clip_metadata_indexed_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_clip_metadata_indexed")),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index("ix_annotations_project_updated", ["project_id", "updated_at"], unique=False)
        batch_op.create_index(
            "ix_annotations_annotator_updated", ["project_id", "annotator_id", "updated_at"], unique=False
        )
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.create_index("ix_resolutions_project_updated", ["project_id", "updated_at"], unique=False)
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.create_index("ix_clips_project", ["project_id"], unique=False)
        batch_op.create_index(
            "ix_clips_deleted",
            ["project_id", "deleted_at"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_clips_prioritised",
            ["project_id", "priority", "id"],
            unique=False,
            sqlite_where=sa.text("priority <> 0"),
            postgresql_where=sa.text("priority <> 0"),
        )
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index("ix_clips_prioritised")
        batch_op.drop_index("ix_clips_deleted")
        batch_op.drop_index("ix_clips_project")
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_index("ix_resolutions_project_updated")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("ix_annotations_annotator_updated")
        batch_op.drop_index("ix_annotations_project_updated")
    op.drop_table("clip_metadata_indexed")
    with op.batch_alter_table("clip_metadata", schema=None) as batch_op:
        batch_op.drop_index("ix_clip_metadata_slice")
    op.drop_table("clip_metadata")
