"""Time regions of long recordings: :func:`save_regions`, :func:`list_regions`, :func:`propose_regions`.

In a ``regions`` project each clip is a recording too long to label whole; annotators draw regions
on it (a span in seconds, one of the project's classes, optionally a transcript and tags). What one
annotator drew on one recording is one *set*: saving replaces the set whole, in the caller's
transaction, with one audit event holding the old and the new set. Sets without a person (the
energy-VAD proposal, final regions, regions a file brought without naming anyone) are kept per
recording and source.

The checks are :func:`analysis.regions.validate_regions` (bounds, order, inside the recording); the
proposal is :func:`analysis.region_signal.file_energy_vad` over the stored audio, read in blocks.
Regions come back long, as :mod:`analysis.regions` takes them: ``recording_id, annotator, start,
end, label, text`` and more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from analysis.region_signal import file_energy_vad
from analysis.regions import RegionError, validate_regions
from db.models import REGION_SOURCES, AuditEvent, Clip, Region, User, utcnow
from labeling.data.projects import ProjectInfo, get_project
from labeling.platform.audit import record
from labeling.platform.jobs import queue_report_refreshes
from labeling.platform.storage import AudioStorage

#: The columns of :func:`list_regions`.
REGION_COLUMNS = (
    "region_id",
    "recording_id",
    "recording",
    "annotator_id",
    "annotator",
    "start",
    "end",
    "label",
    "text",
    "tags",
    "source",
    "created_at",
)
#: Sources whose regions are an annotator's work (what agreement compares).
ANNOTATOR_SOURCES = ("annotator", "import")


class RegionsError(ValueError):
    """Regions that cannot be stored as given; the message says which and why, and nothing is written."""


@dataclass(frozen=True)
class SavedRegions:
    """What a save did to one set: its recording, whose (or which source's) it is, sizes before and after."""

    clip_id: int
    annotator_id: int | None
    source: str
    before: int
    after: int
    changed: bool = True  # False when the new set equals the stored one (nothing written)


@dataclass(frozen=True)
class Recording:
    id: int
    name: str
    duration: float
    storage_key: str


def regions_project(s: Session, ref: str | int) -> ProjectInfo:
    """The project ``ref``, refused unless it labels time regions."""
    info = get_project(s, ref)
    if not info.labels_regions:
        raise RegionsError(
            f"project {info.name!r} labels whole clips ({info.task_kind}); time regions belong to a "
            "project of kind 'regions'"
        )
    return info


def recording(s: Session, info: ProjectInfo, clip_id: int, *, lock: bool = False) -> Recording:
    """A live clip of the project, as a recording. ``lock`` holds its row until the transaction ends,
    so two saves of one recording (two tabs, a retry) follow each other instead of interleaving."""
    q = select(Clip.id, Clip.original_name, Clip.duration_s, Clip.storage_key, Clip.deleted_at).where(
        Clip.id == clip_id, Clip.project_id == info.id
    )
    if lock and s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    row = s.execute(q).one_or_none()
    if row is None:
        raise RegionsError(f"no recording {clip_id} in project {info.name!r}")
    if row.deleted_at is not None:
        raise RegionsError(f"recording {row.original_name!r} was removed from project {info.name!r}")
    return Recording(row.id, row.original_name, float(row.duration_s), row.storage_key)


def _as_frame(regions: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = regions.copy() if isinstance(regions, pd.DataFrame) else pd.DataFrame(list(regions))
    if frame.empty and not {"start", "end", "label"} <= set(frame.columns):
        frame = pd.DataFrame(columns=["start", "end", "label"])
    return frame.reset_index(drop=True)


def clean_region_rows(
    frame: pd.DataFrame, info: ProjectInfo, rec: Recording, *, vocabulary: bool
) -> list[dict[str, Any]]:
    """The rows of a set as :func:`replace_region_set` stores them, or :class:`RegionsError` naming
    every problem. ``vocabulary`` also holds labels and tags to the project's classes and tags."""
    if "label" in frame.columns:
        frame["label"] = frame["label"].map(lambda v: v.strip() or None if isinstance(v, str) else v)
    try:
        clean = validate_regions(frame, duration=rec.duration)
    except RegionError as exc:
        raise RegionsError(f"regions of {rec.name!r}: {exc}") from None
    problems = []
    if vocabulary:
        unknown = sorted(set(clean["label"].astype(str)) - set(info.classes))
        if unknown:
            problems.append(f"class(es) {unknown} are not among the project's classes {info.classes}")
    texts = clean["text"] if "text" in clean.columns else pd.Series([None] * len(clean), dtype=object)
    tags = clean["tags"] if "tags" in clean.columns else pd.Series([[]] * len(clean), dtype=object)
    known_tags = set(info.all_tags)
    rows = []
    for start, end, label, text, row_tags in zip(
        clean["start"], clean["end"], clean["label"], texts, tags, strict=True
    ):
        tag_list = [] if row_tags is None or (isinstance(row_tags, float) and pd.isna(row_tags)) else row_tags
        if isinstance(tag_list, str) or not all(isinstance(t, str) for t in tag_list):
            problems.append(f"tags must be a list of text, got {row_tags!r}")
            continue
        if vocabulary and set(tag_list) - known_tags:
            problems.append(
                f"tag(s) {sorted(set(tag_list) - known_tags)} are not in the project's vocabulary"
            )
            continue
        rows.append(
            {
                "start_s": float(start),
                "end_s": float(end),
                "label": str(label),
                "transcript": text if isinstance(text, str) and text else None,
                "tags": sorted(set(tag_list)),
            }
        )
    if problems:
        raise RegionsError(f"regions of {rec.name!r}: {'; '.join(dict.fromkeys(problems))}")
    rows.sort(key=lambda r: (r["start_s"], r["end_s"], r["label"]))
    return rows


def _audited(row: Mapping[str, Any]) -> list[Any]:
    return [row["start_s"], row["end_s"], row["label"], row["transcript"], row["tags"]]


def replace_region_set(
    s: Session,
    info: ProjectInfo,
    rec: Recording,
    rows: Sequence[Mapping[str, Any]],
    *,
    annotator_id: int | None,
    source: str,
    actor_id: int | None,
    note: Mapping[str, Any] | None = None,
    force: bool = False,
) -> SavedRegions:
    """Replace one set of clean rows (see :func:`save_regions`): delete, insert, audit, in ``s``.

    ``note`` goes into the audit event beside the new set (how a reviewer composed it). A set equal
    to the stored one is left alone, unless ``force``."""
    if source not in REGION_SOURCES:
        raise RegionsError(f"region source must be one of {', '.join(REGION_SOURCES)}, not {source!r}")
    if source == "annotator" and annotator_id is None:
        raise RegionsError("an annotator's regions need the annotator")
    owner = (
        Region.annotator_id == annotator_id
        if annotator_id is not None
        else (Region.annotator_id.is_(None) & (Region.source == source))
    )
    where = (Region.clip_id == rec.id, owner)
    old = s.execute(
        select(Region.start_s, Region.end_s, Region.label, Region.transcript, Region.tags)
        .where(*where)
        .order_by(Region.start_s, Region.end_s, Region.label)
    ).all()
    old_rows = [list(r) for r in old]
    new_rows = [_audited(r) for r in rows]
    if old_rows == new_rows and not force:
        return SavedRegions(rec.id, annotator_id, source, len(old_rows), len(new_rows), changed=False)
    s.execute(delete(Region).where(*where))
    if rows:
        now = utcnow()
        s.execute(
            insert(Region),
            [
                {
                    **r,
                    "project_id": info.id,
                    "clip_id": rec.id,
                    "annotator_id": annotator_id,
                    "source": source,
                    "created_at": now,
                }
                for r in rows
            ],
        )
    record(
        s,
        entity="regions",
        entity_id=f"{rec.id}/{annotator_id if annotator_id is not None else source}",
        action="create" if not old_rows else ("delete" if not new_rows else "update"),
        old={"source": source, "regions": old_rows} if old_rows else None,
        new={"source": source, "regions": new_rows, **(note or {})} if new_rows or note else None,
        actor_id=actor_id if actor_id is not None else annotator_id,
        project_id=info.id,
    )
    # The stored region agreement and review ranking describe the regions: a worker recomputes them.
    queue_report_refreshes(s, info.id)
    return SavedRegions(rec.id, annotator_id, source, len(old_rows), len(new_rows))


def save_regions(
    s: Session,
    project: str | int,
    clip_id: int,
    regions: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    annotator_id: int,
    actor_id: int | None = None,
) -> SavedRegions:
    """Store an annotator's regions of a recording, replacing what they saved before, audited.

    Parameters
    ----------
    regions
        One row per region: ``start``, ``end`` (seconds), ``label`` (one of the project's classes),
        optionally ``text`` and ``tags`` (a list of the project's ``group:value`` tags). Empty
        clears the annotator's set.

    Raises
    ------
    RegionsError
        Naming every bad region (outside the recording, backwards, unknown class or tag); nothing
        is written.
    """
    info = regions_project(s, project)
    if s.get(User, annotator_id) is None:
        raise RegionsError(f"no user {annotator_id}")
    rec = recording(s, info, clip_id, lock=True)
    rows = clean_region_rows(_as_frame(regions), info, rec, vocabulary=True)
    return replace_region_set(
        s, info, rec, rows, annotator_id=annotator_id, source="annotator", actor_id=actor_id
    )


def save_final_regions(
    s: Session,
    project: str | int,
    clip_id: int,
    regions: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    reviewer_id: int,
    note: Mapping[str, Any] | None = None,
) -> SavedRegions:
    """Store a reviewer's final regions of a recording (source ``final``), replacing the previous final
    set, audited with the old and the new set, the reviewer and ``note`` (say, whose regions were kept
    where). Checked as :func:`save_regions` checks; an empty set clears the final one."""
    info = regions_project(s, project)
    if s.get(User, reviewer_id) is None:
        raise RegionsError(f"no user {reviewer_id}")
    rec = recording(s, info, clip_id, lock=True)
    rows = clean_region_rows(_as_frame(regions), info, rec, vocabulary=True)
    saved = replace_region_set(
        s, info, rec, rows, annotator_id=None, source="final", actor_id=reviewer_id, note=note
    )
    if not saved.changed and rows and changed_after_final(s, info.id, [rec.id]):
        # The same set saved again over annotators' later changes: the reviewer confirms it, which
        # is a save of its own (audited, and new rows, so stored reports see the change).
        saved = replace_region_set(
            s,
            info,
            rec,
            rows,
            annotator_id=None,
            source="final",
            actor_id=reviewer_id,
            note={**(note or {}), "confirmed": True},
            force=True,
        )
    return saved


def changed_after_final(
    s: Session, project_id: int, clip_ids: Sequence[int] | None = None
) -> dict[int, list[str]]:
    """Recordings whose final set predates a change by an annotator: recording id → the names of
    the annotators who changed their regions after the final set was last saved (or confirmed).

    An annotator may reopen and correct a recording after adjudication; the final set is kept, but
    it no longer settles what they say now, so the Review page shows it for review again. Told from
    the audit log (every change of a set is audited there; a save that changes nothing is not)."""
    finals = select(Region.clip_id).where(Region.project_id == project_id, Region.source == "final")
    if clip_ids is not None:
        finals = finals.where(Region.clip_id.in_(list(clip_ids)))
    adjudicated = {int(c) for c in s.scalars(finals.distinct())}
    if not adjudicated:
        return {}
    latest = s.execute(
        select(AuditEvent.entity_id, func.max(AuditEvent.id))
        .where(AuditEvent.project_id == project_id, AuditEvent.entity == "regions")
        .group_by(AuditEvent.entity_id)
    ).all()
    final_at: dict[int, int] = {}
    people: dict[int, dict[int, int]] = {}
    for entity_id, event_id in latest:
        clip, _, owner = str(entity_id).partition("/")
        if not clip.isdigit() or int(clip) not in adjudicated:
            continue
        if owner == "final":
            final_at[int(clip)] = int(event_id)
        elif owner.isdigit():
            people.setdefault(int(clip), {})[int(owner)] = int(event_id)
    stale = {
        clip: sorted(uid for uid, at in who.items() if at > final_at.get(clip, 0))
        for clip, who in people.items()
    }
    stale = {clip: uids for clip, uids in stale.items() if uids}
    ids = sorted({uid for uids in stale.values() for uid in uids})
    names = dict(s.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return {clip: sorted(str(names.get(u, u)) for u in uids) for clip, uids in sorted(stale.items())}


def region_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """Count and newest id of the project's regions: a save replaces a set with new rows, so this
    changes on every save, and on a cleared set (cache keys of region reports)."""
    return tuple(
        s.execute(
            select(func.count(Region.id), func.max(Region.id)).where(Region.project_id == project_id)
        ).one()
    )


def list_regions(
    s: Session,
    project: str | int,
    *,
    clip_id: int | None = None,
    sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The project's regions, long: one row per region with :data:`REGION_COLUMNS`.

    ``annotator`` is the person's name (None for a set without one); rows are ordered by recording,
    annotator, start. ``sources`` keeps only regions from those sources.
    """
    info = regions_project(s, project)
    q = (
        select(
            Region.id,
            Region.clip_id,
            Clip.original_name,
            Region.annotator_id,
            User.name,
            Region.start_s,
            Region.end_s,
            Region.label,
            Region.transcript,
            Region.tags,
            Region.source,
            Region.created_at,
        )
        .join(Clip, Clip.id == Region.clip_id)
        .outerjoin(User, User.id == Region.annotator_id)
        .where(Region.project_id == info.id, Clip.deleted_at.is_(None))
        .order_by(Region.clip_id, Region.annotator_id, Region.source, Region.start_s, Region.end_s, Region.id)
    )
    if clip_id is not None:
        q = q.where(Region.clip_id == clip_id)
    if sources is not None:
        q = q.where(Region.source.in_(list(sources)))
    frame = pd.DataFrame(s.execute(q).all(), columns=list(REGION_COLUMNS))
    frame["annotator_id"] = frame["annotator_id"].astype("Int64")
    for column in ("annotator", "text"):  # missing is None, as stored, not NaN
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.astype({"start": "float64", "end": "float64"})


def propose_regions(
    s: Session,
    store: AudioStorage,
    project: str | int,
    clip_id: int,
    *,
    label: str | None = None,
    threshold_db: float | None = None,
    min_speech: float = 0.1,
    min_silence: float = 0.25,
    actor_id: int | None = None,
) -> SavedRegions:
    """Propose speech regions of a recording with the energy VAD, stored as ``source='proposal'``.

    The proposal replaces the recording's previous one; annotators' sets are untouched (a proposal
    becomes someone's only when they save it as theirs). ``label`` defaults to the class ``speech``
    when the project has it, else its first class.
    """
    info = regions_project(s, project)
    if not info.classes:
        raise RegionsError(f"project {info.name!r} has no classes to propose regions of")
    label = label or ("speech" if "speech" in info.classes else info.classes[0])
    if label not in info.classes:
        raise RegionsError(f"{label!r} is not among the project's classes {info.classes}")
    rec = recording(s, info, clip_id, lock=True)
    path = store.path(rec.storage_key)
    if not path.is_file():
        raise RegionsError(f"the audio of {rec.name!r} is missing from the audio store")
    proposed = file_energy_vad(
        path, threshold_db=threshold_db, min_speech=min_speech, min_silence=min_silence, label=label
    )
    # The VAD's last frame may run a few samples past the end; the recording's length is the bound.
    proposed["end"] = proposed["end"].clip(upper=rec.duration)
    proposed = proposed[proposed["end"] > proposed["start"]]
    rows = clean_region_rows(proposed, info, rec, vocabulary=True)
    return replace_region_set(s, info, rec, rows, annotator_id=None, source="proposal", actor_id=actor_id)
