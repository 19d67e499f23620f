"""The fixed model: honest per-clip predictions, metrics sklearn agrees with, a fingerprint that moves."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from analysis import model
from analysis.features import FeatureSettings, feature_frame
from analysis.model import (
    DEFAULT_PARAMS,
    build_pipeline,
    code_fingerprint,
    out_of_fold_probabilities,
    train_and_predict,
)

SETTINGS = FeatureSettings(sample_rate=8000)


def blobs(
    n_per_class: int = 30, *, classes=("cat", "dog", "owl"), seed: int = 0, spread: float = 2.5
) -> pd.DataFrame:
    """Gaussian clusters in 6 dimensions (overlapping at the default spread), one row per clip key."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i, name in enumerate(classes):
        centre = np.zeros(6)
        centre[i] = spread
        rows.append(centre + rng.normal(size=(n_per_class, 6)))
        labels += [name] * n_per_class
    frame = pd.DataFrame(np.vstack(rows), columns=[f"f{j}" for j in range(6)])
    frame.index = pd.Index([f"{k:064x}" for k in range(len(frame))], name="key")
    frame["label"] = labels
    return frame


def split_of(index: pd.Index, *, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.choice(["train", "train", "train", "dev", "test"], size=len(index)), index=index)


@pytest.fixture(scope="module")
def run():
    data = blobs()
    features, labels = data.drop(columns="label"), data["label"]
    splits = split_of(features.index)
    return features, labels, splits, train_and_predict(features, labels, splits, settings=SETTINGS)


def test_every_clip_gets_one_prediction_in_frame_order(run):
    features, labels, splits, result = run
    preds = result.predictions
    assert list(preds["key"]) == list(features.index)
    assert list(preds["split"]) == list(splits)
    assert list(preds["y_true"]) == list(labels)
    proba = preds[[f"proba_{c}" for c in result.classes_]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(preds["y_pred"]) == list(result.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(preds["confidence"], proba.max(axis=1))
    assert list(preds["correct"]) == list(preds["y_pred"] == preds["y_true"])


def test_training_clips_are_predicted_out_of_fold_by_sklearn_cross_validation(run):
    features, labels, splits, result = run
    train = (splits == "train").to_numpy()
    preds = result.predictions
    assert preds["out_of_fold"].to_numpy().tolist() == train.tolist()
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    expected = cross_val_predict(
        clone(build_pipeline()), features[train], labels[train], cv=folds, method="predict_proba"
    )
    np.testing.assert_allclose(preds.loc[train, [f"proba_{c}" for c in result.classes_]], expected)


def test_training_says_what_it_does_fold_by_fold():
    data = blobs(12)
    features, labels = data.drop(columns="label"), data["label"]
    splits = split_of(features.index)
    seen: list[tuple[str, int, int]] = []
    train_and_predict(features, labels, splits, progress=lambda *step: seen.append(step))
    n_train = int((splits == "train").sum())
    fit = f"Fitting the model on {n_train} training clips"
    assert seen[:2] == [(fit, 0, 1), (fit, 1, 1)]
    folds = seen[2:]
    # One report as each fold starts and one at the end; never "0 of 1" for the folds.
    total = folds[0][2]
    assert total >= 2
    assert [(done, n) for _, done, n in folds] == [(i, total) for i in range(total + 1)]
    assert all(stage.startswith(f"Cross-validating on the {n_train} training clips") for stage, _, _ in folds)


def test_other_splits_are_predicted_by_a_model_refitted_on_all_training_clips(run):
    features, labels, splits, result = run
    train = (splits == "train").to_numpy()
    refit = clone(build_pipeline(**DEFAULT_PARAMS)).fit(features[train], labels[train])
    np.testing.assert_allclose(
        result.predictions.loc[~train, [f"proba_{c}" for c in result.classes_]],
        refit.predict_proba(features[~train]),
    )
    np.testing.assert_allclose(result.pipeline.predict_proba(features), refit.predict_proba(features))


def test_metrics_per_split_agree_with_sklearn(run):
    _, _, _, result = run
    preds = result.predictions
    for split, rows in [("overall", preds), *preds.groupby("split")]:
        got = result.metrics[split]
        assert got["n"] == len(rows)
        assert got["accuracy"] == pytest.approx(accuracy_score(rows["y_true"], rows["y_pred"]))
        assert got["macro_f1"] == pytest.approx(f1_score(rows["y_true"], rows["y_pred"], average="macro"))
    assert set(result.metrics) == {"overall", "train", "dev", "test"}


def test_run_records_its_parameters_and_fingerprint(run):
    _, _, _, result = run
    assert result.params == DEFAULT_PARAMS
    assert result.fingerprint == code_fingerprint(DEFAULT_PARAMS, settings=SETTINGS)


def test_unlabelled_clips_are_predicted_but_not_scored():
    data = blobs()
    features, labels = data.drop(columns="label"), data["label"].copy()
    labels.iloc[[0, 40, 80]] = None
    splits = split_of(features.index)
    result = train_and_predict(features, labels.dropna(), splits, params={"classifier": "logreg"})
    preds = result.predictions.set_index("key")
    unlabelled = labels.index[labels.isna()]
    assert preds.loc[unlabelled, "correct"].isna().all()
    assert preds.loc[unlabelled, "y_pred"].notna().all()
    assert result.metrics["overall"]["n"] == len(features) - 3


def test_logistic_regression_trains_on_tiny_classes_where_calibrated_svc_refuses():
    data = pd.concat([blobs(20, classes=("a", "b")), blobs(3, classes=("c",), seed=5)])
    data.index = pd.Index([f"k{i}" for i in range(len(data))], name="key")
    features, labels = data.drop(columns="label"), data["label"]
    splits = pd.Series("train", index=features.index)
    with pytest.raises(ValueError, match=r"class 'c' has 3 clips.*logreg"):
        train_and_predict(features, labels, splits)
    result = train_and_predict(features, labels, splits, params={"classifier": "logreg"})
    assert result.predictions["out_of_fold"].all()


def test_bad_inputs_get_clear_errors():
    data = blobs()
    features, labels = data.drop(columns="label"), data["label"]
    splits = split_of(features.index)
    with pytest.raises(ValueError, match="no features"):
        train_and_predict(features.iloc[1:], labels, splits)
    with pytest.raises(ValueError, match="two classes"):
        train_and_predict(features, pd.Series("cat", index=features.index), splits)
    with pytest.raises(ValueError, match="unknown classifier"):
        train_and_predict(features, labels, splits, params={"classifier": "forest"})
    with pytest.raises(TypeError):
        train_and_predict(features, labels, splits, params={"kernel_size": 3})


def test_out_of_fold_probabilities_cover_all_labelled_clips_in_sorted_class_order():
    data = blobs(classes=("owl", "cat", "dog"))
    features, labels = data.drop(columns="label"), data["label"].copy()
    labels.iloc[5] = None
    proba = out_of_fold_probabilities(features, labels, random_state=3)
    assert list(proba.columns) == ["cat", "dog", "owl"]
    assert list(proba.index) == list(labels.dropna().index)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    keep = labels.notna()
    expected = cross_val_predict(
        clone(build_pipeline()),
        features[keep],
        labels[keep],
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=3),
        method="predict_proba",
    )
    np.testing.assert_allclose(proba.to_numpy(), expected)


def test_out_of_fold_probabilities_let_cleanlab_find_flipped_labels():
    from cleanlab.filter import find_label_issues

    data = blobs(60, seed=2, spread=6.0)
    features, labels = data.drop(columns="label"), data["label"].copy()
    # Flip labels of points that sit deep inside another class's cluster.
    flipped = labels.index[[3, 70, 150]]
    labels[flipped] = ["dog", "owl", "cat"]
    proba = out_of_fold_probabilities(features, labels)
    codes = labels.map({c: i for i, c in enumerate(proba.columns)}).to_numpy()
    issues = find_label_issues(codes, proba.to_numpy(), filter_by="prune_by_noise_rate")
    assert set(flipped) <= set(features.index[issues])
    assert issues.sum() <= 6


def test_fingerprint_names_parameters_and_settings():
    base = code_fingerprint({}, settings=SETTINGS)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert code_fingerprint(DEFAULT_PARAMS, settings=SETTINGS) == base
    assert code_fingerprint({"C": 10.0}, settings=FeatureSettings(sample_rate=8000)) == base
    changed = {
        code_fingerprint({"C": 1.0}, settings=SETTINGS),
        code_fingerprint({"classifier": "logreg"}, settings=SETTINGS),
        code_fingerprint({}, settings=FeatureSettings(sample_rate=16000)),
        code_fingerprint({}, settings=None),
    }
    assert base not in changed
    assert len(changed) == 4


def load_copy(source: Path, folder: Path, monkeypatch, extra: str = "") -> object:
    target = folder / source.name
    shutil.copyfile(source, target)
    if extra:
        target.write_text(target.read_text() + extra)
    name = f"copy_of_{source.stem}_{len(extra)}"
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_fingerprint_changes_when_the_feature_code_changes(tmp_path, monkeypatch):
    base = code_fingerprint({}, settings=SETTINGS)
    source = Path(model.features_module.__file__)
    (tmp_path / "same").mkdir()
    (tmp_path / "edited").mkdir()
    monkeypatch.setattr(model, "features_module", load_copy(source, tmp_path / "same", monkeypatch))
    assert code_fingerprint({}, settings=SETTINGS) == base
    monkeypatch.setattr(
        model, "features_module", load_copy(source, tmp_path / "edited", monkeypatch, "\nSCALE = 2\n")
    )
    assert code_fingerprint({}, settings=SETTINGS) != base


@pytest.mark.fsdd
@pytest.mark.slow
def test_official_fsdd_split_reaches_97_percent_test_accuracy(fsdd_dir):
    paths = {p.stem: p for p in sorted((fsdd_dir / "recordings").glob("*.wav"))}
    assert len(paths) == 2000
    features = feature_frame(paths, settings=SETTINGS, n_jobs=2)
    parts = features.index.str.split("_")
    labels = pd.Series([p[0] for p in parts], index=features.index)
    splits = pd.Series(["test" if int(p[2]) < 5 else "train" for p in parts], index=features.index)
    result = train_and_predict(features, labels, splits, settings=SETTINGS)
    test = result.predictions[result.predictions["split"] == "test"]
    assert len(test) == 200
    assert accuracy_score(test["y_true"], test["y_pred"]) >= 0.97
    assert result.metrics["test"]["accuracy"] == accuracy_score(test["y_true"], test["y_pred"])
