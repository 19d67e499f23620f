"""Automatic slice discovery: which conjunctions of tags, metadata and audio measures hide the errors.

Call :func:`discover_slices` with one row per clip, an error column and the columns to slice by; it
returns the ``top_k`` slices such as ``noise=car AND accent=scottish`` or ``duration_s < 0.31``, ranked
by the SliceLine score (Sagadeeva & Boehm, "SliceLine: Fast, Linear-Algebra-based Slice Finding for ML
Model Debugging", SIGMOD 2021)::

    score(S) = alpha * (mean error in S / mean error - 1) - (1 - alpha) * (n / |S| - 1)

which rewards slices that are much worse than average and penalises small ones (``alpha`` near 1 puts
the weight on error). Categorical columns contribute one predicate per value, numeric columns one per
quantile bin. Slices are enumerated level by level (one predicate, then conjunctions of two, …, up to
``max_order``), each level grouping rows by the joint codes of a combination of columns; a slice is
dropped when it is smaller than the minimum support, has no error, covers exactly the rows of one of
its parents, or when SliceLine's upper bound on the score of anything it could still be refined into
cannot beat the current ``top_k``-th score. :func:`slice_mask` selects the rows of a discovered slice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

RESULT_COLUMNS = ["slice", "n", "share", "error_rate", "lift", "score", "order", "predicates"]


@dataclass(frozen=True)
class _Column:
    name: str
    codes: np.ndarray  # per row, -1 where the row satisfies no kept predicate of this column
    predicates: list[tuple[str, str, object]]  # (column, "==" | "in", value | (low, high))
    labels: list[str]


def _format(x: float) -> str:
    return f"{x:.4g}"


def _numeric_column(name: str, values: np.ndarray, bins: int) -> _Column:
    finite = values[~np.isnan(values)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.empty(0)
    # Bin i is [edges[i-1], edges[i]) with open ends, so every finite value falls in exactly one.
    codes = np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="right"))
    bounds = [-math.inf, *edges.tolist(), math.inf]
    predicates: list[tuple[str, str, object]] = []
    labels = []
    for low, high in itertools.pairwise(bounds):
        predicates.append((name, "in", (low, high)))
        if low == -math.inf and high == math.inf:
            labels.append(f"{name} is set")
        elif low == -math.inf:
            labels.append(f"{name} < {_format(high)}")
        elif high == math.inf:
            labels.append(f"{name} >= {_format(low)}")
        else:
            labels.append(f"{_format(low)} <= {name} < {_format(high)}")
    return _Column(name, codes.astype(np.int64), predicates, labels)


def _categorical_column(name: str, values: pd.Series) -> _Column:
    codes, uniques = pd.factorize(values, sort=True)
    predicates: list[tuple[str, str, object]] = [(name, "==", v) for v in uniques.tolist()]
    return _Column(name, codes.astype(np.int64), predicates, [f"{name}={v}" for v in uniques.tolist()])


def _columns(frame: pd.DataFrame, feature_cols: Sequence[str], numeric_bins: int) -> list[_Column]:
    columns = []
    for name in feature_cols:
        series = frame[name]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric and series.nunique(dropna=True) > numeric_bins:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            columns.append(_numeric_column(str(name), values, numeric_bins))
        else:
            columns.append(_categorical_column(str(name), series))
    return columns


def _score(
    size: np.ndarray, errors: np.ndarray, *, total: int, mean_error: float, alpha: float
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return alpha * (errors / size / mean_error - 1) - (1 - alpha) * (total / size - 1)


def _upper_bound(
    size: np.ndarray,
    errors: np.ndarray,
    max_error: np.ndarray,
    *,
    sigma: int,
    total: int,
    mean_error: float,
    alpha: float,
) -> np.ndarray:
    """SliceLine's bound on the score of any sub-slice of at least ``sigma`` rows.

    A sub-slice of size s' has at most min(errors, s' * max_error) error, so its score is bounded by
    the score at s' = sigma, s' = size, or the size where the two error limits meet.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        knee = np.clip(np.where(max_error > 0, errors / max_error, size), sigma, size)
    best = np.full(size.shape, -np.inf)
    for s in (np.full(size.shape, float(sigma)), size.astype(np.float64), knee):
        s = np.minimum(np.maximum(s, sigma), size)
        bound = _score(s, np.minimum(errors, s * max_error), total=total, mean_error=mean_error, alpha=alpha)
        best = np.maximum(best, np.nan_to_num(bound, nan=-np.inf))
    return best


def _group(
    keys: np.ndarray, errors: np.ndarray, binary: bool, n_keys: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys with their row counts, error sums and maximum errors."""
    if n_keys <= 1 << 22:
        counts = np.bincount(keys, minlength=n_keys)
        present = np.flatnonzero(counts)
        sums = np.bincount(keys, weights=errors, minlength=n_keys)[present]
        counts = counts[present]
        inverse = None
    else:
        present, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=errors, minlength=present.size)
    if binary:
        maxima = (sums > 0).astype(np.float64)
    else:
        maxima = np.zeros(present.size)
        slot = inverse if inverse is not None else np.searchsorted(present, keys)
        np.maximum.at(maxima, slot, errors)
    return present, counts, sums, maxima


def discover_slices(
    frame: pd.DataFrame,
    *,
    error_col: str = "error",
    feature_cols: Sequence[str],
    numeric_bins: int = 4,
    max_order: int = 2,
    min_support: float = 0.01,
    min_size: int | None = None,
    alpha: float = 0.95,
    top_k: int = 20,
    drop_refinements: bool = True,
) -> pd.DataFrame:
    """The slices with the highest SliceLine score.

    Parameters
    ----------
    frame
        One row per clip with ``error_col`` and ``feature_cols``.
    error_col
        Per-clip error: bool or 0/1 (wrong prediction), or any non-negative number (per-clip WER).
        Rows where it is missing are left out.
    feature_cols
        Columns to slice by. Numeric columns with more than ``numeric_bins`` distinct values are cut at
        their quantiles into ``numeric_bins`` half-open bins; any other column (text, categorical,
        bool, 0/1 tags) gives one predicate per value. Missing values satisfy no predicate.
    numeric_bins
        Quantile bins per numeric column (fewer when values tie).
    max_order
        Most predicates in one slice; the work grows with the number of column combinations.
    min_support, min_size
        Smallest slice reported or refined: at least ``min_support`` of the rows and at least
        ``min_size`` rows.
    alpha
        Weight of the error term against the size term, in (0, 1].
    top_k
        Slices returned; only slices scoring above 0 (worse than average, after the size penalty) count.
    drop_refinements
        Leave out a slice when a reported slice made of a subset of its predicates scores at least as
        high: ``noise=car AND accent=scottish AND device=phone`` says nothing new after
        ``noise=car AND accent=scottish``. SliceLine itself reports both (False).

    Returns
    -------
    pandas.DataFrame
        Columns ``slice`` (predicates joined with ``" AND "``, in the order of ``feature_cols``),
        ``n``, ``share`` (n over all scored rows), ``error_rate`` (mean error in the slice), ``lift``
        (error_rate over the overall mean error), ``score``, ``order`` (number of predicates) and
        ``predicates`` (tuple of ``(column, "==", value)`` or ``(column, "in", (low, high))`` for
        :func:`slice_mask`); best first, ties broken by fewer predicates, then larger slices.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    if max_order < 1 or top_k < 1 or numeric_bins < 2:
        raise ValueError("max_order and top_k must be at least 1, numeric_bins at least 2")
    raw = frame[error_col]
    error_all = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    scored = ~np.isnan(error_all)
    data = frame.loc[scored] if not scored.all() else frame
    errors = error_all[scored]
    if (errors < 0).any():
        raise ValueError(f"column {error_col!r} has negative errors")
    total = errors.size
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
    if total == 0 or errors.sum() == 0:
        return empty
    mean_error = float(errors.mean())
    sigma = max(1, math.ceil(min_support * total), int(min_size or 1))
    binary = bool(np.isin(errors, (0.0, 1.0)).all())
    columns = _columns(data, feature_cols, numeric_bins)

    # Values rarer than the support can be in no reported slice: drop them once, up front.
    codes, cardinality = [], []
    for column in columns:
        counts = np.bincount(column.codes[column.codes >= 0], minlength=len(column.labels))
        keep = counts >= sigma
        remap = np.where(keep, np.cumsum(keep) - 1, -1)
        codes.append(np.where(column.codes >= 0, remap[np.maximum(column.codes, 0)], -1))
        cardinality.append(int(keep.sum()))
        column.predicates[:] = [p for p, k in zip(column.predicates, keep, strict=True) if k]
        column.labels[:] = [lab for lab, k in zip(column.labels, keep, strict=True) if k]

    found: list[tuple[float, int, int, float, tuple[tuple[int, int], ...]]] = []
    threshold = 0.0  # only positive scores are reported
    alive: dict[tuple[int, ...], dict[tuple[int, ...], int]] = {(): {(): total}}
    for order in range(1, max_order + 1):
        level: dict[tuple[int, ...], dict[tuple[int, ...], int]] = {}
        candidates = []
        for combo in itertools.combinations(range(len(columns)), order):
            parents = [combo[:i] + combo[i + 1 :] for i in range(order)]
            if any(not alive.get(p) for p in parents) or any(cardinality[c] == 0 for c in combo):
                continue
            rows = np.ones(total, dtype=bool)
            for c in combo:
                rows &= codes[c] >= 0
            keys = np.zeros(int(rows.sum()), dtype=np.int64)
            n_keys = 1
            for c in combo:
                keys = keys * cardinality[c] + codes[c][rows]
                n_keys *= cardinality[c]
            present, size, err, peak = _group(keys, errors[rows], binary, n_keys)
            ok = (size >= sigma) & (err > 0)
            if not ok.any():
                continue
            present, size, err, peak = present[ok], size[ok], err[ok], peak[ok]
            value_tuples = np.stack(np.unravel_index(present, [cardinality[c] for c in combo]), axis=1)
            for values, s, e, m in zip(value_tuples.tolist(), size, err, peak, strict=True):
                values = tuple(values)
                parent_sizes = []
                for i, p in enumerate(parents):
                    parent_sizes.append(alive[p].get(values[:i] + values[i + 1 :]))
                # A missing parent was pruned; an equal-sized parent has exactly these rows.
                if any(ps is None or ps == s for ps in parent_sizes):
                    continue
                candidates.append((combo, values, int(s), float(e), float(m)))
        if not candidates:
            break
        size = np.array([c[2] for c in candidates], dtype=np.float64)
        err = np.array([c[3] for c in candidates])
        peak = np.array([c[4] for c in candidates])
        score = _score(size, err, total=total, mean_error=mean_error, alpha=alpha)
        for (combo, values, s, e, _), sc in zip(candidates, score, strict=True):
            if sc <= threshold:
                continue
            preds = tuple(zip(combo, values, strict=True))
            # Parents come from earlier levels, so whoever could make this a redundant refinement
            # has already been found.
            if drop_refinements and any(f[0] >= sc and set(f[4]) <= set(preds) for f in found):
                continue
            found.append((float(sc), order, s, e, preds))
        found.sort(key=lambda f: (-f[0], f[1], -f[2]))
        del found[top_k:]
        if len(found) == top_k:
            threshold = max(threshold, found[-1][0])
        bound = _upper_bound(size, err, peak, sigma=sigma, total=total, mean_error=mean_error, alpha=alpha)
        for (combo, values, s, _, _), ub in zip(candidates, bound, strict=True):
            if ub > threshold:
                level.setdefault(combo, {})[values] = s
        alive = level

    if not found:
        return empty
    rows_out = []
    for sc, order, s, e, preds in found:
        rows_out.append(
            {
                "slice": " AND ".join(columns[c].labels[v] for c, v in preds),
                "n": s,
                "share": s / total,
                "error_rate": e / s,
                "lift": (e / s) / mean_error,
                "score": sc,
                "order": order,
                "predicates": tuple(columns[c].predicates[v] for c, v in preds),
            }
        )
    return pd.DataFrame(rows_out, columns=RESULT_COLUMNS)


def slice_mask(frame: pd.DataFrame, predicates: Sequence[tuple[str, str, object]]) -> np.ndarray:
    """Rows of ``frame`` inside a slice given by the ``predicates`` of a :func:`discover_slices` row.

    Returns
    -------
    numpy.ndarray
        Boolean, one entry per row of ``frame``.
    """
    mask = np.ones(len(frame), dtype=bool)
    for column, op, value in predicates:
        series = frame[column]
        if op == "==":
            mask &= (series == value).fillna(False).to_numpy(dtype=bool)
        elif op == "in":
            low, high = cast(tuple[float, float], value)
            x = series.to_numpy(dtype=np.float64, na_value=np.nan)
            mask &= (x >= low) & (x < high)
        else:
            raise ValueError(f"unknown predicate operator {op!r}")
    return mask
