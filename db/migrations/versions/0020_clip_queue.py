"""clip_queue: the active-learning queue orders' keys in a narrow table, kept by triggers on clips

Revision ID: 0020
Revises: 0019_clip_lease_seq
Create Date: 2026-12-16 09:00:00.000000

The queue-scoring job rewrites the priority of nearly every clip of a project. In ``clips`` that is a
new version of a wide row and an entry in each of its nine indexes per clip (an indexed column
changed, so PostgreSQL cannot update in place): 77 s for 900,000 clips. The scored queue orders now
sort ``clip_queue`` instead: one narrow row per clip with what they sort and filter by, a primary key
and one partial index in queue order.

The clip row stays the truth for everything but the scored priority, and the database keeps the copy:
a clip's row is inserted with it, its project, final-label flag, counts and deletion are copied on
every change whoever makes it (submits, undo, imports, adaptive overlap, the triggers on
``resolutions``), its own priority is copied when it is set, and the row goes with the clip (foreign
key, ON DELETE CASCADE). On PostgreSQL the insert trigger runs once per statement over its transition
table (a bulk import is one INSERT … SELECT); the update trigger is per row with a WHEN clause, so an
update of other columns (the hand-out's lease counter) does not call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019_clip_lease_seq"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "annotation_count < annotations_needed AND deleted_at IS NULL"
FOLLOWED = ("project_id", "resolved", "annotation_count", "annotations_needed", "priority", "deleted_at")
COLUMNS = ", ".join(("clip_id", *FOLLOWED))
FROM_CLIPS = ", ".join(("id", *FOLLOWED))
# SQLite spells IS DISTINCT FROM "IS NOT"; the priority is copied only when the clip's own changed.
CHANGED = {"sqlite": "IS NOT", "postgresql": "IS DISTINCT FROM"}


def _follow(dialect: str) -> str:
    """The UPDATE that copies a changed clip row (``OLD``, ``NEW``) into its ``clip_queue`` row."""
    copied = [f"{c} = NEW.{c}" for c in FOLLOWED if c != "priority"]
    copied.append(
        f"priority = CASE WHEN OLD.priority {CHANGED[dialect]} NEW.priority "
        "THEN NEW.priority ELSE clip_queue.priority END"
    )
    return f"UPDATE clip_queue SET {', '.join(copied)} WHERE clip_id = NEW.id;"


def _changed(dialect: str) -> str:
    return " OR ".join(f"OLD.{c} {CHANGED[dialect]} NEW.{c}" for c in FOLLOWED)


SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER tr_clips_queue_insert AFTER INSERT ON clips
    BEGIN
        INSERT INTO clip_queue ({COLUMNS}) VALUES ({", ".join(f"NEW.{c}" for c in ("id", *FOLLOWED))});
    END
    """,
    f"""
    CREATE TRIGGER tr_clips_queue_update AFTER UPDATE OF {", ".join(FOLLOWED)} ON clips
    WHEN {_changed("sqlite")}
    BEGIN
        {_follow("sqlite")}
    END
    """,
)

POSTGRES_FUNCTIONS = (
    f"""
    CREATE FUNCTION clip_queue_follow_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO clip_queue ({COLUMNS}) SELECT {FROM_CLIPS} FROM came;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION clip_queue_follow_clip() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_follow("postgresql")}
        RETURN NULL;
    END
    $$
    """,
)
POSTGRES_TRIGGERS = (
    """
    CREATE TRIGGER tr_clips_queue_insert AFTER INSERT ON clips
    REFERENCING NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION clip_queue_follow_inserts()
    """,
    f"""
    CREATE TRIGGER tr_clips_queue_update AFTER UPDATE OF {", ".join(FOLLOWED)} ON clips
    FOR EACH ROW
    WHEN ({_changed("postgresql")})
    EXECUTE FUNCTION clip_queue_follow_clip()
    """,
)
TRIGGERS = ("tr_clips_queue_insert", "tr_clips_queue_update")


def upgrade() -> None:
    op.create_table(
        "clip_queue",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("annotation_count", sa.Integer(), nullable=False),
        sa.Column("annotations_needed", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_queue_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("clip_id", name=op.f("pk_clip_queue")),
    )
    # Existing clips first, the queue index after: one sort instead of a million inserts into it.
    op.execute(f"INSERT INTO clip_queue ({COLUMNS}) SELECT {FROM_CLIPS} FROM clips")
    op.create_index(
        "ix_clip_queue_open",
        "clip_queue",
        ["project_id", "resolved", "annotation_count", sa.literal_column("priority DESC"), "clip_id"],
        unique=False,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*POSTGRES_FUNCTIONS, *POSTGRES_TRIGGERS):
            op.execute(statement)
        op.execute("ANALYZE clip_queue")
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON clips" if postgres else f"DROP TRIGGER {name}")
    if postgres:
        op.execute("DROP FUNCTION clip_queue_follow_clip()")
        op.execute("DROP FUNCTION clip_queue_follow_inserts()")
    op.drop_index("ix_clip_queue_open", table_name="clip_queue")
    op.drop_table("clip_queue")
