"""Model runs: train the fixed model on a project, import someone else's predictions, read them back.

Call :func:`train_run` to train :mod:`analysis.model`'s pipeline on the train split of the current
final labels (or of a dataset version) and store the run with one prediction per clip;
:func:`import_external_predictions` to store predictions made by another model from a CSV or JSON
Lines file; :func:`run_predictions` for one row per predicted clip with the truth, tags and metadata
beside it (what every error-analysis view is computed from); :func:`list_runs` for a project's runs.
The per-clip features the model is trained on come from :mod:`labeling.data.features`.

Every run reads frozen data. A run on a dataset version trains and scores on the version's rows —
including clips retired since by a fix, whose audio stays in the store — and a run on the current
labels first freezes them (:func:`labeling.data.versions.snapshot_current`). Reading a run back joins its
predictions with that frozen data, never with the live clips, so relabelling, re-tagging, fixing or
retiring clips later changes no run's numbers; the next run, on the next version, shows the change.
Each run keeps the content hash of the data it actually read (``data_fingerprint``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from analysis.features import FeatureSettings
from analysis.model import train_and_predict
from analysis.slices import metadata_slices, slice_table
from analysis.text import NormalizationRules, cer, wer
from analysis.versions import content_hash
from db.models import Annotation, DatasetVersion, ModelRun, Prediction, Project
from labeling.data.clips import QUALITY_COLUMNS, clip_frame, metadata_columns, tag_matrix
from labeling.data.features import FEATURES_STAGE, clip_features, frozen_feature_inputs
from labeling.data.projects import ProjectInfo, get_project
from labeling.data.queue_order import queue_order, queue_strategy
from labeling.data.versions import (
    VersionError,
    VersionInfo,
    frozen_clip_frame,
    get_version,
    snapshot_current,
    version_label,
)
from labeling.platform.audit import record
from labeling.platform.jobs import queue_once
from labeling.platform.workspace import Workspace

#: Columns every :func:`run_predictions` frame starts with (then ``proba_<class>``, tags, metadata).
PREDICTION_COLUMNS = (
    "clip_id",
    "original_name",
    "storage_key",
    "split",
    "y_true",
    "y_pred",
    "correct",
    "confidence",
    "out_of_fold",
    "transcript_true",
    "transcript_pred",
    "wer",
    "cer",
    "duration_s",
    *QUALITY_COLUMNS,
    "tags",
)
#: Metadata keys with more distinct values than this are identifiers or settings, not slices.
MAX_SLICE_VALUES = 30
SLICE_METRIC_SPLIT = "test"

Progress = Callable[[str, int, int], None]


class RunError(ValueError):
    """A run that cannot be made or read; the message says why and nothing was written."""


@dataclass(frozen=True)
class RunSummary:
    """What a stored run is: its id, what made it, and its metrics."""

    id: int
    project_id: int
    name: str
    kind: str
    code_fingerprint: str
    params: dict[str, Any]
    classes: list[str]
    metrics: dict[str, Any]
    n_predictions: int
    dataset_version_id: int | None = None
    created_at: datetime | None = None
    problems: list[str] = field(default_factory=list)
    data_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat() if self.created_at else None
        return d


def _project(s: Session, project: ProjectInfo | str | int) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


# --- training --------------------------------------------------------------------------------------


def _version(s: Session, project_id: int, version: str | int | None, actor_id: int | None) -> VersionInfo:
    """The frozen data a run reads: the named version, or the current labels frozen now."""
    try:
        if version is None:
            return snapshot_current(s, project_id, actor_id=actor_id)
        return get_version(s, project_id, version)
    except VersionError as exc:
        raise RunError(str(exc)) from exc


def data_fingerprint(clips: pd.DataFrame) -> str:
    """The content hash (:func:`analysis.versions.content_hash`) of the data a run actually read."""
    return content_hash(clips[["sha256", "label", "transcript", "tags", "split"]])


def slice_metrics(
    preds: pd.DataFrame,
    *,
    metric: str = "accuracy",
    hlp: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The slice table of a :func:`run_predictions` frame: one row per tag and per metadata value.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`analysis.slices.slice_table` (``tag`` names the slice: a tag such as
        ``noise:car`` or a metadata value such as ``accent=caribbean``) plus ``kind`` (``"tag"`` or
        ``"metadata"``); sorted by priority, then error share.
    """
    tags, meta = slice_columns(preds)
    parts = []
    distinct = _distinct_slices(preds, tags, meta)
    if tags:
        parts.append(slice_table(preds, tag_cols=tags, hlp=hlp, metric=metric).assign(kind="tag"))  # type: ignore[arg-type]
    if meta:
        parts.append(metadata_slices(preds, cols=meta, hlp=hlp, metric=metric).assign(kind="metadata"))  # type: ignore[arg-type]
    if not parts:
        return pd.DataFrame(
            columns=["tag", "n", "share", metric, "error_share", "hlp", "gap", "priority", "kind"]
        )
    table = pd.concat(parts, ignore_index=True)
    table = table[(table["n"] > 0) & table["tag"].isin(distinct)]
    return table.sort_values(
        ["priority", "error_share"], ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def _slice_masks(preds: pd.DataFrame, tags: Sequence[str], meta: Sequence[str]):
    """(name, boolean mask) of every tag and metadata-value slice, tags first."""
    for t in tags:
        yield t, preds[t].to_numpy() == 1
    for col in meta:
        values = preds[col].astype("string")
        for value in values.dropna().unique():
            yield f"{col}={value}", (values == value).fillna(False).to_numpy(dtype=bool)


def _distinct_slices(preds: pd.DataFrame, tags: Sequence[str], meta: Sequence[str]) -> set[str]:
    """Slice names, leaving out any that holds exactly the clips of an earlier one.

    Metadata often repeats a tag (``noise=car`` beside the tag ``noise:car``) or another column
    (``voice=en`` beside ``accent=british``); a table listing both says nothing twice as loudly.
    """
    seen: set[bytes] = set()
    keep = set()
    for name, mask in _slice_masks(preds, tags, meta):
        signature = np.packbits(mask).tobytes()
        if signature not in seen:
            seen.add(signature)
            keep.add(name)
    return keep


def redundant_metadata(preds: pd.DataFrame, tags: Sequence[str], meta: Sequence[str]) -> list[str]:
    """Metadata columns every value of which only repeats a tag or an earlier column's value."""
    seen = {np.packbits(preds[t].to_numpy() == 1).tobytes() for t in tags}
    redundant = []
    for col in meta:
        values = preds[col].astype("string")
        signatures = {
            np.packbits((values == v).fillna(False).to_numpy(dtype=bool)).tobytes()
            for v in values.dropna().unique()
        }
        if signatures <= seen:
            redundant.append(col)
        seen |= signatures
    return redundant


def slice_columns(preds: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(tag indicator columns, categorical metadata columns) of a :func:`run_predictions` frame."""
    tags = sorted({t for ts in preds["tags"] for t in ts} & set(preds.columns)) if "tags" in preds else []
    fixed = set(PREDICTION_COLUMNS) | set(tags)
    meta = []
    for col in preds.columns:
        if col in fixed or str(col).startswith("proba_"):
            continue
        values = preds[col].dropna()
        if values.empty or not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        if 2 <= values.nunique() <= MAX_SLICE_VALUES:
            meta.append(str(col))
    return tags, meta


def _stored_metrics(result_metrics: Mapping[str, Any], preds: pd.DataFrame, metric: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {k: dict(v) for k, v in result_metrics.items()}
    scored = preds[preds["split"] == SLICE_METRIC_SPLIT]
    if scored.empty:
        scored = preds
    table = slice_metrics(scored, metric=metric)
    keep = ["tag", "kind", "n", "share", metric, "error_share"]
    metrics["slices"] = {
        "split": SLICE_METRIC_SPLIT if (preds["split"] == SLICE_METRIC_SPLIT).any() else "all",
        "rows": [
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
            for r in json.loads(table[keep].to_json(orient="records"))
        ],
    }
    return metrics


def train_run(
    ws: Workspace,
    project: ProjectInfo | str | int,
    *,
    version: str | int | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    actor_id: int | None = None,
    progress: Progress | None = None,
    random_state: int = 0,
) -> RunSummary:
    """Train the fixed model on a project's training split and store the run with every prediction.

    The model is :func:`analysis.model.train_and_predict`'s pipeline: fitted on the labelled clips of
    the ``train`` split, dev and test clips predicted by it, training clips predicted out of fold.
    The run (kind ``builtin``, its code fingerprint, parameters, classes and metrics overall, per
    split and per slice of the test split) and one prediction per clip are written in one
    transaction with an audit event.

    Parameters
    ----------
    project
        A project, its name or its id.
    version
        Train on this dataset version (name or id): its clips, labels, tags, metadata and splits as
        frozen, retired clips included. By default the current labels, frozen first as a snapshot
        (:func:`labeling.data.versions.snapshot_current`), so the run can always be read and repeated.
    params
        Keyword arguments of :func:`analysis.model.build_pipeline` over its defaults.
    name
        The run's name (default: ``"fixed model"`` and the time).
    progress
        ``progress(stage, done, total)``: the audio features per clip (:data:`FEATURES_STAGE`), then
        fitting and each cross-validation fold (see :func:`analysis.model.train_and_predict`), then
        storing the predictions; ``stage`` says it in words.

    Returns
    -------
    RunSummary

    Raises
    ------
    RunError
        If the project has no class labels to learn, or a class has too few training clips.
    """
    with ws.db.write() as s:
        info = _project(s, project)
        if not info.classifies:
            raise RunError(
                f"project {info.name!r} is a {info.task_kind} project; the built-in model classifies. "
                "Import your own model's transcripts with import_external_predictions instead."
            )
        frozen = _version(s, info.id, version, actor_id)
    with ws.db.read() as s:
        clips = frozen_clip_frame(s, frozen.id)
    if clips.empty:
        raise RunError("there are no clips to train on")
    rows, settings = frozen_feature_inputs(ws, clips)
    feature_progress = None if progress is None else (lambda d, t: progress(FEATURES_STAGE, d, t))
    features = clip_features(ws, rows, settings, feature_progress)
    labels = pd.Series(clips["label"].to_numpy(), index=clips["clip_id"].to_numpy(), dtype="object")
    splits = pd.Series(clips["split"].to_numpy(), index=clips["clip_id"].to_numpy(), dtype="object")
    try:
        result = train_and_predict(
            features,
            labels,
            splits,
            params=params,
            settings=settings,
            random_state=random_state,
            progress=progress,
        )
    except (ValueError, TypeError) as exc:  # too few clips per class, or a parameter the model lacks
        raise RunError(f"cannot train: {exc}") from exc
    if progress is not None:
        progress(f"Storing {len(result.predictions):,} predictions", 0, 1)

    classes = [str(c) for c in result.classes_]
    p = result.predictions
    proba = p[[f"proba_{c}" for c in result.classes_]].to_numpy()
    pred_rows = [
        {
            "clip_id": int(clip_id),
            "split": split,
            "label": str(label),
            "confidence": float(min(1.0, max(0.0, conf))),
            "probabilities": [round(float(x), 6) for x in probs],
            "out_of_fold": bool(oof),
        }
        for clip_id, split, label, conf, probs, oof in zip(
            p["key"], p["split"], p["y_pred"], p["confidence"], proba, p["out_of_fold"], strict=True
        )
    ]
    scored = _joined(
        clips, p.rename(columns={"key": "clip_id"}).drop(columns=["correct"]), _rules(info, frozen.settings)
    )
    metrics = _stored_metrics(result.metrics, scored, "accuracy")
    with ws.db.write() as s:
        run = ModelRun(
            project_id=info.id,
            dataset_version_id=frozen.id,
            kind="builtin",
            name=name or f"fixed model {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M}",
            code_fingerprint=result.fingerprint,
            data_fingerprint=data_fingerprint(clips),
            params={**result.params, "random_state": int(random_state)},
            classes=classes,
            metrics=metrics,
            created_by=actor_id,
            queue_strategy=queue_strategy_name(info.settings),
            labels_spent=int(
                s.scalar(select(func.count()).select_from(Annotation).where(Annotation.project_id == info.id))
                or 0
            ),
        )
        s.add(run)
        s.flush()
        for start in range(0, len(pred_rows), 2000):
            s.execute(insert(Prediction), [{"run_id": run.id, **r} for r in pred_rows[start : start + 2000]])
        record(
            s,
            entity="model_run",
            entity_id=run.id,
            action="create",
            new={
                "name": run.name,
                "kind": "builtin",
                "fingerprint": run.code_fingerprint,
                "params": run.params,
                "dataset_version_id": frozen.id,
                "data_fingerprint": run.data_fingerprint,
                "n": len(pred_rows),
                "test_accuracy": metrics.get("test", {}).get("accuracy"),
            },
            actor_id=actor_id,
            project_id=info.id,
        )
        _queue_scoring(s, info.id)
        return _summary(run, len(pred_rows))


def _queue_scoring(s: Session, project_id: int) -> None:
    """Queue the queue-scoring job after a new run, in the run's transaction, when the project's queue
    order ranks clips by a model (or adaptive overlap takes the model's probabilities as its prior):
    whoever trained (a job, the command line, a script), the queue is ranked by the new model as soon
    as a worker is free, not only after the next labels arrive."""
    from labeling.model.queue_scores import KIND, scoring_wanted

    settings = s.scalar(select(Project.settings).where(Project.id == project_id))
    if scoring_wanted(settings):
        queue_once(s, KIND, project_id)


def queue_strategy_name(settings: Mapping[str, Any] | None) -> str:
    """How the queue chose clips under these settings, as a learning curve names it: the strategy
    with its random share (``margin+random10``) or the queue order (``unlabelled_first``)."""
    strategy = queue_strategy(settings)
    return strategy.name if strategy is not None else queue_order(settings).name


def learning_curve_points(s: Session, project_id: int) -> pd.DataFrame:
    """The runs of the fixed model as points of learning curves, oldest first.

    Returns
    -------
    pandas.DataFrame
        ``run_id, name, created_at, strategy, labels_spent, accuracy`` (on the test split when it has
        labelled clips, else overall) for built-in runs that recorded the queue strategy in force and
        the annotations given when they were trained and have an accuracy.
    """
    columns = ["run_id", "name", "created_at", "strategy", "labels_spent", "accuracy"]
    rows = []
    for run in s.scalars(
        select(ModelRun)
        .where(
            ModelRun.project_id == project_id,
            ModelRun.kind == "builtin",
            ModelRun.labels_spent.is_not(None),
            ModelRun.queue_strategy.is_not(None),
        )
        .order_by(ModelRun.id)
    ):
        m = run.metrics or {}
        scored = (m.get("test") if (m.get("test") or {}).get("n") else m.get("overall")) or {}
        if scored.get("accuracy") is None:
            continue
        rows.append(
            [run.id, run.name, run.created_at, run.queue_strategy, run.labels_spent, scored["accuracy"]]
        )
    frame = pd.DataFrame(rows, columns=columns)
    frame["accuracy"] = frame["accuracy"].astype("float64")
    return frame


def learning_curve_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: runs, labels spent at the last run, its accuracy, and the mean accuracy over the
    labels its runs span (:func:`analysis.learning_curve.area_under_curve`; NaN with one run or two
    runs at the same number of labels)."""
    from analysis.learning_curve import area_under_curve

    out = []
    for strategy, group in points.groupby("strategy", sort=True):
        curve = group.groupby("labels_spent")["accuracy"].mean().sort_index()
        try:
            area = area_under_curve(curve.index.to_numpy(), curve.to_numpy())
        except ValueError:
            area = float("nan")
        out.append(
            {
                "strategy": strategy,
                "runs": len(group),
                "labels": int(curve.index[-1]),
                "accuracy": float(curve.iloc[-1]),
                "mean_accuracy": area,
            }
        )
    return pd.DataFrame(out, columns=["strategy", "runs", "labels", "accuracy", "mean_accuracy"])


def fit_run_model(ws: Workspace, run_id: int) -> tuple[Any, FeatureSettings]:
    """A built-in run's pipeline refitted on the training clips of its own frozen data with its own
    parameters — the code is fixed, so it is the run's model — and the feature settings it used.

    Raises
    ------
    RunError
        If the run is not a built-in run or has no labelled training clip.
    """
    from analysis.model import build_pipeline, one_blas_thread

    with ws.db.read() as s:
        run = s.get(ModelRun, int(run_id))
        if run is None:
            raise RunError(f"no model run {run_id}")
        if run.kind != "builtin":
            raise RunError(f"run {run.id} was imported; only the built-in model can be refitted")
        info = get_project(s, run.project_id)
        # Runs stored before runs were bound to versions trained on the live clips of the day.
        clips = _truth(s, info, run)[0] if run.dataset_version_id is not None else clip_frame(s, info.id)
        params = dict(run.params or {})
    rows, settings = frozen_feature_inputs(ws, clips)
    train = clips[(clips["split"] == "train") & clips["label"].notna()]
    rows = rows[rows["clip_id"].isin(train["clip_id"])]
    if rows.empty:
        raise RunError(f"run {run_id} has no labelled training clip to refit its model on")
    features = clip_features(ws, rows, settings, None)
    labels = train.set_index("clip_id")["label"].reindex(features.index)
    kwargs = {k: v for k, v in params.items() if k in (build_pipeline.__kwdefaults__ or {})}
    with one_blas_thread():
        model = build_pipeline(**kwargs).fit(features.to_numpy(), labels.to_numpy())
    return model, settings


def _summary(run: ModelRun, n: int, problems: list[str] | None = None) -> RunSummary:
    return RunSummary(
        id=run.id,
        project_id=run.project_id,
        name=run.name,
        kind=run.kind,
        code_fingerprint=run.code_fingerprint,
        params=dict(run.params or {}),
        classes=list(run.classes or []),
        metrics=dict(run.metrics or {}),
        n_predictions=n,
        dataset_version_id=run.dataset_version_id,
        created_at=run.created_at,
        problems=list(problems or []),
        data_fingerprint=run.data_fingerprint,
    )


def get_run(s: Session, run_id: int) -> RunSummary:
    run = s.get(ModelRun, int(run_id))
    if run is None:
        raise RunError(f"no model run {run_id}")
    n = s.scalar(select(func.count()).select_from(Prediction).where(Prediction.run_id == run.id)) or 0
    return _summary(run, int(n))


# --- reading runs ----------------------------------------------------------------------------------


def _rules(info: ProjectInfo, frozen: Mapping[str, Any] | None) -> NormalizationRules:
    """The transcript rules a run is scored by: its version's, else (older runs) the project's."""
    frozen = frozen or {}
    return NormalizationRules.from_dict(frozen.get("normalization", info.normalization))


def _truth(s: Session, info: ProjectInfo, run: ModelRun) -> tuple[pd.DataFrame, NormalizationRules]:
    """The clips a run is read against — its frozen version — and the rules its transcripts are
    scored by. Runs stored before runs were bound to versions read the live clips, as they always did."""
    if run.dataset_version_id is not None:
        version = s.get(DatasetVersion, run.dataset_version_id)
        settings = version.settings if version is not None else None
        return frozen_clip_frame(s, run.dataset_version_id), _rules(info, settings)
    return clip_frame(s, info.id, include_deleted=True), _rules(info, None)


def _joined(clips: pd.DataFrame, preds: pd.DataFrame, rules: NormalizationRules) -> pd.DataFrame:
    """Predictions (clip_id, y_pred, …) joined with the truth, tags and metadata of ``clips`` (a
    :func:`labeling.data.clips.clip_frame`-shaped frame: the run's frozen version)."""
    meta = metadata_columns(clips)
    tag_cols = tag_matrix(clips)
    base = clips[
        [
            "clip_id",
            "original_name",
            "storage_key",
            "label",
            "transcript",
            "duration_s",
            *QUALITY_COLUMNS,
            "tags",
        ]
    ]
    base = base.rename(columns={"label": "y_true", "transcript": "transcript_true"})
    extra = pd.concat(
        [clips[["clip_id"]], tag_cols, clips[meta].drop(columns=tag_cols.columns, errors="ignore")], axis=1
    )
    if "y_true" in preds.columns:  # the labels the run was scored on, given by the caller
        base = base.drop(columns="y_true")
    frame = preds.merge(base, on="clip_id", how="left").merge(extra, on="clip_id", how="left")
    for col in tag_cols.columns:
        frame[col] = frame[col].fillna(0).astype(np.int64)

    labelled = frame["y_true"].notna() & frame["y_pred"].notna()
    correct = pd.array(np.full(len(frame), pd.NA), dtype="boolean")
    correct[labelled.to_numpy()] = (
        frame.loc[labelled, "y_true"].astype(str).to_numpy()
        == frame.loc[labelled, "y_pred"].astype(str).to_numpy()
    )
    frame["correct"] = correct
    frame["wer"], frame["cer"] = _error_rates(rules, frame)
    if "transcript_pred" in frame and frame["y_pred"].isna().all() and frame["wer"].notna().any():
        # A transcription run is right on a clip when its normalised transcript is exact.
        frame["correct"] = pd.array(np.where(frame["wer"].notna(), frame["wer"] == 0, pd.NA), dtype="boolean")
    ordered = [c for c in PREDICTION_COLUMNS if c in frame.columns]
    proba = [c for c in frame.columns if str(c).startswith("proba_")]
    rest = [c for c in frame.columns if c not in ordered and c not in proba]
    return frame[ordered + proba + rest]


def _error_rates(rules: NormalizationRules, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    n = len(frame)
    w, c = np.full(n, np.nan), np.full(n, np.nan)
    if "transcript_pred" not in frame or "transcript_true" not in frame:
        return w, c
    refs = frame["transcript_true"].to_numpy(dtype=object, na_value=None)
    hyps = frame["transcript_pred"].to_numpy(dtype=object, na_value=None)
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        if ref is not None and hyp is not None:
            ref, hyp = rules.normalize(str(ref)), rules.normalize(str(hyp))
            w[i], c[i] = wer(ref, hyp), cer(ref, hyp)
    return w, c


def run_predictions(s: Session, run_id: int) -> pd.DataFrame:
    """One row per clip a run predicted, beside the clip's final label, tags and metadata as frozen
    in the run's dataset version (the live clips only for runs stored before runs were bound to one).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PREDICTION_COLUMNS` — ``clip_id, original_name, storage_key, split`` (at run time),
        ``y_true`` (the frozen final label), ``y_pred``, ``correct`` (nullable boolean; NA without a
        final label), ``confidence``, ``out_of_fold``, ``transcript_true``, ``transcript_pred``,
        ``wer``/``cer`` (normalised by the version's rules; NaN without both transcripts),
        ``duration_s``, the audio-quality measures and ``tags`` (list) — then ``proba_<class>`` in the
        run's class order, one 0/1 column per tag and one column per metadata key. Ordered by clip id.
    """
    run = s.get(ModelRun, int(run_id))
    if run is None:
        raise RunError(f"no model run {run_id}")
    info = get_project(s, run.project_id)
    q = (
        select(
            Prediction.clip_id,
            Prediction.split,
            Prediction.label,
            Prediction.transcript,
            Prediction.confidence,
            Prediction.out_of_fold,
            Prediction.probabilities,
        )
        .where(Prediction.run_id == run.id)
        .order_by(Prediction.clip_id)
    )
    rows = s.connection().execute(q).all()
    preds = pd.DataFrame(
        [r[:6] for r in rows],
        columns=["clip_id", "split", "y_pred", "transcript_pred", "confidence", "out_of_fold"],
    )
    preds["confidence"] = preds["confidence"].astype("float64")
    preds["out_of_fold"] = preds["out_of_fold"].astype(bool)
    classes = list(run.classes or [])
    if classes:
        proba = np.full((len(rows), len(classes)), np.nan)
        for i, r in enumerate(rows):
            if r[6] is not None and len(r[6]) == len(classes):
                proba[i] = r[6]
        preds = pd.concat([preds, pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes])], axis=1)
    clips, rules = _truth(s, info, run)
    return _joined(clips, preds, rules)


def list_runs(s: Session, project_id: int) -> pd.DataFrame:
    """A project's runs, newest first.

    Returns
    -------
    pandas.DataFrame
        ``run_id, name, kind, created_at, code_fingerprint, dataset_version_id, n_predictions,
        accuracy`` (on the test split when it has labelled clips, else overall; NaN for runs without
        stored metrics), ``mean_wer``, ``version`` (the dataset version's name — a snapshot of the
        current labels says so — or None for runs stored before runs were bound to a version) and
        ``version_kind`` (``named`` or ``snapshot``) and ``data_fingerprint``.
    """
    counts = select(Prediction.run_id, func.count().label("n")).group_by(Prediction.run_id).subquery()
    q = (
        select(
            ModelRun,
            func.coalesce(counts.c.n, 0),
            DatasetVersion.name,
            DatasetVersion.kind,
            DatasetVersion.content_hash,
            DatasetVersion.created_at,
        )
        .outerjoin(counts, counts.c.run_id == ModelRun.id)
        .outerjoin(DatasetVersion, DatasetVersion.id == ModelRun.dataset_version_id)
        .where(ModelRun.project_id == project_id)
        .order_by(ModelRun.id.desc())
    )
    out = []
    for run, n, version, kind, digest, frozen_at in s.execute(q).all():
        m = run.metrics or {}
        scored = m.get("test") if (m.get("test") or {}).get("n") else m.get("overall", {})
        scored = scored or {}
        out.append(
            {
                "run_id": run.id,
                "name": run.name,
                "kind": run.kind,
                "created_at": run.created_at,
                "code_fingerprint": run.code_fingerprint,
                "dataset_version_id": run.dataset_version_id,
                "n_predictions": int(n),
                "accuracy": scored.get("accuracy"),
                "mean_wer": scored.get("mean_wer"),
                "version": None if version is None else version_label(version, kind, digest, frozen_at),
                "version_kind": kind,
                "data_fingerprint": run.data_fingerprint,
            }
        )
    columns = [
        "run_id",
        "name",
        "kind",
        "created_at",
        "code_fingerprint",
        "dataset_version_id",
        "n_predictions",
        "accuracy",
        "mean_wer",
        "version",
        "version_kind",
        "data_fingerprint",
    ]
    frame = pd.DataFrame(out, columns=columns)
    frame["accuracy"] = frame["accuracy"].astype("float64")
    frame["mean_wer"] = frame["mean_wer"].astype("float64")
    return frame


# --- external predictions --------------------------------------------------------------------------

KEY_COLUMNS = ("clip_id", "sha256", "file_name")
LABEL_COLUMNS = ("label", "prediction", "predicted", "y_pred")
TRANSCRIPT_COLUMNS = ("transcript", "transcription", "text", "hypothesis")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise RunError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raise RunError(f"{path.name}: predictions must be a .csv, .tsv or .jsonl file")
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RunError):
            raise
        raise RunError(f"{path.name} cannot be read: {exc}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def _text(values: pd.Series) -> pd.Series:
    out = values.astype("object").where(values.notna(), None)
    return out.map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())


def _external_rows(clips: pd.DataFrame, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    key = next((c for c in KEY_COLUMNS if c in frame.columns), None)
    if key is None:
        raise RunError(f"the predictions need a clip column: one of {', '.join(KEY_COLUMNS)}")
    label_col = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    text_col = next((c for c in TRANSCRIPT_COLUMNS if c in frame.columns), None)
    if label_col is None and text_col is None:
        raise RunError(
            "the predictions need a predicted label column (one of "
            f"{', '.join(LABEL_COLUMNS)}) or a transcript column (one of {', '.join(TRANSCRIPT_COLUMNS)})"
        )
    refs = _text(frame[key])
    if key == "clip_id":
        lookup = dict(zip(clips["clip_id"].astype(str), clips["clip_id"], strict=True))
    elif key == "sha256":
        lookup = dict(zip(clips["sha256"], clips["clip_id"], strict=True))
        refs = refs.map(lambda r: r.lower() if r else r)
    else:
        names = clips["original_name"]
        tails = names.str.rsplit("/", n=1).str[-1]
        lookup = {n: c for n, c in zip(tails, clips["clip_id"], strict=True) if (tails == n).sum() == 1}
        lookup.update(dict(zip(names, clips["clip_id"], strict=True)))
    clip_ids = refs.map(lambda r: lookup.get(r) if r else None)
    problems = []
    unknown = clip_ids.isna()
    if unknown.any():
        first = refs[unknown].iloc[0]
        problems.append(f"{int(unknown.sum())} rows name no clip of this project (e.g. {first!r}); skipped")
    confidence = pd.Series(np.nan, index=frame.index)
    if "confidence" in frame.columns:
        confidence = pd.to_numeric(frame["confidence"].replace("", np.nan), errors="coerce")
        bad = confidence.notna() & ~confidence.between(0, 1)
        if bad.any():
            first = bad.idxmax()
            raise RunError(
                f"confidence must lie in [0, 1]; row {int(first) + 1} has {frame['confidence'][first]!r}"
            )
    out = pd.DataFrame(
        {
            "clip_id": clip_ids,
            "label": _text(frame[label_col]) if label_col else None,
            "transcript": _text(frame[text_col]) if text_col else None,
            "confidence": confidence,
        }
    )
    out = out[~unknown]
    dupes = out["clip_id"].duplicated()
    if dupes.any():
        problems.append(f"{int(dupes.sum())} rows repeat a clip already predicted; the first was kept")
        out = out[~dupes]
    empty = out["label"].isna() & out["transcript"].isna()
    if empty.any():
        problems.append(f"{int(empty.sum())} rows have no prediction; skipped")
        out = out[~empty]
    if out.empty:
        raise RunError("no row of the predictions names a clip of this project with a prediction")
    out["clip_id"] = out["clip_id"].astype(np.int64)
    return out.reset_index(drop=True), problems


def _external_metrics(scored: pd.DataFrame) -> dict[str, Any]:
    def summary(part: pd.DataFrame) -> dict[str, Any]:
        out: dict[str, Any] = {"n": int(part["correct"].notna().sum())}
        if out["n"]:
            out["accuracy"] = float(part["correct"].dropna().astype(bool).mean())
        if part["wer"].notna().any():
            out["n_transcribed"] = int(part["wer"].notna().sum())
            out["mean_wer"] = float(part["wer"].mean())
            out["mean_cer"] = float(part["cer"].mean())
        conf = part["confidence"].dropna()
        if not conf.empty:
            out["mean_confidence"] = float(conf.mean())
        return out

    metrics = {"overall": summary(scored)}
    for split, part in scored.groupby("split", sort=True):
        metrics[str(split)] = summary(part)
    return metrics


def import_external_predictions(
    ws: Workspace,
    project: ProjectInfo | str | int,
    path: str | Path,
    *,
    name: str,
    fingerprint: str | None = None,
    version: str | int | None = None,
    actor_id: int | None = None,
) -> RunSummary:
    """Store another model's predictions as a run (kind ``external``), scored against frozen labels.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv`` or ``.jsonl`` file, one row per clip. The clip is named by ``clip_id``,
        ``sha256`` or ``file_name`` (the clip's original name, or its last part when unique), the first
        of those columns present; the prediction is ``label`` (or ``prediction``, ``predicted``,
        ``y_pred``) and/or ``transcript`` (or ``transcription``, ``text``, ``hypothesis``); an
        optional ``confidence`` lies in [0, 1].
    name
        The run's name, e.g. the model's.
    fingerprint
        The other model's code fingerprint, if it has one (default: a hash of ``name``, so runs of
        the same named model compare as the same code).
    version
        The dataset version the predictions are scored against (name or id); by default the
        current labels, frozen first as a snapshot. Rows naming clips outside it are skipped.

    Returns
    -------
    RunSummary
        With ``problems`` listing rows that were skipped (unknown clips, repeats, empty rows).

    Raises
    ------
    RunError
        If the file cannot be read, lacks the columns, or names no clip; nothing is written then.
    """
    frame = _read_table(Path(path))
    with ws.db.write() as s:
        info = _project(s, project)
        frozen = _version(s, info.id, version, actor_id)
        clips = frozen_clip_frame(s, frozen.id)
        rows, problems = _external_rows(clips, frame)
        rows["split"] = rows["clip_id"].map(dict(zip(clips["clip_id"], clips["split"], strict=True)))
        scored = _joined(
            clips,
            rows.rename(columns={"label": "y_pred", "transcript": "transcript_pred"}).assign(
                out_of_fold=False
            ),
            _rules(info, frozen.settings),
        )
        metrics = _external_metrics(scored)
        has_labels = rows["label"].notna().any()
        metric = "accuracy" if has_labels else "wer"
        scored_for_slices = scored if has_labels else scored.assign(correct=scored["wer"] == 0)
        metrics.update(
            {k: v for k, v in _stored_metrics({}, scored_for_slices, metric).items() if k == "slices"}
        )
        classes = sorted(rows["label"].dropna().unique().tolist()) if has_labels else []
        run = ModelRun(
            project_id=info.id,
            dataset_version_id=frozen.id,
            kind="external",
            name=name,
            code_fingerprint=fingerprint or hashlib.sha256(f"external:{name}".encode()).hexdigest(),
            data_fingerprint=data_fingerprint(clips),
            params={"source": Path(path).name},
            classes=classes,
            metrics=metrics,
            created_by=actor_id,
        )
        s.add(run)
        s.flush()
        records = [
            {
                "run_id": run.id,
                "clip_id": int(r.clip_id),
                "split": r.split,
                "label": r.label,
                "transcript": r.transcript,
                "confidence": None if pd.isna(r.confidence) else float(r.confidence),
                "out_of_fold": False,
            }
            for r in rows.itertuples(index=False)
        ]
        for start in range(0, len(records), 2000):
            s.execute(insert(Prediction), records[start : start + 2000])
        record(
            s,
            entity="model_run",
            entity_id=run.id,
            action="create",
            new={"name": name, "kind": "external", "n": len(records), "source": Path(path).name},
            actor_id=actor_id,
            project_id=info.id,
        )
        return _summary(run, len(records), problems)
