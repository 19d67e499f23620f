"""Learning-curve replay and its summaries, on scikit-learn's toy sets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from analysis.active import STRATEGIES
from analysis.learning_curve import area_under_curve, labels_to_reach, replay


def logreg():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))


@pytest.fixture(autouse=True)
def one_blas_thread():
    # Small fits: BLAS threads only spin against each other.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_area_under_curve_is_the_trapezoid_mean_worked_by_hand():
    labels, accuracy = [0, 10, 20], [0.5, 0.7, 0.9]
    assert area_under_curve(labels, accuracy) == pytest.approx(0.7)
    # From 5 labels: accuracy 0.6 there, then ((0.6 + 0.7) / 2 · 5 + (0.7 + 0.9) / 2 · 10) / 15.
    assert area_under_curve(labels, accuracy, start=5) == pytest.approx((0.65 * 5 + 0.8 * 10) / 15)
    with pytest.raises(ValueError, match="outside"):
        area_under_curve(labels, accuracy, start=30)
    with pytest.raises(ValueError, match="NaN"):
        area_under_curve(labels, [np.nan, 0.7, 0.9])


def test_labels_to_reach_is_the_first_point_at_or_above_the_target():
    labels, accuracy = [10, 20, 30, 40], [0.5, np.nan, 0.8, 0.7]
    assert labels_to_reach(labels, accuracy, 0.8) == 30
    assert labels_to_reach(labels, accuracy, 0.5) == 10
    assert np.isnan(labels_to_reach(labels, accuracy, 0.9))


def test_replay_spends_the_budget_in_batches_from_a_shared_random_start():
    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=0)
    X_pool, y_pool, X_test, y_test = X[:300], y[:300], X[300:], y[300:]
    curves = {
        name: replay(
            X_pool,
            y_pool,
            X_test,
            y_test,
            strategy=STRATEGIES[name],
            model_factory=logreg,
            initial=30,
            batch=20,
            budget=110,
            random_state=7,
        )
        for name in ("random", "margin", "vote_entropy", "margin_diversity")
    }
    for name, curve in curves.items():
        assert curve.labels.tolist() == [30, 50, 70, 90, 110], name
        assert len(set(curve.order.tolist())) == 110, name
        assert np.all((curve.accuracy >= 0) & (curve.accuracy <= 1)), name
        assert set(curve.order[:30].tolist()) == set(curves["random"].order[:30].tolist())
    assert curves["margin"].at(30) == curves["random"].at(30)
    assert set(curves["margin"].order[30:50].tolist()) != set(curves["random"].order[30:50].tolist())
    again = replay(
        X_pool,
        y_pool,
        X_test,
        y_test,
        strategy=STRATEGIES["margin_diversity"],
        model_factory=logreg,
        initial=30,
        batch=20,
        budget=110,
        random_state=7,
    )
    assert again.order.tolist() == curves["margin_diversity"].order.tolist()


def test_until_the_model_can_be_fitted_clips_come_in_random_order():
    class NeedsTen:
        """A model that refuses fewer than 10 clips of some class (like the calibrated SVM's folds)."""

        def __init__(self):
            self.inner = LogisticRegression(max_iter=300)

        def fit(self, X, y):
            if np.unique(y, return_counts=True)[1].min() < 10:
                raise ValueError("too few clips of some class")
            self.inner.fit(X, y)
            return self

        def predict(self, X):
            return self.inner.predict(X)

        def predict_proba(self, X):
            return self.inner.predict_proba(X)

    X, y = make_classification(n_samples=300, n_features=5, n_classes=2, random_state=1)
    curve = replay(
        X[:200],
        y[:200],
        X[200:],
        y[200:],
        strategy=STRATEGIES["margin"],
        model_factory=NeedsTen,
        initial=4,
        batch=4,
        budget=60,
        random_state=0,
    )
    first_fit = np.flatnonzero(~np.isnan(curve.accuracy))[0]
    assert first_fit > 0
    assert np.isnan(curve.accuracy[:first_fit]).all()
    random = replay(
        X[:200],
        y[:200],
        X[200:],
        y[200:],
        strategy=STRATEGIES["random"],
        model_factory=NeedsTen,
        initial=4,
        batch=4,
        budget=60,
        random_state=0,
    )
    n_random = curve.labels[first_fit]
    assert curve.order[:n_random].tolist() == random.order[:n_random].tolist()


def test_uncertainty_sampling_beats_random_order_on_digits():
    """Settles's survey (2009) and the modAL/ALiPy examples: on handwritten digits, labelling by
    margin reaches a given accuracy with fewer labels than random order."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(y))
    pool, test = rows[:1200], rows[1200:]
    gains = []
    for seed in range(3):  # the median of three seeds, so one lucky random start cannot decide
        curves = {
            name: replay(
                X[pool],
                y[pool],
                X[test],
                y[test],
                strategy=STRATEGIES[name],
                model_factory=logreg,
                initial=30,
                batch=30,
                budget=180,
                random_state=seed,
            )
            for name in ("random", "margin")
        }
        gains.append(
            area_under_curve(curves["margin"].labels, curves["margin"].accuracy)
            - area_under_curve(curves["random"].labels, curves["random"].accuracy)
        )
    assert np.median(gains) > 0.01
