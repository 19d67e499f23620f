"""The fixed model: one scikit-learn pipeline over the per-clip features, trained the same way every time.

Call :func:`train_and_predict` with a feature frame (from :func:`analysis.features.feature_frame`),
labels and splits; it returns a :class:`RunResult` with honest per-clip predictions (out-of-fold on the
training split) and metrics per split. Call :func:`out_of_fold_probabilities` for the out-of-fold class
probabilities of every labelled clip, which label-issue detection needs. :func:`code_fingerprint` names
the model code, its parameters and the feature settings, so two runs with equal fingerprints differ
only in their data: that is what "code held fixed" means here. Retraining is
``sklearn.base.clone(build_pipeline(**params)).fit(X, y)``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from analysis import features as features_module
from analysis.features import FeatureSettings

DEFAULT_PARAMS: dict[str, Any] = {"classifier": "svc", "C": 10.0, "gamma": "scale", "calibration_folds": 5}
"""Parameters of the default model; 0.985 test accuracy on the official FSDD split (8 kHz features)."""

TRAIN = "train"
FOLD_THREADS = 2
"""Cross-validation folds fitted at once."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what the training is doing, and how far it is."""


def build_pipeline(
    *,
    classifier: str = "svc",
    C: float = 10.0,
    gamma: str | float = "scale",
    calibration_folds: int = 5,
    max_iter: int = 2000,
) -> Pipeline:
    """The model: median imputation, standardisation and a classifier with class probabilities.

    Parameters
    ----------
    classifier
        ``"svc"``: an RBF support vector machine whose scores are turned into probabilities by
        sigmoid calibration on ``calibration_folds`` internal folds (scikit-learn's replacement for
        ``SVC(probability=True)``); needs at least ``calibration_folds`` training clips per class.
        ``"logreg"``: multinomial logistic regression, for tiny classes or when speed matters.
    C
        Inverse regularisation strength of either classifier.
    gamma
        RBF kernel width (``"svc"`` only).
    calibration_folds
        Internal folds of the sigmoid calibration (``"svc"`` only).
    max_iter
        Solver iterations (``"logreg"`` only).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; steps ``impute`` (median, so a NaN pitch of a silent clip is harmless), ``scale``,
        ``classify``.
    """
    if classifier == "svc":
        model: Any = CalibratedClassifierCV(
            SVC(C=C, gamma=gamma), method="sigmoid", cv=calibration_folds, ensemble=False
        )
    elif classifier == "logreg":
        model = LogisticRegression(C=C, max_iter=max_iter)
    else:
        raise ValueError(f"unknown classifier {classifier!r}; expected 'svc' or 'logreg'")
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("classify", model),
        ]
    )


def one_blas_thread() -> threadpool_limits:
    """A context in which BLAS runs on the calling thread only, as every fit and prediction here does.

    The model's matrices are small (hundreds to thousands of clips, 87 features): BLAS threads find
    nothing to share and spin between calls, which made the sigmoid calibration's L-BFGS-B steps
    25 times slower in CPU time, and far slower still on a machine with other work.
    """
    return threadpool_limits(limits=1, user_api="blas")


def resolved_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` over :data:`DEFAULT_PARAMS`, checked by building the pipeline once."""
    merged = {**DEFAULT_PARAMS, **(params or {})}
    build_pipeline(**merged)
    return merged


def _source(module: Any) -> str:
    return inspect.getsource(module).replace("\r\n", "\n").replace("\r", "\n")


def code_fingerprint(params: Mapping[str, Any] | None, *, settings: FeatureSettings | None) -> str:
    """SHA-256 naming the model code, its parameters and the feature settings.

    It changes whenever the source of ``analysis/features.py`` or ``analysis/model.py`` changes (even a
    comment: the hash cannot tell which edits are harmless), whenever a parameter or a feature setting
    changes, and never otherwise. Parameters are merged over :data:`DEFAULT_PARAMS` first, so ``{}``
    and the defaults spelled out name the same model.

    Parameters
    ----------
    params
        Keyword arguments of :func:`build_pipeline`; must be JSON-serialisable.
    settings
        The feature settings the training frame was computed with, or None for features computed
        elsewhere (imported embeddings).

    Returns
    -------
    str
        64 hex digits.
    """
    payload = json.dumps(
        {
            "params": resolved_params(params),
            "features": None if settings is None else asdict(settings),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256()
    for text in (_source(features_module), _source(sys.modules[__name__]), payload):
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class RunResult:
    """What one training run produced.

    Attributes
    ----------
    pipeline
        Fitted on every labelled training clip.
    classes_
        Class labels in the order of the probability columns.
    predictions
        One row per clip, in the order of the feature frame: ``key``, ``split``, ``y_true`` (NA when
        unlabelled), ``y_pred``, ``correct`` (nullable boolean, NA when unlabelled), ``confidence``
        (probability of ``y_pred``), ``out_of_fold`` (True for training clips predicted by a model
        that did not see them), then ``proba_<class>`` for each class.
    metrics
        ``{"overall" | split: {"n", "accuracy", "macro_f1", "mean_confidence"}}`` over labelled clips;
        training clips count with their out-of-fold predictions.
    params
        The parameters the pipeline was built with (defaults filled in).
    fingerprint
        :func:`code_fingerprint` of the params and feature settings.
    """

    pipeline: Pipeline
    classes_: np.ndarray
    predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    params: dict[str, Any]
    fingerprint: str


def _aligned(features: pd.DataFrame, series: pd.Series, what: str) -> pd.Series:
    unknown = series.index.difference(features.index)
    if len(unknown):
        raise ValueError(f"{len(unknown)} clips have {what} but no features, e.g. {unknown[0]!r}")
    return series.reindex(features.index)


def _per_class_minimum(params: Mapping[str, Any]) -> int:
    """Fewest training clips per class the model can be fitted on."""
    return int(params["calibration_folds"]) if params["classifier"] == "svc" else 1


def _check_trainable(y: np.ndarray, params: Mapping[str, Any], what: str) -> None:
    counts = pd.Series(y).value_counts()
    if counts.size < 2:
        raise ValueError(f"{what} needs at least two classes, found {counts.size}")
    need = _per_class_minimum(params)
    if counts.min() < need:
        raise ValueError(
            f"class {counts.idxmin()!r} has {counts.min()} clips in {what}; the {params['classifier']!r} "
            f"model needs at least {need} per class (lower calibration_folds or use classifier='logreg')"
        )


def _folds(
    y: np.ndarray, params: Mapping[str, Any], n_folds: int, random_state: int
) -> StratifiedKFold | None:
    """Stratified folds whose training parts still hold enough clips of every class, if any exist."""
    smallest = int(pd.Series(y).value_counts().min())
    need = max(1, _per_class_minimum(params))
    for k in range(min(n_folds, smallest), 1, -1):
        # StratifiedKFold puts at most ceil(count / k) clips of a class in one test fold.
        if smallest - -(-smallest // k) >= need:
            return StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
    return None


def _out_of_fold(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: StratifiedKFold,
    *,
    stage: str,
    progress: Progress | None,
) -> np.ndarray:
    """``cross_val_predict(pipeline, X, y, cv=folds, method="predict_proba")``, reporting each fold.

    Columns follow ``np.unique(y)``; a fold whose training part lacks a class gives it probability 0.
    """
    classes = np.unique(y)
    proba = np.zeros((len(y), len(classes)))
    n_folds = folds.get_n_splits()

    def fold(rows: tuple[np.ndarray, np.ndarray]) -> None:
        fit_rows, test_rows = rows
        model = clone(pipeline).fit(X.iloc[fit_rows], y[fit_rows])
        proba[np.ix_(test_rows, np.searchsorted(classes, model.classes_))] = model.predict_proba(
            X.iloc[test_rows]
        )

    if progress is not None:
        progress(stage, 0, n_folds)
    # Folds are independent and write disjoint rows; libsvm fits without the GIL, so two threads
    # use two cores, and the result is the same as one thread's.
    with ThreadPoolExecutor(max_workers=FOLD_THREADS) as pool:
        for done, _ in enumerate(pool.map(fold, folds.split(X, y)), 1):
            if progress is not None:
                progress(stage, done, n_folds)
    return proba


def _summary(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray) -> dict[str, float]:
    if y_true.size == 0:
        return {"n": 0, "accuracy": float("nan"), "macro_f1": float("nan"), "mean_confidence": float("nan")}
    return {
        "n": int(y_true.size),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mean_confidence": float(np.mean(confidence)),
    }


def train_and_predict(
    features: pd.DataFrame,
    labels: pd.Series,
    splits: pd.Series,
    *,
    params: Mapping[str, Any] | None = None,
    settings: FeatureSettings | None = None,
    n_folds: int = 5,
    random_state: int = 0,
    progress: Progress | None = None,
) -> RunResult:
    """Fit the model on the training split and predict every clip honestly.

    Training clips are predicted out of fold (``StratifiedKFold`` over the training split with
    ``n_folds`` folds, fewer if a class is smaller; in-sample with ``out_of_fold=False`` if some class
    has a single clip); every other clip is predicted by the model fitted on the whole training split.

    Parameters
    ----------
    features
        One row per clip indexed by clip key, numeric columns (as from ``feature_frame``).
    labels
        Class per clip key; missing or NA keys are unlabelled and still get predictions.
    splits
        Split name per clip key (``"train"``, ``"dev"``, ``"test"``, …); only ``"train"`` is trained on.
    params
        Keyword arguments of :func:`build_pipeline` over :data:`DEFAULT_PARAMS`.
    settings
        Feature settings of ``features``, recorded in the fingerprint.
    n_folds, random_state
        Cross-validation of the training split.
    progress
        ``progress(stage, done, total)``: fitting the model (0 then 1 of 1), then each fold.

    Returns
    -------
    RunResult
    """
    with one_blas_thread():
        return _train_and_predict(features, labels, splits, params, settings, n_folds, random_state, progress)


def _train_and_predict(
    features: pd.DataFrame,
    labels: pd.Series,
    splits: pd.Series,
    params: Mapping[str, Any] | None,
    settings: FeatureSettings | None,
    n_folds: int,
    random_state: int,
    progress: Progress | None,
) -> RunResult:
    merged = resolved_params(params)
    y_all = _aligned(features, labels, "labels")
    split_all = _aligned(features, splits, "splits")
    labelled = y_all.notna().to_numpy()
    is_train = labelled & (split_all == TRAIN).fillna(False).to_numpy(dtype=bool)
    X_train, y_train = features.loc[is_train], y_all[is_train].to_numpy()
    _check_trainable(y_train, merged, "the training split")

    fitting = f"Fitting the model on {len(y_train):,} training clips"
    if progress is not None:
        progress(fitting, 0, 1)
    pipeline = clone(build_pipeline(**merged)).fit(X_train, y_train)
    classes = pipeline.classes_
    proba = pipeline.predict_proba(features)
    if progress is not None:
        progress(fitting, 1, 1)
    out_of_fold = np.zeros(len(features), dtype=bool)
    folds = _folds(y_train, merged, n_folds, random_state)
    if folds is not None:
        proba[is_train] = _out_of_fold(
            build_pipeline(**merged),
            X_train,
            y_train,
            folds,
            stage=f"Cross-validating on the {len(y_train):,} training clips (each predicted by a model "
            "that did not see it), fold",
            progress=progress,
        )
        out_of_fold[is_train] = True

    best = proba.argmax(axis=1)
    y_pred = classes[best]
    confidence = proba[np.arange(len(best)), best]
    y_true = y_all.to_numpy()
    correct = pd.array(np.full(len(y_true), pd.NA), dtype="boolean")
    correct[labelled] = y_pred[labelled] == y_true[labelled]
    predictions = pd.DataFrame(
        {
            "key": features.index.to_numpy(),
            "split": split_all.to_numpy(),
            "y_true": y_all.to_numpy(),
            "y_pred": y_pred,
            "correct": correct,
            "confidence": confidence,
            "out_of_fold": out_of_fold,
        }
    )
    proba_frame = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes])
    predictions = pd.concat([predictions, proba_frame], axis=1)

    metrics = {"overall": _summary(y_true[labelled], y_pred[labelled], confidence[labelled])}
    for split in pd.unique(split_all[labelled].dropna()):
        rows = labelled & (split_all == split).fillna(False).to_numpy(dtype=bool)
        metrics[str(split)] = _summary(y_true[rows], y_pred[rows], confidence[rows])
    return RunResult(
        pipeline=pipeline,
        classes_=classes,
        predictions=predictions,
        metrics=metrics,
        params=merged,
        fingerprint=code_fingerprint(merged, settings=settings),
    )


def out_of_fold_probabilities(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    params: Mapping[str, Any] | None = None,
    n_folds: int = 5,
    random_state: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Class probabilities of every labelled clip from a model that did not see it.

    Folds are ``StratifiedKFold`` by class over all labelled clips, whatever their split (not grouped
    by speaker: the question is whether a label looks wrong, not how well the model generalises).

    Parameters
    ----------
    features
        One row per clip indexed by clip key.
    labels
        Class per clip key; NA means unlabelled and the clip is left out.
    params, n_folds, random_state
        As for :func:`train_and_predict`; ``n_folds`` shrinks to the size of the smallest class.
    progress
        ``progress(stage, done, total)`` per fold.

    Returns
    -------
    pandas.DataFrame
        Indexed by the labelled clip keys in feature-frame order; one column per class, in sorted class
        order, so ``labels.map({c: i for i, c in enumerate(frame.columns)})`` gives the integer labels
        that ``cleanlab.filter.find_label_issues(labels, frame.to_numpy())`` expects. Rows sum to 1.

    Raises
    ------
    ValueError
        If fewer than two classes are labelled, or the smallest class is too small to leave enough
        clips in every training fold.
    """
    merged = resolved_params(params)
    y_all = _aligned(features, labels, "labels")
    labelled = y_all.notna().to_numpy()
    X, y = features.loc[labelled], y_all[labelled].to_numpy()
    _check_trainable(y, merged, "the labelled clips")
    folds = _folds(y, merged, n_folds, random_state)
    if folds is None:
        raise ValueError(
            f"the smallest class is too small for out-of-fold probabilities with {merged['classifier']!r}: "
            f"each training fold needs {_per_class_minimum(merged)} clips of every class"
        )
    stage = (
        f"Cross-validating on {len(y):,} labelled clips (each predicted by a model that did not see it), fold"
    )
    with one_blas_thread():
        proba = _out_of_fold(build_pipeline(**merged), X, y, folds, stage=stage, progress=progress)
    return pd.DataFrame(proba, index=X.index, columns=pd.Index(np.unique(y), name="class"))
