"""monitoring: production traffic, the live model and its frozen reference, drift measures, alarm answers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "production_clips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("original_name", sa.String(length=1000), nullable=False),
        _when("timestamp"),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prediction", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("device", sa.String(length=200), nullable=True),
        sa.Column("user_action", sa.String(length=100), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("audio_format", sa.String(length=20), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=True),
        sa.Column("sample_reason", sa.String(length=40), nullable=True),
        _when("admitted_at", nullable=True),
        _when("created_at"),
        sa.CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)",
            name=op.f("ck_production_clips_confidence"),
        ),
        sa.CheckConstraint(
            "latency_ms IS NULL OR latency_ms >= 0", name=op.f("ck_production_clips_latency_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_production_clips_batch_id_import_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_production_clips_clip_id_clips"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_production_clips_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_production_clips")),
        sa.UniqueConstraint("project_id", "dedup_key", name=op.f("uq_production_clips_project_id_dedup_key")),
    )
    op.create_index("ix_production_clips_batch", "production_clips", ["batch_id", "id"])
    op.create_index(op.f("ix_production_clips_clip_id"), "production_clips", ["clip_id"])
    op.create_index(op.f("ix_production_clips_project_id"), "production_clips", ["project_id"])

    op.create_table(
        "live_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reference_version_id", sa.Integer(), nullable=True),
        sa.Column("marked_by", sa.Integer(), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(["marked_by"], ["users.id"], name=op.f("fk_live_models_marked_by_users")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_live_models_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reference_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_live_models_reference_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["model_runs.id"], name=op.f("fk_live_models_run_id_model_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_models")),
    )
    op.create_index(op.f("ix_live_models_project_id"), "live_models", ["project_id"])

    op.create_table(
        "clip_drift_measures",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_drift_measures_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("clip_id", name=op.f("pk_clip_drift_measures")),
    )

    op.create_table(
        "monitoring_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        _when("until", nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _when("created_at"),
        sa.CheckConstraint(
            "action IN ('acknowledge', 'snooze', 'rebaseline')", name=op.f("ck_monitoring_actions_action")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_monitoring_actions_batch_id_import_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_monitoring_actions_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_monitoring_actions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_actions")),
    )
    op.create_index(op.f("ix_monitoring_actions_project_id"), "monitoring_actions", ["project_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_monitoring_actions_project_id"), table_name="monitoring_actions")
    op.drop_table("monitoring_actions")
    op.drop_table("clip_drift_measures")
    op.drop_index(op.f("ix_live_models_project_id"), table_name="live_models")
    op.drop_table("live_models")
    op.drop_index(op.f("ix_production_clips_project_id"), table_name="production_clips")
    op.drop_index(op.f("ix_production_clips_clip_id"), table_name="production_clips")
    op.drop_index("ix_production_clips_batch", table_name="production_clips")
    op.drop_table("production_clips")
