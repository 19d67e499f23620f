"""What the Overview page shows, aggregated in the database: call :func:`project_overview`.

Counts come from ``GROUP BY`` queries and the two histograms from two columns read whole and binned
here, so the page sends a few hundred numbers to the browser rather than a frame of every clip.
:func:`metadata_value_counts` is the chart of one metadata field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Clip, ClipTag, Resolution
from labeling.data.clip_metadata import metadata_counts, metadata_keys
from labeling.data.clips import batch_frame
from labeling.platform.columnar import read_frame

NONE = "(none)"
BINS = 40
META_VALUES = 1000


@dataclass(frozen=True)
class Histogram:
    """Counts per bin: ``counts[i]`` values fell in ``[edges[i], edges[i + 1])`` (the last bin is closed)."""

    edges: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, bins: int = BINS) -> Histogram:
        values = values[np.isfinite(values)]
        if not len(values):
            return cls(np.array([0.0, 1.0]), np.array([0]))
        counts, edges = np.histogram(values, bins=bins)
        return cls(edges, counts)


@dataclass(frozen=True)
class Overview:
    summary: dict[str, Any]
    labels: pd.Series  # final label -> clips, "(none)" for clips without one; most first
    splits: pd.Series  # split -> clips
    duration: Histogram
    loudness: Histogram
    tags: pd.Series  # tag -> clips
    metadata_keys: list[str]
    batches: pd.DataFrame
    #: Clips per value of each metadata field with at most :data:`META_VALUES` values (as
    #: :func:`metadata_value_counts`); fields with more are counted when chosen.
    metadata: dict[str, pd.Series] = field(default_factory=dict)


def _live_resolutions(project_id: int) -> Any:
    # Soft-deleted clips are few and indexed (ix_clips_deleted): leave their labels out by id.
    gone = select(Clip.id).where(Clip.project_id == project_id, text("deleted_at IS NOT NULL"))
    return (Resolution.project_id == project_id) & Resolution.clip_id.not_in(gone)


def _counts(rows: Any) -> pd.Series:
    series = pd.Series({str(k): int(n) for k, n in rows}, dtype="int64")
    return series.sort_values(ascending=False, kind="stable")


def project_overview(s: Session, project_id: int) -> Overview:
    """The project's size, label, split, duration, loudness and tag distributions, and its batches."""
    clips = read_frame(
        s,
        select(Clip.split, Clip.duration_s, Clip.rms_dbfs).where(
            Clip.project_id == project_id, Clip.deleted_at.is_(None)
        ),
        {"split": "object", "duration_s": "float64", "rms_dbfs": "float64"},
    )
    labels = _counts(
        s.execute(
            select(Resolution.label, func.count())
            .where(_live_resolutions(project_id), Resolution.label.is_not(None))
            .group_by(Resolution.label)
        ).all()
    )
    n_resolved = s.scalar(select(func.count()).select_from(Resolution).where(_live_resolutions(project_id)))
    unlabelled = len(clips) - int(labels.sum())
    if unlabelled and len(labels):
        labels = pd.concat([labels, pd.Series({NONE: unlabelled})]).sort_values(
            ascending=False, kind="stable"
        )
    tags = _counts(
        s.execute(
            select(ClipTag.tag, func.count())
            .join(Clip, Clip.id == ClipTag.clip_id)
            .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
            .group_by(ClipTag.tag)
        ).all()
    )
    splits = clips["split"].value_counts()
    all_counts = metadata_counts(s, project_id)
    per_key = {
        str(key): _with_missing(group, len(clips))
        for key, group in all_counts.groupby("key", sort=False)
        if len(group) <= META_VALUES
    }
    batches = batch_frame(s, project_id)
    # The keys of labeling.data.clips.project_summary, from the columns read above.
    summary = {
        "n_clips": len(clips),
        "hours": float(clips["duration_s"].sum()) / 3600,
        "n_resolved": int(n_resolved or 0),
        "n_batches": len(batches),
        "splits": {str(k): int(v) for k, v in splits.items()},
    }
    return Overview(
        summary=summary,
        labels=labels,
        splits=splits,
        duration=Histogram.of(clips["duration_s"].to_numpy()),
        loudness=Histogram.of(clips["rms_dbfs"].to_numpy()),
        tags=tags,
        metadata_keys=metadata_keys(s, project_id),
        batches=batches,
        metadata=per_key,
    )


def metadata_value_counts(s: Session, project_id: int, key: str, *, n_clips: int) -> pd.Series:
    """Clips per value of one metadata field, with ``(none)`` for the clips without it; most first."""
    return _with_missing(metadata_counts(s, project_id, key), n_clips)


def _with_missing(counts: pd.DataFrame, n_clips: int) -> pd.Series:
    series = pd.Series(counts["n"].to_numpy(), index=counts["value"].astype(str), dtype="int64")
    missing = n_clips - int(series.sum())
    if missing > 0:
        series = pd.concat([series, pd.Series({NONE: missing})])
    return series.sort_values(ascending=False, kind="stable")
