"""frozen versions: snapshots for runs on the current labels, frozen metadata and settings, data fingerprints

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=10), nullable=False, server_default="named"))
        batch_op.add_column(sa.Column("settings", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.create_check_constraint("kind", "kind IN ('named', 'snapshot')")
    with op.batch_alter_table("dataset_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_fingerprint", sa.String(length=64), nullable=True))
    # A clip row's metadata has never been edited after import, so today's value is the frozen one.
    op.execute(
        "UPDATE dataset_items SET meta = (SELECT clips.meta FROM clips WHERE clips.id = dataset_items.clip_id)"
    )
    # Runs made before keep no data fingerprint: some of them read live rows, so none is claimed.


def downgrade() -> None:
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_column("data_fingerprint")
    with op.batch_alter_table("dataset_items", schema=None) as batch_op:
        batch_op.drop_column("meta")
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.drop_column("settings")
        batch_op.drop_column("kind")
