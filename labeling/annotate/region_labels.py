"""Labeling a recording of a ``regions`` project: :func:`region_task` (what the Label page shows),
:func:`submit_regions` (what its Submit stores) and :func:`my_recordings` (the ones to open again).

Recordings are handed out by the same queue as clips (:func:`labeling.annotate.queue.next_clip`: leases,
k annotators per recording, skips). Submitting stores the annotator's region set
(:func:`labeling.data.regions.save_regions`) and, in the same transaction, the annotation row without a
class that completes the hand-out: it takes one of the recording's k slots, ends the lease, and is what
progress counts. Blind as clips are: a task carries the annotator's own regions, or the energy-VAD
proposal before they have submitted, never anyone else's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Annotation, Clip, Region, User
from labeling.annotate.annotations import SubmitResult, submit_annotation
from labeling.data.regions import (
    changed_after_final,
    clean_region_rows,
    list_regions,
    recording,
    regions_project,
    save_regions,
)
from labeling.platform.storage import AudioStorage

#: What the editor sends per region; anything else is ignored.
EDITOR_FIELDS = ("start", "end", "label", "text", "tags")


@dataclass(frozen=True)
class RegionTask:
    """A recording on the Label page: its audio, and the regions the editor starts from.

    ``proposals`` is True when ``regions`` are the recording's energy-VAD proposal (the annotator has
    not submitted this recording yet); they count as the annotator's only once touched or accepted.
    """

    clip_id: int
    name: str
    duration_s: float
    storage_key: str
    audio_path: Path
    regions: list[dict[str, Any]] = field(default_factory=list)
    proposals: bool = False
    submitted: bool = False
    #: A reviewer has saved the recording's final regions: a change now sends it back for review.
    adjudicated: bool = False


def _editor_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "start": float(r.start),
            "end": float(r.end),
            "label": str(r.label),
            "text": r.text or "",
            "tags": list(r.tags) if isinstance(r.tags, (list, tuple)) else [],
        }
        for r in frame.itertuples()
    ]


def region_task(s: Session, store: AudioStorage, project_id: int, user_id: int, clip_id: int) -> RegionTask:
    """What the Label page needs for recording ``clip_id``: the annotator's own saved regions, or, before
    their first submit, the proposal (if one was made)."""
    info = regions_project(s, project_id)
    rec = recording(s, info, clip_id)
    submitted = (
        s.scalar(
            select(Annotation.id).where(Annotation.clip_id == clip_id, Annotation.annotator_id == user_id)
        )
        is not None
    )
    frame = list_regions(s, info.id, clip_id=clip_id)
    own = frame[frame["annotator_id"] == user_id]
    proposal = frame[frame["source"] == "proposal"]
    use_proposal = own.empty and not submitted and not proposal.empty
    return RegionTask(
        clip_id=rec.id,
        name=rec.name,
        duration_s=rec.duration,
        storage_key=rec.storage_key,
        audio_path=store.path(rec.storage_key),
        regions=_editor_rows(proposal if use_proposal else own),
        proposals=use_proposal,
        submitted=submitted,
        adjudicated=bool((frame["source"] == "final").any()),
    )


def submit_regions(
    s: Session,
    project_id: int,
    user_id: int,
    clip_id: int,
    regions: Iterable[Mapping[str, Any]],
    *,
    time_spent_ms: int | None = None,
    idempotency_key: str | None = None,
) -> SubmitResult:
    """Store ``user_id``'s regions of a recording and complete its hand-out, in the caller's transaction.

    Parameters
    ----------
    regions
        One mapping per region: ``start``, ``end`` (seconds), ``label`` (a project class), optionally
        ``text`` (the transcript of the region) and ``tags`` (a list of the project's ``group:value``
        tags). An empty list says the recording has nothing to mark.

    Returns
    -------
    SubmitResult
        ``created`` on the first submit, ``already_labelled`` when the annotator submits the recording
        again (their regions are replaced), ``full``/``unavailable`` when the recording no longer takes
        them (nothing is stored).

    Raises
    ------
    labeling.data.regions.RegionsError
        Naming every bad region (backwards, outside the recording, unknown class); nothing is written.
    """
    info = regions_project(s, project_id)
    rows = [{k: r.get(k) for k in EDITOR_FIELDS} for r in regions]
    for row in rows:  # a transcript is stored as annotations' are: single spaces, none at the ends
        if isinstance(row["text"], str):
            row["text"] = " ".join(row["text"].split())
    frame = pd.DataFrame(rows, columns=list(EDITOR_FIELDS))
    # Checked before a slot is taken, so bad regions never complete a hand-out.
    clean_region_rows(frame.copy(), info, recording(s, info, clip_id), vocabulary=True)
    result = submit_annotation(
        s,
        info.id,
        user_id,
        clip_id,
        time_spent_ms=time_spent_ms,
        idempotency_key=idempotency_key,
    )
    if result.status in ("created", "already_labelled", "duplicate"):
        save_regions(s, info.id, clip_id, frame, annotator_id=user_id)
    return result


#: The columns of :func:`my_recordings`.
MY_RECORDING_COLUMNS = [
    "clip_id",
    "recording",
    "n_regions",
    "classes",
    "seconds",
    "submitted_at",
    "adjudicated",
    "changed_after_final",
]


def my_recordings(s: Session, project_id: int, user_id: int, *, limit: int = 20) -> pd.DataFrame:
    """The recordings ``user_id`` submitted in a project, newest first (to open one again and correct
    its regions): ``clip_id``, ``recording``, ``n_regions`` (their regions now), ``classes`` (each class
    with its count, most first: ``speech ×3, noise ×1``), ``seconds`` (their regions' total length),
    ``submitted_at``, ``adjudicated`` (a reviewer saved the final regions) and
    ``changed_after_final`` (they changed their regions after that: the final set is due for review)."""
    rows = s.execute(
        select(Annotation.clip_id, Clip.original_name, Annotation.created_at)
        .join(Clip, Clip.id == Annotation.clip_id)
        .where(
            Annotation.project_id == project_id,
            Annotation.annotator_id == user_id,
            Clip.deleted_at.is_(None),
        )
        .order_by(Annotation.created_at.desc(), Annotation.id.desc())
        .limit(limit)
    ).all()
    ids = [int(r[0]) for r in rows]
    drawn = pd.DataFrame(
        s.execute(
            select(Region.clip_id, Region.label, Region.start_s, Region.end_s).where(
                Region.clip_id.in_(ids), Region.annotator_id == user_id
            )
        ).all(),
        columns=["clip_id", "label", "start", "end"],
    )
    finals = set(
        s.scalars(select(Region.clip_id).where(Region.clip_id.in_(ids), Region.source == "final").distinct())
    )
    me = s.scalar(select(User.name).where(User.id == user_id))
    stale = {c for c, who in changed_after_final(s, project_id, ids).items() if me in who}
    out = []
    for clip_id, name, submitted_at in rows:
        mine = drawn[drawn["clip_id"] == clip_id]
        counts = mine["label"].value_counts()
        out.append(
            (
                int(clip_id),
                name,
                len(mine),
                ", ".join(f"{label} ×{n}" for label, n in counts.items()),
                float((mine["end"] - mine["start"]).sum()),
                submitted_at,
                clip_id in finals,
                clip_id in stale,
            )
        )
    return pd.DataFrame(out, columns=MY_RECORDING_COLUMNS)
