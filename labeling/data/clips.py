"""Reading clips: :func:`clip_frame` (one row per clip, for tables, filters and charts),
:func:`clip_detail`, :func:`project_summary`, :func:`batch_frame`, :func:`load_audio`.

Frames are built with a handful of set-based queries, never a query per clip, so a project of
100,000 clips loads in about a second and the pages cache the result.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Annotation, Clip, ClipFlag, ClipTag, ImportBatch, Resolution
from labeling.platform.storage import AudioStorage

QUALITY_COLUMNS = (
    "peak_dbfs",
    "rms_dbfs",
    "leading_silence_ms",
    "trailing_silence_ms",
    "clipped_fraction",
    "snr_db",
)
BASE_COLUMNS = (
    "clip_id",
    "original_name",
    "sha256",
    "storage_key",
    "duration_s",
    "sample_rate",
    "channels",
    "split",
    "batch_id",
    "parent_clip_id",
    "annotation_count",
    "annotations_needed",
    "priority",
    *QUALITY_COLUMNS,
    "label",
    "transcript",
    "resolution_method",
    "tags",
)


class ClipNotFound(LookupError):
    pass


def clip_tags(s: Session, project_id: int) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = defaultdict(list)
    q = (
        select(ClipTag.clip_id, ClipTag.tag)
        .join(Clip, Clip.id == ClipTag.clip_id)
        .where(Clip.project_id == project_id)
        .order_by(ClipTag.clip_id, ClipTag.tag)
    )
    for clip_id, tag in s.connection().execute(q):
        tags[clip_id].append(tag)
    return tags


def clip_frame(s: Session, project_id: int, *, include_deleted: bool = False) -> pd.DataFrame:
    """One row per clip of a project.

    Columns are :data:`BASE_COLUMNS` (``label``/``transcript`` are the current resolution, ``tags`` a
    list of ``group:value`` strings) followed by one column per metadata key, in first-seen order.
    """
    q = (
        select(
            Clip.id,
            Clip.original_name,
            Clip.sha256,
            Clip.storage_key,
            Clip.duration_s,
            Clip.sample_rate,
            Clip.channels,
            Clip.split,
            Clip.import_batch_id,
            Clip.parent_clip_id,
            Clip.annotation_count,
            Clip.annotations_needed,
            Clip.priority,
            *(getattr(Clip, c) for c in QUALITY_COLUMNS),
            Resolution.label,
            Resolution.transcript,
            Resolution.method,
            Clip.meta,
        )
        .outerjoin(Resolution, Resolution.clip_id == Clip.id)
        .where(Clip.project_id == project_id)
        .order_by(Clip.id)
    )
    if not include_deleted:
        q = q.where(Clip.deleted_at.is_(None))
    # Core execution skips the ORM's per-row bookkeeping: a third of the time at 100,000 clips.
    rows = s.connection().execute(q).all()
    base = pd.DataFrame([r[:-1] for r in rows], columns=list(BASE_COLUMNS[:-1]))
    tags = clip_tags(s, project_id)
    base["tags"] = [tags.get(cid, []) for cid in base["clip_id"]]
    metas = [cast(dict[str, Any], r[-1] or {}) for r in rows]
    keys = list(dict.fromkeys(k for m in metas for k in m))
    meta = pd.DataFrame({k: [m.get(k) for m in metas] for k in keys if k not in BASE_COLUMNS})
    frame = pd.concat([base, meta], axis=1)
    for col in ("batch_id", "parent_clip_id"):
        frame[col] = frame[col].astype("Int64")
    return frame


def project_tags(s: Session, project_id: int) -> list[str]:
    """The distinct tags on the project's live clips, sorted (one grouped index scan)."""
    return sorted(
        s.scalars(
            select(ClipTag.tag)
            .join(Clip, Clip.id == ClipTag.clip_id)
            .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
            .group_by(ClipTag.tag)
        )
    )


def metadata_columns(frame: pd.DataFrame) -> list[str]:
    """The metadata columns of a :func:`clip_frame` (everything after the base columns)."""
    return [c for c in frame.columns if c not in BASE_COLUMNS]


def tag_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """0/1 indicator columns, one per tag, aligned with ``frame`` (for slice tables and filters)."""
    exploded = frame["tags"].explode().dropna()
    if exploded.empty:
        return pd.DataFrame(index=frame.index)
    return pd.crosstab(exploded.index, exploded).reindex(frame.index, fill_value=0).clip(upper=1)


@dataclass(frozen=True)
class ClipDetail:
    id: int
    project_id: int
    original_name: str
    sha256: str
    audio_path: Path
    audio_format: str
    duration_s: float
    sample_rate: int
    channels: int
    split: str
    metadata: dict[str, Any]
    quality: dict[str, float | None]
    tags: list[str]
    label: str | None
    transcript: str | None
    resolution_method: str | None
    batch_id: int | None
    parent_clip_id: int | None
    derivation: dict[str, Any] | None
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def clip_detail(
    s: Session, store: AudioStorage, clip_id: int, *, project_id: int | None = None
) -> ClipDetail:
    clip = s.get(Clip, clip_id)
    if clip is None or (project_id is not None and clip.project_id != project_id):
        raise ClipNotFound(f"no clip {clip_id}" + (" in this project" if project_id is not None else ""))
    res = s.get(Resolution, clip_id)
    return ClipDetail(
        id=clip.id,
        project_id=clip.project_id,
        original_name=clip.original_name,
        sha256=clip.sha256,
        audio_path=store.path(clip.storage_key),
        audio_format=clip.audio_format,
        duration_s=clip.duration_s,
        sample_rate=clip.sample_rate,
        channels=clip.channels,
        split=clip.split,
        metadata=dict(clip.meta or {}),
        quality={c: getattr(clip, c) for c in QUALITY_COLUMNS},
        tags=sorted(t.tag for t in clip.tags),
        label=res.label if res else None,
        transcript=res.transcript if res else None,
        resolution_method=res.method if res else None,
        batch_id=clip.import_batch_id,
        parent_clip_id=clip.parent_clip_id,
        derivation=clip.derivation,
        created_at=clip.created_at,
    )


def load_audio(path: Path, *, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode a stored clip as float32 (mono by averaging channels)."""
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return (y.mean(axis=1) if mono else y), int(sr)


def project_summary(s: Session, project_id: int) -> dict[str, Any]:
    live = (Clip.project_id == project_id) & Clip.deleted_at.is_(None)
    n, seconds = s.execute(
        select(func.count(Clip.id), func.coalesce(func.sum(Clip.duration_s), 0.0)).where(live)
    ).one()
    labelled = s.scalar(
        select(func.count(Resolution.clip_id)).join(Clip, Clip.id == Resolution.clip_id).where(live)
    )
    splits = dict(s.execute(select(Clip.split, func.count()).where(live).group_by(Clip.split)).all())
    batches = s.scalar(select(func.count(ImportBatch.id)).where(ImportBatch.project_id == project_id))
    return {
        "n_clips": int(n),
        "hours": float(seconds) / 3600,
        "n_resolved": int(labelled or 0),
        "n_batches": int(batches or 0),
        "splits": {k: int(v) for k, v in splits.items()},
    }


def batch_frame(s: Session, project_id: int) -> pd.DataFrame:
    """Import batches of a project, newest first."""
    rows = s.execute(
        select(
            ImportBatch.id,
            ImportBatch.name,
            ImportBatch.source_format,
            ImportBatch.created_at,
            ImportBatch.n_imported,
            ImportBatch.n_duplicates,
            ImportBatch.n_rejected,
        )
        .where(ImportBatch.project_id == project_id)
        .order_by(ImportBatch.id.desc())
    ).all()
    return pd.DataFrame(
        rows, columns=["batch_id", "name", "format", "created_at", "imported", "duplicates", "rejected"]
    )


def batch_report(s: Session, batch_id: int) -> dict[str, Any]:
    batch = s.get(ImportBatch, batch_id)
    return dict(batch.report or {}) if batch else {}


def data_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """Counts and latest changes of a project's clips, tags, resolutions, annotations and open flags.

    It changes whenever :func:`clip_frame` or a report built on the labels would, so caches can key on
    it instead of expiring blindly; it is read on every rerun of a cached page, so each part is an
    index lookup or an index-only count (a few tens of milliseconds at a million clips): the newest
    clip (clips are never deleted, only soft-deleted), soft-deleted clips (partial index
    ``ix_clips_deleted``), queue priorities (``ix_clips_prioritised``), tags (over all projects: a
    tag carries no project), the newest resolution and annotation change (``ix_*_project_updated``)
    and open label-issue flags.
    """

    def one(*columns: Any, where: Any = None) -> tuple[Any, ...]:
        q = select(*columns)
        return tuple(s.execute(q if where is None else q.where(*where)).one())

    # Each aggregate on its own: SQLite answers a lone max() from the end of an index, but a count
    # and a max together walk the whole range.
    clips = one(func.max(Clip.id), where=[Clip.project_id == project_id])
    # Literal conditions, not bound parameters, so both engines match them to the partial indexes.
    deleted = one(
        func.count(),
        func.max(Clip.deleted_at),
        where=[Clip.project_id == project_id, text("deleted_at IS NOT NULL")],
    )
    prioritised = one(
        func.count(),
        func.sum(Clip.priority),
        func.sum(Clip.priority * Clip.id),
        where=[Clip.project_id == project_id, text("priority <> 0")],
    )
    tags = one(select(func.count()).select_from(ClipTag).scalar_subquery()) + one(func.max(ClipTag.id))
    live = [Resolution.project_id == project_id]
    res = one(func.count(), where=live) + one(func.max(Resolution.updated_at), where=live)
    mine = [Annotation.project_id == project_id]
    ann = one(func.count(), where=mine) + one(func.max(Annotation.updated_at), where=mine)
    flags = s.execute(
        select(func.count(ClipFlag.id), func.max(ClipFlag.id))
        .join(Clip, Clip.id == ClipFlag.clip_id)
        .where(Clip.project_id == project_id, ClipFlag.resolved_at.is_(None))
    ).one()
    return (*clips, *deleted, *prioritised, *tags, *res, *ann, *flags)
