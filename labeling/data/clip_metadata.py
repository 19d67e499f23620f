"""Clip metadata as an indexed table: :func:`index_clip_metadata` when clips are stored,
:func:`metadata_values` / :func:`metadata_counts` / :func:`metadata_keys` when a view needs them.

``Clip.meta`` (JSON) is the record. Its scalar values (text, numbers, booleans up to
:data:`db.models.META_VALUE_LENGTH` characters, as ``str(value)``) are copied once into
``clip_metadata`` (one row per clip and key), so counting, filtering and slicing by metadata read an
index instead of decoding every clip's JSON on every view. ``clip_metadata_indexed`` says how far a
project's clips are covered; clips stored past that point by a path that did not index them (a bulk
load, an older script) are decoded on the fly by the readers until the next import indexes them,
so readers are always exact.

Soft-deleted clips keep their rows; the readers leave them out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Text, cast, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import META_KEY_LENGTH, META_VALUE_LENGTH, Clip, ClipMetadata, ClipMetadataIndexed
from labeling.platform.columnar import read_frame

_BATCH = 20_000
LONG_COLUMNS = ("clip_id", "key", "value")


def metadata_value(value: Any) -> str | None:
    """The text a metadata value slices by, or None when it cannot slice (missing, nested, too long)."""
    if value is None or isinstance(value, dict | list) or not isinstance(value, str | int | float | bool):
        return None
    text = str(value)
    return text if len(text) <= META_VALUE_LENGTH else None


def _long(ids: Iterable[int], metas: Iterable[Any]) -> list[tuple[int, str, str]]:
    return [
        (cid, key, text)
        for cid, m in zip(ids, metas, strict=True)
        if isinstance(m, dict)
        for key, v in m.items()
        if len(key) <= META_KEY_LENGTH and (text := metadata_value(v)) is not None
    ]


def _through(s: Session, project_id: int) -> int:
    return int(
        s.scalar(
            select(ClipMetadataIndexed.through_clip_id).where(ClipMetadataIndexed.project_id == project_id)
        )
        or 0
    )


def _tail_batches(s: Session, project_id: int, after: int) -> Iterator[list[tuple[int, str, str]]]:
    """``(clip_id, key, value)`` of the project's clips past ``after``, decoded from their JSON a
    batch of clips at a time."""
    last = after
    while True:
        rows = s.execute(
            select(Clip.id, cast(Clip.meta, Text))
            .where(Clip.project_id == project_id, Clip.id > last)
            .order_by(Clip.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        # One json.loads per batch rather than one decoder call per row.
        metas = json.loads("[" + ",".join(r[1] or "null" for r in rows) + "]")
        yield _long((r[0] for r in rows), metas)
        last = rows[-1][0]


def _decoded_tail(s: Session, project_id: int, after: int) -> list[tuple[int, str, str]]:
    return [row for batch in _tail_batches(s, project_id, after) for row in batch]


def index_clip_metadata(s: Session, project_id: int) -> int:
    """Copy the metadata of the project's clips not indexed yet into ``clip_metadata``; returns how
    many clips were covered. Call it in the transaction that stores clips (imports, derived clips)."""
    after = _through(s, project_id)
    newest = s.scalar(select(func.max(Clip.id)).where(Clip.project_id == project_id)) or 0
    if newest <= after:
        return 0
    for batch in _tail_batches(s, project_id, after):
        if batch:
            s.execute(
                insert(ClipMetadata),
                [{"clip_id": c, "key": k, "project_id": project_id, "value": v} for c, k, v in batch],
            )
    if after:
        s.execute(
            update(ClipMetadataIndexed)
            .where(ClipMetadataIndexed.project_id == project_id)
            .values(through_clip_id=newest)
        )
    else:
        s.execute(insert(ClipMetadataIndexed).values(project_id=project_id, through_clip_id=newest))
    n = s.scalar(select(func.count(Clip.id)).where(Clip.project_id == project_id, Clip.id > after))
    return int(n or 0)


def unindexed_metadata(s: Session, project_id: int) -> list[tuple[int, str, str]]:
    """``(clip_id, key, value)`` of the project's clips that ``clip_metadata`` does not cover yet."""
    return _decoded_tail(s, project_id, _through(s, project_id))


def deleted_clip_ids(s: Session, project_id: int) -> pd.Index:
    """Ids of the project's soft-deleted clips (a short index range: ``ix_clips_deleted``)."""
    ids = s.scalars(select(Clip.id).where(Clip.project_id == project_id, Clip.deleted_at.is_not(None))).all()
    return pd.Index(ids, dtype="int64")


def metadata_values(s: Session, project_id: int, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Live clips' metadata in long form: ``clip_id, key, value`` (text), one row per clip and key."""
    if keys is None:
        q = select(ClipMetadata.clip_id, ClipMetadata.key, ClipMetadata.value).where(
            ClipMetadata.project_id == project_id
        )
        frame = read_frame(s, q, {"clip_id": "int64", "key": "object", "value": "object"})
    else:
        # Key by key: the key is then not read back once per row.
        parts = [
            read_frame(
                s,
                select(ClipMetadata.clip_id, ClipMetadata.value).where(
                    ClipMetadata.project_id == project_id, ClipMetadata.key == key
                ),
                {"clip_id": "int64", "value": "object"},
            ).assign(key=key)[list(LONG_COLUMNS)]
            for key in dict.fromkeys(keys)
        ]
        empty = pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "clip_id" else object) for c in LONG_COLUMNS}
        )
        frame = pd.concat(parts, ignore_index=True) if parts else empty
    tail = unindexed_metadata(s, project_id)
    if tail:
        extra = pd.DataFrame(tail, columns=list(LONG_COLUMNS))
        if keys is not None:
            extra = extra[extra["key"].isin(list(keys))]
        frame = pd.concat([frame, extra], ignore_index=True)
    deleted = deleted_clip_ids(s, project_id)
    if len(deleted):
        frame = frame[~frame["clip_id"].isin(deleted)].reset_index(drop=True)
    return frame


def metadata_counts(s: Session, project_id: int, key: str | None = None) -> pd.DataFrame:
    """How many live clips carry each metadata value: ``key, value, n`` (``key`` given: that key only)."""
    q = (
        select(ClipMetadata.key, ClipMetadata.value, func.count().label("n"))
        .where(ClipMetadata.project_id == project_id)
        .group_by(ClipMetadata.key, ClipMetadata.value)
    )
    if key is not None:
        q = q.where(ClipMetadata.key == key)
    counts = pd.DataFrame(s.execute(q).all(), columns=["key", "value", "n"])
    tail = unindexed_metadata(s, project_id)
    deleted = deleted_clip_ids(s, project_id)
    adjust = []
    if tail:
        extra = pd.DataFrame(tail, columns=list(LONG_COLUMNS))
        adjust.append(extra[~extra["clip_id"].isin(deleted)].assign(n=1))
    if len(deleted):
        gone = pd.DataFrame(
            s.execute(
                select(ClipMetadata.clip_id, ClipMetadata.key, ClipMetadata.value).where(
                    ClipMetadata.project_id == project_id,
                    ClipMetadata.clip_id.in_(deleted.tolist()),
                    ClipMetadata.clip_id <= _through(s, project_id),
                )
            ).all(),
            columns=list(LONG_COLUMNS),
        )
        adjust.append(gone.assign(n=-1))
    if adjust:
        delta = pd.concat(adjust, ignore_index=True)
        if key is not None:
            delta = delta[delta["key"] == key]
        counts = pd.concat([counts, delta[["key", "value", "n"]]], ignore_index=True)
        counts = counts.groupby(["key", "value"], as_index=False, sort=False)["n"].sum()
        counts = counts[counts["n"] > 0]
    return counts.sort_values(["key", "n", "value"], ascending=[True, False, True], ignore_index=True)


def metadata_keys(s: Session, project_id: int) -> list[str]:
    """The project's metadata keys, in the order clips first carried them."""
    first = s.execute(
        select(ClipMetadata.key, func.min(ClipMetadata.clip_id))
        .where(ClipMetadata.project_id == project_id)
        .group_by(ClipMetadata.key)
    ).all()
    seen = dict(first)
    for cid, key, _ in unindexed_metadata(s, project_id):
        seen.setdefault(key, cid)
    # Keys a clip introduced together keep that clip's order.
    firsts = sorted(set(seen.values()))
    order: dict[tuple[int, str], int] = {}
    for cid, raw in s.execute(select(Clip.id, cast(Clip.meta, Text)).where(Clip.id.in_(firsts))):
        order.update({(cid, k): i for i, k in enumerate(json.loads(raw or "{}"))})
    return sorted(seen, key=lambda k: (seen[k], order.get((seen[k], k), 0), k))
