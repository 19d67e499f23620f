"""Export a project's labelled clips in the formats speech teams use: call :func:`export_project`
(or :func:`export_zip` for one downloadable file); :func:`export_frame` is the table behind both.

The exported set is the project's clips with their current final labels (resolutions), clip tags,
split and metadata — or, given a dataset version, the frozen labels of that version — narrowed by
:class:`ExportFilters`. Writers (:mod:`labeling.data.formats.writers`) turn it into csv, jsonl, a
Hugging Face audiofolder, NeMo manifests, Kaldi data directories, Label Studio tasks, lhotse
manifests, WebDataset shards, a Common Voice release or a LibriSpeech tree, each with a
``MANIFEST.json`` that records the files' SHA-256, the dataset version's content hash and the code
fingerprints of the model runs.
"""

from __future__ import annotations

import gc
import json
import math
import secrets
import shlex
import shutil
import time
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Text, cast, null, select
from sqlalchemy.orm import Session

from analysis.text import NormalizationRules
from db.models import (
    SPLITS,
    Annotation,
    Clip,
    ClipFlag,
    ClipTag,
    DatasetItem,
    DatasetVersion,
    ModelRun,
    Prediction,
    Resolution,
    User,
)
from labeling.data.export_folders import check_target, publish
from labeling.data.formats.base import EXPORT_COLUMNS, FormatError
from labeling.data.formats.webdataset_shards import TAR_RECORD as MIN_SHARD_BYTES
from labeling.data.formats.writers import MANIFEST_NAME, WRITERS, safe_name
from labeling.data.projects import ProjectInfo, get_project
from labeling.platform.ids import as_id
from labeling.platform.storage import AudioStorage, is_remote_url, publish_folder, require_empty_prefix
from labeling.platform.workspace import Workspace

Progress = Callable[[int, int], None] | None

#: What ``earmark export --format`` accepts.
EXPORT_FORMATS = tuple(WRITERS)
#: Why clips were left out, in the order the filters apply (a clip counts under the first that applies).
EXCLUSION_REASONS = {
    "deleted": "retired (replaced by a fixed copy)",
    "split": "in another split",
    "derived": "derived from another clip",
    "augmented": "augmented",
    "flagged": "flagged",
    "unresolved": "without a final label",
    "agreement": "below the minimum agreement",
    "no_agreement": "without annotations to measure agreement",
}
#: The annotations frame the Label Studio and per-annotator writers get: one row per annotation.
ANNOTATION_COLUMNS = (
    "clip_id",
    "annotator",
    "label",
    "transcript",
    "tags",
    "unsure",
    "time_spent_ms",
    "convention_version",
    "created_at",
    "updated_at",
    "cannot_label_reason",
)
_TEXT_SUFFIXES = frozenset({".csv", ".json", ".jsonl", ".xml", ".txt", ".tsv"})


#: Formats that carry each annotator's clip labels: refused for a regions project (see ``earmark regions``).
PER_ANNOTATOR_FORMATS = ("annotations", "labelstudio")


class ExportError(ValueError):
    """The export cannot be made as asked; nothing was written. The message says why."""


@dataclass(frozen=True)
class ExportFilters:
    """Which clips to export. The defaults export every clip that is not deleted.

    ``min_agreement`` keeps clips whose annotators agreed with the final label at least this much
    (0–1): the resolution's recorded agreement, else the share of the clip's annotations that give
    the final label (or, without a label, the final transcript after the project's normalisation).
    A clip with neither is left out, since its agreement is unknown.
    """

    resolved_only: bool = False
    min_agreement: float | None = None
    exclude_flagged: bool = False  # clips with a flag nobody has resolved
    exclude_derived: bool = False  # clips made from another clip (trimmed, normalised, augmented)
    exclude_augmented: bool = False  # only those whose derivation is an augmentation
    splits: tuple[str, ...] = ()  # empty: every split
    include_deleted: bool = False

    def __post_init__(self) -> None:
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise ExportError(f"unknown split(s) {', '.join(unknown)}; splits are {', '.join(SPLITS)}")
        if self.min_agreement is not None and not 0.0 <= float(self.min_agreement) <= 1.0:
            raise ExportError("the minimum agreement is a share between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["splits"] = list(self.splits)
        return d


@dataclass
class ExportReport:
    """What an export wrote."""

    project: str
    format: str
    out: str
    n_clips: int
    n_files: int
    audio: str  # "copied", "referenced", or "none" (the per-annotator table holds no audio)
    dataset_version: str | None = None  # the version's content hash
    version_name: str | None = None
    model_fingerprints: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    n_annotations: int = 0
    n_predictions: int = 0
    filters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: An overwrite's ``replaced``, ``removed`` and ``kept`` files (relative paths); empty otherwise.
    overwritten: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = f"version {self.version_name!r} of " if self.version_name else ""
        text = (
            f"{self.n_clips:,} clips of {what}{self.project!r} exported as {self.format} to {self.out} "
            f"(audio {self.audio}) — {self.seconds:.1f} s"
        )
        left = [f"{n:,} {EXCLUSION_REASONS.get(k, k)}" for k, n in self.excluded.items() if n]
        text += f"; left out: {', '.join(left)}" if left else ""
        if self.overwritten:
            done = self.overwritten
            text += f"; overwrote {len(done['replaced']) + len(done['removed']):,} files of an earlier export"
            if done["kept"]:
                text += f", kept {len(done['kept']):,} files no export wrote"
        return text


# ---------------------------------------------------------------- the export frame


@dataclass(frozen=True)
class _Version:
    id: int
    name: str
    content_hash: str


def find_version(s: Session, project_id: int, ref: str | int) -> _Version:
    """A dataset version of the project by name or id; the error lists the versions that exist."""
    q = select(DatasetVersion.id, DatasetVersion.name, DatasetVersion.content_hash).where(
        DatasetVersion.project_id == project_id
    )
    hit = s.execute(q.where(DatasetVersion.name == str(ref))).first()
    if hit is None and as_id(ref) is not None:
        hit = s.execute(q.where(DatasetVersion.id == as_id(ref))).first()
    if hit is None:
        names = list(
            s.scalars(
                q.with_only_columns(DatasetVersion.name)
                .where(DatasetVersion.kind == "named")
                .order_by(DatasetVersion.id)
            )
        )
        known = f"; its versions are {', '.join(names)}" if names else "; it has no dataset versions yet"
        raise ExportError(f"no dataset version {ref!r} in this project{known}")
    return _Version(*hit)


def export_frame(
    s: Session,
    store: AudioStorage | None,
    project_id: int,
    *,
    filters: ExportFilters = ExportFilters(),
    version_id: int | None = None,
) -> pd.DataFrame:
    """The clips to export, one row per clip, in clip order.

    Columns are :data:`~labeling.data.formats.base.EXPORT_COLUMNS`: ``clip_id, sha256, original_name,
    audio_path`` (the stored file; None without a ``store``), ``duration_s, sample_rate, channels,
    split, label, transcript`` (the final label, or the version's), ``tags`` (list of str),
    ``metadata`` (dict of str).
    With ``version_id`` the labels, tags, metadata and splits are those frozen in that dataset version.
    """
    with _gc_paused():
        frame, _ = _export_rows(s, store, get_project(s, project_id), filters, version_id)
    return frame


def _export_rows(
    s: Session, store: AudioStorage | None, info: ProjectInfo, filters: ExportFilters, version_id: int | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    # Metadata comes back as JSON text, parsed below in one go: 100,000 json.loads calls (and the
    # derivation column nobody asked about) would cost more than the query.
    base = (
        Clip.id,
        Clip.sha256,
        Clip.original_name,
        Clip.storage_key,
        Clip.duration_s,
        Clip.sample_rate,
        Clip.channels,
        Clip.parent_clip_id,
        (Clip.derivation if filters.exclude_augmented else null()).label("derivation"),
        Clip.deleted_at.is_not(None).label("deleted"),
        Resolution.agreement,
    )
    if version_id is None:
        q = select(
            *base, cast(Clip.meta, Text).label("meta"), Clip.split, Resolution.label, Resolution.transcript
        ).outerjoin(Resolution, Resolution.clip_id == Clip.id)
    else:
        q = (
            select(
                *base,
                cast(DatasetItem.meta, Text).label("meta"),
                DatasetItem.split,
                DatasetItem.label,
                DatasetItem.transcript,
                DatasetItem.tags,
            )
            .join(DatasetItem, (DatasetItem.clip_id == Clip.id) & (DatasetItem.version_id == version_id))
            .outerjoin(Resolution, Resolution.clip_id == Clip.id)
        )
    rows = s.connection().execute(q.where(Clip.project_id == info.id).order_by(Clip.id)).all()

    excluded: dict[str, int] = {}
    keep = list(rows)

    def drop(reason: str, out: Callable[[Any], bool]) -> None:
        nonlocal keep
        kept = [r for r in keep if not out(r)]
        excluded[reason] = len(keep) - len(kept)
        keep = kept

    # A version is exported as frozen, even if a clip in it was deleted since (its audio is kept).
    if not filters.include_deleted and version_id is None:
        drop("deleted", lambda r: bool(r.deleted))
    if filters.splits:
        wanted = set(filters.splits)
        drop("split", lambda r: r.split not in wanted)
    if filters.exclude_derived:
        drop("derived", lambda r: r.parent_clip_id is not None)
    if filters.exclude_augmented:
        drop("augmented", lambda r: _is_augmented(r.derivation))
    if filters.exclude_flagged:
        flagged = set(
            s.scalars(
                select(ClipFlag.clip_id)
                .join(Clip, Clip.id == ClipFlag.clip_id)
                .where(Clip.project_id == info.id, ClipFlag.resolved_at.is_(None))
            )
        )
        drop("flagged", lambda r: r.id in flagged)
    if filters.resolved_only:
        drop("unresolved", lambda r: r.label is None and r.transcript is None)
    if filters.min_agreement is not None:
        agreement = _agreement(s, info, keep)
        drop("no_agreement", lambda r: agreement[r.id] is None)
        minimum = float(filters.min_agreement)
        drop("agreement", lambda r: (agreement[r.id] or 0.0) < minimum - 1e-9)

    if version_id is None:
        tags_of = _clip_tags(s, info.id)
        tags = [tags_of.get(r.id, []) for r in keep]
    else:
        tags = [list(r.tags or []) for r in keep]
    # One string join per clip: resolving 100,000 paths one by one costs more than the whole query.
    root = store.base if store is not None else None
    frame = pd.DataFrame(
        {
            "clip_id": [r.id for r in keep],
            "sha256": [r.sha256 for r in keep],
            "original_name": [r.original_name for r in keep],
            "audio_path": [root + r.storage_key if root else None for r in keep],
            "duration_s": [r.duration_s for r in keep],
            "sample_rate": [r.sample_rate for r in keep],
            "channels": [r.channels for r in keep],
            "split": [r.split for r in keep],
            "label": pd.Series([r.label for r in keep], dtype=object),
            "transcript": pd.Series([r.transcript for r in keep], dtype=object),
            "tags": pd.Series(tags, dtype=object),
            "metadata": pd.Series(_metadata(keep), dtype=object),
        },
        columns=list(EXPORT_COLUMNS),
    )
    return frame, excluded


def _metadata(rows: list[Any]) -> list[dict[str, Any]]:
    """Each row's metadata from its JSON text, parsed as one JSON array."""
    parsed = json.loads("[" + ",".join(r.meta or "null" for r in rows) + "]")
    return [m if isinstance(m, dict) else {} for m in parsed]


def _is_augmented(derivation: Any) -> bool:
    if not isinstance(derivation, dict):
        return False
    kind = str(derivation.get("kind") or derivation.get("type") or "").lower()
    return kind.startswith("augment")


def _clip_tags(s: Session, project_id: int) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = defaultdict(list)
    q = (
        select(ClipTag.clip_id, ClipTag.tag)
        .join(Clip, Clip.id == ClipTag.clip_id)
        .where(Clip.project_id == project_id)
        .order_by(ClipTag.clip_id, ClipTag.tag)
    )
    for clip_id, tag in s.execute(q):
        tags[clip_id].append(tag)
    return tags


def _agreement(s: Session, info: ProjectInfo, rows: list[Any]) -> dict[int, float | None]:
    """Each clip's agreement: the recorded one, else the share of its annotations giving the final label."""
    out: dict[int, float | None] = {r.id: r.agreement for r in rows}
    missing = {r.id: r for r in rows if r.agreement is None or not math.isfinite(r.agreement)}
    if not missing:
        return out
    normalize = NormalizationRules.from_dict(info.normalization).normalize
    votes: dict[int, list[bool]] = defaultdict(list)
    q = (
        select(Annotation.clip_id, Annotation.label, Annotation.transcript)
        .join(Clip, Clip.id == Annotation.clip_id)
        .where(Annotation.project_id == info.id)
    )
    for clip_id, label, transcript in s.execute(q):
        row = missing.get(clip_id)
        if row is None:
            continue
        if row.label is not None:
            votes[clip_id].append(label == row.label)
        elif row.transcript is not None:
            votes[clip_id].append(
                transcript is not None and normalize(transcript) == normalize(row.transcript)
            )
    for clip_id in missing:
        v = votes.get(clip_id)
        out[clip_id] = sum(v) / len(v) if v else None
    return out


# ---------------------------------------------------------------- writing


def _latest_runs(s: Session, project_id: int) -> dict[str, tuple[int, str]]:
    """The latest run of each model (by name): name → (run id, code fingerprint)."""
    latest: dict[str, tuple[int, str]] = {}
    q = (
        select(ModelRun.id, ModelRun.name, ModelRun.code_fingerprint)
        .where(ModelRun.project_id == project_id)
        .order_by(ModelRun.id)
    )
    for run_id, name, fingerprint in s.execute(q):
        latest[name] = (run_id, fingerprint)
    return latest


def _labelstudio_frames(
    s: Session, project_id: int, clip_ids: set[int], runs: dict[str, tuple[int, str]]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Annotations and predictions of the exported clips, and the fingerprints of the runs used."""
    ann = [
        {
            "clip_id": cid,
            "annotator": name,
            "label": label,
            "transcript": transcript,
            "tags": list(tags or []),
            "unsure": bool(unsure),
            "time_spent_ms": spent,
            "convention_version": convention,
            "created_at": created,
            "updated_at": updated,
            "cannot_label_reason": reason,
        }
        for (
            cid,
            name,
            label,
            transcript,
            tags,
            unsure,
            spent,
            convention,
            created,
            updated,
            reason,
        ) in s.execute(
            select(
                Annotation.clip_id,
                User.name,
                Annotation.label,
                Annotation.transcript,
                Annotation.tags,
                Annotation.unsure,
                Annotation.time_spent_ms,
                Annotation.convention_version,
                Annotation.created_at,
                Annotation.updated_at,
                Annotation.cannot_label_reason,
            )
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == project_id)
            .order_by(Annotation.clip_id, Annotation.id)
        )
        if cid in clip_ids
    ]
    by_run = {run_id: name for name, (run_id, _) in runs.items()}
    preds = []
    used: set[str] = set()
    if by_run:
        q = (
            select(
                Prediction.run_id,
                Prediction.clip_id,
                Prediction.label,
                Prediction.transcript,
                Prediction.confidence,
            )
            .where(Prediction.run_id.in_(list(by_run)))
            .order_by(Prediction.clip_id, Prediction.run_id)
        )
        for run_id, cid, label, transcript, confidence in s.execute(q):
            if cid in clip_ids and (label is not None or transcript is not None):
                preds.append(
                    {
                        "clip_id": cid,
                        "model": by_run[run_id],
                        "label": label,
                        "transcript": transcript,
                        "confidence": confidence,
                    }
                )
                used.add(by_run[run_id])
    fingerprints = {name: runs[name][1] for name in sorted(used)}
    return (
        pd.DataFrame(ann, columns=list(ANNOTATION_COLUMNS)),
        pd.DataFrame(preds, columns=["clip_id", "model", "label", "transcript", "confidence"]),
        fingerprints,
    )


def export_project(
    ws: Workspace,
    project: str | int,
    *,
    fmt: str,
    out: Path | str,
    filters: ExportFilters = ExportFilters(),
    version: str | int | None = None,
    copy_audio: bool = True,
    progress: Progress = None,
    metadata_format: str | None = None,
    shard_size: int | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Export a project (or one of its dataset versions) to a new folder ``out``.

    Parameters
    ----------
    fmt
        One of :data:`EXPORT_FORMATS`: ``csv``, ``jsonl``, ``audiofolder``, ``nemo``, ``kaldi``,
        ``labelstudio``, ``lhotse``, ``webdataset``, ``commonvoice``, ``librispeech``, ``annotations``
        (one row per annotation).
    out
        A folder that does not exist yet (or is empty). It appears whole or not at all. Or an
        ``s3://bucket/prefix`` holding no objects yet: the export is built locally and uploaded there,
        its ``MANIFEST.json`` last.
    version
        A dataset version's name or id: export its frozen labels, and record its content hash.
    copy_audio
        Copy the audio into the export (named after the clips' original names), or refer to the
        stored files where they are. The audiofolder, WebDataset, Common Voice and LibriSpeech
        layouts always copy.
    progress
        Called with ``(clips written, total)``.
    metadata_format
        ``audiofolder`` only: ``jsonl`` (the default) or ``csv`` for its metadata files.
    shard_size
        ``webdataset`` only: the size in bytes each shard stays under (default 100 MB).
    overwrite
        Write into an ``out`` that already holds files (without it, such a folder is refused before
        any work, naming its files): the files an earlier export wrote there (its ``MANIFEST.json``
        lists them) are replaced or removed, every other file is kept, and a file of this export that
        would land on one of those refuses it (:mod:`labeling.data.export_folders`). Local folders only.

    The manifest records the dataset version's hash and the code fingerprints of the model runs: for
    Label Studio those whose predictions are in the tasks, otherwise the latest run of each model.
    """
    if fmt not in WRITERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "audiofolder" and not copy_audio:
        raise ExportError(
            "the audiofolder layout keeps the audio beside its metadata; export it with the audio"
        )
    if fmt == "webdataset" and not copy_audio:
        raise ExportError("WebDataset shards hold the audio itself; export them with the audio")
    if fmt == "commonvoice" and not copy_audio:
        raise ExportError("a Common Voice release keeps its audio in clips/; export it with the audio")
    if fmt == "librispeech" and not copy_audio:
        raise ExportError("a LibriSpeech tree holds its audio as FLAC files; export it with the audio")
    if fmt in PER_ANNOTATOR_FORMATS:
        with ws.db.read() as s:
            info = get_project(s, project)
        if info.labels_regions:
            # Each annotator's work here is a set of time regions; a clip table would hold empty labels.
            raise ExportError(
                f"{info.name!r} labels time regions, which the {fmt} export of clip labels cannot hold; "
                f"export them with `earmark regions export PATH --project {shlex.quote(info.name)} "
                "--format F --all` (csv, jsonl, labelstudio, nemo, lhotse; or rttm, audacity, kaldi per "
                "annotator with --annotator NAME)"
            )
    options: dict[str, Any] = {}
    if metadata_format is not None:
        if fmt != "audiofolder" or metadata_format not in ("jsonl", "csv"):
            raise ExportError("a metadata format (jsonl or csv) is chosen for the audiofolder layout only")
        options["metadata_format"] = metadata_format
    if shard_size is not None:
        if fmt != "webdataset":
            raise ExportError("a shard size is chosen for WebDataset shards only")
        if shard_size < MIN_SHARD_BYTES:
            raise ExportError(f"a shard holds at least {MIN_SHARD_BYTES:,} bytes; choose a larger shard size")
        options["shard_size"] = int(shard_size)
    if is_remote_url(out):
        if overwrite:
            raise ExportError("an object store prefix is never overwritten; choose a new prefix")
        with _gc_paused():
            return _export_to_url(ws, project, fmt, str(out), filters, version, copy_audio, progress, options)
    try:
        previous = check_target(Path(out), overwrite=overwrite)
    except FormatError as exc:
        raise ExportError(str(exc)) from None
    if previous.empty:
        with _gc_paused():
            return _export_project(
                ws, project, fmt, Path(out), filters, version, copy_audio, progress, options
            )
    # Built as a new folder beside the old one, then swapped in, keeping what no export wrote.
    out = Path(out)
    built = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    try:
        with _gc_paused():
            report = _export_project(ws, project, fmt, built, filters, version, copy_audio, progress, options)
        done = publish(built, out, overwrite=True)
    except FormatError as exc:
        raise ExportError(str(exc)) from None
    finally:
        shutil.rmtree(built, ignore_errors=True)
    report.out = str(out)
    report.overwritten = {"replaced": done.replaced, "removed": done.removed, "kept": done.kept}
    return report


def _export_to_url(
    ws: Workspace,
    project: str | int,
    fmt: str,
    url: str,
    filters: ExportFilters,
    version: str | int | None,
    copy_audio: bool,
    progress: Progress,
    options: dict[str, Any],
) -> ExportReport:
    """Build the export in a local scratch folder, then upload it under the ``s3://`` prefix ``url``
    (manifest last); a prefix that already holds objects is refused before any work."""
    try:
        require_empty_prefix(url)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise ExportError(str(exc)) from None
    scratch = ws.settings.data_dir / "exports" / f".upload-{secrets.token_hex(6)}"
    scratch.mkdir(parents=True)
    try:
        report = _export_project(
            ws, project, fmt, scratch / "export", filters, version, copy_audio, progress, options
        )
        try:
            publish_folder(scratch / "export", url, last=MANIFEST_NAME)
        except FileExistsError as exc:
            raise ExportError(str(exc)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.out = url
    return report


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while building and writing: an export allocates a few objects
    per clip that all live to the end, and collections triggered by them would walk every one of them
    again and again (a fifth of the time at 100,000 clips). Reference counting still frees the rest."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _export_project(
    ws: Workspace,
    project: str | int,
    fmt: str,
    out: Path,
    filters: ExportFilters,
    version: str | int | None,
    copy_audio: bool,
    progress: Progress,
    options: dict[str, Any],
) -> ExportReport:
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    with ws.db.read() as s:
        info = get_project(s, project)
        found = find_version(s, info.id, version) if version is not None else None
        frame, excluded = _export_rows(s, ws.store, info, filters, found.id if found else None)
        if frame.empty:
            total = sum(excluded.values())
            if not total:
                raise ExportError(
                    f"{info.name!r} has no clips to export" + (" in that version" if found else "")
                )
            why = ", ".join(f"{n:,} {EXCLUSION_REASONS[k]}" for k, n in excluded.items() if n)
            raise ExportError(
                f"no clip of {info.name!r} passes the filters" + (f" (of {total:,}: {why})" if why else "")
            )
        runs = _latest_runs(s, info.id)
        if fmt == "annotations":
            annotations, _, _ = _labelstudio_frames(s, info.id, set(frame["clip_id"].tolist()), {})
            fingerprints = {name: fp for name, (_, fp) in sorted(runs.items())}
            extra = {"annotations": annotations}
        elif fmt == "labelstudio":
            annotations, predictions, fingerprints = _labelstudio_frames(
                s, info.id, set(frame["clip_id"].tolist()), runs
            )
            extra = {
                "annotations": annotations,
                "predictions": predictions,
                "classes": info.classes,
                "tags": info.all_tags,
                "transcribes": info.transcribes,
            }
        else:
            fingerprints = {name: fp for name, (_, fp) in sorted(runs.items())}
    written = WRITERS[fmt](
        frame,
        out,
        copy_audio=copy_audio,
        progress=progress,
        dataset_version=found.content_hash if found else None,
        model_fingerprints=fingerprints,
        **extra,
        **options,
    )
    return ExportReport(
        project=info.name,
        format=fmt,
        out=str(out),
        n_clips=len(frame),
        n_files=len(written),
        audio="none" if fmt == "annotations" else "copied" if copy_audio else "referenced",
        dataset_version=found.content_hash if found else None,
        version_name=found.name if found else None,
        model_fingerprints=fingerprints,
        excluded=excluded,
        n_annotations=len(extra["annotations"]) if "annotations" in extra else 0,
        n_predictions=len(extra["predictions"]) if "predictions" in extra else 0,
        filters=filters.to_dict(),
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------- one file to download


def zip_folder(folder: Path, target: Path) -> Path:
    """Pack ``folder`` into the zip ``target`` (entries under the folder's name), file by file from
    disk; text is compressed, audio stored as it is. Written under a temporary name, then renamed."""
    folder, target = Path(folder), Path(target)
    partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    try:
        with zipfile.ZipFile(partial, "w", allowZip64=True) as zf:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                arcname = f"{folder.name}/{path.relative_to(folder).as_posix()}"
                text = path.suffix.lower() in _TEXT_SUFFIXES
                zf.write(path, arcname, compress_type=zipfile.ZIP_DEFLATED if text else zipfile.ZIP_STORED)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def export_zip(
    ws: Workspace,
    project: str | int,
    *,
    fmt: str,
    filters: ExportFilters = ExportFilters(),
    version: str | int | None = None,
    progress: Progress = None,
    folder: Path | None = None,
    keep_hours: float = 24.0,
) -> tuple[ExportReport, Path]:
    """Export with the audio copied and pack it into one zip, for a browser to download.

    The zip is written to ``folder`` (default: ``exports/`` in the data folder); the unpacked export
    is removed, and zips there older than ``keep_hours`` are deleted first.
    """
    folder = Path(folder) if folder is not None else ws.settings.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = (datetime.now(UTC) - timedelta(hours=keep_hours)).timestamp()
    for old in folder.glob("*.zip"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    with ws.db.read() as s:
        name = get_project(s, project).name
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = safe_name(unicodedata.normalize("NFKC", f"{name}-{fmt}-{stamp}").replace(" ", "_"), max_bytes=120)
    work = folder / f".{base}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        report = export_project(
            ws, project, fmt=fmt, out=work / base, filters=filters, version=version, progress=progress
        )
        target = zip_folder(work / base, folder / f"{base}.zip")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.out = str(target)
    return report, target
