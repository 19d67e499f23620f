"""SQLAlchemy models for the whole Earmark domain.

The database is the last guard of every invariant: one annotation per (clip, annotator), never more
than k per clip (``annotation_count <= annotations_needed``, maintained in the submitting transaction),
one clip per content hash per project, one resolution per clip, immutable dataset versions.
Timestamps are UTC and come back timezone-aware on every engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("annotator", "reviewer", "engineer", "admin")
# A "regions" project labels time regions of long recordings (its clips) instead of whole clips.
TASK_KINDS = ("classification", "transcription", "both", "regions")
SPLITS = ("train", "dev", "test")
META_KEY_LENGTH = 100
META_VALUE_LENGTH = 200
RESOLUTION_METHODS = ("unanimous", "majority", "adjudicated", "imported", "weighted")
RUN_KINDS = ("builtin", "external", "command")
# Where a region came from: an annotator drew it, a proposer (the energy VAD) suggested it, a file
# brought it (RTTM, Label Studio), or review made it final.
REGION_SOURCES = ("annotator", "proposal", "import", "final")
# A named version is one someone froze on purpose; a snapshot is frozen by Earmark so that a run on
# the current labels reads exactly the data it was trained and scored on, forever.
VERSION_KINDS = ("named", "snapshot")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; returns aware datetimes even on SQLite, which keeps no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Earmark stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # SQLAlchemy reads this class attribute by name; it is configuration, not shared mutable state.
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("annotations_per_clip >= 1", name="k_positive"),
        CheckConstraint(_in("task_kind", TASK_KINDS), name="task_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task_kind: Mapped[str] = mapped_column(String(20), default="classification")
    classes: Mapped[list[Any]] = mapped_column(default=list)
    # {"noise": ["car", "people", "none"], "channel": ["low-bandwidth"], ...}
    tag_groups: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations_per_clip: Mapped[int] = mapped_column(Integer, default=1)
    normalization: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Project-level switches: pre_annotation, auto_resolve rule, lease seconds, training command…
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str] = mapped_column(String(40), default="folder")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    n_imported: Mapped[int] = mapped_column(Integer, default=0)
    n_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # {"rejected": [{"ref": ..., "reason": ...}], "options": {...}}
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Clip(Base):
    __tablename__ = "clips"
    __table_args__ = (
        UniqueConstraint("project_id", "sha256"),
        CheckConstraint(_in("split", SPLITS), name="split"),
        CheckConstraint("annotation_count >= 0", name="count_nonnegative"),
        CheckConstraint("annotation_count <= annotations_needed", name="at_most_k"),
        CheckConstraint("duration_s > 0", name="duration_positive"),
        CheckConstraint("sample_rate > 0", name="sample_rate_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    original_name: Mapped[str] = mapped_column(String(1000))
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(BigInteger)
    audio_format: Mapped[str] = mapped_column(String(20))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    split: Mapped[str] = mapped_column(String(10), default="train")
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"), index=True)
    # Audio-quality measures, computed at import from the decoded samples.
    peak_dbfs: Mapped[float | None] = mapped_column(Float)
    rms_dbfs: Mapped[float | None] = mapped_column(Float)
    leading_silence_ms: Mapped[float | None] = mapped_column(Float)
    trailing_silence_ms: Mapped[float | None] = mapped_column(Float)
    clipped_fraction: Mapped[float | None] = mapped_column(Float)
    snr_db: Mapped[float | None] = mapped_column(Float)
    # Queue state, maintained in the same transaction as every annotation insert/delete.
    annotations_needed: Mapped[int] = mapped_column(Integer, default=1)
    annotation_count: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # Raised by every lease taken on the clip on PostgreSQL (see labeling.annotate.queue): the queue
    # passes over a clip whose counter moved since its statement's snapshot.
    lease_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    # Whether the clip has a final label (a row in resolutions), for the queue's "unlabelled first"
    # order. Triggers on resolutions keep it (see the queue_order migration), so every path that
    # writes, moves or removes a final label keeps it right, through these models or not.
    resolved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Derived clips (silence trimmed, loudness normalised, augmented) point at their original.
    parent_clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id"), index=True)
    derivation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deleted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tags: Mapped[list[ClipTag]] = relationship(back_populates="clip", cascade="all, delete-orphan")


class ClipQueue(Base):
    """A clip's place in the active-learning queue orders: a narrow copy of what they sort by.

    The queue-scoring job rewrites the priorities of most of a project's clips at once; in ``clips``
    (wide, nine indexes) each such write is a new row version and an entry in every index, here one
    narrow row and two small indexes. Triggers on ``clips`` (see the clip_queue migration) insert a
    row with every clip, copy ``project_id``, ``resolved``, ``annotation_count``,
    ``annotations_needed`` and ``deleted_at`` whenever they change, and ``priority`` when the clip's
    own priority is set (by hand, by label-issue flagging); the scoring job writes ``priority`` here
    only. The hand-out walks ``ix_clip_queue_open`` for the scored orders and re-checks the clip row.
    A batch rebuild of ``clips`` on SQLite drops the triggers: such a migration must create them again.
    """

    __tablename__ = "clip_queue"

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    resolved: Mapped[bool] = mapped_column(Boolean)
    annotation_count: Mapped[int] = mapped_column(Integer)
    annotations_needed: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column()


class ClipTag(Base):
    """A tag on a clip itself (from import metadata, the demo, or error-analysis tagging)."""

    __tablename__ = "clip_tags"
    __table_args__ = (UniqueConstraint("clip_id", "tag"), Index("ix_clip_tags_tag", "tag"))

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(40), default="import")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clip: Mapped[Clip] = relationship(back_populates="tags")


class ClipFlag(Base):
    """Something to look at on a clip: a label-issue candidate, a data-check finding, a collection need."""

    __tablename__ = "clip_flags"
    __table_args__ = (UniqueConstraint("clip_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(60))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class ConventionVersion(Base):
    __tablename__ = "convention_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # Checkable rules: silence margins, loudness target, transcript normalisation.
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoldExample(Base):
    __tablename__ = "gold_examples"
    __table_args__ = (UniqueConstraint("convention_version_id", "clip_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    convention_version_id: Mapped[int] = mapped_column(
        ForeignKey("convention_versions.id", ondelete="CASCADE")
    )
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("clip_id", "annotator_id"),
        # A key is the caller's own: two bots may both use ``run-42/clip-17``.
        UniqueConstraint("project_id", "annotator_id", "idempotency_key"),
        CheckConstraint("time_spent_ms IS NULL OR time_spent_ms >= 0", name="time_nonnegative"),
        Index("ix_annotations_project_annotator", "project_id", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    label: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    unsure: Mapped[bool] = mapped_column(Boolean, default=False)
    cannot_label_reason: Mapped[str | None] = mapped_column(String(500))
    time_spent_ms: Mapped[int | None] = mapped_column(Integer)
    convention_version: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(40), default="app")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Region(Base):
    """A time region ``[start_s, end_s)`` of a recording (a clip) with a class, by one annotator or none.

    An annotator's regions of a recording are one set, replaced whole when they save. Proposals,
    final regions and imported ones without a person carry no annotator.
    """

    __tablename__ = "regions"
    __table_args__ = (
        CheckConstraint("start_s >= 0", name="start_nonnegative"),
        CheckConstraint("end_s > start_s", name="positive_length"),
        CheckConstraint(_in("source", REGION_SOURCES), name="source"),
        CheckConstraint("source <> 'annotator' OR annotator_id IS NOT NULL", name="annotator_named"),
        Index("ix_regions_clip_annotator", "clip_id", "annotator_id"),
        Index("ix_regions_project_source", "project_id", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Claim(Base):
    """A lease on a clip for one annotator; expired leases return the clip to the queue."""

    __tablename__ = "claims"
    __table_args__ = (
        Index("ix_claims_expires", "clip_id", "expires_at"),
        Index("ix_claims_user", "user_id", "expires_at"),
    )

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # A skip keeps the row until it expires: the skipper is not offered the clip again meanwhile,
    # and a skipped claim holds no slot against other annotators.
    skipped_at: Mapped[datetime | None] = mapped_column()


class Resolution(Base):
    """The final label of a clip and how it was reached."""

    __tablename__ = "resolutions"
    __table_args__ = (CheckConstraint(_in("method", RESOLUTION_METHODS), name="method"),)

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(20))
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    convention_version: Mapped[int | None] = mapped_column(Integer)
    agreement: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("action IN ('create', 'update', 'delete')", name="action"),
        Index("ix_audit_events_entity", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(10))
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(Base):
    """An immutable snapshot of a project's data: what every run, comparison and export of it reads."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        UniqueConstraint("project_id", "content_hash"),
        CheckConstraint(_in("kind", VERSION_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default="named")
    note: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Summary of the data changes since the parent: added, removed, relabelled, re-tagged, augmented.
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_clips: Mapped[int] = mapped_column(Integer, default=0)
    # The project's settings a version's numbers depend on, as they were when it was frozen:
    # task kind, classes, tag groups and transcript normalisation.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetItem(Base):
    __tablename__ = "dataset_items"
    __table_args__ = (CheckConstraint(_in("split", SPLITS), name="split"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True, index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    split: Mapped[str] = mapped_column(String(10))
    # The clip's metadata as frozen (the clip row's audio columns never change: a fix makes a new clip).
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ModelRun(Base):
    __tablename__ = "model_runs"
    __table_args__ = (CheckConstraint(_in("kind", RUN_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    kind: Mapped[str] = mapped_column(String(20), default="builtin")
    name: Mapped[str] = mapped_column(String(200))
    code_fingerprint: Mapped[str] = mapped_column(String(64))
    # Content hash of the data the run was trained and scored on, taken from what it actually read
    # (equal to its version's hash); None for runs made before runs were bound to frozen data.
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    classes: Mapped[list[Any]] = mapped_column(default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The queue strategy in force and the annotations given when the run was trained (the learning
    # curve's point); None for imported runs and runs made before they were recorded.
    queue_strategy: Mapped[str | None] = mapped_column(String(80))
    labels_spent: Mapped[int | None] = mapped_column(Integer)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"),
    )

    run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    split: Mapped[str | None] = mapped_column(String(10))
    label: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[list[Any] | None] = mapped_column(JSON)
    out_of_fold: Mapped[bool] = mapped_column(Boolean, default=False)


class DriftCheck(Base):
    __tablename__ = "drift_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    reference_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    current_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    test: Mapped[str] = mapped_column(String(60))
    threshold: Mapped[float] = mapped_column(Float)
    statistics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verdict: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SliceAction(Base):
    """An engineer's decision about a slice: send it to the labeling queue, or collect more data."""

    __tablename__ = "slice_actions"
    __table_args__ = (CheckConstraint("action IN ('queue', 'collect')", name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    slice: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    n_clips: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClipMetadata(Base):
    """A clip's metadata values that can slice the data (scalars up to :data:`META_VALUE_LENGTH`
    characters), decoded once when the clip is stored so that counts, filters and per-slice
    statistics are index scans rather than JSON decoded per view. ``Clip.meta`` stays the record."""

    __tablename__ = "clip_metadata"
    __table_args__ = (Index("ix_clip_metadata_slice", "project_id", "key", "value", "clip_id"),)

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(META_KEY_LENGTH), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(META_VALUE_LENGTH))


class ClipMetadataIndexed(Base):
    """How far :class:`ClipMetadata` covers a project: every clip with an id up to ``through_clip_id``."""

    __tablename__ = "clip_metadata_indexed"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    through_clip_id: Mapped[int] = mapped_column(BigInteger, default=0)


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_JOB_STATES = ("queued", "running")


class Job(Base):
    """Long work (training, label issues, features, drift, imports, exports) run by ``earmark worker``.

    A worker claims a job by taking a lease (``lease_token``, ``lease_expires_at``) that its heartbeat
    renews; a job whose lease ran out is claimed again, up to ``max_attempts``. Only the lease holder
    may report progress or finish it. ``scope`` (the project, or the name an import creates) holds at
    most one active job of a kind, enforced by a partial unique index.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATES), name="status"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(300))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class StoredReport(Base):
    """A report that takes seconds to compute on a large project (agreement), kept with the data
    fingerprint it was computed on, so every process and app server can show it at once and say
    whether labels have changed since."""

    __tablename__ = "stored_reports"
    __table_args__ = (UniqueConstraint("project_id", "kind", "params"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    seconds: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


# Workers look for queued jobs and expired leases, oldest first.
Index("ix_jobs_claim", Job.status, Job.id)
# One active job of a kind per scope: a second click finds the first instead of starting another.
Index(
    "uq_jobs_active",
    Job.kind,
    Job.scope,
    unique=True,
    sqlite_where=text("status IN ('queued', 'running')"),
    postgresql_where=text("status IN ('queued', 'running')"),
)


# Partial indexes so the queue scan touches only clips that still need labels (both engines support
# them), one per queue order (labeling.data.queue_order), each in exactly that order: the scan stops at the
# first eligible clip instead of sorting every open one.
_OPEN_CLIPS = "annotation_count < annotations_needed AND deleted_at IS NULL"
Index(  # queue order "priority"
    "ix_clips_open",
    Clip.project_id,
    Clip.annotation_count,
    Clip.priority.desc(),
    Clip.id,
    sqlite_where=text(_OPEN_CLIPS),
    postgresql_where=text(_OPEN_CLIPS),
)
Index(  # queue order "unlabelled_first"
    "ix_clips_open_unlabelled",
    Clip.project_id,
    Clip.resolved,
    Clip.annotation_count,
    Clip.priority.desc(),
    Clip.id,
    sqlite_where=text(_OPEN_CLIPS),
    postgresql_where=text(_OPEN_CLIPS),
)
Index(  # queue order "random"
    "ix_clips_open_shuffled",
    Clip.project_id,
    Clip.annotation_count,
    Clip.sha256,
    Clip.id,
    sqlite_where=text(_OPEN_CLIPS),
    postgresql_where=text(_OPEN_CLIPS),
)
Index(  # the active-learning queue orders (labeling.data.queue_order.SCORED_ORDERS)
    "ix_clip_queue_open",
    ClipQueue.project_id,
    ClipQueue.resolved,
    ClipQueue.annotation_count,
    ClipQueue.priority.desc(),
    ClipQueue.clip_id,
    sqlite_where=text(_OPEN_CLIPS),
    postgresql_where=text(_OPEN_CLIPS),
)
# Cheap change detection for cached views (labeling.data.clips.data_fingerprint): the newest change of a
# project's labels is an index lookup, and soft-deleted or prioritised clips are a short index range.
Index("ix_clips_project", Clip.project_id)
Index("ix_annotations_project_updated", Annotation.project_id, Annotation.updated_at)
# "My labels" (newest first): without it the planner walks the index above, the whole project.
Index(
    "ix_annotations_annotator_updated", Annotation.project_id, Annotation.annotator_id, Annotation.updated_at
)
Index("ix_resolutions_project_updated", Resolution.project_id, Resolution.updated_at)
Index(
    "ix_clips_deleted",
    Clip.project_id,
    Clip.deleted_at,
    sqlite_where=text("deleted_at IS NOT NULL"),
    postgresql_where=text("deleted_at IS NOT NULL"),
)
Index(
    "ix_clips_prioritised",
    Clip.project_id,
    Clip.priority,
    Clip.id,
    sqlite_where=text("priority <> 0"),
    postgresql_where=text("priority <> 0"),
)


class AuthSession(Base):
    """A signed-in browser: the token's secret part is stored hashed; deleting the row ends the session.

    Every rerun of every app server looks the row up, so signing out, disabling the account or
    changing its password ends the session everywhere at once.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token's nonce
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SignInFailure(Base):
    """A failed sign-in, counted per account name and per client address to slow down guessing."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(200))
    client: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_sign_in_failures_account", SignInFailure.account, SignInFailure.created_at)
Index("ix_sign_in_failures_client", SignInFailure.client, SignInFailure.created_at)


class ProductionClip(Base):
    """One request of production traffic: the audio the live model heard and what it answered.

    Kept apart from :class:`Clip` so that production audio never enters train/dev/test, dataset
    versions or label-issue detection. Sending one to labeling makes a :class:`Clip` (``clip_id``);
    only ``admitted_at`` (set by "add to the next dataset version") lets that clip into a version.
    ``dedup_key`` is the request id, else the audio hash and timestamp: re-ingesting adds nothing.
    """

    __tablename__ = "production_clips"
    __table_args__ = (
        UniqueConstraint("project_id", "dedup_key"),
        CheckConstraint("latency_ms IS NULL OR latency_ms >= 0", name="latency_nonnegative"),
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"),
        Index("ix_production_clips_batch", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    dedup_key: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    original_name: Mapped[str] = mapped_column(String(1000))
    timestamp: Mapped[datetime] = mapped_column()
    model: Mapped[str] = mapped_column(String(200), default="")
    prediction: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(200))
    user_action: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(String(500))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(BigInteger)
    audio_format: Mapped[str] = mapped_column(String(20))
    # The import's quality measures and the drift measures, by name (see analysis.drift.MEASURES).
    measures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id", ondelete="SET NULL"), index=True)
    sample_reason: Mapped[str | None] = mapped_column(String(40))
    admitted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveModel(Base):
    """The run an engineer marked as deployed, and the reference its drift checks are measured against.

    The newest row of a project is the live model; the reference is frozen with it and changes only by
    an audited rebaseline.
    """

    __tablename__ = "live_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"))
    reference_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClipDriftMeasures(Base):
    """The drift measures of a project clip (pitch, spectral centroid, speaking rate, WADA-SNR),
    computed once from its audio the first time it serves as a reference."""

    __tablename__ = "clip_drift_measures"

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    measures: Mapped[dict[str, Any]] = mapped_column(default=dict)


MONITORING_ACTIONS = ("acknowledge", "snooze", "rebaseline")


class MonitoringAction(Base):
    """An engineer's answer to an alarm: acknowledged, snoozed until a time, or a rebaseline."""

    __tablename__ = "monitoring_actions"
    __table_args__ = (CheckConstraint(_in("action", MONITORING_ACTIONS), name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))
    until: Mapped[datetime | None] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
