"""The Clips page's table, filtered and paginated in the database: :func:`clip_filter_options` for the
filter widgets (the page reads them as stored by a worker, :mod:`labeling.quality.data_summaries`),
:func:`clip_page` for one page of matching clips, found by key (``id > last shown``) rather than by
skipping rows, so the thousandth page costs what the first does.

The conditions are those of :func:`analysis.filters.filter_clips` (every given condition must hold;
empty ones match everything), written as SQL so that a widget change at a million clips costs one
count and one page of rows, not a frame of every clip. Metadata conditions read the indexed
``clip_metadata`` table (:mod:`labeling.data.clip_metadata`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Select, Text, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from db.models import Clip, ClipMetadata, ClipTag, Resolution
from labeling.data.clip_metadata import metadata_counts, metadata_keys, unindexed_metadata
from labeling.data.clips import QUALITY_COLUMNS

RANGE_COLUMNS = ("duration_s", "rms_dbfs", "snr_db")
TABLE_COLUMNS = ("clip_id", "original_name", "label", "split", "duration_s", *QUALITY_COLUMNS[:2], "tags")


@dataclass(frozen=True)
class ClipFilters:
    splits: Sequence[str] = ()
    labels: Sequence[str] = ()
    tags_all: Sequence[str] = ()
    metadata: Mapping[str, Sequence[str]] = field(default_factory=dict)
    name_contains: str = ""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No condition given: every live clip matches."""
        return not (
            self.splits
            or self.labels
            or self.tags_all
            or any(self.metadata.values())
            or self.name_contains
            or self.ranges
        )


@dataclass(frozen=True)
class FilterOptions:
    n_clips: int
    splits: list[str]
    labels: list[str]
    tags: list[str]
    metadata_keys: list[str]
    ranges: dict[str, tuple[float, float]]  # column -> (min, max) over clips that have a value


def _live(project_id: int) -> Any:
    return and_(Clip.project_id == project_id, Clip.deleted_at.is_(None))


def clip_filter_options(s: Session, project_id: int) -> FilterOptions:
    """What the filter widgets offer: splits, final labels, tags, metadata fields and value ranges."""
    live = _live(project_id)
    stats = s.execute(
        select(
            func.count(Clip.id), *(f(getattr(Clip, c)) for c in RANGE_COLUMNS for f in (func.min, func.max))
        ).where(live)
    ).one()
    splits = s.scalars(select(Clip.split).where(live).group_by(Clip.split)).all()
    labels = s.scalars(
        select(Resolution.label)
        .join(Clip, Clip.id == Resolution.clip_id)
        .where(live, Resolution.label.is_not(None))
        .group_by(Resolution.label)
    ).all()
    tags = s.scalars(
        select(ClipTag.tag).join(Clip, Clip.id == ClipTag.clip_id).where(live).group_by(ClipTag.tag)
    ).all()
    ranges = {
        c: (float(stats[1 + 2 * i]), float(stats[2 + 2 * i]))
        for i, c in enumerate(RANGE_COLUMNS)
        if stats[1 + 2 * i] is not None
    }
    return FilterOptions(
        n_clips=int(stats[0]),
        splits=sorted(splits),
        labels=sorted(str(label) for label in labels),
        tags=sorted(tags),
        metadata_keys=metadata_keys(s, project_id),
        ranges=ranges,
    )


def metadata_options(s: Session, project_id: int, key: str) -> list[str]:
    """The values one metadata field takes on live clips, sorted."""
    return sorted(metadata_counts(s, project_id, key)["value"].astype(str))


def _matching(s: Session, project_id: int, f: ClipFilters) -> Select[Any]:
    q = select(Clip.id).outerjoin(Resolution, Resolution.clip_id == Clip.id).where(_live(project_id))
    if f.splits:
        q = q.where(Clip.split.in_(list(f.splits)))
    if f.labels:
        q = q.where(Resolution.label.in_(list(f.labels)))
    for tag in dict.fromkeys(f.tags_all):
        q = q.where(exists().where(ClipTag.clip_id == Clip.id, ClipTag.tag == tag))
    tail = None
    for key, values in f.metadata.items():
        if not values:
            continue
        wanted = [str(v) for v in values]
        indexed = exists().where(
            ClipMetadata.clip_id == Clip.id, ClipMetadata.key == key, ClipMetadata.value.in_(wanted)
        )
        if tail is None:
            tail = unindexed_metadata(s, project_id)
        extra = [cid for cid, k, v in tail if k == key and v in wanted]
        q = q.where(or_(indexed, Clip.id.in_(extra)) if extra else indexed)
    if f.name_contains:
        q = q.where(func.lower(Clip.original_name).contains(f.name_contains.lower(), autoescape=True))
    for column, (low, high) in f.ranges.items():
        q = q.where(getattr(Clip, column).between(low, high))
    return q


def count_matching(s: Session, project_id: int, filters: ClipFilters) -> int:
    """How many live clips match ``filters``."""
    matching = _matching(s, project_id, filters)
    return int(s.scalar(select(func.count()).select_from(matching.subquery())) or 0)


def clip_page(
    s: Session,
    project_id: int,
    filters: ClipFilters,
    *,
    limit: int,
    offset: int = 0,
    after: int | None = None,
    metadata_keys: Sequence[str] = (),
    count: bool = True,
) -> tuple[pd.DataFrame, int | None]:
    """One page of the clips matching ``filters`` in id order, and how many match in all.

    ``after`` gives the first ``limit`` with ids above it (the page after one ending there: an index
    range read, however deep); ``count`` False skips the count (None, see :func:`count_matching`).
    Columns are :data:`TABLE_COLUMNS` (``label`` the final label, ``tags`` a list) and then the given
    metadata keys, with their values as stored in the clip's metadata.
    """
    total = count_matching(s, project_id, filters) if count else None
    matching = _matching(s, project_id, filters)
    if after is not None:
        window = matching.where(Clip.id > after).order_by(Clip.id).limit(limit)
    else:
        window = matching.order_by(Clip.id).offset(offset).limit(limit)
    rows = s.execute(
        select(
            Clip.id,
            Clip.original_name,
            Resolution.label,
            Clip.split,
            Clip.duration_s,
            *(getattr(Clip, c) for c in QUALITY_COLUMNS[:2]),
            cast(Clip.meta, Text),
        )
        .outerjoin(Resolution, Resolution.clip_id == Clip.id)
        .where(Clip.id.in_(window.scalar_subquery()))
        .order_by(Clip.id)
    ).all()
    frame = pd.DataFrame([r[:-1] for r in rows], columns=list(TABLE_COLUMNS[:-1]))
    tags: dict[int, list[str]] = {}
    if rows:
        for cid, tag in s.execute(
            select(ClipTag.clip_id, ClipTag.tag)
            .where(ClipTag.clip_id.in_([r[0] for r in rows]))
            .order_by(ClipTag.clip_id, ClipTag.tag)
        ):
            tags.setdefault(cid, []).append(tag)
    frame["tags"] = [tags.get(cid, []) for cid in frame["clip_id"]]
    metas = [json.loads(r[-1]) if r[-1] else {} for r in rows]
    for key in metadata_keys:
        frame[key] = [m.get(key) if isinstance(m, dict) else None for m in metas]
    return frame, None if total is None else int(total)
