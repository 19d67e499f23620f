"""Confident learning against cleanlab (an independent implementation) on the same probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cleanlab.count import compute_confident_joint
from cleanlab.filter import find_label_issues as cleanlab_issues

from analysis.label_issues import confident_joint, find_label_issues


def noisy_problem(seed: int, *, n: int = 600, k: int = 4, flip: float = 0.1):
    """Probabilities of a decent classifier, and labels with a share of them flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += rng.uniform(1.0, 4.0, n)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, int(flip * n), replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, flipped.size)) % k
    classes = [f"c{j}" for j in range(k)]
    frame = pd.DataFrame(proba, index=pd.Index(np.arange(n) + 1000, name="key"), columns=classes)
    labels = pd.Series([classes[j] for j in given], index=frame.index)
    return frame, labels, given, set(frame.index[flipped])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrated_confident_joint_matches_cleanlab(seed):
    frame, _, given, _ = noisy_problem(seed)
    ours = confident_joint(frame.to_numpy(), given)
    theirs = compute_confident_joint(given, frame.to_numpy())
    assert ours.sum() == theirs.sum() == len(given)
    assert np.abs(ours - theirs).max() <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_issues_overlap_cleanlabs_prune_by_noise_rate(seed):
    frame, labels, given, _ = noisy_problem(seed)
    ours = set(find_label_issues(frame, labels)["key"])
    theirs = set(frame.index[cleanlab_issues(given, frame.to_numpy())])
    jaccard = len(ours & theirs) / len(ours | theirs)
    assert jaccard >= 0.9, (len(ours), len(theirs), jaccard)


def test_candidates_are_ranked_by_self_confidence_and_name_a_better_label():
    frame, labels, _, flipped = noisy_problem(3)
    issues = find_label_issues(frame, labels)
    assert issues["self_confidence"].is_monotonic_increasing
    assert (issues["given_label"] != issues["suggested_label"]).all()
    # Most candidates are the labels that were flipped.
    assert len(set(issues["key"]) & flipped) / len(issues) >= 0.7
    for row in issues.head(5).itertuples():
        assert frame.loc[row.key, row.given_label] == pytest.approx(row.self_confidence)
        assert frame.loc[row.key, row.suggested_label] == frame.loc[row.key].drop(row.given_label).max()


def test_clean_labels_give_few_candidates_and_bad_input_is_refused():
    frame, labels, _, _ = noisy_problem(4, flip=0.0)
    assert len(find_label_issues(frame, labels)) <= 0.03 * len(frame)
    with pytest.raises(ValueError, match="not columns"):
        find_label_issues(frame, labels.replace("c0", "zz"))
    with pytest.raises(ValueError, match="no label"):
        find_label_issues(frame, labels.iloc[:-1])
