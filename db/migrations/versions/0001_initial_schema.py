"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 11:47:12.881078
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("task_kind", sa.String(length=20), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("tag_groups", sa.JSON(), nullable=False),
        sa.Column("annotations_per_clip", sa.Integer(), nullable=False),
        sa.Column("normalization", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "task_kind IN ('classification', 'transcription', 'both')", name=op.f("ck_projects_task_kind")
        ),
        sa.CheckConstraint("annotations_per_clip >= 1", name=op.f("ck_projects_k_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('annotator', 'reviewer', 'engineer', 'admin')", name=op.f("ck_users_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("external_id", name=op.f("uq_users_external_id")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('create', 'update', 'delete')", name=op.f("ck_audit_events_action")),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_audit_events_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_audit_events_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_entity", ["entity", "entity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_project_id"), ["project_id"], unique=False)

    op.create_table(
        "convention_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_convention_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_convention_versions_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_convention_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_convention_versions")),
        sa.UniqueConstraint("project_id", "version", name=op.f("uq_convention_versions_project_id_version")),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("n_clips", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_dataset_versions_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_versions_parent_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dataset_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint(
            "project_id", "content_hash", name=op.f("uq_dataset_versions_project_id_content_hash")
        ),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_dataset_versions_project_id_name")),
    )
    op.create_table(
        "import_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_format", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_imported", sa.Integer(), nullable=False),
        sa.Column("n_duplicates", sa.Integer(), nullable=False),
        sa.Column("n_rejected", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_import_batches_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_import_batches_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_batches_project_id"), ["project_id"], unique=False)

    op.create_table(
        "slice_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("slice", sa.String(length=500), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("n_clips", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('queue', 'collect')", name=op.f("ck_slice_actions_action")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_slice_actions_created_by_users")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_slice_actions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slice_actions")),
    )
    with op.batch_alter_table("slice_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slice_actions_project_id"), ["project_id"], unique=False)

    op.create_table(
        "clips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("original_name", sa.String(length=1000), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("audio_format", sa.String(length=20), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("split", sa.String(length=10), nullable=False),
        sa.Column("import_batch_id", sa.Integer(), nullable=True),
        sa.Column("peak_dbfs", sa.Float(), nullable=True),
        sa.Column("rms_dbfs", sa.Float(), nullable=True),
        sa.Column("leading_silence_ms", sa.Float(), nullable=True),
        sa.Column("trailing_silence_ms", sa.Float(), nullable=True),
        sa.Column("clipped_fraction", sa.Float(), nullable=True),
        sa.Column("snr_db", sa.Float(), nullable=True),
        sa.Column("annotations_needed", sa.Integer(), nullable=False),
        sa.Column("annotation_count", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("parent_clip_id", sa.Integer(), nullable=True),
        sa.Column("derivation", sa.JSON(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("split IN ('train', 'dev', 'test')", name=op.f("ck_clips_split")),
        sa.CheckConstraint("annotation_count <= annotations_needed", name=op.f("ck_clips_at_most_k")),
        sa.CheckConstraint("annotation_count >= 0", name=op.f("ck_clips_count_nonnegative")),
        sa.CheckConstraint("duration_s > 0", name=op.f("ck_clips_duration_positive")),
        sa.CheckConstraint("sample_rate > 0", name=op.f("ck_clips_sample_rate_positive")),
        sa.ForeignKeyConstraint(
            ["import_batch_id"], ["import_batches.id"], name=op.f("fk_clips_import_batch_id_import_batches")
        ),
        sa.ForeignKeyConstraint(["parent_clip_id"], ["clips.id"], name=op.f("fk_clips_parent_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_clips_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
        sa.UniqueConstraint("project_id", "sha256", name=op.f("uq_clips_project_id_sha256")),
    )
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clips_import_batch_id"), ["import_batch_id"], unique=False)
        batch_op.create_index(
            "ix_clips_open",
            ["project_id", "annotation_count", sa.literal_column("priority DESC"), "id"],
            unique=False,
            sqlite_where=sa.text("annotation_count < annotations_needed AND deleted_at IS NULL"),
            postgresql_where=sa.text("annotation_count < annotations_needed AND deleted_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_clips_parent_clip_id"), ["parent_clip_id"], unique=False)

    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("reference_version_id", sa.Integer(), nullable=True),
        sa.Column("current_batch_id", sa.Integer(), nullable=True),
        sa.Column("test", sa.String(length=60), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_drift_checks_created_by_users")),
        sa.ForeignKeyConstraint(
            ["current_batch_id"],
            ["import_batches.id"],
            name=op.f("fk_drift_checks_current_batch_id_import_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_drift_checks_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reference_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_drift_checks_reference_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_checks")),
    )
    with op.batch_alter_table("drift_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drift_checks_project_id"), ["project_id"], unique=False)

    op.create_table(
        "model_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('builtin', 'external', 'command')", name=op.f("ck_model_runs_kind")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_model_runs_created_by_users")),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_model_runs_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_model_runs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_runs")),
    )
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_runs_project_id"), ["project_id"], unique=False)

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("unsure", sa.Boolean(), nullable=False),
        sa.Column("cannot_label_reason", sa.String(length=500), nullable=True),
        sa.Column("time_spent_ms", sa.Integer(), nullable=True),
        sa.Column("convention_version", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "time_spent_ms IS NULL OR time_spent_ms >= 0", name=op.f("ck_annotations_time_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["users.id"], name=op.f("fk_annotations_annotator_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_annotations_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_annotations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
        sa.UniqueConstraint("clip_id", "annotator_id", name=op.f("uq_annotations_clip_id_annotator_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_annotations_idempotency_key")),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_annotations_project_annotator", ["project_id", "annotator_id"], unique=False
        )

    op.create_table(
        "claims",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_claims_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_claims_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("clip_id", "user_id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index("ix_claims_expires", ["clip_id", "expires_at"], unique=False)

    op.create_table(
        "clip_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_flags_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_clip_flags_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_flags")),
        sa.UniqueConstraint("clip_id", "kind", name=op.f("uq_clip_flags_clip_id_kind")),
    )
    with op.batch_alter_table("clip_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clip_flags_clip_id"), ["clip_id"], unique=False)

    op.create_table(
        "clip_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_clip_tags_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_clip_tags_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_tags")),
        sa.UniqueConstraint("clip_id", "tag", name=op.f("uq_clip_tags_clip_id_tag")),
    )
    with op.batch_alter_table("clip_tags", schema=None) as batch_op:
        batch_op.create_index("ix_clip_tags_tag", ["tag"], unique=False)

    op.create_table(
        "dataset_items",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("split", sa.String(length=10), nullable=False),
        sa.CheckConstraint("split IN ('train', 'dev', 'test')", name=op.f("ck_dataset_items_split")),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_dataset_items_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_items_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "clip_id", name=op.f("pk_dataset_items")),
    )
    with op.batch_alter_table("dataset_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_items_clip_id"), ["clip_id"], unique=False)

    op.create_table(
        "gold_examples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("convention_version_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_gold_examples_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["convention_version_id"],
            ["convention_versions.id"],
            name=op.f("fk_gold_examples_convention_version_id_convention_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_gold_examples_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gold_examples")),
        sa.UniqueConstraint(
            "convention_version_id", "clip_id", name=op.f("uq_gold_examples_convention_version_id_clip_id")
        ),
    )
    with op.batch_alter_table("gold_examples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gold_examples_clip_id"), ["clip_id"], unique=False)

    op.create_table(
        "predictions",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=10), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("out_of_fold", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)",
            name=op.f("ck_predictions_confidence"),
        ),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_predictions_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["model_runs.id"], name=op.f("fk_predictions_run_id_model_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "clip_id", name=op.f("pk_predictions")),
    )
    op.create_table(
        "resolutions",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("convention_version", sa.Integer(), nullable=True),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "method IN ('unanimous', 'majority', 'adjudicated', 'imported', 'weighted')",
            name=op.f("ck_resolutions_method"),
        ),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_resolutions_clip_id_clips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_resolutions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["resolved_by"], ["users.id"], name=op.f("fk_resolutions_resolved_by_users")),
        sa.PrimaryKeyConstraint("clip_id", name=op.f("pk_resolutions")),
    )
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resolutions_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resolutions_project_id"))

    op.drop_table("resolutions")
    op.drop_table("predictions")
    with op.batch_alter_table("gold_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gold_examples_clip_id"))

    op.drop_table("gold_examples")
    with op.batch_alter_table("dataset_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_items_clip_id"))

    op.drop_table("dataset_items")
    with op.batch_alter_table("clip_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_clip_tags_tag")

    op.drop_table("clip_tags")
    with op.batch_alter_table("clip_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clip_flags_clip_id"))

    op.drop_table("clip_flags")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_expires")

    op.drop_table("claims")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("ix_annotations_project_annotator")

    op.drop_table("annotations")
    with op.batch_alter_table("model_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_runs_project_id"))

    op.drop_table("model_runs")
    with op.batch_alter_table("drift_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_checks_project_id"))

    op.drop_table("drift_checks")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clips_parent_clip_id"))
        batch_op.drop_index(
            "ix_clips_open",
            sqlite_where=sa.text("annotation_count < annotations_needed AND deleted_at IS NULL"),
            postgresql_where=sa.text("annotation_count < annotations_needed AND deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_clips_import_batch_id"))

    op.drop_table("clips")
    with op.batch_alter_table("slice_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slice_actions_project_id"))

    op.drop_table("slice_actions")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_batches_project_id"))

    op.drop_table("import_batches")
    op.drop_table("dataset_versions")
    op.drop_table("convention_versions")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_project_id"))
        batch_op.drop_index("ix_audit_events_entity")

    op.drop_table("audit_events")
    op.drop_table("users")
    op.drop_table("projects")
