"""Import audio into a project: :func:`import_source` for any source (``fmt="auto"`` detects it),
:func:`import_path` for a folder or zip, :func:`import_plan` for what a reader planned.

Each file is read once: hashed (SHA-256), decoded with libsndfile, checked, measured and stored
content-addressed. Bad files are skipped with a reason; everything else is inserted in ONE transaction,
so an import either lands whole or not at all. Re-running an import adds nothing: the same bytes are
the same clip.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analysis.quality import QualityMeter
from analysis.splits import assign_splits
from db.models import (
    Annotation,
    Clip,
    ClipTag,
    ImportBatch,
    ModelRun,
    Prediction,
    Project,
    Resolution,
    User,
    utcnow,
)
from labeling.data.clip_metadata import index_clip_metadata
from labeling.data.formats.base import FormatError, ImportPlan, Problem, SourceItem
from labeling.data.formats.commonvoice import read_commonvoice
from labeling.data.formats.detect import FOLDER_READERS, READER_OPTIONS, READERS, detect_format
from labeling.data.formats.folder import opened, read_folder
from labeling.data.formats.labelstudio import read_labelstudio
from labeling.data.formats.labelstudio_asr import MANIFEST_NAME as ASR_MANIFEST
from labeling.data.formats.labelstudio_asr import is_labelstudio_asr
from labeling.data.formats.nemo import read_nemo
from labeling.data.leftovers import incoming_files, sweep_orphan_audio, sweep_stale
from labeling.data.projects import ProjectError, ProjectInfo, create_project, get_project, validate_name
from labeling.platform.audit import record, record_many
from labeling.platform.jobs import queue_report_refreshes
from labeling.platform.storage import AudioStorage, sha256_bytes, sha256_file
from labeling.platform.workspace import Workspace

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 2 * 2**30
    min_duration_s: float = 0.01
    max_duration_s: float = 4 * 3600.0
    min_sample_rate: int = 1_000
    max_sample_rate: int = 384_000
    max_channels: int = 32
    # What a header may promise to decode to (float32 samples); a lying header stops here.
    max_decoded_bytes: int = 8 * 2**30
    # Samples decoded at a time per file (all channels): with the import's threads, this bounds memory.
    block_samples: int = 2**21
    # Memory one import may use for decoding; fixes how many files are decoded at once.
    max_memory_bytes: int = 1 * 2**30


@dataclass
class ImportReport:
    project: str
    batch_id: int | None
    n_imported: int
    n_duplicates: int
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    n_ignored: int = 0
    ignored: list[str] = field(default_factory=list)  # the files that are not audio, by name
    n_annotations: int = 0
    n_resolutions: int = 0
    seconds: float = 0.0
    created_project: bool = False
    hours: float = 0.0
    source_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rejected"] = [asdict(p) for p in self.rejected]
        d["warnings"] = [asdict(p) for p in self.warnings]
        return d

    def summary(self) -> str:
        rate = self.n_imported / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"{self.n_imported:,} clips imported into {self.project!r} ({self.hours:.2f} h of audio)",
            f"{self.n_duplicates:,} already present",
            # "not imported" rather than "rejected": besides files, a source's tasks, rows and cancelled
            # annotations can be left out.
            f"{len(self.rejected):,} not imported",
        ]
        if self.n_ignored:
            parts.append(f"{self.n_ignored:,} non-audio files ignored")
        return "; ".join(parts) + f" — {self.seconds:.1f} s, {rate:,.0f} files/s"


@dataclass
class PreparedFile:
    """A source file checked, measured and stored (outside any transaction), ready to become a clip."""

    item: SourceItem
    sha256: str
    storage_key: str
    stored_now: bool  # this import wrote the file (so a failed import may remove it)
    ext: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    audio_format: str
    quality: dict[str, float | None]
    # Measures a caller adds from the decoded samples (production traffic: the drift measures).
    extra: dict[str, float] = field(default_factory=dict)


class ImportRefused(ValueError):
    """The import as a whole was refused; nothing was written."""


Measure = Callable[[np.ndarray, int], dict[str, float]]
#: A caller's per-clip measures (``measure``) need the whole signal: files up to this many decoded
#: bytes (about four minutes of 16 kHz stereo) are kept whole for it; longer ones get none.
MEASURED_MAX_BYTES = 64 * 2**20


def _size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


_OUT_OF_MEMORY = "ran out of memory while decoding; the header may be lying about its size"


def _prepare(
    item: SourceItem, limits: Limits, store: AudioStorage | None, measure: Measure | None = None
) -> PreparedFile | Problem | None:
    """The file checked, measured and stored; with no ``store``, only checked (None: it would do)."""
    if store is not None:
        return _stored(item, _checked(item, limits, measure), store)
    try:
        decoded = _decode(item, limits, None)
    except MemoryError:
        return Problem(item.name, _OUT_OF_MEMORY)
    return decoded if isinstance(decoded, Problem) else None


@dataclass
class _Decoded:
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    audio_format: str
    quality: dict[str, float | None]
    extra: dict[str, float]
    sha256: str = ""  # set by _checked, once the file has passed


def _decode(item: SourceItem, limits: Limits, measure: Measure | None) -> _Decoded | Problem:
    """Every check a file must pass, and its measures, from one pass over its samples."""
    try:
        size = item.path.stat().st_size
    except OSError as exc:
        return Problem(item.name, f"cannot be read: {exc.strerror or exc}")
    if size == 0:
        return Problem(item.name, "empty file")
    if size > limits.max_file_bytes:
        return Problem(item.name, f"larger than {limits.max_file_bytes / 2**30:.0f} GiB")
    try:
        # Decoded a block at a time: memory follows the block size, not what the header claims.
        with item.path.open("rb") as raw, sf.SoundFile(raw) as f:
            sr, channels, frames, fmt = f.samplerate, f.channels, f.frames, f.format
            if not limits.min_sample_rate <= sr <= limits.max_sample_rate:
                return Problem(item.name, f"implausible sample rate {sr} Hz")
            if not 1 <= channels <= limits.max_channels:
                return Problem(item.name, f"implausible channel count {channels}")
            duration = frames / sr
            if duration > limits.max_duration_s:
                return Problem(
                    item.name, f"longer than {limits.max_duration_s / 3600:.0f} h ({duration:.0f} s)"
                )
            decoded = frames * channels * 4
            if decoded > limits.max_decoded_bytes:
                return Problem(
                    item.name,
                    f"its header promises {_size(decoded)} of decoded samples; "
                    f"the limit is {_size(limits.max_decoded_bytes)} per file",
                )
            meter = QualityMeter(sr)
            block = max(1, limits.block_samples // channels // meter.frame) * meter.frame
            finite = True
            keep = measure is not None and decoded <= MEASURED_MAX_BYTES
            kept: list[np.ndarray] = []
            for y in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                if finite and not np.isfinite(y).all():
                    finite = False
                if finite:
                    meter.add(y if channels > 1 else y[:, 0])
                    if keep:
                        kept.append(np.array(y, copy=True))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        # libsndfile's own words, without the "Error opening <_io.BytesIO object at 0x…>:" prefix.
        why = str(getattr(exc, "error_string", None) or exc).strip() or type(exc).__name__
        return Problem(item.name, f"not readable audio ({why})")
    except OSError as exc:
        return Problem(item.name, f"cannot be read: {exc.strerror or exc}")
    if not finite:
        return Problem(item.name, "decodes to non-finite samples")
    if meter.samples == 0:
        return Problem(item.name, "holds no audio samples")
    frames = meter.samples  # what actually decoded, not what the header promised
    duration = frames / sr
    if duration < limits.min_duration_s:
        return Problem(item.name, f"shorter than {limits.min_duration_s * 1000:.0f} ms")
    quality = meter.result().to_dict()
    extra: dict[str, float] = {}
    if measure is not None and kept:
        whole = np.concatenate(kept)
        extra = measure(whole.mean(axis=1) if channels > 1 else whole[:, 0], int(sr))
    return _Decoded(int(sr), int(channels), int(frames), float(duration), str(fmt), quality, extra)


def _checked(item: SourceItem, limits: Limits, measure: Measure | None) -> _Decoded | Problem:
    """:func:`_decode` and, for a file that passes, its SHA-256: everything but storing it, so it can
    run in a worker process and send back only the result (a few numbers), never the samples."""
    try:
        decoded = _decode(item, limits, measure)
    except MemoryError:
        return Problem(item.name, _OUT_OF_MEMORY)
    if not isinstance(decoded, Problem):
        decoded.sha256 = sha256_file(item.path)
    return decoded


def _stored(item: SourceItem, decoded: _Decoded | Problem, store: AudioStorage) -> PreparedFile | Problem:
    """A checked file put in the store, as the clip it becomes."""
    if isinstance(decoded, Problem):
        return decoded
    ext = item.path.suffix.lower().lstrip(".") or decoded.audio_format.lower()
    # Stored here, outside any transaction: content addressing makes it harmless if the import
    # later fails (an orphan sweep removes what no clip refers to), and the database write lock is
    # then held only for the inserts.
    try:
        key, made = store.put_file(item.path, ext, sha256=decoded.sha256)
    except OSError as exc:
        raise ImportRefused(
            f"cannot write to the audio store {store.url} ({exc.strerror or exc}); "
            "make it writable (EARMARK_DATA_DIR or EARMARK_AUDIO_URL). Nothing was imported"
        ) from exc
    return PreparedFile(
        item=item,
        sha256=decoded.sha256,
        storage_key=key,
        stored_now=made,
        ext=ext,
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
        frames=decoded.frames,
        duration_s=decoded.duration_s,
        audio_format=decoded.audio_format,
        quality=decoded.quality,
        extra=decoded.extra,
    )


def prepare_files(
    items: list[SourceItem],
    limits: Limits,
    store: AudioStorage,
    progress: Progress | None,
    measure: Measure | None = None,
    *,
    pool: Executor | None = None,
) -> Iterable[PreparedFile | Problem]:
    """Check, measure and store each file (a few at a time, within ``limits``' memory cap), in order.

    ``measure(y, sr)`` adds a caller's per-clip measures from the decoded mono signal (production
    traffic: the drift measures); files over :data:`MEASURED_MAX_BYTES` decoded get none.

    With ``pool`` (a process pool; ``measure`` then a module-level function, as pickling needs), each
    worker decodes, checks, measures and hashes a run of files and sends back only what it found;
    this process stores them. The checks, measures and messages are the same either way.
    """
    if pool is not None:
        yield from _prepare_in_pool(items, limits, store, progress, measure, pool)
        return
    # libsndfile, hashing, numpy and file I/O release the GIL for most of the work; a few threads
    # keep both cores busy while others wait on the disk.
    # Each decoding thread holds about ten blocks' worth of float32 work arrays at its peak, plus
    # the whole signal (at most MEASURED_MAX_BYTES) when a caller measures it.
    per_file = 10 * 4 * limits.block_samples + (MEASURED_MAX_BYTES if measure is not None else 0)
    workers = max(1, min(8, limits.max_memory_bytes // per_file))
    with ThreadPoolExecutor(max_workers=workers) as threads:
        work = threads.map(lambda it: _prepare(it, limits, store, measure), items)
        for done, result in enumerate(work, 1):
            if progress:
                progress(done, len(items))
            assert result is not None  # with a store, every file is stored or refused
            yield result


#: Files a process-pool worker takes at a time: few enough that both workers stay busy to the end and
#: progress moves, enough that handing them over costs nothing beside checking them.
POOL_CHUNK = 16
#: Files stored at once while the workers check the next ones (storing waits on the disk, not the CPU).
STORE_THREADS = 4


def _prepare_in_pool(
    items: list[SourceItem],
    limits: Limits,
    store: AudioStorage,
    progress: Progress | None,
    measure: Measure | None,
    pool: Executor,
) -> Iterator[PreparedFile | Problem]:
    checked = pool.map(_checked, items, repeat(limits), repeat(measure), chunksize=POOL_CHUNK)
    with ThreadPoolExecutor(max_workers=STORE_THREADS) as storing:
        pending: deque[Future[PreparedFile | Problem]] = deque()
        done = 0

        def ready() -> PreparedFile | Problem:
            nonlocal done
            result = pending.popleft().result()
            done += 1
            if progress:
                progress(done, len(items))
            return result

        for item, decoded in zip(items, checked, strict=True):
            pending.append(storing.submit(_stored, item, decoded, store))
            while pending and (len(pending) > 2 * STORE_THREADS or pending[0].done()):
                yield ready()
        while pending:
            yield ready()


def unmatched_problems(
    items: list[SourceItem], limits: Limits, progress: Progress | None = None
) -> list[Problem]:
    """Why each file the file-name pattern did not match is not imported: a file that would have been
    refused anyway (empty, not audio…) says that first, so the real problem is not hidden behind its
    name. Decoded like :func:`prepare_files` does, storing nothing."""
    problems = []
    workers = max(1, min(8, limits.max_memory_bytes // (10 * 4 * limits.block_samples)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (item, found) in enumerate(
            zip(items, pool.map(lambda it: _prepare(it, limits, None), items), strict=True), 1
        ):
            if progress:
                progress(done, len(items))
            if isinstance(found, Problem):
                why = f"{found.reason}; its name does not match the file-name pattern either"
            else:
                why = "name does not match the file-name pattern"
            problems.append(Problem(item.name, why))
    return problems


def ensure_users(s: Session, names: set[str]) -> dict[str, int]:
    """Annotators named by an external tool become accounts that cannot log in until given a password."""
    if not names:
        return {}
    existing = dict(s.execute(select(User.name, User.id).where(User.name.in_(names))).all())
    for name in sorted(names - set(existing)):
        user = User(name=name, role="annotator", password_hash=None)
        s.add(user)
        s.flush()
        existing[name] = user.id
        record(
            s,
            entity="user",
            entity_id=user.id,
            action="create",
            new={"name": name, "role": "annotator", "source": "import"},
        )
    return existing


def _existing_shas(s: Session, project_id: int, shas: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        found.update(
            s.scalars(select(Clip.sha256).where(Clip.project_id == project_id, Clip.sha256.in_(chunk)))
        )
    return found


def _existing_groups(s: Session, project_id: int, group_by: str) -> tuple[dict[str, str], dict[str, int]]:
    rows = s.execute(
        select(Clip.meta[group_by].as_string(), Clip.split).where(Clip.project_id == project_id)
    ).all()
    groups = {g: split for g, split in rows if g is not None}
    counts = pd.Series([split for _, split in rows], dtype="object").value_counts().to_dict()
    return groups, {str(k): int(v) for k, v in counts.items()}


def import_plan(
    ws: Workspace,
    project: str,
    plan: ImportPlan,
    *,
    source: str = "",
    group_by: str = "speaker",
    create: bool = True,
    task_kind: str | None = None,
    actor_id: int | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    batch_name: str | None = None,
) -> ImportReport:
    """Import what a reader planned. Nothing is written unless the whole import succeeds."""
    started = time.perf_counter()
    sweep_stale(incoming_files(ws.store))
    sweep_orphan_audio(ws.db, ws.store)
    limits = limits or Limits()
    rejected = list(plan.problems)
    prepared: list[PreparedFile] = []
    seen: set[str] = set()
    n_dupes = 0
    n_files, n_unmatched = len(plan.items), len(plan.unmatched)

    def files_progress(done: int, total: int) -> None:
        if progress:
            progress(done, n_files + n_unmatched)

    def unmatched_progress(done: int, total: int) -> None:
        if progress:
            progress(n_files + done, n_files + n_unmatched)

    for result in prepare_files(plan.items, limits, ws.store, files_progress):
        if isinstance(result, Problem):
            rejected.append(result)
        elif result.sha256 in seen:
            n_dupes += 1
        else:
            seen.add(result.sha256)
            prepared.append(result)
    rejected += unmatched_problems(plan.unmatched, limits, unmatched_progress)

    # A failed import leaves the files it stored: another import of the same audio may be about to
    # commit clips that use them. What no clip ends up using is swept later (labeling.data.leftovers).
    base_dupes = n_dupes
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            with ws.db.write() as s:
                _serialise_imports(s, project)
                info, created = _project_for_import(s, project, prepared, create, task_kind, actor_id)
                existing = _existing_shas(s, info.id, [p.sha256 for p in prepared])
                n_dupes = base_dupes + len(existing)
                fresh = [p for p in prepared if p.sha256 not in existing]
                batch_id = None
                n_ann = n_res = 0
                if fresh:
                    batch_id, n_ann, n_res = _insert(
                        s,
                        ws,
                        info,
                        fresh,
                        plan,
                        source=source,
                        group_by=group_by,
                        actor_id=actor_id,
                        n_dupes=n_dupes,
                        rejected=rejected,
                        batch_name=batch_name,
                    )
                    queue_report_refreshes(s, info.id)
            break
        except IntegrityError as exc:
            # Another import committed the same clips (or project) first: look again and skip them.
            if attempt == IMPORT_ATTEMPTS:
                raise ImportRefused(
                    f"another import into {project!r} kept committing the same clips; nothing was "
                    "imported — run this import again"
                ) from exc
    if len(fresh) >= ANALYZE_AFTER:
        ws.db.analyze()
    return ImportReport(
        project=info.name,
        batch_id=batch_id,
        n_imported=len(fresh),
        n_duplicates=n_dupes,
        rejected=rejected,
        warnings=list(plan.warnings),
        n_ignored=len(plan.ignored),
        ignored=list(plan.ignored),
        n_annotations=n_ann,
        n_resolutions=n_res,
        seconds=time.perf_counter() - started,
        created_project=created,
        hours=sum(p.duration_s for p in fresh) / 3600,
        source_format=plan.source_format,
    )


IMPORT_ATTEMPTS = 3
ANALYZE_AFTER = 1000  # clips: a bulk import refreshes PostgreSQL's planner statistics


def _serialise_imports(s: Session, project: str) -> None:
    """On PostgreSQL, imports into one project take turns (a transaction-scoped advisory lock): the
    second waits for the first to commit, then skips the clips it stored. SQLite's write transaction
    already serialises them."""
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"earmark-import:{project}".encode()) - 2**31
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _project_for_import(
    s: Session,
    name: str,
    prepared: list[PreparedFile],
    create: bool,
    task_kind: str | None,
    actor_id: int | None,
) -> tuple[ProjectInfo, bool]:
    existing = s.scalar(select(Project.id).where(Project.name == name))
    if existing is not None:
        return get_project(s, existing), False
    if not create:
        return get_project(s, name), False  # raises with the list of projects
    has_labels = any(p.item.label for p in prepared)
    has_text = any(p.item.transcript for p in prepared)
    kind = task_kind or (
        "both" if has_labels and has_text else "transcription" if has_text else "classification"
    )
    return create_project(s, name=name, task_kind=kind, actor_id=actor_id), True


def _insert(
    s: Session,
    ws: Workspace,
    info: ProjectInfo,
    fresh: list[PreparedFile],
    plan: ImportPlan,
    *,
    source: str,
    group_by: str,
    actor_id: int | None,
    n_dupes: int,
    rejected: list[Problem],
    batch_name: str | None,
) -> tuple[int, int, int]:
    now = utcnow()
    batch = ImportBatch(
        project_id=info.id,
        name=batch_name or f"import {now:%Y-%m-%d %H:%M:%S}",
        source=source,
        source_format=plan.source_format,
        created_by=actor_id,
        n_imported=len(fresh),
        n_duplicates=n_dupes,
        n_rejected=len(rejected),
        report={
            "rejected": [asdict(p) for p in rejected[:5000]],
            "warnings": [asdict(p) for p in plan.warnings[:5000]],
            "ignored": len(plan.ignored),
        },
    )
    s.add(batch)
    s.flush()

    splits = _splits_for(s, info, fresh, group_by)
    k = info.annotations_per_clip
    rows = []
    for p, split in zip(fresh, splits, strict=True):
        n_ext = len(p.item.annotations)
        rows.append(
            {
                "project_id": info.id,
                "sha256": p.sha256,
                "storage_key": p.storage_key,
                "original_name": p.item.name[:1000],
                "duration_s": p.duration_s,
                "sample_rate": p.sample_rate,
                "channels": p.channels,
                "frames": p.frames,
                "audio_format": p.audio_format,
                "meta": dict(p.item.metadata),
                "split": split,
                "import_batch_id": batch.id,
                "annotations_needed": max(k, n_ext),
                "annotation_count": n_ext,
                "priority": 0,
                # What the triggers on resolutions set when the final label is stored below; set
                # here, the fresh clip row is not written twice.
                "resolved": p.item.label is not None or p.item.transcript is not None,
                "created_at": now,
                **p.quality,
            }
        )
    ids: dict[str, int] = {}
    for start in range(0, len(rows), 1000):
        result = s.execute(insert(Clip).returning(Clip.id, Clip.sha256), rows[start : start + 1000])
        ids.update({sha: cid for cid, sha in result})
    index_clip_metadata(s, info.id)

    tag_rows = [
        {"clip_id": ids[p.sha256], "tag": t, "source": "import", "created_by": actor_id, "created_at": now}
        for p in fresh
        for t in dict.fromkeys(p.item.tags)
    ]
    if tag_rows:
        s.execute(insert(ClipTag), tag_rows)

    res_rows = [
        {
            "clip_id": ids[p.sha256],
            "project_id": info.id,
            "label": p.item.label,
            "transcript": p.item.transcript,
            "method": "imported",
            "resolved_by": actor_id,
            "created_at": now,
            "updated_at": now,
        }
        for p in fresh
        if p.item.label is not None or p.item.transcript is not None
    ]
    if res_rows:
        s.execute(insert(Resolution), res_rows)

    annotators = {a.annotator for p in fresh for a in p.item.annotations}
    user_ids = ensure_users(s, annotators)
    ann_rows = [
        {
            "project_id": info.id,
            "clip_id": ids[p.sha256],
            "annotator_id": user_ids[a.annotator],
            "label": a.label,
            "transcript": a.transcript,
            "tags": list(a.tags),
            "unsure": a.unsure,
            "source": plan.source_format,
            "created_at": now,
            "updated_at": now,
        }
        for p in fresh
        for a in _one_per_annotator(p.item)
    ]
    if ann_rows:
        s.execute(insert(Annotation), ann_rows)
    _insert_predictions(s, info, fresh, ids, plan, actor_id)
    _extend_classes(s, info, fresh, plan.declared_classes)
    _extend_tags(s, info, fresh, plan.declared_tags)

    record(
        s,
        entity="import_batch",
        entity_id=batch.id,
        action="create",
        new={"source": source, "imported": len(fresh), "duplicates": n_dupes, "rejected": len(rejected)},
        actor_id=actor_id,
        project_id=info.id,
    )
    record_many(
        s,
        (
            {
                "entity": "clip",
                "entity_id": ids[p.sha256],
                "action": "create",
                "new": {"sha256": p.sha256, "name": p.item.name, "batch": batch.id},
            }
            for p in fresh
        ),
        actor_id=actor_id,
        project_id=info.id,
    )
    return batch.id, len(ann_rows), len(res_rows)


def _one_per_annotator(item: SourceItem) -> list[Any]:
    by_name: dict[str, Any] = {}
    for a in item.annotations:
        by_name.setdefault(a.annotator, a)  # the first one a tool exported wins; it is the one shown there
    return list(by_name.values())


def _splits_for(s: Session, info: ProjectInfo, fresh: list[PreparedFile], group_by: str) -> list[str]:
    explicit = [p.item.split for p in fresh]
    if all(explicit):
        return [str(x) for x in explicit]
    existing, counts = _existing_groups(s, info.id, group_by)
    groups = pd.Series([p.item.metadata.get(group_by) or f"clip:{p.sha256}" for p in fresh], dtype="object")
    assigned = assign_splits(groups, existing=existing, existing_counts=counts, salt=info.name)
    return [e or a for e, a in zip(explicit, assigned.tolist(), strict=True)]


def _insert_predictions(
    s: Session,
    info: ProjectInfo,
    fresh: list[PreparedFile],
    ids: dict[str, int],
    plan: ImportPlan,
    actor_id: int | None,
) -> None:
    by_model: dict[str, list[tuple[int, Any]]] = {}
    for p in fresh:
        for pred in p.item.predictions:
            by_model.setdefault(pred.model, []).append((ids[p.sha256], pred))
    for model, preds in by_model.items():
        run = ModelRun(
            project_id=info.id,
            kind="external",
            name=model or "imported predictions",
            code_fingerprint=sha256_bytes(f"external:{plan.source_format}:{model}".encode()),
            params={"source_format": plan.source_format},
            created_by=actor_id,
        )
        s.add(run)
        s.flush()
        seen: set[int] = set()
        rows = []
        for clip_id, pred in preds:
            if clip_id in seen:
                continue
            seen.add(clip_id)
            conf = pred.confidence
            rows.append(
                {
                    "run_id": run.id,
                    "clip_id": clip_id,
                    "label": pred.label,
                    "transcript": pred.transcript,
                    "confidence": None if conf is None else float(min(1.0, max(0.0, conf))),
                }
            )
        s.execute(insert(Prediction), rows)
        record(
            s,
            entity="model_run",
            entity_id=run.id,
            action="create",
            new={"name": run.name, "kind": "external", "n": len(rows)},
            actor_id=actor_id,
            project_id=info.id,
        )


def _extend_classes(
    s: Session, info: ProjectInfo, fresh: list[PreparedFile], declared: Iterable[str] = ()
) -> None:
    labels = {p.item.label for p in fresh if p.item.label} | {
        a.label for p in fresh for a in p.item.annotations if a.label
    }
    new = [c for c in declared if c not in info.classes]  # a source's declared classes, in its order
    new += sorted(labels - set(info.classes) - set(new), key=lambda c: (len(c), c))
    if new:
        project = s.get(Project, info.id)
        assert project is not None
        project.classes = [*info.classes, *new]


def _extend_tags(
    s: Session, info: ProjectInfo, fresh: list[PreparedFile], declared: Iterable[str] = ()
) -> None:
    """Tags (``group:value``) the source declares or uses join the project's tag vocabulary, in the
    source's order: an import into a new project brings its tag groups along, as it brings classes."""
    groups = {g: list(v) for g, v in info.tag_groups.items()}
    used = [t for p in fresh for t in (*p.item.tags, *(t for a in p.item.annotations for t in a.tags))]
    added = False
    for tag in dict.fromkeys([*declared, *used]):
        group, colon, value = str(tag).partition(":")
        group, value = group.strip(), value.strip()
        if not (colon and group and value) or value in groups.get(group, ()):
            continue
        try:
            validate_name(group, what="tag group")
            validate_name(value, what="tag")
        except ProjectError:
            continue  # stays on its clips; the vocabulary takes names people can pick
        groups.setdefault(group, []).append(value)
        added = True
    if added:
        project = s.get(Project, info.id)
        assert project is not None
        project.tag_groups = groups


def import_path(
    ws: Workspace,
    path: Path,
    project: str,
    *,
    pattern: str | None = None,
    metadata: Path | None = None,
    join: str | None = None,
    group_by: str = "speaker",
    create: bool = True,
    actor_id: int | None = None,
    progress: Progress | None = None,
    limits: Limits | None = None,
    shown_as: str | None = None,
) -> ImportReport:
    """Import a folder (recursively) or a zip of audio files, with optional pattern and metadata CSV.

    ``shown_as`` names the source in messages (default: its file name).
    """
    with opened(Path(path)) as root:
        plan = read_folder(root, pattern=pattern, metadata=metadata, join=join)
        if not plan.items and not plan.problems and not plan.unmatched:
            why = ""
            if plan.ignored:
                verb = "is" if len(plan.ignored) == 1 else "are"
                why = (
                    f": {_listed(plan.ignored)} {verb} not audio (WAV, FLAC, OGG, MP3 and the other "
                    "formats libsndfile reads are)"
                )
            raise ImportRefused(f"no audio files found in {shown_as or Path(path).name}{why}")
        return import_plan(
            ws,
            project,
            plan,
            source=str(path),
            group_by=group_by,
            create=create,
            actor_id=actor_id,
            progress=progress,
            limits=limits,
        )


def _safe_upload_name(name: str, taken: set[str]) -> str:
    """A browser-supplied name reduced to a plain, unique file name (no folders, no tricks)."""
    base = Path(str(name).replace("\\", "/")).name.strip().lstrip(".") or "upload"
    base = "".join(c if c.isprintable() and c not in '<>:"|?*' else "_" for c in base)[:200]
    stem, suffix = Path(base).stem or "upload", Path(base).suffix
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    taken.add(candidate.lower())
    return candidate


def import_uploads(
    ws: Workspace,
    project: str,
    files: Iterable[tuple[str, bytes]],
    *,
    metadata: tuple[str, bytes] | None = None,
    pattern: str | None = None,
    join: str | None = None,
    group_by: str = "speaker",
    actor_id: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import files uploaded through the browser: audio files and/or zips, plus an optional CSV."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="earmark-upload-") as tmp:
        root = Path(tmp) / "files"
        root.mkdir()
        taken: set[str] = set()
        zips: list[Path] = []
        for name, data in files:
            safe = _safe_upload_name(name, taken)
            (root / safe).write_bytes(data)
            if safe.lower().endswith(".zip"):
                zips.append(root / safe)
        meta_path = None
        if metadata is not None:
            meta_path = Path(tmp) / "metadata.csv"
            meta_path.write_bytes(metadata[1])
        if len(zips) == 1 and len(taken) == 1:
            source = zips[0]
        else:
            # Unpack every zip beside the loose files, so one import covers them all.
            for z in zips:
                with opened(z) as unpacked:
                    target = root / z.stem
                    for f in unpacked.rglob("*"):
                        if f.is_file():
                            dest = target / f.relative_to(unpacked)
                            dest.parent.mkdir(parents=True, exist_ok=True)
                            dest.write_bytes(f.read_bytes())
                z.unlink()
            source = root
        return import_path(
            ws,
            source,
            project,
            pattern=pattern,
            metadata=meta_path,
            join=join,
            group_by=group_by,
            actor_id=actor_id,
            progress=progress,
            shown_as="the upload",
        )


def _listed(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit:,} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def not_audio_reason(name: str) -> str:
    """Why a file was left out of an import without being read: it is not named as audio."""
    suffix = Path(name).suffix
    if not suffix:
        return "not an audio file (its name has no extension)"
    return f"not an audio file ({suffix} is not an audio format libsndfile reads)"


def not_imported_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """``what``, ``reason``: everything an import left out, each file by name — the files that are not
    audio too. ``report`` is :meth:`ImportReport.to_dict` (an import job's result is one)."""
    rows = [{"what": p["ref"], "reason": p["reason"]} for p in report.get("rejected") or ()]
    rows += [{"what": name, "reason": not_audio_reason(name)} for name in report.get("ignored") or ()]
    return pd.DataFrame(rows, columns=["what", "reason"])


# ---------------------------------------------------------------- any source, by format

#: What :func:`import_source` reads (``auto`` asks :func:`~labeling.data.formats.detect.detect_format`).
SOURCE_FORMATS = (
    "auto",
    "folder",
    "labelstudio",
    "commonvoice",
    "audiofolder",
    "nemo",
    "kaldi",
    "librispeech",
)
#: An Earmark export names its format in MANIFEST.json; the reader that reads it back.
_EXPORT_READERS = {"csv": "audiofolder", "jsonl": "audiofolder", "audiofolder": "audiofolder"} | {
    f: f for f in ("nemo", "labelstudio", "kaldi")
}
_COMMONVOICE_SPLITS = ("train.tsv", "dev.tsv", "test.tsv")


def source_format(path: Path, fmt: str = "auto") -> str:
    """The format :func:`import_source` reads ``path`` as: ``fmt`` itself, or what detection says.

    A folder Earmark exported is recognised by its ``MANIFEST.json``.
    """
    if fmt not in SOURCE_FORMATS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(SOURCE_FORMATS)}")
    if fmt != "auto":
        return fmt
    path = Path(path)
    detected = detect_format(path)
    if detected == "folder":
        made_by_earmark = _export_format(path)
        if made_by_earmark is not None:
            return _EXPORT_READERS.get(made_by_earmark, detected)
    return detected


def _export_format(path: Path) -> str | None:
    """The format an Earmark export folder says it is in (its ``MANIFEST.json``), else None."""
    manifest = path / "MANIFEST.json"
    if not manifest.is_file():
        return None
    try:
        head = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(head.get("format")) if isinstance(head, dict) and head.get("earmark_export") else None


def read_source(
    path: Path, fmt: str, *, audio_root: Path | None = None, options: dict[str, Any] | None = None
) -> ImportPlan:
    """Plan the import of a non-folder source (``fmt`` as :func:`source_format` names it).

    A folder given for a format whose reader takes one file is read whole: every NeMo manifest in it,
    Label Studio's ``tasks.json``, or Common Voice's ``train``/``dev``/``test`` TSVs (else
    ``validated.tsv``). ``options`` go to the reader (see ``READER_OPTIONS``).
    """
    path = Path(path)
    options = dict(options or {})
    if fmt == "labelstudio" and _is_asr_manifest(path):
        fmt = "labelstudio_asr"  # named as Label Studio, and it is its ASR_MANIFEST export
    family = "labelstudio" if fmt.startswith("labelstudio") else fmt
    unknown = sorted(set(options) - READER_OPTIONS.get(family, frozenset()))
    if unknown:
        raise FormatError(f"{', '.join(unknown)} do(es) not apply to {fmt} sources")
    if not path.is_dir() or fmt in FOLDER_READERS:
        return READERS[fmt](path, audio_root=audio_root, **options)
    if fmt == "nemo":
        return _nemo_folder(path, audio_root, options)
    if fmt.startswith("labelstudio"):
        if not (path / "tasks.json").is_file():
            raise FormatError(f"{path} is a folder; name the file Label Studio exported")
        return read_labelstudio(path / "tasks.json", audio_root=audio_root or path, **options)
    if fmt == "commonvoice":
        tsvs = [path / n for n in _COMMONVOICE_SPLITS if (path / n).is_file()]
        validated = path / "validated.tsv"
        if validated.is_file() and (not tsvs or _export_format(path) == "commonvoice"):
            # Earmark's own export lists its clips without a split in validated.tsv only; a
            # release's validated.tsv holds far more than its splits, and is read only alone.
            tsvs.append(validated)
        if not tsvs:
            raise FormatError(f"{path} holds no train.tsv, dev.tsv, test.tsv or validated.tsv; name the TSV")
        merged = _merged(path, fmt, [read_commonvoice(f, audio_root=audio_root) for f in tsvs])
        first: dict[Path, SourceItem] = {}
        for item in merged.items:
            first.setdefault(item.path, item)  # a split's TSV comes before validated.tsv
        merged.items = list(first.values())
        return merged
    raise FormatError(f"{path} is a folder; name the {fmt} file to import")


def _nemo_folder(path: Path, audio_root: Path | None, options: dict[str, Any]) -> ImportPlan:
    """Every ``.json``/``.jsonl`` manifest in a folder. Anything else named like one (a stray
    ``train_manifest.json.bak``), or a JSON file that is no manifest, is skipped and said so: one
    stray file does not stop the manifests beside it."""
    files = sorted(p for p in path.glob("*.json*") if p.is_file() and p.name != "MANIFEST.json")
    plans: list[ImportPlan] = []
    skipped: list[Problem] = []
    refused: FormatError | None = None
    for file in files:
        if file.suffix.lower() not in (".json", ".jsonl"):
            why = "not a manifest (NeMo manifests end in .json or .jsonl); skipped"
            skipped.append(Problem(file.name, why))
            continue
        try:
            plans.append(read_nemo(file, audio_root=audio_root, **options))
        except FormatError as exc:
            refused = refused or exc
            skipped.append(Problem(file.name, f"{exc}; skipped"))
    if not plans and refused is not None:
        raise refused
    merged = _merged(path, "nemo", plans)
    merged.problems[:0] = skipped
    return merged


def _is_asr_manifest(path: Path) -> bool:
    manifest = path / ASR_MANIFEST if path.is_dir() else path
    return manifest.is_file() and is_labelstudio_asr(manifest)


def _merged(path: Path, fmt: str, plans: list[ImportPlan]) -> ImportPlan:
    if not plans:
        raise FormatError(f"{path} holds no {fmt} file to import")
    merged = ImportPlan(source_format=fmt)
    for plan in plans:
        merged.items += plan.items
        merged.problems += plan.problems
        merged.warnings += plan.warnings
        merged.ignored += plan.ignored
    return merged


def import_source(
    ws: Workspace,
    path: Path,
    project: str,
    *,
    fmt: str = "auto",
    audio_root: Path | None = None,
    pattern: str | None = None,
    metadata: Path | None = None,
    join: str | None = None,
    group_by: str = "speaker",
    create: bool = True,
    actor_id: int | None = None,
    progress: Progress | None = None,
    limits: Limits | None = None,
    reader_options: dict[str, Any] | None = None,
) -> ImportReport:
    """Import a folder, zip, Label Studio export, Common Voice TSV, audiofolder, NeMo manifest, Kaldi
    data directory or LibriSpeech tree.

    ``audio_root`` is the folder the source's file references point into (Label Studio's upload
    folder, Common Voice's clips…); nothing outside it (or the source's own folder) is read.
    ``pattern``, ``metadata`` and ``join`` apply to plain folders and zips. Every format goes through
    :func:`import_plan`, so decoding, checks, de-duplication and the single transaction are shared.
    ``reader_options`` go to the format's reader (a Label Studio ``config``, ``users``; NeMo's and
    Kaldi's ``path_map``); a Label Studio reader also gets the project's classes and tags.
    Raises :class:`~labeling.data.formats.base.FormatError` when the source cannot be read and
    :class:`ImportRefused` when nothing in it can be imported; either way nothing is written.
    """
    path = Path(path)
    fmt = source_format(path, fmt)
    if fmt in ("folder", "zip"):
        return import_path(
            ws,
            path,
            project,
            pattern=pattern,
            metadata=metadata,
            join=join,
            group_by=group_by,
            create=create,
            actor_id=actor_id,
            progress=progress,
            limits=limits,
        )
    if pattern or metadata or join:
        raise ImportRefused(
            f"a file-name pattern, metadata CSV or join applies to plain folders and zips; "
            f"{path.name} is read as {fmt}"
        )
    options = dict(reader_options or {})
    if fmt.startswith("labelstudio"):
        with ws.db.read() as s:
            known = s.scalar(select(Project.id).where(Project.name == project))
            if known is not None:
                info = get_project(s, known)
                options.setdefault("classes", info.classes)
                options.setdefault("tag_groups", info.tag_groups)
    plan = read_source(path, fmt, audio_root=audio_root, options=options)
    if not plan.items:
        listed = "; ".join(f"{p.ref}: {p.reason}" for p in plan.problems[:3])
        more = f" (and {len(plan.problems) - 3:,} more)" if len(plan.problems) > 3 else ""
        why = f": {listed}{more}" if listed else ": it names no audio"
        raise ImportRefused(f"nothing in {path.name} can be imported{why}")
    return import_plan(
        ws,
        project,
        plan,
        source=str(path),
        group_by=group_by,
        create=create,
        actor_id=actor_id,
        progress=progress,
        limits=limits,
    )
