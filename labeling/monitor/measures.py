"""The per-clip measures drift is tested on, for the reference and for a production batch, and the one
definition of the clips a batch's accuracy is measured on: :func:`labelled_random_sample` (and
:func:`sample_accuracy` their counts) — every view of accuracy reads it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    Clip,
    ClipDriftMeasures,
    DatasetItem,
    ImportBatch,
    Prediction,
    ProductionClip,
    Resolution,
)
from labeling.data.projects import ProjectInfo
from labeling.monitor.live import live_model_row, reference_version_id_of
from labeling.monitor.production import PRODUCTION_FORMAT, jsonable_measures, measure_clip
from labeling.monitor.settings import (
    CLIP_MEASURES,
    RENAMED,
    MonitoringError,
    project_settings,
    resolve_project,
)
from labeling.platform.ids import as_id
from labeling.platform.progress import StageProgress
from labeling.platform.workspace import Workspace


def _decode_measures(ws: Workspace, key: str) -> dict[str, float | None]:
    y, sr = sf.read(str(ws.store.path(key)), dtype="float32", always_2d=True)
    return jsonable_measures(measure_clip(y.mean(axis=1), int(sr)))


@functools.cache
def drift_measure_names() -> frozenset[str]:
    """What :func:`analysis.drift.clip_measures` returns (measured once on a short tone)."""
    from analysis.drift import clip_measures

    t = np.arange(1600) / 16000
    return frozenset(clip_measures(0.1 * np.sin(2 * np.pi * 200 * t), 16000))


def _current(measures: Mapping[str, Any]) -> bool:
    """Whether stored measures hold every measure :mod:`analysis.drift` takes now."""
    return drift_measure_names() <= set(measures)


def _measure_in_parts(
    ws: Workspace,
    ids: Iterable[int],
    keys: Iterable[str],
    progress: Callable[[int, int], None] | None,
    *,
    total: int,
) -> Iterator[dict[int, dict[str, float | None]]]:
    """The drift measures of the audio at ``keys``, by id, 500 at a time (decoded on four threads);
    ``progress`` counts on from the ``total - len(ids)`` already measured."""
    todo = list(zip((int(i) for i in ids), keys, strict=True))
    done = total - len(todo)
    for start in range(0, len(todo), 500):
        part = todo[start : start + 500]
        ws.store.fetch_many(k for _, k in part)
        measured = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            for m in pool.map(lambda k: _decode_measures(ws, k), [k for _, k in part]):
                measured.append(m)
                if progress:
                    progress(done + len(measured), total)
        done += len(part)
        yield {i: m for (i, _), m in zip(part, measured, strict=True)}


def refresh_batch_measures(
    ws: Workspace, batch_id: int, progress: Callable[[int, int], None] | None = None
) -> int:
    """Measure again, from their stored audio, a production batch's clips whose measures were taken
    before :mod:`analysis.drift` changed them, so a check never sets old measures against a reference
    measured the new way. The import's own measures are kept beside them. Returns how many."""
    with ws.db.read() as s:
        rows = s.execute(
            select(ProductionClip.id, ProductionClip.storage_key, ProductionClip.measures).where(
                ProductionClip.batch_id == batch_id
            )
        ).all()
    stale = [(pid, key, dict(m or {})) for pid, key, m in rows if not _current(m or {})]
    if not stale:
        return 0
    kept = {pid: m for pid, _, m in stale}
    parts = _measure_in_parts(
        ws, [p for p, _, _ in stale], [k for _, k, _ in stale], progress, total=len(stale)
    )
    for fresh in parts:
        with ws.db.write() as s:
            for pid, m in fresh.items():
                s.execute(
                    update(ProductionClip).where(ProductionClip.id == pid).values(measures={**kept[pid], **m})
                )
    return len(stale)


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
    # Measures stored before analysis.drift learnt a new one (or changed one) are measured again.
    stale = [c for c, m in known.items() if not _current(m)]
    for c in stale:
        known.pop(c)
    todo = clips[~clips["clip_id"].isin(known)]
    for fresh in _measure_in_parts(ws, todo["clip_id"], todo["storage_key"], progress, total=len(ids)):
        with ws.db.write() as s:
            redo = [c for c in fresh if c in stale]
            if redo:
                s.execute(delete(ClipDriftMeasures).where(ClipDriftMeasures.clip_id.in_(redo)))
            s.execute(insert(ClipDriftMeasures), [{"clip_id": c, "measures": m} for c, m in fresh.items()])
        known.update(fresh)
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
        info = resolve_project(s, project)
        version_id, run_id = reference_key(s, info, version)
        cols = [
            DatasetItem.clip_id,
            DatasetItem.label,
            DatasetItem.transcript,
            DatasetItem.split,
            DatasetItem.tags,
            Clip.storage_key,
        ]
        cols += [getattr(Clip, c) for c in CLIP_MEASURES]
        q = (
            select(*cols)
            .join(Clip, Clip.id == DatasetItem.clip_id)
            .where(DatasetItem.version_id == version_id)
        )
        names = ["clip_id", "label", "final_transcript", "split", "tags", "storage_key", *CLIP_MEASURES]
        items = pd.DataFrame(s.execute(q).all(), columns=names)
        held = items[items["split"].isin(["dev", "test"])]
        if not held.empty:
            items = held
        preds = pd.DataFrame(columns=["clip_id", "predicted", "confidence", "transcript"])
        if run_id is not None:
            # A transcription model's output is its transcript (empty when it heard nothing).
            answer = Prediction.label if info.classifies else Prediction.transcript
            preds = pd.DataFrame(
                s.execute(
                    select(Prediction.clip_id, answer, Prediction.confidence, Prediction.transcript).where(
                        Prediction.run_id == run_id
                    )
                ).all(),
                columns=["clip_id", "predicted", "confidence", "transcript"],
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
        if transcript_drift(info):
            frame = _transcript_columns(
                frame, frame["final_transcript"].where(has_pred), frame["transcript"], info
            )
    else:
        frame["correct"] = (frame["predicted"] == frame["label"]).where(has_pred & frame["label"].notna())
    frame = frame.drop(columns=["final_transcript", "transcript"])
    frame.attrs["version_id"] = version_id
    frame.attrs["run_id"] = run_id
    return frame.reset_index(drop=True)


def reference_key(s: Session, info: ProjectInfo, version: str | int | None) -> tuple[int, int | None]:
    """The reference a drift check compares with: its dataset version id (``version``, or the live
    model's reference) and the live model's run id (None without a live model)."""
    live = live_model_row(s, info.id)
    if version is not None:
        version_id: int | None = reference_version_id_of(s, info.id, version)
    elif live is not None:
        version_id = live.reference_version_id
    else:
        version_id = None
    if version_id is None:
        raise MonitoringError(
            "no reference: mark a live model trained on a dataset version, or name a version (--reference)"
        )
    return version_id, None if live is None else live.run_id


def transcript_drift(info: ProjectInfo) -> bool:
    """Whether a project's checks test transcripts (length, word error rate): it transcribes and has
    no classes, so the model's answer is its transcript."""
    return info.transcribes and not info.classifies


def _transcript_columns(
    frame: pd.DataFrame, final: pd.Series, hypothesis: pd.Series, info: ProjectInfo
) -> pd.DataFrame:
    """``transcript_words`` of the model's transcripts, and ``word_errors``/``ref_words`` of them
    against the final transcripts, both after the project's normalisation (NaN without a final one)."""
    from analysis.drift import transcript_words
    from analysis.text import NormalizationRules, error_rates

    frame["transcript_words"] = transcript_words(list(hypothesis))
    rules = NormalizationRules.from_dict(info.normalization)
    scored = final.notna() & hypothesis.notna()
    refs = [rules.normalize(str(t)) for t in final[scored]]
    hyps = [rules.normalize(str(t)) for t in hypothesis[scored]]
    rates = error_rates(refs, hyps, chars=False)
    frame["word_errors"] = np.nan
    frame["ref_words"] = np.nan
    frame.loc[scored, "word_errors"] = rates["word_errors"].to_numpy(float)
    frame.loc[scored, "ref_words"] = rates["ref_words"].to_numpy(float)
    return frame


def batch_row(s: Session, project_id: int, batch: str | int) -> ImportBatch:
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
    info = resolve_project(s, project)
    row = batch_row(s, info.id, batch)
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
            Resolution.transcript,
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
        "final_transcript",
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
    if transcript_drift(info):
        # The word error rate, like accuracy, only on the labelled random sample.
        final = frame["final_transcript"].where(frame["sample_reason"] == "random")
        frame = _transcript_columns(frame, final, frame["transcript"], info)
    frame = frame.drop(columns=["final_transcript"])
    # Right or wrong only on the clips the accuracy is measured on, NaN elsewhere.
    sample = labelled_random_sample(s, info.id, [row.id]).set_index("production_clip_id")["correct"]
    frame["correct"] = frame["production_clip_id"].map(sample.astype(float)).astype("float64")
    frame.attrs["batch_id"] = row.id
    frame.attrs["batch"] = row.name
    return frame


#: Per-clip columns a drift report reads beside :data:`analysis.drift.MEASURES`.
LABEL_COLUMNS = ("correct", "word_errors", "ref_words")


def stored_measures(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a drift report reads (analysis.drift.MEASURES and :data:`LABEL_COLUMNS`), where
    present."""
    from analysis.drift import MEASURES

    return frame[[c for c in (*MEASURES, *LABEL_COLUMNS) if c in frame.columns]].apply(
        lambda col: col if col.name == "predicted" else pd.to_numeric(col, errors="coerce")
    )
