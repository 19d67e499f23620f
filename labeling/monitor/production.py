"""Production traffic in: :func:`import_production` for a prediction log or a folder of audio,
:func:`log_predictions` for records a script holds.

A prediction log is JSON Lines, one request per line::

    {"audio": "2026-11-30/req-81.wav", "timestamp": "2026-11-30T10:15:02+00:00", "model": "digits-v3",
     "prediction": "7", "confidence": 0.91, "latency_ms": 38.5, "request_id": "req-81",
     "device": "android", "user_action": "retry", "meta": {"app": "3.2"}}

``audio`` is a path relative to the log (or to ``audio_root`` when given) and never outside it;
``timestamp`` is ISO 8601 with a zone; ``prediction`` (a class, or ``null``/``""`` for an empty
output) or ``transcript`` is what the live model answered. ``confidence``, ``latency_ms``,
``request_id``, ``device``, ``user_action`` (``retry``, ``switched_to_typing``…) and ``error`` are
optional; ``meta`` and any other key are kept as free metadata.

Each audio file is decoded, measured (the import's quality measures and the drift measures of
:func:`analysis.drift.clip_measures`) and stored like any import. Lines that cannot be taken are
listed with their line number and the reason; the rest lands in ONE transaction, in a production
batch. Re-ingesting adds nothing: a request is known by its ``request_id``, else by its audio's hash
and timestamp. Production clips live in their own table and never enter train/dev/test, dataset
versions or label-issue detection (see :mod:`labeling.monitor.loop` for how they come back in).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.models import ImportBatch, ProductionClip, utcnow
from labeling.data.formats.base import Problem, SourceItem
from labeling.data.formats.folder import read_folder
from labeling.data.importer import Limits, PreparedFile, prepare_files
from labeling.data.projects import ProjectInfo, get_project
from labeling.monitor.live import live_model_scorer
from labeling.monitor.prediction_log import LogFileError, check_size, check_values, log_lines, parse_line
from labeling.platform.audit import record
from labeling.platform.workspace import Workspace

Progress = Callable[[int, int], None]

#: The format name production batches carry in ``import_batches.source_format``.
PRODUCTION_FORMAT = "production"
#: Keys of a log line with a column of their own; any other key is free metadata.
KNOWN_KEYS = frozenset(
    {
        "audio",
        "timestamp",
        "model",
        "prediction",
        "transcript",
        "confidence",
        "latency_ms",
        "request_id",
        "device",
        "user_action",
        "error",
        "meta",
    }
)
#: A timestamp later than the importing machine's clock by more than this is "in the future".
CLOCK_SKEW = timedelta(minutes=5)


class ProductionError(ValueError):
    """The production import as a whole was refused; nothing was written."""


@dataclass
class ProductionReport:
    project: str
    batch: str
    batch_id: int | None
    n_logged: int
    n_duplicates: int
    rejected: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    scored_by: str | None = None  # the live model's run, when the audio came without predictions

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rejected"] = [asdict(p) for p in self.rejected]
        return d

    def summary(self) -> str:
        rate = self.n_logged / self.seconds if self.seconds > 0 else 0.0
        scored = f"; scored by the live model {self.scored_by!r}" if self.scored_by else ""
        return (
            f"{self.n_logged:,} production requests logged in batch {self.batch!r} of {self.project!r}; "
            f"{self.n_duplicates:,} already logged; {len(self.rejected):,} not taken{scored}"
            f" — {self.seconds:.1f} s, {rate:,.0f} clips/s"
        )


@dataclass
class _Record:
    ref: str  # "line 12" or "record 3"
    path: Path
    name: str
    timestamp: datetime
    model: str
    prediction: str | None
    transcript: str | None
    confidence: float | None
    latency_ms: float | None
    request_id: str | None
    device: str | None
    user_action: str | None
    error: str | None
    meta: dict[str, Any]


def measure_clip(y: np.ndarray, sr: int) -> dict[str, float]:
    """The drift measures of one decoded clip (:func:`analysis.drift.clip_measures`), as floats."""
    from analysis.drift import clip_measures

    return {k: float(v) for k, v in clip_measures(y, sr).items()}


#: Batches of at least this many files are checked and measured in worker processes: the drift
#: measures are many small numpy steps that hold the GIL, so threads alone leave the second core idle;
#: below it, starting the workers costs more than they save.
PROCESS_MIN_FILES = 200


@contextlib.contextmanager
def _file_workers(n_files: int) -> Iterator[Executor | None]:
    """A pool of one worker process per core for ``n_files`` files, or None for a few (they are
    checked and measured on this process's threads). A worker decodes, checks, measures and hashes
    a file and sends back only the numbers, so no samples cross between processes."""
    workers = min(os.cpu_count() or 1, 8)
    if n_files < PROCESS_MIN_FILES or workers < 2:
        yield None
        return
    import analysis.drift  # noqa: F401  (imported once here, not once per forked worker)
    from analysis.processes import plain_main, pool_context

    with plain_main():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(__name__))
        try:
            yield pool
        finally:
            # On a refused import, files not yet handed to a worker are not decoded for nothing.
            pool.shutdown(wait=True, cancel_futures=True)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} is not a number ({value!r})")
    return float(value)


def _text(value: Any, what: str, limit: int = 200) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{what} is not text ({value!r})")
    text = str(value)
    if len(text) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return text


def _timestamp(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("no timestamp (ISO 8601 with a time zone, e.g. 2026-11-30T10:15:02+00:00)")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"timestamp {value!r} is not ISO 8601") from exc
    if when.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone (add +00:00 or Z)")
    if when > now + CLOCK_SKEW:
        raise ValueError(f"timestamp {value!r} is in the future")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise ValueError(f"timestamp {value!r} is out of range") from None


def _audio(value: Any, base: Path, root: Path | None = None) -> tuple[Path, str]:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("no audio path")
    root = base.resolve() if root is None else root
    path = (base / value).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"audio {value!r} lies outside {'the audio root' if base else 'the log folder'}")
    if not path.is_file():
        raise ValueError(f"audio file not found: {value}")
    return path, path.relative_to(root).as_posix()


def parse_record(
    raw: Any,
    ref: str,
    *,
    base: Path,
    info: ProjectInfo,
    now: datetime,
    default_model: str | None = None,
    root: Path | None = None,
) -> _Record:
    """One log record checked and typed; raises ValueError with the reason. ``root`` is ``base``
    resolved, when the caller has resolved it once for many records."""
    if not isinstance(raw, Mapping):
        raise ValueError("not a JSON object")
    check_values(raw)
    path, name = _audio(raw.get("audio"), base, root)
    timestamp = _timestamp(raw.get("timestamp"), now)
    model = _text(raw.get("model"), "model") or default_model
    if not model:
        raise ValueError("no model (the live model's name or version)")
    if "prediction" not in raw and "transcript" not in raw:
        raise ValueError("neither prediction nor transcript")
    prediction = _text(raw.get("prediction"), "prediction")
    prediction = prediction if prediction else None  # "" and null are both an empty output
    if prediction is not None and info.classifies and info.classes and prediction not in info.classes:
        raise ValueError(f"unknown class {prediction!r} (classes: {', '.join(info.classes)})")
    transcript = raw.get("transcript")
    if transcript is not None and not isinstance(transcript, str):
        raise ValueError("transcript is not text")
    confidence = _number(raw.get("confidence"), "confidence")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence} is outside 0…1")
    latency = _number(raw.get("latency_ms"), "latency_ms")
    if latency is not None and latency < 0:
        raise ValueError(f"negative latency ({latency} ms)")
    meta = raw.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise ValueError("meta is not a JSON object")
    extra = {k: v for k, v in raw.items() if k not in KNOWN_KEYS}
    check_size({**dict(meta), **extra})
    return _Record(
        ref=ref,
        path=path,
        name=name,
        timestamp=timestamp,
        model=model,
        prediction=prediction,
        transcript=transcript,
        confidence=confidence,
        latency_ms=latency,
        request_id=_text(raw.get("request_id"), "request_id"),
        device=_text(raw.get("device"), "device"),
        user_action=_text(raw.get("user_action"), "user_action", 100),
        error=_text(raw.get("error"), "error", 500),
        meta={**dict(meta), **extra},
    )


def read_prediction_log(
    path: Path, *, info: ProjectInfo, audio_root: Path | None = None, now: datetime | None = None
) -> tuple[list[_Record], list[Problem]]:
    """The records of a JSON Lines log, and a problem per line that cannot be taken."""
    now = now or datetime.now(UTC)
    base = audio_root if audio_root is not None else path.parent
    root = base.resolve()  # once, not for every line
    records: list[_Record] = []
    problems: list[Problem] = []
    try:
        for number, line, unreadable in log_lines(path):
            ref = f"line {number}"
            if line is None:
                problems.append(Problem(ref, unreadable))
                continue
            try:
                records.append(parse_record(parse_line(line), ref, base=base, info=info, now=now, root=root))
            except Exception as exc:  # whatever is wrong with a line is that line's problem
                problems.append(Problem(ref, _reason(exc)))
    except LogFileError as exc:
        raise ProductionError(str(exc)) from exc
    return records, problems


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return f"cannot be read ({type(exc).__name__}: {exc})"[:500]


def _dedup_key(rec: _Record, sha256: str) -> str:
    if rec.request_id:
        return f"request:{rec.request_id}"
    return f"audio:{sha256}@{rec.timestamp.isoformat()}"


def _measures(p: PreparedFile) -> dict[str, float | None]:
    return {"duration_s": p.duration_s, **p.quality, **p.extra}


def _batch_row(s: Session, info: ProjectInfo, name: str, source: str, actor_id: int | None) -> ImportBatch:
    batch = s.scalar(
        select(ImportBatch).where(
            ImportBatch.project_id == info.id,
            ImportBatch.name == name,
            ImportBatch.source_format == PRODUCTION_FORMAT,
        )
    )
    if batch is None:
        batch = ImportBatch(
            project_id=info.id, name=name, source=source, source_format=PRODUCTION_FORMAT, created_by=actor_id
        )
        s.add(batch)
        s.flush()
    return batch


def _ingest(
    ws: Workspace,
    info: ProjectInfo,
    records: list[_Record],
    problems: list[Problem],
    *,
    batch: str,
    source: str,
    actor_id: int | None,
    progress: Progress | None,
    score: Callable[[list[PreparedFile]], pd.DataFrame] | None = None,
) -> ProductionReport:
    started = time.perf_counter()
    if not batch or len(batch) > 300:
        raise ProductionError("a production batch needs a name of 1 to 300 characters")
    records, n_known = _unlogged_requests(ws, info.id, records)
    items = [SourceItem(path=r.path, name=r.name) for r in records]
    prepared: dict[int, PreparedFile] = {}
    with _file_workers(len(items)) as pool:
        results = prepare_files(items, Limits(), ws.store, progress, measure_clip, pool=pool)
        for i, result in enumerate(results):
            if isinstance(result, Problem):
                problems.append(Problem(records[i].ref, f"audio {result.ref}: {result.reason}"))
            else:
                prepared[i] = result
    scored_by = None
    if score is not None and prepared:
        scores = score(list(prepared.values()))
        scored_by = str(scores.attrs.get("model", "live model"))
        labels, confidences = scores["label"].to_dict(), scores["confidence"].to_dict()
        for i, p in prepared.items():
            records[i].prediction = str(labels[p.sha256])
            records[i].confidence = float(confidences[p.sha256])
            records[i].model = scored_by
    rows: dict[str, dict[str, Any]] = {}
    n_dupes = n_known
    for i, p in prepared.items():
        rec = records[i]
        key = _dedup_key(rec, p.sha256)
        if key in rows:
            n_dupes += 1
            continue
        rows[key] = {
            "project_id": info.id,
            "dedup_key": key,
            "request_id": rec.request_id,
            "sha256": p.sha256,
            "storage_key": p.storage_key,
            "original_name": rec.name,
            "timestamp": rec.timestamp,
            "model": rec.model,
            "prediction": rec.prediction,
            "transcript": rec.transcript,
            "confidence": rec.confidence,
            "latency_ms": rec.latency_ms,
            "device": rec.device,
            "user_action": rec.user_action,
            "error": rec.error,
            "meta": rec.meta,
            "duration_s": p.duration_s,
            "sample_rate": p.sample_rate,
            "channels": p.channels,
            "frames": p.frames,
            "audio_format": p.audio_format,
            "measures": jsonable_measures(_measures(p)),
            "created_at": utcnow(),
        }
    # Audio stored above stays if this fails: another import may be committing clips that use it, and
    # what nothing refers to is swept later (labeling.data.leftovers).
    with ws.db.write() as s:
        known: set[str] = set()
        keys = list(rows)
        for start in range(0, len(keys), 500):
            known.update(
                s.scalars(
                    select(ProductionClip.dedup_key).where(
                        ProductionClip.project_id == info.id,
                        ProductionClip.dedup_key.in_(keys[start : start + 500]),
                    )
                )
            )
        n_dupes += len(known)
        fresh = [r for k, r in rows.items() if k not in known]
        batch_id = None
        if fresh:
            row = _batch_row(s, info, batch, source, actor_id)
            batch_id = row.id
            for start in range(0, len(fresh), 2000):
                s.execute(
                    insert(ProductionClip),
                    [{**r, "batch_id": row.id} for r in fresh[start : start + 2000]],
                )
            row.n_imported = (row.n_imported or 0) + len(fresh)
            row.n_duplicates = (row.n_duplicates or 0) + n_dupes
            row.n_rejected = (row.n_rejected or 0) + len(problems)
            row.report = {
                **(row.report or {}),
                "rejected": [asdict(p) for p in problems[:1000]],
                "scored_by": scored_by,
            }
            record(
                s,
                entity="production_batch",
                entity_id=row.id,
                action="create",
                new={"name": batch, "source": source, "n": len(fresh), "rejected": len(problems)},
                actor_id=actor_id,
                project_id=info.id,
            )
    return ProductionReport(
        project=info.name,
        batch=batch,
        batch_id=batch_id,
        n_logged=len(fresh),
        n_duplicates=n_dupes,
        rejected=problems,
        seconds=time.perf_counter() - started,
        scored_by=scored_by,
    )


def _unlogged_requests(ws: Workspace, project_id: int, records: list[_Record]) -> tuple[list[_Record], int]:
    """The records whose request id is neither logged already nor repeated earlier in ``records``, and
    how many were left out: a re-imported log decodes no audio for the requests it holds."""
    keys = {f"request:{r.request_id}" for r in records if r.request_id}
    known: set[str] = set()
    if keys:
        ordered = sorted(keys)
        with ws.db.read() as s:
            for start in range(0, len(ordered), 500):
                known.update(
                    s.scalars(
                        select(ProductionClip.dedup_key).where(
                            ProductionClip.project_id == project_id,
                            ProductionClip.dedup_key.in_(ordered[start : start + 500]),
                        )
                    )
                )
    fresh: list[_Record] = []
    for rec in records:
        key = f"request:{rec.request_id}" if rec.request_id else None
        if key is not None and key in known:
            continue
        if key is not None:
            known.add(key)
        fresh.append(rec)
    return fresh, len(records) - len(fresh)


def jsonable_measures(d: Mapping[str, Any]) -> dict[str, float | None]:
    """Measures as JSON can hold them: non-finite values become None."""
    out: dict[str, float | None] = {}
    for k, v in d.items():
        out[k] = float(v) if v is not None and math.isfinite(float(v)) else None
    return out


def _info(ws: Workspace, project: str | int) -> ProjectInfo:
    with ws.db.read() as s:
        return get_project(s, project)


def import_production(
    ws: Workspace,
    path: Path,
    project: str | int,
    *,
    batch: str,
    audio_root: Path | None = None,
    actor_id: int | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    source: str | None = None,
) -> ProductionReport:
    """Log a production batch from a prediction log (``.jsonl``) or a folder of audio.

    A folder's clips carry no predictions: the project's live model
    (:func:`labeling.monitor.live.mark_live`) scores them, and each clip's timestamp is its file's
    modification time. ``source`` is what the batch records it came from (default: the path).

    Raises
    ------
    ProductionError
        If the path is neither, or a folder is given while no live model is marked.
    """
    info = _info(ws, project)
    path = Path(path)
    if path.is_dir():
        if audio_root is not None:
            raise ProductionError("--audio-root applies to a prediction log, not a folder of audio")
        plan = read_folder(path)
        records = [
            _Record(
                ref=item.name,
                path=item.path,
                name=item.name,
                timestamp=datetime.fromtimestamp(item.path.stat().st_mtime, UTC),
                model="",
                prediction=None,
                transcript=None,
                confidence=None,
                latency_ms=None,
                request_id=None,
                device=None,
                user_action=None,
                error=None,
                meta=dict(item.metadata),
            )
            for item in plan.items
        ]
        scorer = live_model_scorer(ws, info.id)
        if scorer is None:
            raise ProductionError(
                "a folder of audio carries no predictions, and no live model is marked to score it; "
                "mark a run as live (earmark live --project NAME --run ID) or import a prediction log"
            )
        return _ingest(
            ws,
            info,
            records,
            list(plan.problems),
            batch=batch,
            source=source or str(path),
            actor_id=actor_id,
            progress=progress,
            score=scorer,
        )
    if not path.is_file():
        raise ProductionError(f"{path} is neither a prediction log nor a folder of audio")
    records, problems = read_prediction_log(path, info=info, audio_root=audio_root, now=now)
    return _ingest(
        ws,
        info,
        records,
        problems,
        batch=batch,
        source=source or str(path),
        actor_id=actor_id,
        progress=progress,
    )


def log_predictions(
    ws: Workspace,
    project: str | int,
    records: Iterable[Mapping[str, Any]],
    *,
    batch: str,
    audio_root: Path | str = ".",
    actor_id: int | None = None,
    now: datetime | None = None,
) -> ProductionReport:
    """Log production requests held in Python (the dicts of a prediction log; ``audio`` relative to
    ``audio_root``). Bad records are listed as ``record N`` with the reason."""
    info = _info(ws, project)
    now = now or datetime.now(UTC)
    base = Path(audio_root)
    root = base.resolve()
    good: list[_Record] = []
    problems: list[Problem] = []
    for number, raw in enumerate(records, 1):
        ref = f"record {number}"
        try:
            good.append(parse_record(raw, ref, base=base, info=info, now=now, root=root))
        except Exception as exc:  # whatever is wrong with a record is that record's problem
            problems.append(Problem(ref, _reason(exc)))
    return _ingest(ws, info, good, problems, batch=batch, source="api", actor_id=actor_id, progress=None)


def production_batches(s: Session, project_id: int) -> pd.DataFrame:
    """batch_id, name, created_at, n (requests logged), first, last (their timestamps), oldest first."""
    from sqlalchemy import func

    q = (
        select(
            ImportBatch.id,
            ImportBatch.name,
            ImportBatch.created_at,
            func.count(ProductionClip.id),
            func.min(ProductionClip.timestamp),
            func.max(ProductionClip.timestamp),
        )
        .outerjoin(ProductionClip, ProductionClip.batch_id == ImportBatch.id)
        .where(ImportBatch.project_id == project_id, ImportBatch.source_format == PRODUCTION_FORMAT)
        .group_by(ImportBatch.id, ImportBatch.name, ImportBatch.created_at)
        .order_by(ImportBatch.created_at, ImportBatch.id)
    )
    return pd.DataFrame(s.execute(q).all(), columns=["batch_id", "name", "created_at", "n", "first", "last"])
