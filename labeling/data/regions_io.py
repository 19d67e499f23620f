"""Regions in and out of a ``regions`` project: :func:`import_regions` and :func:`export_regions` in
any of :data:`REGION_FORMATS` (RTTM, Audacity label tracks, CSV, JSON Lines, Kaldi ``segments``,
NeMo manifests with offsets, lhotse supervisions, Label Studio JSON); :func:`import_rttm`,
:func:`export_rttm` and :func:`import_labelstudio_regions` are the first two formats' own.

Recordings are found among the project's clips by name: an RTTM ``file`` is a clip's file name
without its extension, a Label Studio task's audio is the clip's file name. Each import replaces, per
recording, the set it brings (one annotator's, or the file's own set when it names no one) through
:func:`labeling.data.regions.replace_region_set`, audited; a file naming a recording the project does
not hold is refused whole. Classes a file brings that the project lacks are added to the project
(audited, and listed in the report), as label imports do.
"""

from __future__ import annotations

import gzip
import json
import math
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Clip
from labeling.data.export_folders import HOW, check_target, publish, scratch_beside, write_record
from labeling.data.formats.audacity import SUFFIX as AUDACITY_SUFFIX
from labeling.data.formats.audacity import audacity_lines, read_audacity_labels
from labeling.data.formats.base import FormatError, Problem
from labeling.data.formats.kaldi import kaldi_id
from labeling.data.formats.kaldi_segments import kaldi_segment_tables, read_kaldi_segments
from labeling.data.formats.labelstudio import read_labelstudio_regions
from labeling.data.formats.labelstudio_regions import labelstudio_region_tasks, region_label_config
from labeling.data.formats.lhotse_manifests import RECORDINGS, SUPERVISIONS, recording_dict
from labeling.data.formats.lhotse_regions import read_lhotse_supervisions, supervision_lines
from labeling.data.formats.nemo_regions import nemo_region_lines, read_nemo_regions
from labeling.data.formats.region_frame import RecordingRef, RegionFile, base_name, stem
from labeling.data.formats.region_tables import read_region_table, region_table_text
from labeling.data.formats.rttm import read_rttm, rttm_lines, rttm_uri
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
from labeling.platform.storage import AudioStorage

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


def _chosen(frame: pd.DataFrame, annotator: str | None, source: str, every: bool = False) -> pd.DataFrame:
    """The regions to export: every set, ``annotator``'s, or the ``source`` set without a person."""
    if every:
        chosen, what = frame, "at all"
    elif annotator is not None:
        chosen = frame[frame["annotator"] == annotator]
        what = f"by {annotator!r}"
    else:
        chosen = frame[frame["annotator"].isna() & (frame["source"] == source)]
        what = f"of source {source!r}"
    if chosen.empty:
        sets = frame.groupby(["annotator", "source"], dropna=False).size()
        held = ", ".join(f"{a if isinstance(a, str) else '(no one)'}/{src}" for a, src in sets.index)
        raise RegionsError(f"no regions {what} to export" + (f"; the project holds {held}" if held else ""))
    return chosen


def export_rttm(
    s: Session,
    project: str | int,
    path: Path,
    *,
    annotator: str | None = None,
    source: str = "final",
    overwrite: bool = False,
) -> int:
    """Write one set per recording as RTTM: ``annotator``'s regions, else the ``source`` set without a
    person (``final``, ``import`` or ``proposal``). Returns the number of lines written.

    An existing ``path`` is refused unless ``overwrite``; the file is written whole or not at all."""
    chosen = _chosen(list_regions(s, project), annotator, source)
    turns = chosen.assign(recording=chosen["recording"].map(rttm_uri))
    try:
        lines = rttm_lines(turns[["recording", "start", "end", "label"]])
    except FormatError as exc:
        raise RegionsError(str(exc)) from None
    _write_files(Path(path), {"": "".join(lines).encode()}, overwrite=overwrite)
    return len(lines)


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


# ---------------------------------------------------------------- every format

#: The formats of :func:`import_regions` and :func:`export_regions`.
REGION_FORMATS = ("rttm", "audacity", "csv", "jsonl", "kaldi", "nemo", "lhotse", "labelstudio")
#: Formats that name each region's annotator, so one file can hold every set (``every=True``).
EVERY_SET_FORMATS = ("csv", "jsonl", "nemo", "lhotse", "labelstudio")
#: Formats written to a folder (one file per recording, or a manifest's several files).
FOLDER_FORMATS = ("audacity", "kaldi", "lhotse")


def _recording_key(fmt: str) -> Any:
    """How a format names a recording, as a function of the clip's file name."""
    if fmt == "kaldi":
        return lambda name: kaldi_id(stem(name))
    if fmt in ("audacity", "lhotse"):
        return stem
    if fmt == "nemo":
        return base_name
    return lambda name: name


def _read(fmt: str, path: Path) -> RegionFile:
    if fmt == "audacity":
        files = sorted(path.glob(f"*{AUDACITY_SUFFIX}")) if path.is_dir() else [path]
        if not files:
            raise FormatError(f"{path.name} holds no Audacity label files (*{AUDACITY_SUFFIX})")
        read = [read_audacity_labels(f) for f in files]
        return RegionFile(
            pd.concat([r.regions for r in read], ignore_index=True), [p for r in read for p in r.problems]
        )
    if fmt in ("csv", "jsonl"):
        return read_region_table(path)
    if fmt == "kaldi":
        return read_kaldi_segments(path)
    if fmt == "nemo":
        return read_nemo_regions(path)
    if fmt == "lhotse":
        return read_lhotse_supervisions(path)
    raise RegionsError(f"region formats are {', '.join(REGION_FORMATS)}, not {fmt!r}")


def import_regions(
    s: Session,
    project: str | int,
    path: Path,
    *,
    fmt: str,
    annotator: str | None = None,
    users: Path | None = None,
    actor_id: int | None = None,
) -> RegionImport:
    """Read a file of regions in ``fmt`` (one of :data:`REGION_FORMATS`), one set per recording and
    annotator, each replacing the set it names.

    A region whose file names no annotator is ``annotator``'s when given, else the file's own set
    (``source='import'``, no person). Recordings are the project's clips as the format names them
    (see :mod:`labeling.data.formats`); a name the project does not hold refuses the whole file.
    """
    path = Path(path)
    if fmt == "rttm":
        return import_rttm(s, project, path, annotator=annotator, actor_id=actor_id)
    if fmt == "labelstudio":
        return import_labelstudio_regions(s, project, path, users=users, actor_id=actor_id)
    info = regions_project(s, project)
    if not path.exists():
        raise RegionsError(f"{path} does not exist")
    try:
        read = _read(fmt, path)
    except FormatError as exc:
        raise RegionsError(str(exc)) from None
    regions = read.regions
    report = RegionImport(problems=list(read.problems))
    if regions.empty:
        raise RegionsError(f"{path.name} holds no time regions")
    if annotator:
        regions["annotator"] = regions["annotator"].map(lambda a: a if isinstance(a, str) else annotator)
    names = list(dict.fromkeys(regions["recording"].astype(str)))
    recordings = _match(s, info, names, _recording_key(fmt), "named")
    info, report.added_classes = _add_classes(s, info, regions["label"], actor_id)
    ids = ensure_users(s, {a for a in regions["annotator"] if isinstance(a, str)})
    who = regions["annotator"].fillna("")
    for (name, person), group in regions.groupby([regions["recording"].astype(str), who], sort=False):
        rec = recordings[str(name)]
        group = group.assign(end=group["end"].replace(math.inf, rec.duration))  # Kaldi's end -1
        rows = clean_region_rows(group.reset_index(drop=True), info, rec, vocabulary=False)
        replace_region_set(
            s,
            info,
            rec,
            rows,
            annotator_id=ids[str(person)] if person else None,
            source="import",
            actor_id=actor_id,
        )
        report.sets += 1
        report.regions += len(rows)
    report.recordings = len(recordings)
    return report


def _recording_refs(
    s: Session, info: ProjectInfo, names: list[str], store: AudioStorage | None, audio_root: str | None
) -> dict[str, RecordingRef]:
    """What the manifests say of each recording; its audio is ``audio_root/<name>`` when given, else
    where the audio store keeps it."""
    q = select(
        Clip.original_name, Clip.storage_key, Clip.duration_s, Clip.sample_rate, Clip.channels, Clip.meta
    ).where(Clip.project_id == info.id, Clip.deleted_at.is_(None), Clip.original_name.in_(names))
    refs = {}
    for name, key, duration, rate, channels, meta in s.execute(q):
        if audio_root is not None:
            location = f"{audio_root.rstrip('/')}/{name}"
        elif store is not None:
            location = store.location(key)
        else:
            location = name
        language = (meta or {}).get("language")
        refs[name] = RecordingRef(
            name, location, float(duration), int(rate), int(channels), str(language) if language else None
        )
    return refs


def _unique_stems(names: list[str], fmt: str) -> dict[str, str]:
    key = _recording_key(fmt)
    found: dict[str, str] = {}
    for name in names:
        if key(name) in found.values():
            raise RegionsError(
                f"two recordings are named {key(name)!r} in {fmt}; rename one to tell them apart"
            )
        found[name] = key(name)
    return found


def export_regions(
    s: Session,
    project: str | int,
    path: Path,
    *,
    fmt: str,
    annotator: str | None = None,
    source: str = "final",
    every: bool = False,
    store: AudioStorage | None = None,
    audio_root: str | None = None,
    overwrite: bool = False,
) -> int:
    """Write regions as ``fmt`` (one of :data:`REGION_FORMATS`); returns the number of regions written.

    Which: ``annotator``'s set, else the ``source`` set without a person (``final``, ``import``,
    ``proposal``), or with ``every`` every set (formats of :data:`EVERY_SET_FORMATS`, which name each
    region's annotator). ``path`` is a folder for :data:`FOLDER_FORMATS`, else a file. Manifests
    name each recording's audio as ``audio_root/<file name>``, or where ``store`` keeps it.
    Everything is built before the first byte is written, so a refused export writes nothing.

    A folder is built beside ``path`` and renamed into place, with a record of the files it holds
    (:data:`labeling.data.export_folders.RECORD_NAME`). A ``path`` already holding files is refused,
    naming them, unless ``overwrite``: then the files an earlier export wrote there are replaced and
    any other file is kept (:mod:`labeling.data.export_folders`).
    """
    if fmt not in REGION_FORMATS:
        raise RegionsError(f"region formats are {', '.join(REGION_FORMATS)}, not {fmt!r}")
    if every and fmt not in EVERY_SET_FORMATS:
        raise RegionsError(
            f"{fmt} holds one set per recording; export one annotator's or one source's set, or every "
            f"set as {', '.join(EVERY_SET_FORMATS)}"
        )
    if fmt == "rttm" and not every:
        return export_rttm(s, project, path, annotator=annotator, source=source, overwrite=overwrite)
    if fmt in FOLDER_FORMATS:
        try:
            check_target(Path(path), overwrite=overwrite)
        except FormatError as exc:
            raise RegionsError(str(exc)) from None
    info = regions_project(s, project)
    chosen = _chosen(list_regions(s, project), annotator, source, every)
    names = list(dict.fromkeys(chosen["recording"]))
    files: dict[str, bytes] = {}
    path = Path(path)
    try:
        if fmt == "audacity":
            stems = _unique_stems(names, fmt)
            for name, group in chosen.groupby("recording", sort=True):
                files[stems[str(name)] + AUDACITY_SUFFIX] = "".join(audacity_lines(group)).encode()
        elif fmt in ("csv", "jsonl"):
            files[""] = region_table_text(chosen, fmt=fmt).encode()
        elif fmt == "kaldi":
            _unique_stems(names, fmt)
            refs = _recording_refs(s, info, names, store, audio_root)
            where = {n: (r.location, r.duration) for n, r in refs.items()}
            for table, lines in kaldi_segment_tables(chosen, where).items():
                files[table] = "".join(f"{line}\n" for line in lines).encode()
        elif fmt == "nemo":
            refs = _recording_refs(s, info, names, store, audio_root)
            files[""] = "".join(nemo_region_lines(chosen, {n: r.location for n, r in refs.items()})).encode()
        elif fmt == "lhotse":
            stems = _unique_stems(names, fmt)
            refs = _recording_refs(s, info, names, store, audio_root)
            recs = [
                recording_dict(
                    stems[n],
                    r.location,
                    sampling_rate=r.sample_rate,
                    duration_s=r.duration,
                    channels=r.channels,
                )
                for n, r in sorted(refs.items())
            ]
            languages = {n: r.language for n, r in refs.items()}
            sups = supervision_lines(chosen, stems, languages)
            files[RECORDINGS] = gzip.compress("".join(json.dumps(r) + "\n" for r in recs).encode(), mtime=0)
            files[SUPERVISIONS] = gzip.compress("".join(sups).encode(), mtime=0)
        else:  # labelstudio
            tasks, people = labelstudio_region_tasks(chosen)
            files[""] = (json.dumps(tasks, ensure_ascii=False, indent=1) + "\n").encode()
            users = json.dumps(people, ensure_ascii=False, indent=1) + "\n"
            files[f"{path.stem}{LABEL_USERS_SUFFIX}"] = users.encode()
            transcribes = bool(chosen["text"].notna().any())
            config = region_label_config(info.classes, info.all_tags, transcribes=transcribes)
            files[f"{path.stem}{LABEL_CONFIG_SUFFIX}"] = config.encode()
    except FormatError as exc:
        raise RegionsError(str(exc)) from None
    if fmt in FOLDER_FORMATS:
        _write_folder(path, files, fmt=fmt, overwrite=overwrite)
    else:
        _write_files(path, files, overwrite=overwrite)
    return len(chosen)


#: Beside a Label Studio export, its labeling config (``<export name>_config.xml``) and the people to
#: create in Label Studio before importing it (``<export name>_users.json``).
LABEL_CONFIG_SUFFIX = "_config.xml"
LABEL_USERS_SUFFIX = "_users.json"


def _write_folder(path: Path, files: dict[str, bytes], *, fmt: str, overwrite: bool) -> None:
    """Write built files into a new folder beside ``path``, then put it in ``path``'s place."""
    built = scratch_beside(path)
    try:
        for name, data in files.items():
            target = built / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        write_record(built, fmt, files)
        publish(built, path, overwrite=overwrite)
    except FormatError as exc:
        shutil.rmtree(built, ignore_errors=True)
        raise RegionsError(str(exc)) from None
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise


def _write_files(path: Path, files: dict[str, bytes], *, overwrite: bool) -> None:
    """Write built files: ``path`` itself for the key ``""``, other keys beside it.

    Files already there are refused, naming them, unless ``overwrite``. Each file is written beside
    its target and renamed into place, so a reader (or a failed write) never sees half of one.
    """
    targets = [path if name == "" else path.parent / name for name in files]
    for target in targets:
        if target.is_dir():
            raise RegionsError(f"{target} is a folder; this format is written to a file")
    if not overwrite:
        there = [t for t in targets if t.exists() or t.is_symlink()]
        if there:
            names = ", ".join(t.name for t in there)
            raise RegionsError(
                f"{names} already {'exists' if len(there) == 1 else 'exist'} in {path.parent}; choose "
                f"another name, or {HOW}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in zip(targets, files.values(), strict=True):
        partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
        try:
            partial.write_bytes(data)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
