"""Clips whose audio file is gone from the store: :func:`store_can_be_read` first, then
:func:`flag_missing_audio` when a page finds one, :func:`missing_audio_frame` for the reviewers' list and
:func:`recheck_missing_audio` once files are back.

A missing file is flagged (a :class:`~db.models.ClipFlag` of kind ``missing_audio``), never a reason to
stop a page: the Label page flags the clip, sets it aside for the annotator and hands them the next one.
A store that cannot be read is another matter: every clip would look missing, so nothing is flagged and
nothing set aside, and the page says the store cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Clip, ClipFlag, utcnow
from labeling.platform.audit import record
from labeling.platform.storage import AudioStorage

FLAG_KIND = "missing_audio"


def stored_audio(store: AudioStorage, storage_key: str) -> Path | None:
    """The clip's audio file, or None when the store has lost it."""
    path = store.path(storage_key)
    return path if path.is_file() else None


def store_can_be_read(store: AudioStorage, *, misses_in_a_row: int = 0) -> bool:
    """Whether a clip not found in ``store`` is really gone, rather than the store being out of reach.

    It is not when the store does not answer (:meth:`~labeling.platform.storage.AudioStorage.readable`: a
    folder that is missing, unlistable or empty, a bucket that does not answer), nor when the clip before
    it, in the same session, was not found either (``misses_in_a_row``): a folder mounted elsewhere or a
    wrong prefix lose every clip at once, and two genuinely lost files in a row are rare enough to wait
    for a second look.
    """
    return misses_in_a_row < 1 and store.readable()


def has_open_flag(s: Session, clip_id: int) -> bool:
    """Whether ``clip_id`` is already flagged as missing its audio (and the flag is not closed)."""
    return (
        s.scalar(
            select(ClipFlag.id).where(
                ClipFlag.clip_id == clip_id, ClipFlag.kind == FLAG_KIND, ClipFlag.resolved_at.is_(None)
            )
        )
        is not None
    )


def flag_missing_audio(s: Session, clip_id: int, *, actor_id: int | None = None) -> bool:
    """Flag ``clip_id`` as having no audio (reopening an earlier flag); True when newly flagged."""
    clip = s.get(Clip, clip_id)
    if clip is None:
        raise LookupError(f"no clip {clip_id}")
    flag = s.scalar(select(ClipFlag).where(ClipFlag.clip_id == clip_id, ClipFlag.kind == FLAG_KIND))
    if flag is not None and flag.resolved_at is None:
        return False
    detail = {"storage_key": clip.storage_key}
    if flag is None:
        s.add(ClipFlag(clip_id=clip_id, kind=FLAG_KIND, detail=detail, created_by=actor_id))
    else:
        flag.resolved_at, flag.detail, flag.created_at = None, detail, utcnow()
    s.flush()
    record(
        s,
        entity="clip_flag",
        entity_id=clip_id,
        action="create",
        new={"kind": FLAG_KIND, **detail},
        actor_id=actor_id,
        project_id=clip.project_id,
    )
    return True


def missing_audio_frame(s: Session, project_id: int) -> pd.DataFrame:
    """Open ``missing_audio`` flags of a project: ``clip_id, original_name, storage_key, flagged_at``."""
    rows = s.execute(
        select(ClipFlag.clip_id, Clip.original_name, Clip.storage_key, ClipFlag.created_at)
        .join(Clip, Clip.id == ClipFlag.clip_id)
        .where(
            Clip.project_id == project_id,
            Clip.deleted_at.is_(None),
            ClipFlag.kind == FLAG_KIND,
            ClipFlag.resolved_at.is_(None),
        )
        .order_by(ClipFlag.clip_id)
    ).all()
    return pd.DataFrame(rows, columns=["clip_id", "original_name", "storage_key", "flagged_at"])


def recheck_missing_audio(
    s: Session, store: AudioStorage, project_id: int, *, actor_id: int | None = None
) -> tuple[int, int]:
    """Close the flags of clips whose audio is back in the store; returns (closed, still missing)."""
    flagged = missing_audio_frame(s, project_id)
    back = [int(r.clip_id) for r in flagged.itertuples() if stored_audio(store, r.storage_key) is not None]
    if back:
        s.execute(
            update(ClipFlag)
            .where(ClipFlag.clip_id.in_(back), ClipFlag.kind == FLAG_KIND)
            .values(resolved_at=utcnow())
        )
        for cid in back:
            record(
                s,
                entity="clip_flag",
                entity_id=cid,
                action="update",
                old={"kind": FLAG_KIND, "resolved_at": None},
                new={"kind": FLAG_KIND, "resolved": "audio is back in the store"},
                actor_id=actor_id,
                project_id=project_id,
            )
    return len(back), len(flagged) - len(back)
