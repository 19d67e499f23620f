"""queue orders: clips.resolved (kept by triggers on resolutions) and an index per queue order

Revision ID: 0015_queue_order
Revises: 0014
Create Date: 2026-12-08 09:00:00.000000

The "unlabelled first" order needs to know, per open clip, whether it has a final label, in an index
the queue can walk in order. A final label is written, moved (a fixed copy takes over its original's)
and removed by many paths (imports, label imports, review, auto-resolve, undo, fixes, bulk loads), so
the flag is kept by the database itself: triggers on ``resolutions`` set and clear it in the same
statement. On PostgreSQL they run once per statement over its transition tables, so a bulk import of
final labels is one join, not a trigger per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_queue_order"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "annotation_count < annotations_needed AND deleted_at IS NULL"

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER tr_resolutions_mark_clip AFTER INSERT ON resolutions
    BEGIN
        UPDATE clips SET resolved = 1 WHERE id = NEW.clip_id AND resolved = 0;
    END
    """,
    """
    CREATE TRIGGER tr_resolutions_unmark_clip AFTER DELETE ON resolutions
    BEGIN
        UPDATE clips SET resolved = 0 WHERE id = OLD.clip_id AND resolved = 1;
    END
    """,
    """
    CREATE TRIGGER tr_resolutions_move_clip AFTER UPDATE OF clip_id ON resolutions
    WHEN OLD.clip_id <> NEW.clip_id
    BEGIN
        UPDATE clips SET resolved = 0 WHERE id = OLD.clip_id;
        UPDATE clips SET resolved = 1 WHERE id = NEW.clip_id;
    END
    """,
)

POSTGRES_FUNCTION = """
    CREATE FUNCTION clips_follow_resolutions() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE clips SET resolved = false
            FROM gone
            WHERE clips.id = gone.clip_id AND clips.resolved
              AND NOT EXISTS (SELECT 1 FROM resolutions r WHERE r.clip_id = gone.clip_id);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            UPDATE clips SET resolved = true
            FROM came
            WHERE clips.id = came.clip_id AND NOT clips.resolved;
        END IF;
        RETURN NULL;
    END
    $$
"""
POSTGRES_TRIGGERS = (
    """
    CREATE TRIGGER tr_resolutions_mark_clip AFTER INSERT ON resolutions
    REFERENCING NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION clips_follow_resolutions()
    """,
    """
    CREATE TRIGGER tr_resolutions_unmark_clip AFTER DELETE ON resolutions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION clips_follow_resolutions()
    """,
    """
    CREATE TRIGGER tr_resolutions_move_clip AFTER UPDATE ON resolutions
    REFERENCING OLD TABLE AS gone NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION clips_follow_resolutions()
    """,
)
TRIGGERS = ("tr_resolutions_mark_clip", "tr_resolutions_unmark_clip", "tr_resolutions_move_clip")


def _open_index(name: str, columns: list) -> None:
    op.create_index(
        name, "clips", columns, unique=False, sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN)
    )


def upgrade() -> None:
    # Added in place, not in batch mode: on SQLite a batch copy of clips would rebuild ix_clips_open
    # from reflection, which loses its "priority DESC" (and with it the queue's sort-free scan). A
    # plain string default keeps SQLite's ALTER TABLE ADD COLUMN usable ('0' is false on both engines).
    op.add_column("clips", sa.Column("resolved", sa.Boolean(), server_default="0", nullable=False))
    op.execute("UPDATE clips SET resolved = TRUE WHERE id IN (SELECT clip_id FROM resolutions)")
    _open_index(
        "ix_clips_open_unlabelled",
        ["project_id", "resolved", "annotation_count", sa.literal_column("priority DESC"), "id"],
    )
    _open_index("ix_clips_open_shuffled", ["project_id", "annotation_count", "sha256", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON resolutions" if postgres else f"DROP TRIGGER {name}")
    if postgres:
        op.execute("DROP FUNCTION clips_follow_resolutions()")
    op.drop_index("ix_clips_open_shuffled", table_name="clips")
    op.drop_index("ix_clips_open_unlabelled", table_name="clips")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("resolved")
    if not postgres:  # the batch copy rebuilt it without its DESC column
        op.drop_index("ix_clips_open", table_name="clips")
        _open_index(
            "ix_clips_open", ["project_id", "annotation_count", sa.literal_column("priority DESC"), "id"]
        )
