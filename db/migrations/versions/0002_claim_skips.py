"""claims remember skips; an index to find a user's own claims

A skipped clip keeps its claim row (with ``skipped_at``) so the queue does not hand the same clip
straight back to the annotator who skipped it, while no longer holding a slot against others.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_claims_user", ["user_id", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_user")
        batch_op.drop_column("skipped_at")
