"""clips: a counter of the leases taken on each clip

Revision ID: 0019_clip_lease_seq
Revises: 0017_run_queue_strategy
Create Date: 2026-12-14 09:00:00.000000

On PostgreSQL the queue hands out a clip in one statement: it takes the candidate row with
``FOR UPDATE SKIP LOCKED`` and writes the lease in the same statement. A competitor that leased the
same clip and committed after that statement's snapshot is invisible to its count of live claims;
every lease therefore also raises ``lease_seq`` on the clip row, and the candidate query passes over a
clip whose ``lease_seq`` moved since its snapshot (the row lock re-reads the newest version).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_clip_lease_seq"
down_revision: str | None = "0017_run_queue_strategy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL (11+) and SQLite add the column without rewriting the table.
    op.add_column("clips", sa.Column("lease_seq", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("lease_seq")
