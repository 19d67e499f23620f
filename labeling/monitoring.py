"""Monitoring after deployment: the live model, drift checks of production batches, and the loop back.

- :func:`mark_live` marks the run that is deployed and freezes its reference (by default the held-out
  dev/test clips of the dataset version it was trained on); :func:`rebaseline` changes the reference,
  audited.
- :func:`run_drift_check` compares a production batch (:mod:`labeling.production`) with the reference
  using :func:`analysis.drift.drift_report` and :func:`analysis.drift.concept_drift`, stores the check
  in ``drift_checks`` and returns it with its level under :func:`analysis.drift.alarm_level` over the
  batch history (:func:`batch_standings`).
- :func:`labelled_random_sample` is the one definition of the clips a batch's accuracy is measured on
  (and :func:`sample_accuracy` their counts): every view of accuracy reads it.
- :func:`monitor_summary` is every batch's standing level, and whether an alarm stands (not
  acknowledged or snoozed: :func:`acknowledge`, :func:`snooze`).
- :func:`labeling_sample` / :func:`send_to_labeling` put a uniform random sample (so accuracy estimates
  stay unbiased) plus the most atypical, low-confidence and empty-output clips into the labeling
  queue, counting what was sent before (:func:`sample_sent`); :func:`admit_labelled` lets the
  labelled ones into the next dataset version.
- :func:`shadow_comparison` sets a candidate run's answers on a batch beside the live model's.
- :func:`monitoring_view` and :func:`measure_detail` return what the Monitoring page draws.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    Clip,
    ClipDriftMeasures,
    ClipTag,
    DatasetItem,
    DatasetVersion,
    DriftCheck,
    ImportBatch,
    LiveModel,
    ModelRun,
    MonitoringAction,
    Prediction,
    ProductionClip,
    Resolution,
    utcnow,
)
from labeling.audit import record
from labeling.clips import QUALITY_COLUMNS
from labeling.export import ExportError, find_version
from labeling.ids import as_id
from labeling.production import (
    PRODUCTION_FORMAT,
    ProductionError,
    live_model_row,
    production_batches,
)
from labeling.progress import StageProgress
from labeling.projects import ProjectInfo, get_project
from labeling.workspace import Workspace

#: Per-project settings (``project.settings["monitoring"]``) and their defaults.
DEFAULTS: dict[str, float] = {
    "alpha": 0.05,
    "min_batch": 50,
    "alarm_p": 0.001,
    "low_confidence": 0.5,
    "sample_fraction": 0.05,
    "sample_minimum": 20,
    "sample_extra": 10,
    "min_labels": 30,
}
#: Columns of the clips table that are drift measures under the same name.
CLIP_MEASURES = (
    "duration_s",
    "rms_dbfs",
    "peak_dbfs",
    "leading_silence_ms",
    "trailing_silence_ms",
    "clipped_fraction",
)
#: Stored per-clip measures → the names analysis.drift.MEASURES uses (the SNR tested is WADA-SNR).
RENAMED = {"wada_snr_db": "snr_db"}
#: Priorities in the labeling queue (higher is served first): the random sample first, since the
#: accuracy estimate (and with it concept drift) rests on it.
PRIORITY = {"random": 3, "empty": 2, "low_confidence": 2, "atypical": 1}


class MonitoringError(ValueError):
    """A monitoring action that cannot be done as asked; the message says why."""


def _project(s: Session, project: str | int | ProjectInfo) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def project_settings(info: ProjectInfo) -> dict[str, float]:
    return {**DEFAULTS, **dict(info.settings.get("monitoring") or {})}


# --- the live model and its reference -----------------------------------------------------------------


@dataclass(frozen=True)
class LiveModelInfo:
    run_id: int
    run_name: str
    reference_version_id: int | None
    reference_version: str | None
    since: datetime | None


def live_model(s: Session, project: str | int | ProjectInfo) -> LiveModelInfo | None:
    info = _project(s, project)
    row = live_model_row(s, info.id)
    if row is None:
        return None
    run = s.get(ModelRun, row.run_id)
    version = s.get(DatasetVersion, row.reference_version_id) if row.reference_version_id else None
    return LiveModelInfo(
        run_id=row.run_id,
        run_name=run.name if run else f"run {row.run_id}",
        reference_version_id=row.reference_version_id,
        reference_version=version.name if version else None,
        since=row.created_at,
    )


def _version_id(s: Session, project_id: int, ref: str | int) -> int:
    try:
        return find_version(s, project_id, ref).id
    except ExportError as exc:
        raise MonitoringError(str(exc)) from exc


def _set_live(
    s: Session, info: ProjectInfo, run_id: int, version_id: int | None, actor_id: int | None
) -> LiveModelInfo:
    """A new live-model row (the newest one is live) and what it now says."""
    s.add(LiveModel(project_id=info.id, run_id=run_id, reference_version_id=version_id, marked_by=actor_id))
    s.flush()
    found = live_model(s, info)
    assert found is not None
    return found


def mark_live(
    ws: Workspace,
    project: str | int,
    run_id: int,
    *,
    reference: str | int | None = None,
    actor_id: int | None = None,
) -> LiveModelInfo:
    """Mark a run as the deployed model. Its reference (default: the version it was trained on)
    is frozen with it: every drift check until the next mark or rebaseline uses it."""
    with ws.db.write() as s:
        info = _project(s, project)
        run = s.get(ModelRun, run_id)
        if run is None or run.project_id != info.id:
            raise MonitoringError(f"run {run_id} is not a run of project {info.name!r}")
        version_id = _version_id(s, info.id, reference) if reference is not None else run.dataset_version_id
        record(
            s,
            entity="live_model",
            entity_id=run.id,
            action="create",
            new={"run_id": run.id, "reference_version_id": version_id},
            actor_id=actor_id,
            project_id=info.id,
        )
        return _set_live(s, info, run.id, version_id, actor_id)


def rebaseline(
    ws: Workspace, project: str | int, reference: str | int, *, note: str, actor_id: int | None = None
) -> LiveModelInfo:
    """Measure the live model's batches against another dataset version from now on (audited)."""
    if not note.strip():
        raise MonitoringError("a rebaseline needs a note saying why")
    with ws.db.write() as s:
        info = _project(s, project)
        row = live_model_row(s, info.id)
        if row is None:
            raise MonitoringError("no live model is marked; mark one first")
        version_id = _version_id(s, info.id, reference)
        old = row.reference_version_id
        s.add(
            MonitoringAction(project_id=info.id, action="rebaseline", note=note.strip(), created_by=actor_id)
        )
        record(
            s,
            entity="drift_reference",
            entity_id=row.run_id,
            action="update",
            old={"reference_version_id": old},
            new={"reference_version_id": version_id, "note": note.strip()},
            actor_id=actor_id,
            project_id=info.id,
        )
        return _set_live(s, info, row.run_id, version_id, actor_id)


# --- scoring audio with a run's model ----------------------------------------------------------------


def score_audio(
    ws: Workspace,
    run_id: int,
    paths: Mapping[str, str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """``label`` and ``confidence`` of a run's model on audio files (``{key: path}``), by key.

    Feature vectors are cached by the SHA-256 of each file's bytes, whatever the caller's keys;
    ``progress(done, total)`` follows them clip by clip."""
    from pathlib import Path

    from analysis.features import feature_frame
    from labeling.storage import sha256_bytes

    keys = list(paths)
    shas = [sha256_bytes(Path(paths[k]).read_bytes()) for k in keys]

    with ws.db.read() as s:
        run = s.get(ModelRun, run_id)
        if run is None:
            raise MonitoringError(f"no run {run_id}")
        s.expunge(run)
    if run.kind != "builtin":
        raise MonitoringError(f"run {run.id} was imported; only the built-in model can score new audio")
    from analysis.model import one_blas_thread
    from labeling.runs import RunError, fit_run_model

    try:
        model, settings = fit_run_model(ws, run.id)
    except RunError as exc:
        raise MonitoringError(str(exc)) from exc
    by_sha = dict(zip(shas, (paths[k] for k in keys), strict=True))
    features = feature_frame(
        by_sha, settings=settings, cache_dir=ws.settings.cache_dir / "features", n_jobs=2, progress=progress
    )
    with one_blas_thread():
        proba = model.predict_proba(features.loc[shas].to_numpy())
    classes = np.asarray(model.classes_)
    out = pd.DataFrame(
        {"label": classes[proba.argmax(axis=1)].astype(str), "confidence": proba.max(axis=1)},
        index=pd.Index(keys),
    )
    out.attrs["model"] = run.name
    return out


def live_model_scorer(ws: Workspace, project_id: int) -> Callable[[list[Any]], pd.DataFrame]:
    """What scores a folder of production audio: the live model, or a clear refusal."""
    with ws.db.read() as s:
        row = live_model_row(s, project_id)
        run_id = row.run_id if row is not None else None
    if run_id is None:
        raise ProductionError(
            "a folder of audio carries no predictions, and no live model is marked to score it; "
            "mark a run as live (earmark live --project NAME --run ID) or import a prediction log"
        )

    def score(prepared: list[Any]) -> pd.DataFrame:
        ws.store.fetch_many(p.storage_key for p in prepared)
        return score_audio(ws, run_id, {p.sha256: str(ws.store.path(p.storage_key)) for p in prepared})

    return score


# --- measures ---------------------------------------------------------------------------------------


def _decode_measures(ws: Workspace, key: str) -> dict[str, float | None]:
    from labeling.production import _jsonable, _measure

    y, sr = sf.read(str(ws.store.path(key)), dtype="float32", always_2d=True)
    return _jsonable(_measure(y.mean(axis=1), int(sr)))


@functools.cache
def drift_measure_names() -> frozenset[str]:
    """What :func:`analysis.drift.clip_measures` returns (measured once on a short tone)."""
    from analysis.drift import clip_measures

    t = np.arange(1600) / 16000
    return frozenset(clip_measures(0.1 * np.sin(2 * np.pi * 200 * t), 16000))


def ensure_drift_measures(
    ws: Workspace, clips: pd.DataFrame, progress: Callable[[int, int], None] | None = None
) -> pd.DataFrame:
    """The drift measures of project clips (``clip_id``, ``storage_key``), computed from their audio
    once and kept in ``clip_drift_measures``; one row per clip, indexed by clip_id."""
    ids = [int(c) for c in clips["clip_id"]]
    known: dict[int, dict[str, Any]] = {}
    with ws.db.read() as s:
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            known.update(
                s.execute(
                    select(ClipDriftMeasures.clip_id, ClipDriftMeasures.measures).where(
                        ClipDriftMeasures.clip_id.in_(chunk)
                    )
                ).all()
            )
    wanted = drift_measure_names()
    # Measures stored before analysis.drift learnt a new one are measured again.
    stale = [c for c, m in known.items() if not wanted <= set(m)]
    for c in stale:
        known.pop(c)
    todo = clips[~clips["clip_id"].isin(known)]
    total, done = len(ids), len(ids) - len(todo)
    for start in range(0, len(todo), 500):
        part = todo.iloc[start : start + 500]
        ws.store.fetch_many(part["storage_key"])
        measured = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            for m in pool.map(lambda k: _decode_measures(ws, k), part["storage_key"]):
                measured.append(m)
                if progress:
                    progress(done + len(measured), total)
        fresh = {int(c): m for c, m in zip(part["clip_id"], measured, strict=True)}
        with ws.db.write() as s:
            redo = [c for c in fresh if c in stale]
            if redo:
                s.execute(delete(ClipDriftMeasures).where(ClipDriftMeasures.clip_id.in_(redo)))
            s.execute(insert(ClipDriftMeasures), [{"clip_id": c, "measures": m} for c, m in fresh.items()])
        known.update(fresh)
        done += len(part)
    frame = pd.DataFrame.from_dict({c: known[c] for c in ids}, orient="index")
    frame.index.name = "clip_id"
    return frame.rename(columns=RENAMED)


def _output_columns(frame: pd.DataFrame, low: float) -> pd.DataFrame:
    pred = frame["predicted"]
    empty = pred.isna() | (pred.astype("string").str.strip() == "")
    frame["empty"] = empty.astype(float)
    frame["low_confidence"] = (frame["confidence"] < low).astype(float).where(frame["confidence"].notna())
    frame["predicted"] = pred.where(~empty, "(empty)").astype(str)
    return frame


def reference_frame(
    ws: Workspace,
    project: str | int,
    *,
    version: str | int | None = None,
    progress: StageProgress | None = None,
) -> pd.DataFrame:
    """The reference: one row per held-out (dev/test) clip of the version, with the drift measures,
    the live model's predictions on it (``predicted``, ``confidence``, ``empty``, ``low_confidence``),
    ``label``, ``correct`` and ``tags``. Falls back to every clip of the version if it has no dev/test."""
    with ws.db.read() as s:
        info = _project(s, project)
        live = live_model_row(s, info.id)
        if version is not None:
            version_id: int | None = _version_id(s, info.id, version)
        elif live is not None:
            version_id = live.reference_version_id
        else:
            version_id = None
        if version_id is None:
            raise MonitoringError(
                "no reference: mark a live model trained on a dataset version, "
                "or name a version (--reference)"
            )
        cols = [DatasetItem.clip_id, DatasetItem.label, DatasetItem.split, DatasetItem.tags, Clip.storage_key]
        cols += [getattr(Clip, c) for c in CLIP_MEASURES]
        q = (
            select(*cols)
            .join(Clip, Clip.id == DatasetItem.clip_id)
            .where(DatasetItem.version_id == version_id)
        )
        names = ["clip_id", "label", "split", "tags", "storage_key", *CLIP_MEASURES]
        items = pd.DataFrame(s.execute(q).all(), columns=names)
        held = items[items["split"].isin(["dev", "test"])]
        if not held.empty:
            items = held
        preds = pd.DataFrame(columns=["clip_id", "predicted", "confidence"])
        if live is not None:
            # A transcription model's output is its transcript (empty when it heard nothing).
            answer = Prediction.label if info.classifies else Prediction.transcript
            preds = pd.DataFrame(
                s.execute(
                    select(Prediction.clip_id, answer, Prediction.confidence).where(
                        Prediction.run_id == live.run_id
                    )
                ).all(),
                columns=["clip_id", "predicted", "confidence"],
            )
        low = project_settings(info)["low_confidence"]
    if items.empty:
        raise MonitoringError("the reference version holds no clips")
    stage = (lambda d, t: progress("Measuring the reference clips, clip", d, t)) if progress else None
    measures = ensure_drift_measures(ws, items[["clip_id", "storage_key"]], stage)
    frame = items.merge(measures, left_on="clip_id", right_index=True, how="left")
    frame = frame.merge(preds, on="clip_id", how="left")
    frame["confidence"] = pd.to_numeric(frame["confidence"], errors="coerce")
    has_pred = frame["clip_id"].isin(preds["clip_id"])
    frame = _output_columns(frame, low)
    if not has_pred.any():
        frame = frame.drop(columns=["predicted", "confidence", "empty", "low_confidence"])
    elif not info.classifies:
        frame = frame.drop(columns=["predicted"])  # free text: its emptiness is tested, not its mix
    else:
        frame["correct"] = (frame["predicted"] == frame["label"]).where(has_pred & frame["label"].notna())
    frame.attrs["version_id"] = version_id
    return frame.reset_index(drop=True)


def _batch_row(s: Session, project_id: int, batch: str | int) -> ImportBatch:
    q = select(ImportBatch).where(
        ImportBatch.project_id == project_id, ImportBatch.source_format == PRODUCTION_FORMAT
    )
    row = s.scalar(q.where(ImportBatch.name == str(batch)).order_by(ImportBatch.id.desc()).limit(1))
    if row is None and as_id(batch) is not None:
        row = s.scalar(q.where(ImportBatch.id == as_id(batch)))
    if row is None:
        names = s.scalars(q.with_only_columns(ImportBatch.name).order_by(ImportBatch.id)).all()
        raise MonitoringError(f"no production batch {batch!r}; batches: {', '.join(names) or 'none yet'}")
    return row


#: Columns of :func:`labelled_random_sample`.
SAMPLE_ACCURACY_COLUMNS = ("production_clip_id", "batch_id", "clip_id", "predicted", "label", "correct")


def labelled_random_sample(
    s: Session, project_id: int, batch_ids: Sequence[int] | None = None
) -> pd.DataFrame:
    """The clips a batch's accuracy is measured on, and whether the live model got each right.

    This is the one place that decides it; the drift check, the accuracy tile, the alarm's reasons,
    the by-tag table and the shadow comparison all read it. A clip counts when it was sent to labeling
    as part of the batch's *random* sample (the other picks are chosen for being unsure or atypical
    and would bias the estimate) and has a final label; it is right when the answer the live model
    gave in production (logged, or scored at import) equals that label (an empty answer is wrong).
    Columns ``production_clip_id, batch_id, clip_id, predicted, label, correct`` (bool).
    """
    q = (
        select(
            ProductionClip.id,
            ProductionClip.batch_id,
            ProductionClip.clip_id,
            ProductionClip.prediction,
            Resolution.label,
        )
        .join(Resolution, Resolution.clip_id == ProductionClip.clip_id)
        .where(
            ProductionClip.project_id == project_id,
            ProductionClip.sample_reason == "random",
            Resolution.label.is_not(None),
            Resolution.label != "",
        )
        .order_by(ProductionClip.id)
    )
    if batch_ids is not None:
        q = q.where(ProductionClip.batch_id.in_([int(b) for b in batch_ids]))
    frame = pd.DataFrame(s.execute(q).all(), columns=list(SAMPLE_ACCURACY_COLUMNS[:-1]))
    frame["correct"] = (frame["predicted"].notna() & (frame["predicted"] == frame["label"])).astype(bool)
    return frame


@dataclass(frozen=True)
class SampleAccuracy:
    """Accuracy of the live model on a batch's labelled random sample (:func:`labelled_random_sample`)."""

    n: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None


def sample_accuracy(s: Session, project_id: int) -> dict[int, SampleAccuracy]:
    """:class:`SampleAccuracy` per production batch id (batches without labels are left out)."""
    sample = labelled_random_sample(s, project_id)
    counts = sample.groupby("batch_id")["correct"].agg(["size", "sum"])
    return {int(b): SampleAccuracy(int(r["size"]), int(r["sum"])) for b, r in counts.iterrows()}


def batch_frame(s: Session, project: str | int | ProjectInfo, batch: str | int) -> pd.DataFrame:
    """One row per request of a production batch: its measures, the live model's answer (as the
    reference frame names them), latency, user action, error, its final label when one was given,
    and ``correct`` (1.0 or 0.0 on the labelled random sample of :func:`labelled_random_sample`, NaN
    on every other clip)."""
    info = _project(s, project)
    row = _batch_row(s, info.id, batch)
    q = (
        select(
            ProductionClip.id,
            ProductionClip.original_name,
            ProductionClip.storage_key,
            ProductionClip.timestamp,
            ProductionClip.prediction,
            ProductionClip.transcript,
            ProductionClip.confidence,
            ProductionClip.latency_ms,
            ProductionClip.user_action,
            ProductionClip.error,
            ProductionClip.device,
            ProductionClip.meta,
            ProductionClip.measures,
            ProductionClip.clip_id,
            ProductionClip.sample_reason,
            ProductionClip.admitted_at,
            Resolution.label,
        )
        .outerjoin(Resolution, Resolution.clip_id == ProductionClip.clip_id)
        .where(ProductionClip.batch_id == row.id)
        .order_by(ProductionClip.id)
    )
    names = [
        "production_clip_id",
        "original_name",
        "storage_key",
        "timestamp",
        "predicted",
        "transcript",
        "confidence",
        "latency_ms",
        "user_action",
        "error",
        "device",
        "meta",
        "measures",
        "clip_id",
        "sample_reason",
        "admitted_at",
        "label",
    ]
    frame = pd.DataFrame(s.execute(q).all(), columns=names)
    measures = pd.DataFrame(list(frame["measures"]), index=frame.index)
    # The import's percentile SNR keeps its own name; the SNR tested is WADA-SNR.
    measures = measures.rename(columns={"snr_db": "snr_import_db"}).rename(columns=RENAMED)
    frame = pd.concat([frame.drop(columns=["measures"]), measures], axis=1)
    for col in ("confidence", "latency_ms"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if info.transcribes and not info.classifies:
        frame["predicted"] = frame["transcript"]
    frame = _output_columns(frame, project_settings(info)["low_confidence"])
    if not info.classifies:
        frame = frame.drop(columns=["predicted"])
    # Right or wrong only on the clips the accuracy is measured on, NaN elsewhere.
    sample = labelled_random_sample(s, info.id, [row.id]).set_index("production_clip_id")["correct"]
    frame["correct"] = frame["production_clip_id"].map(sample.astype(float)).astype("float64")
    frame.attrs["batch_id"] = row.id
    frame.attrs["batch"] = row.name
    return frame


def _stored_measures(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a drift report reads (analysis.drift.MEASURES), where present."""
    from analysis.drift import MEASURES

    return frame[[c for c in MEASURES if c in frame.columns]].apply(
        lambda col: col if col.name == "predicted" else pd.to_numeric(col, errors="coerce")
    )


# --- drift checks -----------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass(frozen=True)
class DriftCheckResult:
    id: int
    batch: str
    batch_id: int
    reference_version_id: int | None
    drift: bool
    level: str  # none / warning / alarm / too_small
    reasons: list[str]
    report: dict[str, Any]
    concept: dict[str, Any] | None
    created_at: datetime | None = None
    accuracy_note: str | None = None  # the accuracy in words, whether or not it is a reason

    def to_dict(self) -> dict[str, Any]:
        d = {
            **self.report,
            "check_id": self.id,
            "batch": self.batch,
            "batch_id": self.batch_id,
            "reference_version_id": self.reference_version_id,
            "drift": self.drift,
            "level": self.level,
            "reasons": self.reasons,
            "concept": self.concept,
            "accuracy_note": self.accuracy_note,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
        return _plain(d)


def _as_report(stats: Mapping[str, Any]) -> Any:
    """A stored check as the DriftReport the alarm rule reads (verdict, smallest p, concept)."""
    from analysis.drift import DriftReport, MeasureResult

    concept = stats.get("concept")
    fields = set(MeasureResult.__dataclass_fields__)
    return DriftReport(
        drift=bool(stats.get("drift")),
        level=str(stats.get("report_level") or stats.get("level") or "none"),
        measures=[],
        multivariate=None,
        reasons=[],
        n_reference=int(stats.get("n_reference") or 0),
        n_batch=int(stats.get("n_batch") or 0),
        min_p=float(stats["min_p"]) if stats.get("min_p") is not None else math.nan,
        concept=MeasureResult(**{k: v for k, v in concept.items() if k in fields}) if concept else None,
    )


def _latest_checks(s: Session, project_id: int) -> dict[int, DriftCheck]:
    rows = s.scalars(
        select(DriftCheck).where(DriftCheck.project_id == project_id).order_by(DriftCheck.id)
    ).all()
    return {r.current_batch_id: r for r in rows if r.current_batch_id is not None}


def _with_correct(frame: pd.DataFrame) -> pd.DataFrame:
    out = _stored_measures(frame)
    if "correct" in frame:
        out["correct"] = frame["correct"].astype("float64")
    return out


#: What the reasons call the clips accuracy is measured on (see :func:`labelled_random_sample`).
SAMPLE_NAME = "labelled random-sample clips"
#: The reason :func:`run_drift_check` adds when a batch drifted right after another one did.
TWO_IN_A_ROW = "drifted in two batches in a row"


@dataclass(frozen=True)
class BatchStanding:
    """A checked batch as it stands now: its latest check's measures, with accuracy counted on the
    labels the batch has now (labels given after the check count at once)."""

    level: str
    reasons: list[str]
    concept: dict[str, Any] | None  # the accuracy test (analysis.drift.concept_test) as a dict
    accuracy: SampleAccuracy
    accuracy_note: str | None  # the accuracy in words, whether or not it is a reason


def _measure_reasons(stats: Mapping[str, Any]) -> list[str]:
    """A stored check's reasons that come from its measures (not accuracy, not the batch history)."""
    if "measure_reasons" in stats:
        return list(stats["measure_reasons"] or [])
    # Checks stored before the measures' reasons were kept apart.
    return [r for r in stats.get("reasons") or [] if not str(r).startswith("accuracy ") and r != TWO_IN_A_ROW]


def _concept_now(stats: Mapping[str, Any], acc: SampleAccuracy, settings: Mapping[str, float]) -> Any | None:
    """The accuracy test of a stored check's reference against the batch's labels now."""
    from analysis.drift import concept_test

    ref = (stats.get("concept") or {}).get("reference") or {}
    n = int(ref.get("n") or 0)
    if n == 0:
        return None
    correct = ref.get("correct")
    if correct is None:  # checks stored before the counts were kept
        correct = round(float(ref.get("accuracy") or 0.0) * n)
    return concept_test(
        int(correct),
        n,
        acc.correct,
        acc.n,
        alpha=float(settings["alpha"]),
        min_labels=int(settings["min_labels"]),
    )


def batch_standings(s: Session, project: str | int | ProjectInfo) -> dict[int, BatchStanding]:
    """Each checked batch's level and reasons, by batch id, oldest batch first.

    The level follows :func:`analysis.drift.alarm_level` over the batch history (each batch's latest
    check, in the order the batches arrived): one drifted batch is a warning; two in a row, p < 0.001
    or concept drift an alarm. The measures are the stored check's; accuracy is counted on the batch's
    labelled random sample as it is now (:func:`sample_accuracy`), so the alarm, the accuracy tile, the
    by-tag table and the shadow comparison always say the same, and a new check cannot lose it.
    """
    from analysis.drift import alarm_level, concept_reason

    info = _project(s, project)
    settings = project_settings(info)
    min_labels = int(settings["min_labels"])
    latest = _latest_checks(s, info.id)
    accuracy = sample_accuracy(s, info.id)
    earlier: list[Any] = []
    out: dict[int, BatchStanding] = {}
    for b in production_batches(s, info.id)["batch_id"].astype(int):
        check = latest.get(b)
        if check is None:
            continue
        stats = dict(check.statistics or {})
        acc = accuracy.get(b, SampleAccuracy())
        concept = _concept_now(stats, acc, settings)
        report = replace(_as_report(stats), concept=concept)
        level = alarm_level([*earlier, report])
        if report.level == "too_small" and level != "alarm":
            level = "too_small"
        reasons = _measure_reasons(stats)
        note = concept_reason(concept, min_labels=min_labels, sample=SAMPLE_NAME) if concept else None
        if concept is not None and concept.drift and report.level != "too_small":
            reasons.append(str(note))
        judged = [r for r in earlier if r.level != "too_small"]
        if level == "alarm" and report.drift and judged and judged[-1].drift:
            reasons.append(TWO_IN_A_ROW)
        out[b] = BatchStanding(
            level=level,
            reasons=reasons,
            concept=None if concept is None else _plain(concept.to_dict()),
            accuracy=acc,
            accuracy_note=note,
        )
        earlier.append(report)
    return out


def run_drift_check(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    *,
    reference: str | int | None = None,
    actor_id: int | None = None,
    progress: StageProgress | None = None,
    random_state: int | None = 0,
) -> DriftCheckResult:
    """Compare a production batch with the reference, store the check, and say its level.

    The level is the batch's standing right after the check (:func:`batch_standings`). Concept drift
    is measured on the labelled *random* sample only (:func:`labelled_random_sample`), so that the
    clips picked for being atypical or unsure do not bias the accuracy estimate.
    """
    from analysis.drift import concept_reason, drift_report

    with ws.db.read() as s:
        info = _project(s, project)
        cur = batch_frame(s, info, batch)  # an unknown batch is refused before any audio is measured
    ref = reference_frame(ws, project, version=reference, progress=progress)
    settings = project_settings(info)
    if progress:
        progress(f"Comparing {len(cur):,} production clips with {len(ref):,} reference clips", 0, 1)
    min_labels = int(settings["min_labels"])
    report = drift_report(
        _with_correct(ref),
        _with_correct(cur),
        alpha=float(settings["alpha"]),
        min_batch=int(settings["min_batch"]),
        random_state=random_state,
        min_labels=min_labels,
        sample=SAMPLE_NAME,
    )
    report_dict = _plain(report.to_dict())
    said = (
        concept_reason(report.concept, min_labels=min_labels, sample=SAMPLE_NAME) if report.concept else None
    )
    stats = {
        **report_dict,
        "report_level": report.level,
        "measure_reasons": [r for r in report.reasons if r != said],
        "n_labelled": int(cur["correct"].notna().sum()) if "correct" in cur else 0,
        "reference_version_id": ref.attrs.get("version_id"),
    }
    with ws.db.write() as s:
        batch_id = int(cur.attrs["batch_id"])
        check = DriftCheck(
            project_id=info.id,
            reference_version_id=ref.attrs.get("version_id"),
            current_batch_id=batch_id,
            test="drift_report",
            threshold=float(settings["alpha"]),
            statistics=_plain(stats),
            verdict="none",
            created_by=actor_id,
        )
        s.add(check)
        s.flush()
        standing = batch_standings(s, info)[batch_id]
        check.verdict = standing.level
        check.statistics = _plain({**stats, "level": standing.level, "reasons": standing.reasons})
        s.flush()
        return DriftCheckResult(
            id=check.id,
            batch=str(cur.attrs["batch"]),
            batch_id=batch_id,
            reference_version_id=check.reference_version_id,
            drift=bool(report.drift) or bool((standing.concept or {}).get("drift")),
            level=standing.level,
            reasons=standing.reasons,
            report=report_dict,
            concept=standing.concept,
            created_at=check.created_at,
            accuracy_note=standing.accuracy_note,
        )


def latest_check(ws: Workspace, project: str | int, batch: str | int) -> DriftCheckResult | None:
    """A batch's latest check, with its level, reasons and accuracy as they stand now
    (:func:`batch_standings`)."""
    with ws.db.read() as s:
        info = _project(s, project)
        row = _batch_row(s, info.id, batch)
        check = s.scalar(
            select(DriftCheck)
            .where(DriftCheck.project_id == info.id, DriftCheck.current_batch_id == row.id)
            .order_by(DriftCheck.id.desc())
            .limit(1)
        )
        if check is None:
            return None
        standing = batch_standings(s, info)[row.id]
        st = dict(check.statistics or {})
        return DriftCheckResult(
            id=check.id,
            batch=row.name,
            batch_id=row.id,
            reference_version_id=check.reference_version_id,
            drift=bool(st.get("drift")) or bool((standing.concept or {}).get("drift")),
            level=standing.level,
            reasons=standing.reasons,
            report={k: v for k, v in st.items() if k not in {"concept", "reasons", "level"}},
            concept=standing.concept,
            created_at=check.created_at,
            accuracy_note=standing.accuracy_note,
        )


# --- alarms: the summary, acknowledge, snooze --------------------------------------------------------


@dataclass(frozen=True)
class MonitorSummary:
    project: str
    live_model: str | None
    reference_version: str | None
    # batch_id, name, created_at, n, level, drift, reasons, checked_at, acknowledged, labelled, correct,
    # accuracy, accuracy_note, concept: see monitor_summary
    batches: pd.DataFrame
    alarm: bool  # an alarm stands: the newest checked batch is at alarm, not acknowledged or snoozed
    snoozed_until: datetime | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        batches = self.batches.assign(
            created_at=self.batches["created_at"].map(lambda t: t.isoformat() if pd.notna(t) else None),
            checked_at=self.batches["checked_at"].map(lambda t: t.isoformat() if pd.notna(t) else None),
        )
        return _plain(
            {
                "project": self.project,
                "live_model": self.live_model,
                "reference_version": self.reference_version,
                "alarm": self.alarm,
                "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
                "reasons": self.reasons,
                "batches": batches.to_dict(orient="records"),
            }
        )


def monitor_summary(ws: Workspace, project: str | int, *, now: datetime | None = None) -> MonitorSummary:
    """Every production batch with its standing level (:func:`batch_standings`), the accuracy of its
    labelled random sample (``labelled``, ``correct``, ``accuracy``, ``accuracy_note``, and the test
    as ``concept``), and whether an alarm stands."""
    now = now or datetime.now(UTC)
    with ws.db.read() as s:
        info = _project(s, project)
        live = live_model(s, info)
        batches = production_batches(s, info.id)
        standings = batch_standings(s, info)
        checked_at = {b: c.created_at for b, c in _latest_checks(s, info.id).items()}
        drifted = {b: bool((c.statistics or {}).get("drift")) for b, c in _latest_checks(s, info.id).items()}
        accuracy = sample_accuracy(s, info.id)
        actions = s.execute(
            select(MonitoringAction.action, MonitoringAction.batch_id, MonitoringAction.until)
            .where(MonitoringAction.project_id == info.id)
            .order_by(MonitoringAction.id)
        ).all()
    acked = {b for a, b, _ in actions if a == "acknowledge" and b is not None}
    snoozes = [u for a, _, u in actions if a == "snooze" and u is not None and u > now]
    snoozed_until = max(snoozes) if snoozes else None
    ids = [int(b) for b in batches["batch_id"]]
    stand = [standings.get(b) for b in ids]
    counts = [accuracy.get(b, SampleAccuracy()) for b in ids]
    batches = batches.assign(
        level=[st.level if st else "unchecked" for st in stand],
        drift=[drifted.get(b) for b in ids],
        reasons=["; ".join(st.reasons) if st else "" for st in stand],
        checked_at=[checked_at.get(b) for b in ids],
        acknowledged=batches["batch_id"].isin(acked),
        labelled=[c.n for c in counts],
        correct=[c.correct for c in counts],
        accuracy=[c.accuracy for c in counts],
        accuracy_note=[st.accuracy_note if st else None for st in stand],
        concept=[st.concept if st else None for st in stand],
    )
    checked_rows = batches[batches["level"] != "unchecked"]
    alarm = False
    why: list[str] = []
    if not checked_rows.empty:
        newest = checked_rows.iloc[-1]
        if newest["level"] == "alarm" and not newest["acknowledged"] and snoozed_until is None:
            alarm = True
            why = [f"batch {newest['name']!r}: {newest['reasons']}"]
    return MonitorSummary(
        project=info.name,
        live_model=live.run_name if live else None,
        reference_version=live.reference_version if live else None,
        batches=batches,
        alarm=alarm,
        snoozed_until=snoozed_until,
        reasons=why,
    )


def acknowledge(
    ws: Workspace, project: str | int, batch: str | int, *, note: str = "", actor_id: int | None = None
) -> None:
    """Acknowledge a batch's alarm: it no longer stands (the check and its reasons stay)."""
    with ws.db.write() as s:
        info = _project(s, project)
        row = _batch_row(s, info.id, batch)
        s.add(
            MonitoringAction(
                project_id=info.id, batch_id=row.id, action="acknowledge", note=note, created_by=actor_id
            )
        )
        record(
            s,
            entity="drift_alarm",
            entity_id=row.id,
            action="update",
            new={"acknowledged": True, "note": note},
            actor_id=actor_id,
            project_id=info.id,
        )


def snooze(
    ws: Workspace,
    project: str | int,
    *,
    hours: float,
    note: str = "",
    actor_id: int | None = None,
    now: datetime | None = None,
) -> datetime:
    """Silence the project's alarms for a while (``earmark monitor`` exits 0 meanwhile)."""
    if not 0 < hours <= 24 * 30:
        raise MonitoringError("snooze for between a minute and 30 days")
    until = (now or datetime.now(UTC)) + timedelta(hours=hours)
    with ws.db.write() as s:
        info = _project(s, project)
        s.add(
            MonitoringAction(project_id=info.id, action="snooze", until=until, note=note, created_by=actor_id)
        )
        record(
            s,
            entity="drift_alarm",
            entity_id=info.id,
            action="update",
            new={"snoozed_until": until.isoformat(), "note": note},
            actor_id=actor_id,
            project_id=info.id,
        )
    return until


# --- back into the loop: labeling sample, admission --------------------------------------------------


#: What :func:`labeling_sample` returns per clip (``sent_before``: the reason a clip was already sent
#: for, when the random draw picks a clip sent for being unsure or atypical).
SAMPLE_COLUMNS = (
    "production_clip_id",
    "original_name",
    "reason",
    "priority",
    "predicted",
    "confidence",
    "atypicality",
    "sent_before",
)
#: The parts of a labeling sample, in words.
REASON_NAMES = {
    "random": "random",
    "empty": "empty output",
    "low_confidence": "low confidence",
    "atypical": "atypical",
}


def _reasons_in_words(counts: Mapping[str, int]) -> str:
    order = [r for r in PRIORITY if counts.get(r)] + [r for r in counts if r not in PRIORITY and counts[r]]
    return ", ".join(f"{int(counts[r]):,} {REASON_NAMES.get(r, r)}" for r in order)


@dataclass(frozen=True)
class SentSample:
    """What of a batch was already sent to labeling (:func:`sample_sent`)."""

    batch: str
    n_batch: int  # requests in the batch
    by_reason: dict[str, int]  # clips of the batch sent to labeling now, by why they were picked
    sends: list[dict[str, Any]]  # one per send, oldest first: at, by, n, reasons
    random_target: int  # random clips the project's rules ask of this batch

    @property
    def n(self) -> int:
        return sum(self.by_reason.values())

    @property
    def random(self) -> int:
        return int(self.by_reason.get("random", 0))

    def describe(self) -> str:
        """In words, e.g. "60 clips of this batch already sent to labeling (40 random, 10 low
        confidence, 10 atypical), on 2026-11-30 10:15 UTC by eli."."""
        if not self.n:
            return "Nothing of this batch has been sent to labeling yet."

        def when(e: Mapping[str, Any]) -> str:
            return f"{e['at']:%Y-%m-%d %H:%M} UTC" + (f" by {e['by']}" if e.get("by") else "")

        text = (
            f"{self.n:,} clips of this batch already sent to labeling ({_reasons_in_words(self.by_reason)})"
        )
        if len(self.sends) == 1:
            text += f", on {when(self.sends[0])}"
        elif self.sends:
            text += f", in {len(self.sends)} sends: " + "; ".join(
                f"{e['n']:,} on {when(e)}" for e in self.sends
            )
        return text + "."


def sample_sent(ws: Workspace, project: str | int, batch: str | int) -> SentSample:
    """What was already sent to labeling for a batch: how many clips, for which reasons, and when and
    by whom (from the audit log of each send)."""
    from db.models import AuditEvent, User

    with ws.db.read() as s:
        info = _project(s, project)
        row = _batch_row(s, info.id, batch)
        n_batch = int(
            s.scalar(
                select(func.count()).select_from(ProductionClip).where(ProductionClip.batch_id == row.id)
            )
            or 0
        )
        by_reason = dict(
            s.execute(
                select(ProductionClip.sample_reason, func.count())
                .where(ProductionClip.batch_id == row.id, ProductionClip.sample_reason.is_not(None))
                .group_by(ProductionClip.sample_reason)
            ).all()
        )
        events = s.execute(
            select(AuditEvent.created_at, AuditEvent.new, User.name)
            .outerjoin(User, User.id == AuditEvent.actor_id)
            .where(
                AuditEvent.project_id == info.id,
                AuditEvent.entity == "production_batch",
                AuditEvent.entity_id == str(row.id),
                AuditEvent.action == "update",
            )
            .order_by(AuditEvent.id)
        ).all()
        name = row.name
    st = project_settings(info)
    sends = [
        {
            "at": at,
            "by": who,
            "n": int(new.get("sent_to_labeling") or 0),
            "reasons": dict(new.get("reasons") or {}),
        }
        for at, new, who in events
        if isinstance(new, dict) and new.get("sent_to_labeling")
    ]
    target = min(n_batch, max(int(st["sample_minimum"]), math.ceil(st["sample_fraction"] * n_batch)))
    return SentSample(
        batch=name,
        n_batch=n_batch,
        by_reason={str(k): int(v) for k, v in by_reason.items()},
        sends=sends,
        random_target=target,
    )


def labeling_sample(
    ws: Workspace, project: str | int, batch: str | int, *, more_random: int = 0, random_state: int = 0
) -> pd.DataFrame:
    """What "send to labeling" would queue: ``production_clip_id, original_name, reason, priority,
    predicted, confidence, atypicality, sent_before``.

    A uniform random ``sample_fraction`` of the batch (at least ``sample_minimum`` clips), so that
    accuracy on it estimates the batch's without bias; then the ``sample_extra`` most atypical clips
    (largest robust z-score of any input measure against the reference), the lowest-confidence ones
    and every empty output (up to ``sample_extra``).

    Clips sent before count toward these numbers: a batch already sampled gets only what its sample
    still lacks, and nothing once it is complete (:func:`sample_sent` says what was sent). To grow it,
    ask for ``more_random`` random clips beyond the rules. They are drawn from every clip not yet in
    the random sample, those sent for another reason included (``sent_before`` names it), so that the
    random sample stays uniform over the batch.
    """
    if more_random < 0:
        raise MonitoringError("ask for zero or more extra random clips")
    with ws.db.read() as s:
        info = _project(s, project)
        cur = batch_frame(s, info, batch)
    st = project_settings(info)
    sent = cur["sample_reason"].value_counts()
    target = max(int(st["sample_minimum"]), math.ceil(st["sample_fraction"] * len(cur)))
    pool = cur[cur["sample_reason"].ne("random") | cur["sample_reason"].isna()]
    k = min(len(pool), max(0, target - int(sent.get("random", 0))) + int(more_random))
    rng = np.random.default_rng(random_state)
    chosen: dict[int, str] = {
        int(i): "random" for i in rng.choice(pool["production_clip_id"].to_numpy(), size=k, replace=False)
    }
    todo = cur[cur["sample_reason"].isna()]
    todo = todo.assign(atypicality=_atypicality(ws, project, todo).to_numpy() if len(todo) else np.nan)
    extra = int(st["sample_extra"])

    def still(reason: str) -> int:
        return max(0, extra - int(sent.get(reason, 0)))

    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if "empty" in rest:
        for i in rest[rest["empty"] == 1]["production_clip_id"].head(still("empty")):
            chosen.setdefault(int(i), "empty")
    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if rest["confidence"].notna().any() and still("low_confidence"):
        for i in rest.nsmallest(still("low_confidence"), "confidence")["production_clip_id"]:
            chosen.setdefault(int(i), "low_confidence")
    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if rest["atypicality"].notna().any() and still("atypical"):
        for i in rest.nlargest(still("atypical"), "atypicality")["production_clip_id"]:
            chosen.setdefault(int(i), "atypical")
    atypicality = todo.set_index("production_clip_id")["atypicality"]
    out = cur[cur["production_clip_id"].isin(chosen)].copy()
    out["sent_before"] = out["sample_reason"]
    out["atypicality"] = out["production_clip_id"].map(atypicality)
    out["reason"] = out["production_clip_id"].map(chosen)
    out["priority"] = out["reason"].map(PRIORITY)
    out = out.reindex(columns=list(SAMPLE_COLUMNS))
    return out.sort_values(["priority", "production_clip_id"], ascending=[False, True]).reset_index(drop=True)


def _atypicality(ws: Workspace, project: str | int, cur: pd.DataFrame) -> pd.Series:
    from analysis.drift import MEASURES

    try:
        ref = reference_frame(ws, project)
    except MonitoringError:
        return pd.Series(np.nan, index=cur.index)
    cols = [
        c
        for c, spec in MEASURES.items()
        if spec.family == "input" and spec.kind == "continuous" and c in ref and c in cur
    ]
    if not cols:
        return pd.Series(np.nan, index=cur.index)
    r = ref[cols].apply(pd.to_numeric, errors="coerce")
    med = r.median()
    scale = (r.quantile(0.75) - r.quantile(0.25)) / 1.349
    scale = scale.where(scale > 0, r.std()).replace(0, np.nan)
    z = (cur[cols].apply(pd.to_numeric, errors="coerce") - med).abs() / scale
    return z.max(axis=1, skipna=True)


def send_to_labeling(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    sample: pd.DataFrame,
    *,
    previewed: SentSample | None = None,
    actor_id: int | None = None,
) -> int:
    """Queue the previewed sample (:func:`labeling_sample`) for labeling, in one transaction.

    Each clip becomes a project clip with its priority: the random sample in the ``test`` split (it
    measures the new traffic), the others in ``train``. A clip sent before for another reason that
    the random draw picked joins the random sample (its clip keeps its labels). They stay out of
    dataset versions and label-issue detection until :func:`admit_labelled`. With ``previewed``
    (what :func:`sample_sent` said beside the preview), a batch whose sample changed since — someone
    else sent it meanwhile — is refused, so nothing is sent twice. Returns how many clips were queued.
    """
    if sample.empty:
        return 0
    reasons = dict(zip(sample["production_clip_id"].astype(int), sample["reason"], strict=True))
    with ws.db.write() as s:
        info = _project(s, project)
        row = _batch_row(s, info.id, batch)
        if previewed is not None:
            now = dict(
                s.execute(
                    select(ProductionClip.sample_reason, func.count())
                    .where(ProductionClip.batch_id == row.id, ProductionClip.sample_reason.is_not(None))
                    .group_by(ProductionClip.sample_reason)
                ).all()
            )
            if {str(k): int(v) for k, v in now.items()} != previewed.by_reason:
                raise MonitoringError(
                    f"batch {row.name!r} was sent to labeling since this preview "
                    f"({_reasons_in_words(now) or 'nothing'} now): preview it again"
                )
        prod = s.scalars(
            select(ProductionClip).where(
                ProductionClip.batch_id == row.id,
                ProductionClip.id.in_(list(reasons)),
                ProductionClip.sample_reason.is_(None) | (ProductionClip.sample_reason != "random"),
            )
        ).all()
        prod = [p for p in prod if p.sample_reason is None or reasons[p.id] == "random"]
        existing = dict(
            s.execute(
                select(Clip.sha256, Clip.id).where(
                    Clip.project_id == info.id, Clip.sha256.in_([p.sha256 for p in prod])
                )
            ).all()
        )
        n = promoted = 0
        sent: dict[str, int] = {}
        for p in prod:
            reason = reasons[p.id]
            clip_id = existing.get(p.sha256)
            if clip_id is None:
                m = p.measures or {}
                clip = Clip(
                    project_id=info.id,
                    sha256=p.sha256,
                    storage_key=p.storage_key,
                    original_name=p.original_name,
                    duration_s=p.duration_s,
                    sample_rate=p.sample_rate,
                    channels=p.channels,
                    frames=p.frames,
                    audio_format=p.audio_format,
                    meta={
                        **{k: v for k, v in (p.meta or {}).items() if isinstance(v, str | int | float)},
                        "production_batch": row.name,
                        **({"device": p.device} if p.device else {}),
                    },
                    split="test" if reason == "random" else "train",
                    import_batch_id=row.id,
                    annotations_needed=info.annotations_per_clip,
                    priority=PRIORITY.get(reason, 1),
                    **{c: m.get(c) for c in QUALITY_COLUMNS},
                )
                s.add(clip)
                s.flush()
                clip_id = clip.id
                existing[p.sha256] = clip_id
                dm = {
                    k: m.get(k) for k in ("pitch_hz", "centroid_hz", "speaking_rate", "wada_snr_db") if k in m
                }
                if dm and s.get(ClipDriftMeasures, clip_id) is None:
                    s.add(ClipDriftMeasures(clip_id=clip_id, measures=dm))
            elif p.sample_reason is not None:  # sent before for another reason: now in the random sample
                promoted += 1
                clip = s.get(Clip, clip_id)
                if clip is not None:
                    clip.priority = max(clip.priority or 0, PRIORITY[reason])
                    if p.admitted_at is None:
                        clip.split = "test"
            p.clip_id = clip_id
            p.sample_reason = reason
            sent[reason] = sent.get(reason, 0) + 1
            n += 1
        from labeling.clip_metadata import index_clip_metadata

        index_clip_metadata(s, info.id)
        record(
            s,
            entity="production_batch",
            entity_id=row.id,
            action="update",
            new={"sent_to_labeling": n, "reasons": sent, "moved_to_random": promoted},
            actor_id=actor_id,
            project_id=info.id,
        )
    return n


def labelled_waiting(s: Session, project_id: int) -> pd.DataFrame:
    """Production clips sent to labeling, labelled, and not yet admitted: what "add to the next
    version" would add (``production_clip_id, clip_id, batch, label, reason``)."""
    q = (
        select(
            ProductionClip.id,
            ProductionClip.clip_id,
            ImportBatch.name,
            Resolution.label,
            ProductionClip.sample_reason,
        )
        .join(Resolution, Resolution.clip_id == ProductionClip.clip_id)
        .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
        .where(ProductionClip.project_id == project_id, ProductionClip.admitted_at.is_(None))
        .order_by(ProductionClip.id)
    )
    return pd.DataFrame(
        s.execute(q).all(), columns=["production_clip_id", "clip_id", "batch", "label", "reason"]
    )


def admit_labelled(ws: Workspace, project: str | int, *, actor_id: int | None = None) -> int:
    """Let the labelled production clips into the next dataset version; returns how many."""
    with ws.db.write() as s:
        info = _project(s, project)
        waiting = labelled_waiting(s, info.id)
        if waiting.empty:
            return 0
        ids = waiting["production_clip_id"].astype(int).tolist()
        s.execute(update(ProductionClip).where(ProductionClip.id.in_(ids)).values(admitted_at=utcnow()))
        record(
            s,
            entity="production_clips",
            entity_id=info.id,
            action="update",
            new={"admitted": len(ids)},
            actor_id=actor_id,
            project_id=info.id,
        )
        return len(ids)


# --- shadow comparison -------------------------------------------------------------------------------


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class ShadowReport:
    batch: str
    live: str
    candidate: str
    n: int
    disagreement: float
    n_labelled: int
    live_accuracy: float | None
    candidate_accuracy: float | None
    live_only_right: int
    candidate_only_right: int
    p_value: float
    per_tag: pd.DataFrame  # tag, n_labelled, live_accuracy, candidate_accuracy, change
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "per_tag"}
        d["per_tag"] = self.per_tag.to_dict(orient="records")
        return _plain(d)


def shadow_comparison(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    candidate_run: int,
    *,
    max_overall_drop: float = 0.01,
    max_tag_drop: float = 0.05,
) -> ShadowReport:
    """A candidate run's answers on a production batch beside the live model's.

    The candidate (a built-in run, e.g. the fixed model retrained on a newer version) scores the
    batch's audio; accuracy of each is measured on the labelled random sample, compared with an
    exact McNemar test, overall and per tag (the labelled clips' tags and the logged device).
    Promote only when the candidate is no worse by more than ``max_overall_drop`` overall and
    ``max_tag_drop`` on any tag with at least 10 labelled clips.
    """
    with ws.db.read() as s:
        info = _project(s, project)
        cur = batch_frame(s, info, batch)
        live = live_model(s, info)
        run = s.get(ModelRun, candidate_run)
        if run is None or run.project_id != info.id:
            raise MonitoringError(f"run {candidate_run} is not a run of project {info.name!r}")
        cand_name = run.name
        tags = pd.DataFrame(
            s.execute(
                select(ClipTag.clip_id, ClipTag.tag).where(
                    ClipTag.clip_id.in_(cur["clip_id"].dropna().astype(int).tolist())
                )
            ).all(),
            columns=["clip_id", "tag"],
        )
    if "predicted" not in cur:
        raise MonitoringError("shadow comparison needs class predictions")
    ws.store.fetch_many(cur["storage_key"])
    paths = {
        f"{i}": str(ws.store.path(k))
        for i, k in zip(cur["production_clip_id"], cur["storage_key"], strict=True)
    }
    by_sha = cur.assign(key=cur["production_clip_id"].astype(str))
    scores = score_audio(ws, candidate_run, dict(zip(by_sha["key"], paths.values(), strict=True)))
    cand = by_sha["key"].map(scores["label"])
    live_pred = cur["predicted"]
    disagreement = float((cand != live_pred).mean()) if len(cur) else 0.0
    lab = cur["correct"].notna()  # the labelled random sample, as every other view counts it
    lr = cur["correct"][lab] == 1.0
    cr = (cand == cur["label"])[lab]
    b, c = int((lr & ~cr).sum()), int((~lr & cr).sum())
    p = mcnemar_exact(b, c)
    rows = []
    slices: dict[str, pd.Series] = {}
    for tag, group in tags.groupby("tag"):
        slices[str(tag)] = cur["clip_id"].isin(group["clip_id"])
    for device in cur["device"].dropna().unique():
        slices[f"device:{device}"] = cur["device"] == device
    for name, mask in slices.items():
        m = mask[lab]
        if m.sum() == 0:
            continue
        la, ca = float(lr[m].mean()), float(cr[m].mean())
        rows.append(
            {
                "tag": name,
                "n_labelled": int(m.sum()),
                "live_accuracy": la,
                "candidate_accuracy": ca,
                "change": ca - la,
            }
        )
    per_tag = pd.DataFrame(
        rows, columns=["tag", "n_labelled", "live_accuracy", "candidate_accuracy", "change"]
    )
    la = float(lr.mean()) if len(lr) else None
    ca = float(cr.mean()) if len(cr) else None
    if la is None or ca is None:
        rec = "No labelled random sample yet: send the batch to labeling before deciding."
    else:
        worse_tags = per_tag[(per_tag["n_labelled"] >= 10) & (per_tag["change"] < -max_tag_drop)]
        if ca < la - max_overall_drop:
            rec = (
                f"Keep the live model: the candidate is {100 * (la - ca):.1f} points worse "
                "on the labelled sample."
            )
        elif not worse_tags.empty:
            rec = (
                f"Keep the live model: the candidate is more than {100 * max_tag_drop:.0f} points "
                f"worse on {', '.join(worse_tags['tag'])}."
            )
        elif ca > la and p < 0.05:
            rec = (
                f"Promote the candidate: {100 * (ca - la):.1f} points better "
                f"(McNemar p = {p:.3g}), no tag worse."
            )
        else:
            rec = (
                f"Either will do: the candidate is no worse by more than {100 * max_overall_drop:.0f} "
                f"point overall or {100 * max_tag_drop:.0f} on any tag (McNemar p = {p:.3g})."
            )
    return ShadowReport(
        batch=str(cur.attrs["batch"]),
        live=live.run_name if live else "logged predictions",
        candidate=cand_name,
        n=len(cur),
        disagreement=disagreement,
        n_labelled=int(lab.sum()),
        live_accuracy=la,
        candidate_accuracy=ca,
        live_only_right=b,
        candidate_only_right=c,
        p_value=p,
        per_tag=per_tag,
        recommendation=rec,
    )


# --- what the Monitoring page draws -----------------------------------------------------------------


@dataclass(frozen=True)
class MonitoringView:
    """Everything the Monitoring page shows for a project, from the stored checks and traffic."""

    live: LiveModelInfo | None
    summary: MonitorSummary
    measures: pd.DataFrame  # one row per (checked batch, measure); see :func:`monitoring_view`
    software: pd.DataFrame  # one row per batch: latency, requests per minute, error/empty/retry shares
    order: list[str]  # measures, those drifted in the newest check first
    min_batch: int
    waiting: int  # labelled production clips not yet added to a dataset version


def _middle(summary: Mapping[str, Any] | None) -> float | None:
    if not summary:
        return None
    for key in ("median", "share", "mean"):
        value = summary.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _software(s: Session, project_id: int) -> pd.DataFrame:
    q = select(
        ProductionClip.batch_id,
        ProductionClip.timestamp,
        ProductionClip.latency_ms,
        ProductionClip.error,
        ProductionClip.prediction,
        ProductionClip.transcript,
        ProductionClip.user_action,
    ).where(ProductionClip.project_id == project_id)
    cols = ["batch_id", "timestamp", "latency_ms", "error", "prediction", "transcript", "user_action"]
    raw = pd.DataFrame(s.execute(q).all(), columns=cols)
    out = []
    for batch_id, g in raw.groupby("batch_id", sort=False):
        minutes = (g["timestamp"].max() - g["timestamp"].min()).total_seconds() / 60
        lat = pd.to_numeric(g["latency_ms"], errors="coerce").dropna()
        empty = g["prediction"].fillna("").eq("") & g["transcript"].fillna("").str.strip().eq("")
        action = g["user_action"].fillna("")
        out.append(
            {
                "batch_id": int(batch_id),
                "n": len(g),
                "latency_p50": float(lat.quantile(0.5)) if len(lat) else np.nan,
                "latency_p95": float(lat.quantile(0.95)) if len(lat) else np.nan,
                "requests_per_min": len(g) / minutes if minutes > 0 else np.nan,
                "error_rate": float(g["error"].notna().mean()),
                "empty_rate": float(empty.mean()),
                "retry_rate": float(action.eq("retry").mean()),
                "typing_rate": float(action.eq("switched_to_typing").mean()),
            }
        )
    cols = ["batch_id", "n", "latency_p50", "latency_p95", "requests_per_min", "error_rate", "empty_rate"]
    return pd.DataFrame(out, columns=[*cols, "retry_rate", "typing_rate"])


def monitoring_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """Changes whenever what the Monitoring page shows could, apart from labels (key on
    :func:`labeling.clips.data_fingerprint` too): checks, live-model marks, alarm answers, logged
    traffic and what of it was sent to labeling or admitted to a version."""

    def newest(model: Any) -> Any:
        return s.scalar(select(func.max(model.id)).where(model.project_id == project_id))

    traffic = s.execute(
        select(
            func.count(),
            func.max(ProductionClip.id),
            func.count(ProductionClip.clip_id),
            func.count(ProductionClip.admitted_at),
            # A clip queued as atypical can join the random sample, which accuracy is measured on.
            func.count(case((ProductionClip.sample_reason == "random", 1))),
        ).where(ProductionClip.project_id == project_id)
    ).one()
    return (newest(DriftCheck), newest(LiveModel), newest(MonitoringAction), *traffic)


def monitoring_view(ws: Workspace, project: str | int) -> MonitoringView:
    """The page's data: per checked batch and measure (``batch_id, batch, created_at, measure, label,
    family, kind, unit, value`` (the batch's median or share), ``ref_p5, ref_median, ref_p95, drift,
    p_value, effect, effect_unit, n, too_small``), the software measures per batch, and the summary."""
    from analysis.drift import MEASURES

    summary = monitor_summary(ws, project)
    with ws.db.read() as s:
        info = _project(s, project)
        live = live_model(s, info)
        checks = {b: dict(c.statistics or {}) for b, c in _latest_checks(s, info.id).items()}
        software = _software(s, info.id)
        waiting = len(labelled_waiting(s, info.id))
    min_batch = int(project_settings(info)["min_batch"])
    batches = summary.batches
    rows = []
    for b in batches.itertuples():
        st = checks.get(int(b.batch_id))
        if st is None:
            continue
        for m in st.get("measures") or []:
            spec = MEASURES.get(m.get("name"))
            if spec is None:
                continue
            ref, cur = m.get("reference") or {}, m.get("batch") or {}
            label, unit, value, ref_mid = spec.label, spec.unit, _middle(cur), _middle(ref)
            if spec.kind == "rate":  # shares, drawn in percent beside the reference's share
                unit = "%"
                value = None if value is None else 100 * value
                ref_mid = None if ref_mid is None else 100 * ref_mid
            elif spec.kind == "categorical":  # how much of the mix moved (total-variation distance)
                label, unit = f"{spec.label} mix change", "% of clips"
                value = None if m.get("effect") is None else 100 * float(m["effect"])
                ref_mid = 0.0
            rows.append(
                {
                    "batch_id": int(b.batch_id),
                    "batch": b.name,
                    "created_at": b.created_at,
                    "measure": spec.name,
                    "label": label,
                    "family": spec.family,
                    "kind": spec.kind,
                    "unit": unit,
                    "value": value,
                    "ref_p5": ref.get("p5"),
                    "ref_median": ref_mid,
                    "ref_p95": ref.get("p95"),
                    "drift": bool(m.get("drift")),
                    "p_value": m.get("p_value"),
                    "effect": m.get("effect"),
                    "effect_unit": m.get("effect_unit"),
                    "n": int(cur.get("n") or st.get("n_batch") or 0),
                    "too_small": int(st.get("n_batch") or 0) < min_batch,
                }
            )
        # Accuracy as it stands now (the stored check's reference, the batch's labels today).
        concept = b.concept if isinstance(b.concept, dict) else {}
        if concept:
            ref, cur = concept.get("reference") or {}, concept.get("batch") or {}
            acc, ref_acc = cur.get("accuracy"), ref.get("accuracy")
            rows.append(
                {
                    "batch_id": int(b.batch_id),
                    "batch": b.name,
                    "created_at": b.created_at,
                    "measure": "accuracy",
                    "label": "Accuracy on the labelled random sample",
                    "family": "output",
                    "kind": "concept",
                    "unit": "%",
                    "value": None if acc is None else 100 * acc,
                    "ref_p5": None,
                    "ref_median": None if ref_acc is None else 100 * ref_acc,
                    "ref_p95": None,
                    "drift": bool(concept.get("drift")),
                    "p_value": concept.get("p_value"),
                    "effect": concept.get("effect"),
                    "effect_unit": "pp",
                    "n": int(cur.get("n") or 0),
                    "too_small": int(cur.get("n") or 0) < int(project_settings(info)["min_labels"]),
                }
            )
    measures = pd.DataFrame(rows)
    order: list[str] = []
    if not measures.empty:
        newest = measures[measures["batch_id"] == measures["batch_id"].iloc[-1]]
        ranked = newest.assign(p=newest["p_value"].fillna(1.0)).sort_values(
            ["drift", "p"], ascending=[False, True]
        )
        order = list(dict.fromkeys([*ranked["measure"], *measures["measure"]]))
    software = batches[["batch_id", "name", "created_at"]].merge(software, on="batch_id", how="left")
    return MonitoringView(live, summary, measures, software, order, min_batch, waiting)


@dataclass(frozen=True)
class MeasureDetail:
    measure: str
    label: str
    unit: str
    kind: str
    reference: pd.Series  # the reference clips' values
    batch: pd.Series  # the batch clips' values
    tails: pd.DataFrame  # production_clip_id, original_name, storage_key, value, side (low/high)


def measure_detail(
    ws: Workspace, project: str | int, batch: str | int, measure: str, *, per_side: int = 3
) -> MeasureDetail:
    """Reference and batch values of one measure, and the batch clips furthest in each tail (outside
    the reference's 5th–95th percentile band when any are), to listen to."""
    from analysis.drift import MEASURES

    spec = MEASURES.get(measure)
    if measure == "accuracy":
        raise MonitoringError("accuracy is one number per batch: see it per tag in the table below")
    if spec is None:
        raise MonitoringError(f"unknown measure {measure!r}; measures: {', '.join(MEASURES)}")
    ref = reference_frame(ws, project)
    with ws.db.read() as s:
        cur = batch_frame(s, project, batch)
    if measure not in cur:
        raise MonitoringError(f"batch {batch!r} has no {spec.label.lower()} values")
    r = ref[measure] if measure in ref else pd.Series(dtype=float)
    b = cur[measure]
    if spec.kind == "categorical":
        return MeasureDetail(
            measure, spec.label, spec.unit, spec.kind, r.astype(str), b.astype(str), cur.iloc[:0]
        )
    r, b = pd.to_numeric(r, errors="coerce").dropna(), pd.to_numeric(b, errors="coerce")
    valued = cur.assign(value=b).dropna(subset=["value"])
    cols = ["production_clip_id", "original_name", "storage_key", "value"]
    low = valued.nsmallest(per_side, "value")[cols].assign(side="low")
    high = valued.nlargest(per_side, "value")[cols].assign(side="high")
    if len(r):
        p5, p95 = r.quantile(0.05), r.quantile(0.95)
        below, above = low[low["value"] < p5], high[high["value"] > p95]
        low, high = (below if len(below) else low), (above if len(above) else high)
    tails = pd.concat([low, high]).drop_duplicates("production_clip_id").reset_index(drop=True)
    return MeasureDetail(measure, spec.label, spec.unit, spec.kind, r, b.dropna(), tails)


def tag_breakdown(ws: Workspace, project: str | int, batch: str | int) -> pd.DataFrame:
    """Drift and accuracy per slice of a batch: the logged device, user action and metadata values
    (few distinct values), and the tags of the batch's clips sent to labeling. Columns ``slice, n,
    n_labelled, accuracy`` (``n_labelled``: the slice's clips in the labelled random sample of
    :func:`labelled_random_sample`, which ``accuracy`` is measured on) and, per input measure drifted
    in the batch's latest check, the slice's median beside the reference's (``<measure>`` and
    ``<measure> reference``)."""
    ref = reference_frame(ws, project)
    with ws.db.read() as s:
        info = _project(s, project)
        cur = batch_frame(s, info, batch)
        clip_ids = cur["clip_id"].dropna().astype(int).tolist()
        tags = pd.DataFrame(
            s.execute(select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(clip_ids))).all(),
            columns=["clip_id", "tag"],
        )
    check = latest_check(ws, project, batch)
    drifted = [
        m["name"]
        for m in (check.report.get("measures") if check else []) or []
        if m.get("drift") and m.get("family") == "input" and m.get("name") in cur
    ][:3]
    slices: dict[str, pd.Series] = {"all": pd.Series(True, index=cur.index)}
    for col in ("device", "user_action"):
        for value in cur[col].dropna().unique()[:20]:
            slices[f"{col}:{value}"] = cur[col] == value
    meta = pd.DataFrame(list(cur["meta"]), index=cur.index)
    for col in meta.columns:
        values = meta[col].dropna()
        if 1 < values.nunique() <= 10:
            for value in values.unique():
                slices[f"{col}:{value}"] = meta[col] == value
    for tag, group in tags.groupby("tag"):
        slices[str(tag)] = cur["clip_id"].isin(group["clip_id"])
    rows = []
    for name, mask in slices.items():
        part = cur[mask.fillna(False).astype(bool)]
        labelled = part[part["correct"].notna()]
        row: dict[str, Any] = {
            "slice": name,
            "n": len(part),
            "n_labelled": len(labelled),
            "accuracy": float(labelled["correct"].astype(float).mean()) if len(labelled) else np.nan,
        }
        for m in drifted:
            row[m] = float(pd.to_numeric(part[m], errors="coerce").median())
            row[f"{m} reference"] = (
                float(pd.to_numeric(ref[m], errors="coerce").median()) if m in ref else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows)
