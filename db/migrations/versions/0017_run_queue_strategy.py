"""model runs: the queue strategy in force and the labels spent when a run was trained

Revision ID: 0017_run_queue_strategy
Revises: 0016_regions
Create Date: 2026-12-11 09:00:00.000000

A learning curve per queue strategy (accuracy of the fixed model against labels spent) needs, for
each run, which strategy chose the clips labelled so far and how many labels had been given. Runs
made before this revision have neither and are left out of the curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_run_queue_strategy"
down_revision: str | None = "0016_regions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both engines: nullable columns without defaults need no table copy.
    op.add_column("model_runs", sa.Column("queue_strategy", sa.String(length=80), nullable=True))
    op.add_column("model_runs", sa.Column("labels_spent", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("labels_spent")
        batch_op.drop_column("queue_strategy")
