"""Regions in and out of a ``regions`` project: :func:`import_rttm`, :func:`export_rttm`,
:func:`import_labelstudio_regions`.

Recordings are found among the project's clips by name: an RTTM ``file`` is a clip's file name
without its extension, a Label Studio task's audio is the clip's file name. Each import replaces, per
recording, the set it brings (one annotator's, or the file's own set when it names no one) through
:func:`labeling.data.regions.replace_region_set`, audited; a file naming a recording the project does
not hold is refused whole. Classes a file brings that the project lacks are added to the project
(audited, and listed in the report), as label imports do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Clip
from labeling.data.formats.base import FormatError, Problem
from labeling.data.formats.labelstudio import read_labelstudio_regions
from labeling.data.formats.rttm import read_rttm, rttm_uri, write_rttm
from labeling.data.importer import ensure_users
from labeling.data.projects import ProjectInfo, update_project
from labeling.data.regions import (
    Recording,
    RegionsError,
    clean_region_rows,
    list_regions,
    recording,
    regions_project,
    replace_region_set,
)

_MAX_SHOWN = 5


@dataclass
class RegionImport:
    """What an import stored: sets replaced, regions stored, classes added, what it left out."""

    sets: int = 0
    regions: int = 0
    recordings: int = 0
    added_classes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _recordings(s: Session, info: ProjectInfo, key: Any) -> dict[str, list[int]]:
    """Live clips of the project by ``key(original_name)``."""
    q = select(Clip.id, Clip.original_name).where(Clip.project_id == info.id, Clip.deleted_at.is_(None))
    found: dict[str, list[int]] = {}
    for clip_id, name in s.execute(q):
        found.setdefault(key(name), []).append(clip_id)
    return found


def _match(s: Session, info: ProjectInfo, names: list[str], key: Any, what: str) -> dict[str, Recording]:
    """Each name's recording; :class:`RegionsError` naming those not found, or found twice."""
    by_key = _recordings(s, info, key)
    missing = [n for n in names if n not in by_key]
    twice = [n for n in names if len(by_key.get(n, [])) > 1]
    problems = []
    if missing:
        problems.append(f"no recording {what} {missing[:_MAX_SHOWN]} in project {info.name!r}")
    if twice:
        problems.append(f"several recordings are {what} {twice[:_MAX_SHOWN]}; rename them to tell them apart")
    if problems:
        raise RegionsError("; ".join(problems) + " (nothing was imported)")
    return {n: recording(s, info, by_key[n][0], lock=True) for n in names}


def _add_classes(
    s: Session, info: ProjectInfo, labels: pd.Series, actor_id: int | None
) -> tuple[ProjectInfo, list[str]]:
    new = [c for c in dict.fromkeys(labels.astype(str)) if c not in info.classes]
    if not new:
        return info, []
    return update_project(s, info.id, classes=[*info.classes, *new], actor_id=actor_id), new


def import_rttm(
    s: Session,
    project: str | int,
    path: Path,
    *,
    annotator: str | None = None,
    actor_id: int | None = None,
) -> RegionImport:
    """Read an RTTM file's speaker turns into regions (speaker → class), one set per recording.

    ``annotator`` names whose regions they are (an account is made for a new name, as label imports
    do); without one they are the file's own set (``source='import'``, no annotator), such as a
    model's or a reference diarization.
    """
    info = regions_project(s, project)
    try:
        rttm = read_rttm(path)
    except FormatError as exc:
        raise RegionsError(str(exc)) from None
    turns = rttm.turns
    report = RegionImport()
    for kind, n in sorted(rttm.skipped.items()):
        report.problems.append(Problem(kind, f"{n} line(s) of type {kind} carry no speaker turn; not read"))
    if turns.empty:
        raise RegionsError(f"{Path(path).name} holds no SPEAKER lines")
    uris = list(dict.fromkeys(turns["recording"]))
    recordings = _match(s, info, uris, rttm_uri, "named")
    info, report.added_classes = _add_classes(s, info, turns["label"], actor_id)
    annotator_id = ensure_users(s, {annotator})[annotator] if annotator else None
    for uri, group in turns.groupby("recording", sort=False):
        rec = recordings[str(uri)]
        rows = clean_region_rows(group[["start", "end", "label"]], info, rec, vocabulary=False)
        replace_region_set(s, info, rec, rows, annotator_id=annotator_id, source="import", actor_id=actor_id)
        report.sets += 1
        report.regions += len(rows)
    report.recordings = len(recordings)
    return report


def export_rttm(
    s: Session,
    project: str | int,
    path: Path,
    *,
    annotator: str | None = None,
    source: str = "final",
) -> int:
    """Write one set per recording as RTTM: ``annotator``'s regions, else the ``source`` set without a
    person (``final``, ``import`` or ``proposal``). Returns the number of lines written."""
    frame = list_regions(s, project)
    if annotator is not None:
        chosen = frame[frame["annotator"] == annotator]
        what = f"by {annotator!r}"
    else:
        chosen = frame[frame["annotator"].isna() & (frame["source"] == source)]
        what = f"of source {source!r}"
    if chosen.empty:
        sets = frame.groupby(["annotator", "source"], dropna=False).size()
        held = ", ".join(f"{a if isinstance(a, str) else '(no one)'}/{src}" for a, src in sets.index)
        raise RegionsError(f"no regions {what} to export" + (f"; the project holds {held}" if held else ""))
    turns = chosen.assign(recording=chosen["recording"].map(rttm_uri))
    try:
        return write_rttm(turns[["recording", "start", "end", "label"]], path)
    except FormatError as exc:
        raise RegionsError(str(exc)) from None


def import_labelstudio_regions(
    s: Session,
    project: str | int,
    path: Path,
    *,
    users: Path | None = None,
    actor_id: int | None = None,
) -> RegionImport:
    """Read the time regions of a Label Studio JSON export, one set per annotator and recording.

    Regions of Earmark's final-label pseudo-annotator become the recording's final regions; every
    other annotator's are theirs (``source='import'``). Recordings are the project's clips named as
    the tasks' audio files.
    """
    info = regions_project(s, project)
    try:
        read = read_labelstudio_regions(path, users=users)
    except FormatError as exc:
        raise RegionsError(str(exc)) from None
    regions = read.regions
    report = RegionImport(problems=list(read.problems))
    if regions.empty:
        raise RegionsError(f"{Path(path).name} holds no time regions")
    names = list(dict.fromkeys(regions["recording"]))
    recordings = _match(s, info, names, lambda n: n.replace("\\", "/").rsplit("/", 1)[-1], "named")
    info, report.added_classes = _add_classes(s, info, regions["label"], actor_id)
    people = {str(a) for a, final in zip(regions["annotator"], regions["final"], strict=True) if not final}
    ids = ensure_users(s, people)
    for (name, annotator, final), group in regions.groupby(["recording", "annotator", "final"], sort=False):
        rec = recordings[str(name)]
        rows = clean_region_rows(group.reset_index(drop=True), info, rec, vocabulary=False)
        replace_region_set(
            s,
            info,
            rec,
            rows,
            annotator_id=None if final else ids[str(annotator)],
            source="final" if final else "import",
            actor_id=actor_id,
        )
        report.sets += 1
        report.regions += len(rows)
    report.recordings = len(recordings)
    return report
