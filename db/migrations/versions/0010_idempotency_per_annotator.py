"""idempotency keys are unique per project and annotator, not across the whole database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_constraint("uq_annotations_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_annotations_project_id_annotator_id_idempotency_key",
            ["project_id", "annotator_id", "idempotency_key"],
        )


def downgrade() -> None:
    # Keys repeated by different annotators cannot become globally unique again: the downgrade
    # refuses (the constraint's error names them) rather than dropping anyone's annotations.
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_constraint("uq_annotations_project_id_annotator_id_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_annotations_idempotency_key", ["idempotency_key"])
