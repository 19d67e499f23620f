"""Learning curves: what a queue strategy's labels buy, replayed on a labelled pool.

Call :func:`replay` with a pool whose labels are known (they are revealed only as the strategy asks
for them), a test set, a model factory (the fixed model: ``lambda: build_pipeline(**params)``) and a
:class:`analysis.active.Strategy`: it labels the pool in batches, refits the model after each batch
and records test accuracy against labels spent. Summarise curves with :func:`area_under_curve` and
:func:`labels_to_reach` (e.g. the labels a strategy needs to reach the accuracy random order reaches
at 1,000).

Until the model can be fitted (a factory raising ValueError, e.g. too few clips of some class for its
internal cross-validation), clips are taken in the seed's random order, as a queue without a trained
model would hand them out, and accuracy is NaN; so are they while a committee strategy cannot fit a
committee of two. Every strategy replayed with the same
``random_state`` starts from the same random clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.active import Strategy, committee_probabilities, select_batch


@dataclass(frozen=True)
class LearningCurve:
    """Test accuracy of the fixed model against labels spent, for one strategy and seed.

    Attributes
    ----------
    strategy
        The strategy's name.
    labels
        Labels spent at each point (increasing).
    accuracy
        Test accuracy of the model fitted on those labels; NaN while it could not be fitted.
    order
        Pool indices in the order they were labelled.
    """

    strategy: str
    labels: np.ndarray
    accuracy: np.ndarray
    order: np.ndarray

    def at(self, labels: int) -> float:
        """Accuracy at exactly ``labels`` labels (NaN if the curve has no such point)."""
        hit = np.flatnonzero(self.labels == labels)
        return float(self.accuracy[hit[0]]) if hit.size else float("nan")


def _rows(x: Any, rows: np.ndarray) -> Any:
    return x.iloc[rows] if hasattr(x, "iloc") else x[rows]


def replay(
    X_pool: Any,
    y_pool: Any,
    X_test: Any,
    y_test: Any,
    *,
    strategy: Strategy,
    model_factory: Callable[[], Any],
    initial: int,
    batch: int,
    budget: int,
    committee_folds: int = 5,
    random_state: int = 0,
) -> LearningCurve:
    """Simulate labelling ``X_pool`` with ``strategy`` and record the fixed model's test accuracy.

    Parameters
    ----------
    X_pool, y_pool
        Features (array or DataFrame) and true labels of the clips that may be labelled.
    X_test, y_test
        The held-out clips accuracy is measured on (never labelled, never scored).
    strategy
        How the next batch is chosen (see :data:`analysis.active.STRATEGIES`).
    model_factory
        Returns a new, unfitted scikit-learn classifier with ``predict_proba``; called for every fit,
        so the code and parameters stay fixed while only the labels change.
    initial
        Clips labelled at random before the strategy is first asked (the same for every strategy
        with this ``random_state``).
    batch
        Clips labelled between refits.
    budget
        Labels to spend in all; at most the pool size.
    committee_folds
        Members of the committee (committee strategies only).
    random_state
        Seed of the initial clips and of every choice the strategy makes.

    Returns
    -------
    LearningCurve
        One point after the initial clips and one after every batch, the last at ``budget``.
    """
    y = np.asarray(y_pool)
    y_te = np.asarray(y_test)
    n_pool = len(y)
    if not 0 < initial <= budget <= n_pool:
        raise ValueError(f"need 0 < initial <= budget <= pool size, got {initial}, {budget}, {n_pool}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    rng = np.random.default_rng(random_state)
    shuffled = rng.permutation(n_pool)
    labelled = np.zeros(n_pool, dtype=bool)
    order: list[int] = []

    def take(indices: np.ndarray) -> None:
        labelled[indices] = True
        order.extend(int(i) for i in indices)

    take(shuffled[:initial])
    points: list[tuple[int, float]] = []
    while True:
        rows = np.asarray(order)
        try:
            model = model_factory().fit(_rows(X_pool, rows), y[rows])
        except ValueError:
            model = None
        accuracy = float("nan") if model is None else float(np.mean(model.predict(X_test) == y_te))
        points.append((len(order), accuracy))
        if len(order) >= budget:
            break
        n = min(batch, budget - len(order))
        unlabelled = np.flatnonzero(~labelled)
        step_seed = int(rng.integers(2**31))
        if model is None or strategy.measure == "random":
            take(shuffled[~labelled[shuffled]][:n])
            continue
        X_unl = _rows(X_pool, unlabelled)
        proba = model.predict_proba(X_unl) if strategy.needs_model else None
        committee = None
        if strategy.needs_committee:
            try:
                committee, _ = committee_probabilities(
                    model_factory(),
                    _rows(X_pool, rows),
                    y[rows],
                    X_unl,
                    n_folds=committee_folds,
                    random_state=step_seed,
                )
            except ValueError:
                # Too few labels for any committee yet: random order, as without a model.
                take(shuffled[~labelled[shuffled]][:n])
                continue
        features = labelled_features = None
        if strategy.diversity:
            features = np.asarray(X_unl, dtype=np.float64)
            labelled_features = np.asarray(_rows(X_pool, rows), dtype=np.float64)
        picked = select_batch(
            strategy,
            n,
            proba=proba,
            committee=committee,
            features=features,
            labelled_features=labelled_features,
            n_clips=unlabelled.size,
            random_state=step_seed,
        )
        take(unlabelled[picked])
    return LearningCurve(
        strategy=strategy.name,
        labels=np.array([p[0] for p in points], dtype=np.int64),
        accuracy=np.array([p[1] for p in points], dtype=np.float64),
        order=np.asarray(order, dtype=np.int64),
    )


def area_under_curve(
    labels: Any, accuracy: Any, *, start: float | None = None, stop: float | None = None
) -> float:
    """Area under the learning curve between ``start`` and ``stop`` labels, divided by its width.

    The trapezoid rule over the curve's points (linear between them), so the result is the mean
    accuracy over that range of budgets, comparable between ranges: a strategy that is ahead early
    scores higher even when every strategy ends at the same accuracy.

    Parameters
    ----------
    labels, accuracy
        The curve (e.g. :attr:`LearningCurve.labels` and :attr:`LearningCurve.accuracy`), labels
        increasing.
    start, stop
        Range of labels; default the curve's first and last points. Both must lie on the curve's span.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the range is empty or outside the curve, or the curve is NaN inside it.
    """
    x = np.asarray(labels, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError("a learning curve needs at least two points, labels and accuracy of equal length")
    if np.any(np.diff(x) <= 0):
        raise ValueError("labels must increase")
    lo = x[0] if start is None else float(start)
    hi = x[-1] if stop is None else float(stop)
    if not x[0] <= lo < hi <= x[-1]:
        raise ValueError(f"the range {lo:g}-{hi:g} is empty or outside the curve's {x[0]:g}-{x[-1]:g}")
    inside = (x > lo) & (x < hi)
    xs = np.concatenate([[lo], x[inside], [hi]])
    ys = np.interp(xs, x, y)
    if np.isnan(ys).any() or np.isnan(y[(x >= lo) & (x <= hi)]).any():
        raise ValueError("the curve has no accuracy (NaN) inside the range")
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (hi - lo))


def labels_to_reach(labels: Any, accuracy: Any, target: float) -> float:
    """The fewest labels at which the curve's accuracy is at least ``target``; NaN if it never is.

    The first point of the curve that reaches it (no interpolation): a team that stopped labelling
    there would have a model that good.
    """
    x = np.asarray(labels, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    hit = np.flatnonzero(np.nan_to_num(y, nan=-np.inf) >= target)
    return float(x[hit[0]]) if hit.size else float("nan")
