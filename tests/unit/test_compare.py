"""Run comparison: McNemar's exact test against statsmodels, slices and confusion differences by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from analysis.compare import compare_predictions, mcnemar_exact


@pytest.mark.parametrize(
    ("both_right", "only_a", "only_b", "both_wrong"),
    [(50, 3, 12, 5), (10, 0, 0, 2), (40, 7, 6, 1), (0, 1, 9, 0), (100, 20, 45, 3)],
)
def test_mcnemar_matches_statsmodels_exact(both_right, only_a, only_b, both_wrong):
    a = np.array([1] * both_right + [1] * only_a + [0] * only_b + [0] * both_wrong, dtype=bool)
    b = np.array([1] * both_right + [0] * only_a + [1] * only_b + [0] * both_wrong, dtype=bool)
    ours = mcnemar_exact(a, b)
    table = [[both_right, only_a], [only_b, both_wrong]]
    assert ours.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9)
    assert (ours.only_a, ours.only_b) == (only_a, only_b)


def preds(rows):
    return pd.DataFrame(rows, columns=["clip_id", "split", "y_true", "y_pred", "tags"])


A = preds(
    [
        (1, "test", "yes", "yes", ["noise:car"]),
        (2, "test", "no", "yes", ["noise:car"]),
        (3, "test", "no", "no", []),
        (4, "test", "yes", "no", ["noise:car"]),
        (5, "train", "yes", "no", ["noise:car"]),  # not evaluated
        (6, "test", "no", "no", []),  # run B did not predict it
    ]
)
B = preds(
    [
        (1, "test", "yes", "yes", ["noise:car"]),
        (2, "test", "no", "no", ["noise:car"]),
        (3, "test", "no", "yes", []),
        (4, "test", "yes", "yes", ["noise:car"]),
        (5, "train", "yes", "yes", ["noise:car"]),
        (7, "test", "no", "no", []),
    ]
)


def test_runs_are_compared_on_shared_test_clips_with_slice_deltas():
    cmp = compare_predictions(A, B)
    assert cmp.clips["clip_id"].tolist() == [1, 2, 3, 4]
    overall = cmp.overall.set_index("metric")
    assert overall.loc["accuracy", "a"] == pytest.approx(2 / 4)
    assert overall.loc["accuracy", "b"] == pytest.approx(3 / 4)
    assert overall.loc["accuracy", "delta"] == pytest.approx(0.25)
    car = cmp.slices.set_index("slice").loc["noise:car"]
    assert (car["n"], car["a"], car["b"]) == (3, pytest.approx(1 / 3), pytest.approx(1.0))
    assert (cmp.mcnemar.only_a, cmp.mcnemar.only_b) == (1, 2)


def test_confusion_difference_is_b_minus_a():
    cmp = compare_predictions(A, B)
    diff = cmp.confusion_diff
    # A: no->yes once, yes->no once; B: no->yes once (clip 3), none the other way.
    assert diff.loc["yes", "no"] == -1
    assert diff.loc["no", "no"] == 0
    assert diff.loc["yes", "yes"] == 1
    assert int(diff.to_numpy().sum()) == 0


def test_no_shared_clips_gives_empty_results_not_errors():
    cmp = compare_predictions(A[A["clip_id"] == 6], B[B["clip_id"] == 7])
    assert cmp.mcnemar.p_value == 1.0
    assert cmp.slices.empty
    assert np.isnan(cmp.overall.set_index("metric").loc["accuracy", "a"])
