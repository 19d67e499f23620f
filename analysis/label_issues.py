"""Label-issue candidates by confident learning: call :func:`find_label_issues`.

The method is Northcutt, Jiang and Chuang's "Confident Learning: Estimating Uncertainty in Dataset
Labels" (JAIR 2021), the default of ``cleanlab.filter.find_label_issues`` (prune by noise rate):

1. a per-class threshold ``t_j`` is the mean probability of class ``j`` over the clips labelled ``j``
   (the model's average self-confidence in that class);
2. the confident joint counts, for each given label ``i``, the clips whose probability of some class
   ``j`` reaches ``t_j`` (taking the likeliest such class), as ``C[i, j]``;
3. its rows are calibrated to the class sizes, so ``C[i, j]`` estimates how many clips labelled ``i``
   truly belong to ``j``;
4. for every off-diagonal cell, that many clips labelled ``i`` with the largest margin
   ``p_j - p_i`` are flagged (prune by noise rate), except clips the model predicts as labelled;
5. candidates are ranked by self-confidence (probability of the given label), lowest first.

Probabilities must be out of sample (e.g. :func:`analysis.model.out_of_fold_probabilities`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ISSUE_COLUMNS = ("key", "given_label", "suggested_label", "self_confidence", "suggested_confidence")


def _checked(proba: pd.DataFrame, labels: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    classes = [str(c) for c in proba.columns]
    p = proba.to_numpy(dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError("probabilities need one column per class and at least two classes")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinite values")
    given = labels.reindex(proba.index)
    if given.isna().any():
        raise ValueError(f"{int(given.isna().sum())} rows of the probabilities have no label")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(given.astype(str)) - set(index))
    if unknown:
        raise ValueError(f"labels {', '.join(unknown)} are not columns of the probabilities")
    y = given.astype(str).map(index).to_numpy(dtype=np.int64)
    return p, y, classes


def per_class_thresholds(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean self-confidence per class; a class nobody is labelled with gets threshold 1 (never reached)."""
    k = proba.shape[1]
    out = np.ones(k)
    for j in range(k):
        rows = y == j
        if rows.any():
            out[j] = proba[rows, j].mean()
    return out


def confident_joint(proba: np.ndarray, y: np.ndarray, *, calibrate: bool = True) -> np.ndarray:
    """The (given label x true label) count matrix of confident learning, shape (K, K).

    With ``calibrate`` each row is rescaled to the number of clips with that given label and rounded
    so the row total is kept (largest remainders).
    """
    k = proba.shape[1]
    thresholds = per_class_thresholds(proba, y)
    # A tiny tolerance so a clip exactly at the mean counts as above it despite rounding.
    above = proba >= thresholds[None, :] - 1e-12
    confident = above.any(axis=1)
    assigned = np.where(above, proba, -np.inf).argmax(axis=1)
    joint = np.zeros((k, k), dtype=np.float64)
    np.add.at(joint, (y[confident], assigned[confident]), 1.0)
    if not calibrate:
        return joint.astype(np.int64)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    rows = joint.sum(axis=1)
    # A class none of whose clips is confidently assigned keeps them all on the diagonal.
    scaled = np.where(rows[:, None] > 0, joint / np.maximum(rows, 1.0)[:, None] * counts[:, None], 0.0)
    empty = rows == 0
    scaled[empty, empty] = counts[empty]
    return _round_rows(scaled)


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    floors = np.floor(matrix)
    out = floors.astype(np.int64)
    remainders = matrix - floors
    short = np.round(matrix.sum(axis=1) - floors.sum(axis=1)).astype(np.int64)
    for i, n in enumerate(short):
        if n > 0:
            out[i, np.argsort(-remainders[i], kind="stable")[:n]] += 1
    return out


def find_label_issues(proba: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Clips whose given label is probably wrong, most suspicious first.

    Parameters
    ----------
    proba
        Out-of-sample class probabilities, one row per clip (indexed by clip key), one column per class.
    labels
        Given label per clip key; every row of ``proba`` needs one.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ISSUE_COLUMNS`: ``key``, ``given_label``, ``suggested_label`` (the likeliest
        other class), ``self_confidence`` (probability of the given label) and
        ``suggested_confidence``; one row per candidate, sorted by ``self_confidence`` ascending.
    """
    p, y, classes = _checked(proba, labels)
    joint = confident_joint(p, y)
    k = p.shape[1]
    flagged = np.zeros(len(y), dtype=bool)
    for i in range(k):
        members = np.flatnonzero(y == i)
        if members.size <= 1:
            continue
        for j in range(k):
            n = int(joint[i, j])
            if i == j or n <= 0:
                continue
            margin = p[members, j] - p[members, i]
            flagged[members[np.argsort(-margin, kind="stable")[:n]]] = True
    # A clip the model itself predicts as its given label is not worth a reviewer's time.
    flagged &= p.argmax(axis=1) != y
    rows = np.flatnonzero(flagged)
    self_conf = p[rows, y[rows]]
    others = p[rows].copy()
    others[np.arange(len(rows)), y[rows]] = -np.inf
    suggested = others.argmax(axis=1)
    out = pd.DataFrame(
        {
            "key": proba.index.to_numpy()[rows],
            "given_label": [classes[c] for c in y[rows]],
            "suggested_label": [classes[c] for c in suggested],
            "self_confidence": self_conf,
            "suggested_confidence": p[rows, suggested],
        },
        columns=list(ISSUE_COLUMNS),
    )
    return out.sort_values(["self_confidence", "key"], kind="stable", ignore_index=True)
