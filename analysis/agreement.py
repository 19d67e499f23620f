"""Inter-annotator agreement on long-format annotations: call :func:`agreement_report`.

The report gathers what an agreement page or ``earmark agreement`` shows. Its parts can be called on
their own:

- :func:`krippendorff_alpha`, the headline reliability figure (any number of raters, missing ratings,
  nominal/ordinal/interval/ratio data), and :func:`bootstrap_ci` for its uncertainty;
- :func:`fleiss_kappa`, :func:`cohen_kappa_pairs` / :func:`cohen_kappa_matrix` and
  :func:`percent_agreement`;
- :func:`per_class_agreement` and :func:`rater_confusion`, which show the classes annotators disagree on;
- :func:`annotator_table`, each annotator against a leave-one-out consensus and gold labels;
- :func:`majority_consensus` and :func:`weighted_consensus`, one label per clip;
- :func:`agreement_by`, alpha per convention version, tag or time bucket;
- :func:`human_level_performance`, annotator accuracy against resolved labels per slice.

Input is one row per rating, ``(item, rater, value)``, with column names given by the keyword options
``item="clip_id"``, ``rater="annotator"`` and ``value="label"``. A missing value (NaN, None, NA) is a
missing rating and is dropped. An item needs at least two ratings to be *pairable*. Items with fewer
ratings drop out of every pairwise statistic, as in Krippendorff's definition.

The value domain is sorted where it can be sorted: numbers and strings in their natural order,
Categorical columns in category order (unused categories included). Ordinal statistics need an order
that means something, so they take numbers or an *ordered* Categorical.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")
KappaWeights = Literal["linear", "quadratic"] | None

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

# Rows of a count matrix turned to float per step of the coincidence product; bounds its extra
# memory to a few megabytes when counts could not be merged into patterns (one row per item).
_BLOCK_ROWS = 1 << 16
# Floor of annotator and model weights in the weighted consensus, so that an item rated only by
# annotators at the floor still gets a label distribution (a zero total weight would be 0/0).
_MIN_WEIGHT = 1e-3


# --------------------------------------------------------------------------------------------------
# Coding: long DataFrame -> integer codes


@dataclass(frozen=True)
class _Coded:
    """Annotations as integer codes: ``item``/``value``/``rater`` index ``items``/``domain``/``raters``."""

    item: IntArray
    value: IntArray
    items: pd.Index
    domain: pd.Index
    rater: IntArray | None = None
    raters: pd.Index | None = None
    # Numeric value of each domain entry (interval and ratio levels only).
    numeric: FloatArray | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_values(self) -> int:
        return len(self.domain)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")


def require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    """A ValueError naming the ``columns`` ``df`` lacks, if any."""
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise ValueError(f"annotations need the column(s) {missing}; the frame has {list(df.columns)}")


def _factorize_sorted(values: pd.Series) -> tuple[IntArray, pd.Index]:
    codes, uniques = pd.factorize(values)
    codes = np.asarray(codes, dtype=np.intp)
    uniques = pd.Index(uniques)
    try:
        # Sorting the few uniques and remapping codes is cheaper than factorize(sort=True).
        order = np.argsort(np.asarray(uniques), kind="stable")
    except TypeError:  # mixed types that do not compare (e.g. 3 and "three"): keep first-seen order
        return codes, uniques
    if (order[1:] < order[:-1]).any():
        remap = np.empty(len(order), dtype=np.intp)
        remap[order] = np.arange(len(order))
        codes = remap[codes]
        uniques = uniques.take(order)
    return codes, uniques


def _item_codes(ids: pd.Series, name: str, *, dense: bool) -> tuple[IntArray, pd.Index]:
    """Integer code per row for the item ids, and the ids the codes stand for.

    With ``dense``, integer ids spanning a range not much wider than the number of rows (database keys)
    are used as offsets directly, skipping a hash table. Ids in the range that were never rated get a
    code too. Only callers that look at rated items alone (item patterns, pairs) may ask for this.
    """
    if ids.isna().any():
        raise ValueError(f"the item column {name!r} has missing ids")
    if dense and len(ids) and pd.api.types.is_integer_dtype(ids.dtype):
        raw = ids.to_numpy()
        lo, hi = int(raw.min()), int(raw.max())
        if hi - lo < 2 * len(raw) + 1024:
            return (raw - lo).astype(np.intp), pd.RangeIndex(lo, hi + 1, name=name)
    codes, uniques = pd.factorize(ids)
    return np.asarray(codes, dtype=np.intp), pd.Index(uniques, name=name)


def _code_values(values: pd.Series, level: str, name: str) -> tuple[IntArray, pd.Index, FloatArray | None]:
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if level == "ordinal" and not dtype.ordered:
            raise ValueError(
                f"ordinal agreement needs an order: make {name!r} an ordered Categorical "
                "(pd.Categorical(values, categories=[...], ordered=True)) or numeric"
            )
        if level in ("interval", "ratio"):
            if not pd.api.types.is_numeric_dtype(dtype.categories.dtype):
                raise ValueError(f"{level} agreement needs numeric values in {name!r}")
            values = values.astype(dtype.categories.dtype)
        else:
            codes = np.asarray(values.cat.codes, dtype=np.intp)
            return codes, pd.Index(dtype.categories), None
    if level == "nominal":
        codes, domain = _factorize_sorted(values)
        return codes, domain, None
    if not pd.api.types.is_numeric_dtype(values.dtype):
        try:
            values = pd.to_numeric(values)
        except (TypeError, ValueError):
            what = "numbers or an ordered Categorical" if level == "ordinal" else "numbers"
            raise ValueError(f"{level} agreement needs {what} in {name!r}; got {values.dtype}") from None
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(np.int64)
    codes, domain = _factorize_sorted(values)
    numeric = None if level == "ordinal" else np.asarray(domain, dtype=np.float64)
    return codes, domain, numeric


def _code(
    df: pd.DataFrame,
    *,
    item: str,
    value: str,
    rater: str | None = None,
    level: str = "nominal",
    dense_items: bool = False,
) -> _Coded:
    _check_level(level)
    require_columns(df, [c for c in (item, rater, value) if c is not None])
    values = df[value]
    present = values.notna().to_numpy()
    if not present.all():
        values = values[present]
    items_col = df[item] if present.all() else df[item][present]
    item_codes, items = _item_codes(items_col, item, dense=dense_items)
    value_codes, domain, numeric = _code_values(values, level, value)
    rater_codes: IntArray | None = None
    raters: pd.Index | None = None
    if rater is not None:
        raters_col = df[rater] if present.all() else df[rater][present]
        if raters_col.isna().any():
            raise ValueError(f"the rater column {rater!r} has missing ids")
        rater_codes, raters = _factorize_sorted(raters_col)
    return _Coded(
        item=item_codes,
        value=value_codes,
        items=items,
        domain=pd.Index(domain, name=value),
        rater=rater_codes,
        raters=None if raters is None else raters.rename(rater),
        numeric=numeric,
    )


def _check_one_rating_per_rater(c: _Coded, item: str, rater: str) -> None:
    assert c.rater is not None
    assert c.raters is not None
    key = c.item.astype(np.int64) * max(len(c.raters), 1) + c.rater
    if pd.Series(key).duplicated().any():
        raise ValueError(
            f"some ({item}, {rater}) pairs have more than one rating; keep one rating per rater and item"
        )


def _counts(c: _Coded) -> npt.NDArray[np.int64]:
    """``(n_items, n_values)`` matrix: how many raters gave each value to each item."""
    key = c.item.astype(np.int64) * c.n_values
    key += c.value
    return np.bincount(key, minlength=c.n_items * c.n_values).reshape(c.n_items, c.n_values)


@dataclass(frozen=True)
class _Patterns:
    """Distinct per-item value-count vectors, and how many rated items share each.

    Every statistic that ignores who rated (alpha, Fleiss' kappa, percent and per-class agreement)
    is a sum over items of a function of the item's count vector, so it can be summed over patterns
    weighted by frequency instead: exact, and a few hundred rows rather than one per item.
    """

    counts: npt.NDArray[np.int64]  # (n_patterns, n_values)
    freq: npt.NDArray[np.int64]  # (n_patterns,)

    @property
    def m(self) -> npt.NDArray[np.int64]:
        return self.counts.sum(axis=1)

    @property
    def n_items(self) -> int:
        return int(self.freq.sum())

    @property
    def n_pairable(self) -> int:
        return int(self.freq[self.m >= 2].sum())


# Largest key space counted with bincount (8 bytes a key); larger ones are sorted with np.unique.
_MAX_BINCOUNT_KEYS = 1 << 21
# Largest (group, item) space agreement_by indexes directly (8 bytes each) rather than sorting.
_MAX_DENSE_PAIRS = 1 << 25


def _patterns(c: _Coded) -> _Patterns:
    n_values = c.n_values
    m = np.bincount(c.item, minlength=c.n_items)
    rated = m > 0
    base = int(m.max(initial=0)) + 1
    if n_values * math.log2(base) <= 52:
        # Each item's count vector as the digits of one number in base (max ratings + 1); float64
        # holds it exactly below 2**53.
        powers = float(base) ** np.arange(n_values)
        keys = np.bincount(c.item, weights=powers[c.value], minlength=c.n_items)[rated].astype(np.int64)
        if base**n_values <= _MAX_BINCOUNT_KEYS:
            tally = np.bincount(keys, minlength=1)
            unique_keys = np.flatnonzero(tally)
            freq = tally[unique_keys]
        else:
            unique_keys, freq = np.unique(keys, return_counts=True)
        digits = base ** np.arange(n_values, dtype=np.int64)
        counts = (unique_keys[:, None] // digits[None, :]) % base
        return _Patterns(counts.astype(np.int64), freq.astype(np.int64))
    counts = _counts(c)[rated]
    return _Patterns(counts, np.ones(len(counts), dtype=np.int64))


# --------------------------------------------------------------------------------------------------
# Krippendorff's alpha


def _coincidences(p: _Patterns, *, weighted: bool = True) -> FloatArray:
    """Krippendorff's coincidence matrix.

    ``o[c, k]`` sums, over items, the ordered pairs of ratings of one item valued ``(c, k)``, each pair
    weighted ``1 / (m_u - 1)`` for an item with ``m_u`` ratings (``weighted=False`` counts the pairs).
    """
    n_values = p.counts.shape[1]
    o = np.zeros((n_values, n_values))
    self_pairs = np.zeros(n_values)
    for start in range(0, len(p.counts), _BLOCK_ROWS):
        block = p.counts[start : start + _BLOCK_ROWS].astype(np.float64)  # float for a BLAS product
        m = block.sum(axis=1)
        w = p.freq[start : start + _BLOCK_ROWS].astype(np.float64)
        pairable = m >= 2
        w[~pairable] = 0.0
        if weighted:
            w[pairable] /= m[pairable] - 1
        weighted_block = block * w[:, None]
        o += block.T @ weighted_block
        self_pairs += weighted_block.sum(axis=0)
    o[np.diag_indices(n_values)] -= self_pairs
    return o


def _distances(level: str, n_v: FloatArray, numeric: FloatArray | None) -> FloatArray:
    """Squared distance ``delta^2[c, k]`` between domain values for the level of measurement."""
    n_values = len(n_v)
    if level == "nominal":
        return 1.0 - np.eye(n_values)
    if level == "ordinal":
        idx = np.arange(n_values)
        lo = np.minimum.outer(idx, idx)
        hi = np.maximum.outer(idx, idx)
        cum = np.cumsum(n_v)
        between = cum[hi] - cum[lo] + n_v[lo]
        return (between - (n_v[:, None] + n_v[None, :]) / 2.0) ** 2
    assert numeric is not None
    diff = numeric[:, None] - numeric[None, :]
    if level == "interval":
        return diff**2
    total = numeric[:, None] + numeric[None, :]
    ratio = np.divide(diff, total, out=np.zeros_like(diff), where=total != 0)
    return ratio**2


def _alpha_from_coincidences(o: FloatArray, level: str, numeric: FloatArray | None) -> float:
    n_v = o.sum(axis=0)
    n = n_v.sum()
    if n < 2:
        return math.nan
    expected = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1)
    d = _distances(level, n_v, numeric)
    disagreement_expected = float((expected * d).sum())
    if disagreement_expected <= 0.0:
        return math.nan  # no variation among pairable values: alpha is 0/0
    return 1.0 - float((o * d).sum()) / disagreement_expected


def krippendorff_alpha(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    level: Level = "nominal",
) -> float:
    """Krippendorff's alpha reliability of the ratings.

    ``alpha = 1 - D_o / D_e``, observed over expected disagreement, both computed from the coincidence
    matrix of pairable values (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
    Any number of raters, missing ratings allowed. Items with fewer than two ratings are not pairable
    and drop out.

    Parameters
    ----------
    df : DataFrame
        One row per rating with columns ``item``, ``rater`` and ``value``. ``rater`` is checked but
        alpha does not depend on who gave a value, only on the values each item received.
    item, rater, value : str
        Column names.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement. ``ordinal`` needs numbers or an ordered Categorical. ``interval`` and
        ``ratio`` need numbers.

    Returns
    -------
    float
        Alpha, at most 1; NaN when no item is pairable or when all pairable values are equal (no
        variation, so alpha is undefined).
    """
    c = _code(df, item=item, value=value, level=level, dense_items=True)
    require_columns(df, [rater])
    return _alpha_from_coincidences(_coincidences(_patterns(c)), level, c.numeric)


# --------------------------------------------------------------------------------------------------
# Kappas and percent agreement


def fleiss_kappa(
    df: pd.DataFrame, *, item: str = "clip_id", rater: str = "annotator", value: str = "label"
) -> float:
    """Fleiss' kappa (Fleiss 1971): chance-corrected agreement of a fixed number of raters per item.

    Raters need not be the same people on each item, but every item needs the same number of ratings
    (two or more). With varying numbers of ratings, use :func:`krippendorff_alpha`.

    Parameters
    ----------
    df : DataFrame
        One row per rating with columns ``item``, ``rater``, ``value`` (values treated as nominal).

    Returns
    -------
    float
        Kappa; NaN when every rating is the same category (chance agreement is 1).

    Raises
    ------
    ValueError
        When items have different numbers of ratings, or fewer than two. :func:`agreement_report`
        turns this into ``fleiss_kappa: None``.
    """
    c = _code(df, item=item, rater=rater, value=value, dense_items=True)
    return _fleiss(_patterns(c))


def _fleiss(p: _Patterns) -> float:
    counts, freq, m = p.counts, p.freq, p.m
    if len(m) == 0:
        raise ValueError("Fleiss' kappa needs at least one rated item")
    if m.min() != m.max():
        raise ValueError(
            f"Fleiss' kappa needs the same number of ratings on every item; items here have between "
            f"{m.min()} and {m.max()} (use Krippendorff's alpha, which allows missing ratings)"
        )
    k = int(m[0])
    if k < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per item")
    n_items = p.n_items
    p_item = ((counts.astype(np.float64) ** 2).sum(axis=1) - k) / (k * (k - 1))
    p_class = (counts * freq[:, None]).sum(axis=0) / (n_items * k)
    p_chance = float((p_class**2).sum())
    if p_chance >= 1.0:
        return math.nan
    return (float((p_item * freq).sum()) / n_items - p_chance) / (1.0 - p_chance)


def percent_agreement(
    df: pd.DataFrame, *, item: str = "clip_id", rater: str = "annotator", value: str = "label"
) -> float:
    """Observed pairwise agreement: on each pairable item, the share of rater pairs that agree, averaged.

    With every rater on every item this equals the mean, over rater pairs, of the share of items the
    pair labelled alike. It is the ``P-bar`` of Fleiss' kappa, without chance correction.

    Returns
    -------
    float
        In [0, 1]; NaN when no item has two ratings.
    """
    c = _code(df, item=item, value=value, dense_items=True)
    require_columns(df, [rater])
    return _percent(_patterns(c))


def _percent(p: _Patterns) -> float:
    m = p.m
    pairable = m >= 2
    if not pairable.any():
        return math.nan
    counts = p.counts[pairable].astype(np.float64)
    freq = p.freq[pairable]
    m = m[pairable].astype(np.float64)
    agreeing = (counts * (counts - 1)).sum(axis=1)
    return float((freq * agreeing / (m * (m - 1))).sum() / freq.sum())


def pairs_within(groups: IntArray) -> tuple[IntArray, IntArray]:
    """Row index pairs ``(i, j)``, ``i != j``, of rows that share a group; each unordered pair once."""
    order = np.argsort(groups, kind="stable")
    n = len(order)
    if n == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    ends = np.repeat(starts + sizes, sizes)
    partners = ends - np.arange(n) - 1  # rows after this one in its group
    total = int(partners.sum())
    left = np.repeat(np.arange(n), partners)
    offset = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners) + 1
    return order[left], order[left + offset]


def _kappa_weights(n_values: int, weights: KappaWeights) -> FloatArray:
    idx = np.arange(n_values, dtype=np.float64)
    if weights is None:
        return 1.0 - np.eye(n_values)
    if weights == "linear":
        return np.abs(idx[:, None] - idx[None, :])
    if weights == "quadratic":
        return (idx[:, None] - idx[None, :]) ** 2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic'; got {weights!r}")


def _grouped_kappa(
    group: IntArray, a: IntArray, b: IntArray, n_groups: int, disagreement: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Cohen's kappa of labels ``a`` vs ``b`` within each group, from per-group marginals.

    ``kappa = 1 - sum(W * observed) / sum(W * expected)`` with disagreement weights ``W``; for
    ``W = 1 - I`` this is ``(p_o - p_e) / (1 - p_e)``.
    """
    n_values = len(disagreement)
    n = np.bincount(group, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.bincount(group, weights=disagreement[a, b], minlength=n_groups) / n
        key = group.astype(np.int64) * n_values
        pa = np.bincount(key + a, minlength=n_groups * n_values).reshape(n_groups, n_values) / n[:, None]
        pb = np.bincount(key + b, minlength=n_groups * n_values).reshape(n_groups, n_values) / n[:, None]
        expected = ((pa @ disagreement) * pb).sum(axis=1)
        kappa = 1.0 - observed / expected
    kappa[(n < 2) | ~(expected > 0)] = np.nan
    return kappa, n


def cohen_kappa_pairs(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    weights: KappaWeights = None,
) -> pd.DataFrame:
    """Cohen's kappa of every pair of raters that rated at least one item in common.

    Each pair is compared on the items both rated. Categories are the whole value domain, so weighted
    kappa uses positions in the project-wide order. That matches
    ``sklearn.metrics.cohen_kappa_score(a, b, labels=domain, weights=...)``.

    Parameters
    ----------
    df : DataFrame
        One row per rating, columns ``item``, ``rater``, ``value``; one rating per (item, rater).
    weights : {None, "linear", "quadratic"}
        Disagreement weights. Weighted kappa needs numbers or an ordered Categorical.

    Returns
    -------
    DataFrame
        Columns ``rater_a``, ``rater_b`` (``rater_a`` sorts first), ``kappa`` (NaN with fewer than two
        shared items, or when both raters used a single identical category) and ``n`` (shared items).
        Pairs that share no item are absent.
    """
    c = _code(df, item=item, rater=rater, value=value, level="nominal" if weights is None else "ordinal")
    _check_one_rating_per_rater(c, item, rater)
    return _cohen_pairs(c, weights)


def _cohen_pairs(c: _Coded, weights: KappaWeights) -> pd.DataFrame:
    assert c.rater is not None
    assert c.raters is not None
    left, right = pairs_within(c.item)
    ra, rb = c.rater[left], c.rater[right]
    swap = ra > rb
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    ra, rb = c.rater[left], c.rater[right]
    n_raters = len(c.raters)
    pair_keys, group = np.unique(ra.astype(np.int64) * n_raters + rb, return_inverse=True)
    kappa, n = _grouped_kappa(
        group.astype(np.intp),
        c.value[left],
        c.value[right],
        len(pair_keys),
        _kappa_weights(c.n_values, weights),
    )
    return pd.DataFrame(
        {
            "rater_a": c.raters.take(pair_keys // n_raters),
            "rater_b": c.raters.take(pair_keys % n_raters),
            "kappa": kappa,
            "n": n.astype(np.int64),
        }
    )


def cohen_kappa_matrix(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    weights: KappaWeights = None,
) -> pd.DataFrame:
    """Cohen's kappa of every rater pair as a symmetric raters x raters matrix (see
    :func:`cohen_kappa_pairs`). Pairs with fewer than two shared items and the diagonal are NaN."""
    c = _code(df, item=item, rater=rater, value=value, level="nominal" if weights is None else "ordinal")
    _check_one_rating_per_rater(c, item, rater)
    assert c.raters is not None
    pairs = _cohen_pairs(c, weights)
    a = c.raters.get_indexer(pairs["rater_a"])
    b = c.raters.get_indexer(pairs["rater_b"])
    matrix = np.full((len(c.raters), len(c.raters)), np.nan)
    matrix[a, b] = pairs["kappa"].to_numpy()
    matrix[b, a] = pairs["kappa"].to_numpy()
    np.fill_diagonal(matrix, np.nan)
    return pd.DataFrame(matrix, index=c.raters, columns=c.raters.copy())


# --------------------------------------------------------------------------------------------------
# Which classes are hard


def per_class_agreement(
    df: pd.DataFrame, *, item: str = "clip_id", rater: str = "annotator", value: str = "label"
) -> pd.DataFrame:
    """Agreement on each category, over pairable items.

    Returns
    -------
    DataFrame
        One row per value of the domain with columns:

        - ``value`` (named after the value column): the category;
        - ``n``: pairable ratings with this value;
        - ``n_items``: pairable items where at least one rater chose it;
        - ``specific_agreement``: of all rating pairs on one item that include this category, the
          share where both ratings are this category, ``sum n_uc (n_uc - 1) / sum n_uc (m_u - 1)``
          (proportion of specific agreement; ``2a / (2a + b + c)`` for two raters and a 2x2 table);
        - ``alpha``: Krippendorff's alpha of this category against all others (binary, one vs rest).
        NaN where a category has no pairable ratings.
    """
    c = _code(df, item=item, value=value, dense_items=True)
    require_columns(df, [rater])
    return _per_class(_patterns(c), c.domain)


def _per_class(p: _Patterns, domain: pd.Index) -> pd.DataFrame:
    pairable = p.m >= 2
    counts = p.counts[pairable].astype(np.float64)
    freq = p.freq[pairable].astype(np.float64)[:, None]
    m = p.m[pairable].astype(np.float64)[:, None]
    n_c = (freq * counts).sum(axis=0)
    n = n_c.sum()
    same_pairs = freq * counts * (counts - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        specific = same_pairs.sum(axis=0) / (freq * counts * (m - 1)).sum(axis=0)
        o_cc = (same_pairs / (m - 1)).sum(axis=0)
        alpha = 1.0 - (n - 1) * (n_c - o_cc) / (n_c * (n - n_c))
    alpha[(n_c == 0) | (n_c == n)] = np.nan
    return pd.DataFrame(
        {
            domain.name: domain,
            "n": n_c.astype(np.int64),
            "n_items": (freq * (counts > 0)).sum(axis=0).astype(np.int64),
            "specific_agreement": specific,
            "alpha": alpha,
        }
    )


def rater_confusion(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    weighting: Literal["pairs", "coincidence"] = "pairs",
    normalize: Literal["row"] | None = None,
) -> pd.DataFrame:
    """How often two ratings of the same item take the values ``(a, b)``: the class pairs annotators
    confuse.

    Parameters
    ----------
    weighting : {"pairs", "coincidence"}
        ``"pairs"`` counts ordered pairs of ratings by different raters of one item. An item rated
        ``(a, b)`` adds one to ``(a, b)`` and one to ``(b, a)``; an item rated ``(a, a)`` adds two to
        ``(a, a)``. ``"coincidence"`` weights each pair by ``1 / (m_u - 1)``, giving Krippendorff's
        coincidence matrix, whose row sums are the pairable ratings of each value.
    normalize : {None, "row"}
        ``"row"`` divides each row by its sum: given one rating is ``a``, how often another rating of
        the same item is ``b``.

    Returns
    -------
    DataFrame
        Symmetric value x value matrix (index and columns named after the value column).
    """
    if weighting not in ("pairs", "coincidence"):
        raise ValueError(f"weighting must be 'pairs' or 'coincidence'; got {weighting!r}")
    if normalize not in (None, "row"):
        raise ValueError(f"normalize must be None or 'row'; got {normalize!r}")
    c = _code(df, item=item, value=value, dense_items=True)
    require_columns(df, [rater])
    o = _coincidences(_patterns(c), weighted=weighting == "coincidence")
    if normalize == "row":
        with np.errstate(invalid="ignore", divide="ignore"):
            o = o / o.sum(axis=1, keepdims=True)
    columns = c.domain.copy()
    return pd.DataFrame(o, index=c.domain, columns=columns)


# --------------------------------------------------------------------------------------------------
# Bootstrap


def _is_alpha(metric: Callable[..., Any]) -> tuple[bool, dict[str, Any]]:
    if metric is krippendorff_alpha:
        return True, {}
    if isinstance(metric, partial) and metric.func is krippendorff_alpha and not metric.args:
        return True, dict(metric.keywords)
    return False, {}


def _percentile_interval(samples: FloatArray, ci: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(samples, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return float(lo), float(hi)


def _alpha_bootstrap(
    p: _Patterns, c: _Coded, level: str, *, n_boot: int, rng: np.random.Generator
) -> FloatArray:
    """Alpha on ``n_boot`` resamples of items, exactly and without materialising any resample.

    Items with the same value counts are interchangeable, so drawing items with replacement amounts
    to a multinomial draw of how many items of each count pattern the resample holds.
    """
    if len(p.counts) > 10_000:  # patterns were not merged (many values or ratings): merge them now
        merged, inverse = np.unique(p.counts, axis=0, return_inverse=True)
        p = _Patterns(merged, np.bincount(inverse.ravel(), weights=p.freq).astype(np.int64))
    n_items = p.n_items
    if n_items == 0:
        return np.full(n_boot, np.nan)
    counts = p.counts.astype(np.float64)
    m = counts.sum(axis=1)
    w = np.where(m >= 2, 1.0 / np.maximum(m - 1, 1), 0.0)
    share = p.freq / n_items
    diag = np.diag_indices(c.n_values)
    out = np.empty(n_boot)
    for b in range(n_boot):
        weighted = counts * (rng.multinomial(n_items, share) * w)[:, None]
        o = counts.T @ weighted
        o[diag] -= weighted.sum(axis=0)
        out[b] = _alpha_from_coincidences(o, level, c.numeric)
    return out


def bootstrap_ci(
    df: pd.DataFrame,
    metric: Callable[[pd.DataFrame], float],
    *,
    item: str = "clip_id",
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(df)``, resampling items (clips) with replacement.

    Each resample draws as many items as ``df`` has, with replacement, and keeps all ratings of each
    drawn item. An item drawn twice becomes two items (its id in the resample is a new integer).

    Parameters
    ----------
    df : DataFrame
        Annotations in long format with the column ``item``.
    metric : callable
        ``metric(resampled_df) -> float``, e.g. ``functools.partial(krippendorff_alpha,
        level="ordinal")``. For :func:`krippendorff_alpha` (or a ``partial`` of it using the same
        ``item`` column) resampling is done on the coincidence counts, exactly and fast.
    n_boot : int
        Number of resamples.
    ci : float
        Coverage of the interval, in (0, 1).
    random_state : int, Generator or None
        Seed for reproducible intervals.

    Returns
    -------
    (lo, hi) : tuple of float
        Percentiles of the resampled values. Resamples where the metric is NaN (e.g. no pairable
        item drawn) are left out; (NaN, NaN) when all are.
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be between 0 and 1; got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot}")
    rng = np.random.default_rng(random_state)
    is_alpha, kwargs = _is_alpha(metric)
    if is_alpha and kwargs.get("item", "clip_id") == item:
        level = kwargs.get("level", "nominal")
        c = _code(df, item=item, value=kwargs.get("value", "label"), level=level, dense_items=True)
        require_columns(df, [kwargs.get("rater", "annotator")])
        return _percentile_interval(_alpha_bootstrap(_patterns(c), c, level, n_boot=n_boot, rng=rng), ci)

    require_columns(df, [item])
    item_codes, items = pd.factorize(df[item])
    if len(item_codes) and item_codes.min() < 0:
        raise ValueError(f"the item column {item!r} has missing ids")
    n_items = len(items)
    order = np.argsort(item_codes, kind="stable")
    sizes = np.bincount(item_codes, minlength=n_items)
    starts = np.cumsum(sizes) - sizes
    samples = np.empty(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(0, n_items, size=n_items)
        drawn_sizes = sizes[drawn]
        within = np.arange(int(drawn_sizes.sum())) - np.repeat(
            np.cumsum(drawn_sizes) - drawn_sizes, drawn_sizes
        )
        rows = order[np.repeat(starts[drawn], drawn_sizes) + within]
        resample = df.take(rows).reset_index(drop=True)
        resample[item] = np.repeat(np.arange(n_items), drawn_sizes)
        samples[b] = metric(resample)
    return _percentile_interval(samples, ci)


# --------------------------------------------------------------------------------------------------
# Consensus and annotator quality


def _nullable(domain: pd.Index, codes: IntArray) -> Any:
    """``domain[codes]`` as an array where code -1 is missing, keeping the domain's dtype."""
    return pd.array(domain).take(codes, allow_fill=True)


def _row_argmax(a: npt.NDArray[Any]) -> IntArray:
    """Column of each row's maximum; 0 for every row when there are no columns (no ratings at all)."""
    if a.shape[1] == 0:
        return np.zeros(len(a), dtype=np.intp)
    return np.asarray(a.argmax(axis=1), dtype=np.intp)


def _sorted_by(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    try:
        return frame.sort_values(column, kind="stable", ignore_index=True)
    except TypeError:  # ids of mixed types keep their first-seen order
        return frame


def majority_consensus(
    df: pd.DataFrame, *, item: str = "clip_id", rater: str = "annotator", value: str = "label"
) -> pd.DataFrame:
    """One label per item by plurality vote.

    Returns
    -------
    DataFrame
        One row per item with at least one rating, sorted by item, with columns ``item``,
        ``value`` (the winning label; missing on a tie), ``n`` (ratings), ``votes`` (ratings for the
        winner, or for each tied label), ``agreement`` (``votes / n``) and ``method``. ``method`` is
        ``"unanimous"`` (all ratings agree, including a single rating), ``"majority"`` (one label has
        more votes than any other) or ``"tie"`` (two or more labels share the most votes).
    """
    c = _code(df, item=item, value=value)
    require_columns(df, [rater])
    counts = _counts(c)
    n = counts.sum(axis=1)
    votes = counts.max(axis=1, initial=0)
    tie = (counts == votes[:, None]).sum(axis=1) > 1
    winner = np.where(tie, -1, _row_argmax(counts))
    method = np.where(tie, "tie", np.where(votes == n, "unanimous", "majority"))
    result = pd.DataFrame(
        {
            item: c.items,
            value: _nullable(c.domain, winner),
            "n": n,
            "votes": votes,
            "agreement": votes / n,
            "method": pd.array(method, dtype="str"),
        }
    )
    return _sorted_by(result, item)


def _leave_one_out_majority(c: _Coded, counts: npt.NDArray[np.int64]) -> IntArray:
    """For each rating, the plurality label of the *other* ratings of its item; -1 when there are no
    other ratings or they tie."""
    others = counts.astype(np.int32)[c.item]
    rows = np.arange(len(c.item))
    others[rows, c.value] -= 1
    top = others.max(axis=1, initial=0)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    consensus = _row_argmax(others)
    consensus[(top == 0) | ~unique_top] = -1
    return consensus.astype(np.intp)


def annotator_table(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    gold: pd.Series | None = None,
) -> pd.DataFrame:
    """Per-annotator quality: agreement with the other annotators' consensus and with gold labels.

    The consensus for a rating is the plurality label of the *other* ratings of the same item
    (leave-one-out), so an annotator's own vote never props up their score. Ratings whose item has no
    other rating, or whose other ratings tie, have no consensus and are not scored.

    Parameters
    ----------
    df : DataFrame
        One row per rating, columns ``item``, ``rater``, ``value``; one rating per (item, rater).
    gold : Series, optional
        Gold label per item, indexed by item id. Items without gold (absent or NaN) are not scored.

    Returns
    -------
    DataFrame
        One row per annotator (sorted) with columns ``rater``, ``n`` (ratings), ``n_consensus``,
        ``agreement_with_consensus``, ``kappa_vs_consensus`` (Cohen's kappa of the annotator's labels
        against the leave-one-out consensus), ``n_gold`` and ``agreement_with_gold``. Rates are NaN
        when there is nothing to score.
    """
    c = _code(df, item=item, rater=rater, value=value)
    _check_one_rating_per_rater(c, item, rater)
    assert c.rater is not None
    assert c.raters is not None
    n_raters = len(c.raters)
    consensus = _leave_one_out_majority(c, _counts(c))
    scored = consensus >= 0
    rater_scored = c.rater[scored]
    n_consensus = np.bincount(rater_scored, minlength=n_raters)
    agree = np.bincount(rater_scored, weights=c.value[scored] == consensus[scored], minlength=n_raters)
    kappa, _ = _grouped_kappa(
        rater_scored, c.value[scored], consensus[scored], n_raters, _kappa_weights(c.n_values, None)
    )
    n_gold = np.zeros(n_raters, dtype=np.int64)
    agree_gold = np.zeros(n_raters)
    if gold is not None:
        if gold.index.has_duplicates:
            raise ValueError("gold labels must have one label per item (the index has duplicates)")
        gold_labels = gold.reindex(c.items)
        gold_codes = np.asarray(c.domain.get_indexer(gold_labels), dtype=np.intp)
        has_gold = gold_labels.notna().to_numpy()[c.item]
        matches = (c.value == gold_codes[c.item]) & has_gold
        n_gold = np.bincount(c.rater, weights=has_gold, minlength=n_raters).astype(np.int64)
        agree_gold = np.asarray(np.bincount(c.rater, weights=matches, minlength=n_raters), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                rater: c.raters,
                "n": np.bincount(c.rater, minlength=n_raters),
                "n_consensus": n_consensus,
                "agreement_with_consensus": agree / n_consensus,
                "kappa_vs_consensus": kappa,
                "n_gold": n_gold,
                "agreement_with_gold": agree_gold / n_gold,
            }
        )


@dataclass(frozen=True)
class ConsensusWeights:
    """Weights used by :func:`weighted_consensus`.

    Attributes
    ----------
    annotators : Series
        Weight per annotator, indexed by annotator.
    agreement : Series
        Each annotator's agreement with the consensus, which the weight is derived from.
    model : float or None
        Weight of the model's predicted probabilities (None without ``pred_probs``).
    """

    annotators: pd.Series
    agreement: pd.Series
    model: float | None = None


def weighted_consensus(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    pred_probs: pd.DataFrame | None = None,
    n_iter: int = 1,
    return_weights: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, ConsensusWeights]:
    """One label per item from votes weighted by annotator quality and, optionally, a model.

    The method follows the idea of CROWDLAB (Goh, Tkachenko & Mueller 2022):

    1. Start from the plurality vote; ties are broken by the model's probabilities, then by the
       domain order.
    2. Score each annotator by their agreement ``s_j`` with the consensus on items with two or more
       ratings, and the model by its accuracy ``a_M`` against it. Both are compared with ``b``, the
       accuracy of always answering the most common consensus label. Weights are
       ``w_j = 1 - (1 - s_j) / (1 - b)`` and ``w_M = (1 - (1 - a_M) / (1 - b)) * sqrt(mean ratings
       per item)``, floored at a small positive value, so an annotator no better than the constant
       guess counts for almost nothing.
    3. Each rating is read as a distribution: its label with probability ``s_j``, the other
       ``K - 1`` labels sharing ``1 - s_j``. The item's label distribution is the weighted average
       of these and of the model's probabilities. The consensus is its argmax, and ``quality`` is
       the probability it gives the consensus.
    4. Steps 2-3 are repeated ``n_iter`` times from the new consensus.

    Parameters
    ----------
    df : DataFrame
        One row per rating, columns ``item``, ``rater``, ``value``; one rating per (item, rater).
    pred_probs : DataFrame, optional
        Out-of-sample predicted class probabilities, indexed by item id, one column per class label.
        Items it lacks are decided by annotators alone. Classes it lacks get probability 0.
    n_iter : int
        Re-weighting rounds (at least 1).
    return_weights : bool
        Also return the :class:`ConsensusWeights` used in the last round.

    Returns
    -------
    DataFrame
        One row per item (sorted) with columns ``item``, ``value`` (consensus label), ``n``, ``votes``
        (ratings equal to the consensus), ``agreement`` (``votes / n``), ``quality`` and ``method``
        (``"weighted"``). With ``return_weights``, a tuple ``(consensus, weights)``.
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1; got {n_iter}")
    c = _code(df, item=item, rater=rater, value=value)
    _check_one_rating_per_rater(c, item, rater)
    assert c.rater is not None
    assert c.raters is not None
    domain = c.domain
    probs: FloatArray | None = None
    has_model = np.zeros(c.n_items, dtype=bool)
    if pred_probs is not None:
        if pred_probs.index.has_duplicates:
            raise ValueError("pred_probs must have one row per item (the index has duplicates)")
        extra = pd.Index(pred_probs.columns).difference(domain, sort=False)
        domain = domain.append(extra) if len(extra) else domain
        aligned = pred_probs.reindex(index=c.items, columns=domain)
        has_model = aligned.notna().any(axis=1).to_numpy()
        probs = aligned.fillna(0.0).to_numpy(dtype=np.float64)
        totals = probs.sum(axis=1, keepdims=True)
        probs = np.divide(probs, totals, out=np.zeros_like(probs), where=totals > 0)
    n_classes = len(domain)
    counts = np.bincount(
        c.item.astype(np.int64) * n_classes + c.value, minlength=c.n_items * n_classes
    ).reshape(c.n_items, n_classes)
    n = counts.sum(axis=1)
    multi = n >= 2
    # Ties are broken by the model (a fraction below one vote), then by domain order.
    tie_break = 0.5 * probs if probs is not None else 0.0
    consensus = _row_argmax(counts + tie_break)
    n_raters = len(c.raters)
    scored = multi[c.item]
    n_scored = np.bincount(c.rater, weights=scored, minlength=n_raters)
    agreement = np.full(n_raters, np.nan)
    weights = np.ones(n_raters)
    model_weight: float | None = None
    posterior: FloatArray = counts / np.maximum(n, 1)[:, None]
    for _ in range(n_iter):
        matches = (c.value == consensus[c.item]) & scored
        with np.errstate(invalid="ignore", divide="ignore"):
            agreement = np.bincount(c.rater, weights=matches, minlength=n_raters) / n_scored
        overall = float(matches.sum() / scored.sum()) if scored.any() else 1.0
        # Annotators who never shared an item are trusted as much as the average annotator.
        agreement = np.where(np.isfinite(agreement), agreement, overall)
        baseline = np.bincount(consensus[multi], minlength=n_classes).max(initial=0) / max(multi.sum(), 1)
        weights = _skill_weight(agreement, baseline)
        per_other = (1.0 - agreement) / max(n_classes - 1, 1)
        w_rating = weights[c.rater]
        score = np.asarray(
            np.bincount(
                c.item.astype(np.int64) * n_classes + c.value,
                weights=w_rating * (agreement[c.rater] - per_other[c.rater]),
                minlength=c.n_items * n_classes,
            ),
            dtype=np.float64,
        ).reshape(c.n_items, n_classes)
        score += np.bincount(c.item, weights=w_rating * per_other[c.rater], minlength=c.n_items)[:, None]
        total = np.asarray(np.bincount(c.item, weights=w_rating, minlength=c.n_items), dtype=np.float64)
        if probs is not None:
            judged = multi & has_model
            accuracy = (
                float((probs[judged].argmax(axis=1) == consensus[judged]).mean()) if judged.any() else 0.0
            )
            model_weight = float(_skill_weight(np.array([accuracy]), baseline)[0] * math.sqrt(n.mean()))
            score += model_weight * probs * has_model[:, None]
            total = total + model_weight * has_model
        posterior = score / total[:, None]
        consensus = _row_argmax(posterior)
    rows = np.arange(c.n_items)
    votes = counts[rows, consensus]
    result = pd.DataFrame(
        {
            item: c.items,
            value: _nullable(domain, consensus.astype(np.intp)),
            "n": n,
            "votes": votes,
            "agreement": votes / n,
            "quality": posterior[rows, consensus],
            "method": pd.array(np.full(c.n_items, "weighted"), dtype="str"),
        }
    )
    result = _sorted_by(result, item)
    if not return_weights:
        return result
    used = ConsensusWeights(
        annotators=pd.Series(weights, index=c.raters, name="weight"),
        agreement=pd.Series(agreement, index=c.raters, name="agreement"),
        model=model_weight,
    )
    return result, used


def _skill_weight(accuracy: FloatArray, baseline: float) -> FloatArray:
    """How far above the constant-guess baseline an accuracy lies, in (0, 1]."""
    if baseline >= 1.0:
        return np.ones_like(accuracy)
    return np.maximum(1.0 - (1.0 - accuracy) / (1.0 - baseline), _MIN_WEIGHT)


# --------------------------------------------------------------------------------------------------
# Slices


def agreement_by(
    df: pd.DataFrame,
    *,
    by: str,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    level: Level = "nominal",
) -> pd.DataFrame:
    """Alpha and percent agreement within each group of rows, e.g. per convention version, per tag
    or per week.

    Grouping is by *rating* rows: if an item's ratings fall in different groups (say two annotations
    under convention v1 and one under v2), each group sees only its own ratings of that item.

    Parameters
    ----------
    by : str
        Column to group by. Missing values form a group of their own.

    Returns
    -------
    DataFrame
        One row per group (sorted) with columns ``by``, ``n_items`` (rated items), ``n_pairable``,
        ``n_ratings``, ``krippendorff_alpha`` and ``percent_agreement``.
    """
    require_columns(df, [by, item, rater, value])
    _check_level(level)
    columns = [by, "n_items", "n_pairable", "n_ratings", "krippendorff_alpha", "percent_agreement"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    # Every group at once: items and values are coded over the whole frame (a value a group never
    # uses has no count there, so it changes none of the group's statistics), and each group's
    # count patterns come from one pass over (group, item) pairs instead of a pass per group.
    group_codes, keys = pd.factorize(df[by], sort=True, use_na_sentinel=False)
    if isinstance(df[by].dtype, pd.CategoricalDtype):
        keys = pd.Index(keys.astype(object))
    c = _code(df, item=item, value=value, level=level, dense_items=True)
    group = np.asarray(group_codes, dtype=np.int64)[df[value].notna().to_numpy()]
    n_groups = len(keys)
    patterns = _grouped_patterns(group, c, n_groups)
    n_ratings = np.bincount(group, minlength=n_groups)
    rows = [
        {
            by: key,
            "n_items": p.n_items,
            "n_pairable": p.n_pairable,
            "n_ratings": int(n),
            "krippendorff_alpha": _alpha_from_coincidences(_coincidences(p), level, c.numeric),
            "percent_agreement": _percent(p),
        }
        for key, p, n in zip(keys, patterns, n_ratings, strict=True)
    ]
    return pd.DataFrame(rows, columns=columns)


def _grouped_patterns(group: npt.NDArray[np.int64], c: _Coded, n_groups: int) -> list[_Patterns]:
    """:func:`_patterns` of each group's ratings (``group[i]`` is the group of rating ``i``)."""
    n_items = max(c.n_items, 1)
    combined = group * n_items + c.item
    if n_groups * n_items <= _MAX_DENSE_PAIRS:  # a count per possible pair beats sorting the ratings
        seen = np.zeros(n_groups * n_items, dtype=np.int64)
        seen[combined] = 1
        pair = np.flatnonzero(seen)
        seen[pair] = np.arange(len(pair))
        inverse = seen[combined]
    else:
        pair, inverse = np.unique(combined, return_inverse=True)
        inverse = inverse.ravel()
    pair_group = pair // n_items
    m = np.bincount(inverse, minlength=len(pair))
    n_values = c.n_values
    base = int(m.max(initial=0)) + 1
    if n_values * math.log2(base) <= 52:
        powers = float(base) ** np.arange(n_values)
        keys = np.bincount(inverse, weights=powers[c.value], minlength=len(pair)).astype(np.int64)
        span = int(keys.max(initial=0)) + 1
        if span * n_groups < 2**62:
            merged, freq = np.unique(pair_group * span + keys, return_counts=True)
            groups_of, unique_keys = merged // span, merged % span
        else:
            (groups_of, unique_keys), freq = np.unique(
                np.stack([pair_group, keys]), axis=1, return_counts=True
            )
        digits = base ** np.arange(n_values, dtype=np.int64)
        counts = (unique_keys[:, None] // digits[None, :]) % base
        bounds = np.searchsorted(groups_of, np.arange(n_groups + 1))
        return [
            _Patterns(counts[a:b].astype(np.int64), freq[a:b].astype(np.int64))
            for a, b in itertools.pairwise(bounds)
        ]
    counts = np.bincount(
        inverse.astype(np.int64) * n_values + c.value, minlength=len(pair) * n_values
    ).reshape(len(pair), n_values)
    bounds = np.searchsorted(pair_group, np.arange(n_groups + 1))
    return [_Patterns(counts[a:b], np.ones(b - a, dtype=np.int64)) for a, b in itertools.pairwise(bounds)]


def _is_listlike(x: Any) -> bool:
    return isinstance(x, (list, tuple, set, frozenset, np.ndarray))


def human_level_performance(
    annotations: pd.DataFrame,
    resolved: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    slice_cols: Sequence[str] = (),
) -> pd.DataFrame:
    """Human-level performance: how often an individual annotation equals the resolved label, per slice.

    This is the reference a model's per-slice accuracy is compared with in error analysis. When
    labels were resolved by majority, an annotator's own vote is part of the resolution, which makes
    HLP optimistic; adjudicated or gold resolutions avoid that.

    Parameters
    ----------
    annotations : DataFrame
        One row per rating: ``item``, ``rater``, ``value``.
    resolved : DataFrame
        One row per item: ``item`` and the final label in ``value``. Items without a resolved label
        are left out.
    slice_cols : sequence of str
        Columns defining slices, looked up in ``resolved`` first (clip attributes such as tags or
        speaker accent), then in ``annotations`` (rating attributes such as convention version).
        A column of lists (several tags per clip) puts a clip in each of its tags' slices. Rows whose
        slice value is missing count only in the overall row.

    Returns
    -------
    DataFrame
        Columns ``slice`` (column name; ``"all"`` for the overall row), ``value`` (slice value;
        ``"all"`` overall), ``hlp`` (share of annotations equal to the resolved label), ``n``
        (annotations compared) and ``n_items``. The overall row comes first.
    """
    require_columns(annotations, [item, rater, value])
    require_columns(resolved, [item, value])
    if resolved[item].duplicated().any():
        raise ValueError("resolved labels must have one row per item")
    missing = [s for s in slice_cols if s not in resolved.columns and s not in annotations.columns]
    if missing:
        raise ValueError(f"slice columns {missing} are in neither the resolved labels nor the annotations")
    final = resolved[resolved[value].notna()]
    from_resolved = [s for s in slice_cols if s in resolved.columns and s != value]
    ann = annotations[annotations[value].notna()]
    ann = ann.drop(columns=[s for s in from_resolved if s in ann.columns])
    merged = ann.merge(
        final[[item, value, *from_resolved]].rename(columns={value: "__resolved"}), on=item, how="inner"
    )
    both = pd.concat([merged[value], merged["__resolved"]], ignore_index=True)
    codes, _ = pd.factorize(both)
    correct = codes[: len(merged)] == codes[len(merged) :]
    merged = merged.assign(__correct=correct)
    rows = [
        {
            "slice": "all",
            "value": "all",
            "hlp": float(correct.mean()) if len(merged) else math.nan,
            "n": len(merged),
            "n_items": int(merged[item].nunique()),
        }
    ]
    for col in slice_cols:
        part = merged[[item, col, "__correct"]]
        # A plain loop: Series.map keeps a string dtype under pandas 3, which cannot hold booleans.
        # Columns that pandas can type as scalars (strings, numbers) skip it.
        kind = pd.api.types.infer_dtype(part[col], skipna=True)
        if kind in ("mixed", "unknown-array", "empty") and any(_is_listlike(v) for v in part[col]):
            part = part.explode(col)
        grouped = part.groupby(col, sort=True, dropna=True, observed=True).agg(
            hlp=("__correct", "mean"), n=("__correct", "size"), n_items=(item, "nunique")
        )
        rows.extend(
            {"slice": col, "value": key, "hlp": float(r.hlp), "n": int(r.n), "n_items": int(r.n_items)}
            for key, r in zip(grouped.index, grouped.itertuples(index=False), strict=True)
        )
    return pd.DataFrame(rows, columns=["slice", "value", "hlp", "n", "n_items"])


# --------------------------------------------------------------------------------------------------
# Report


def _json_scalar(x: Any) -> Any:
    if x is None or x is pd.NA:
        return None
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.isoformat()
    return x


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = list(frame.columns)
    return [
        {str(k): _json_scalar(v) for k, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


@dataclass(frozen=True)
class AgreementReport:
    """Everything an agreement report shows; :meth:`to_dict` is JSON-ready (NaN becomes None).

    Attributes
    ----------
    level : str
        Level of measurement used for alpha.
    n_items, n_raters, n_ratings : int
        Items with at least one rating, distinct raters, non-missing ratings.
    n_pairable_items : int
        Items with two or more ratings (the ones every statistic is computed on).
    krippendorff_alpha : float
    krippendorff_alpha_ci : (float, float)
        Bootstrap percentile interval over items (NaN, NaN when ``n_boot`` is 0).
    ci : float
        Coverage of that interval.
    fleiss_kappa : float or None
        None when items have different numbers of ratings (Fleiss' kappa does not apply).
    percent_agreement : float
    cohen_kappa_pairs : DataFrame
        ``rater_a, rater_b, kappa, n`` as from :func:`cohen_kappa_pairs` (unweighted).
    per_class : DataFrame
        As from :func:`per_class_agreement`.
    """

    level: str
    n_items: int
    n_raters: int
    n_ratings: int
    n_pairable_items: int
    krippendorff_alpha: float
    krippendorff_alpha_ci: tuple[float, float]
    ci: float
    fleiss_kappa: float | None
    percent_agreement: float
    cohen_kappa_pairs: pd.DataFrame = field(repr=False)
    per_class: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of JSON types: floats (None for NaN), ints, strings, lists of row dicts."""
        return {
            "level": self.level,
            "n_items": self.n_items,
            "n_raters": self.n_raters,
            "n_ratings": self.n_ratings,
            "n_pairable_items": self.n_pairable_items,
            "krippendorff_alpha": _json_scalar(self.krippendorff_alpha),
            "krippendorff_alpha_ci": [_json_scalar(x) for x in self.krippendorff_alpha_ci],
            "ci": self.ci,
            "fleiss_kappa": _json_scalar(self.fleiss_kappa),
            "percent_agreement": _json_scalar(self.percent_agreement),
            "cohen_kappa_pairs": _records(self.cohen_kappa_pairs),
            "per_class": _records(self.per_class),
        }


def agreement_report(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    value: str = "label",
    level: Level = "nominal",
    n_boot: int = 1000,
    ci: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> AgreementReport:
    """Agreement report of a set of annotations: alpha with a bootstrap interval, Fleiss' kappa where
    it applies, percent agreement, pairwise Cohen's kappas and per-class agreement.

    Parameters
    ----------
    df : DataFrame
        One row per rating, columns ``item``, ``rater``, ``value``; one rating per (item, rater).
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement for alpha. The other statistics treat values as nominal categories.
    n_boot : int
        Bootstrap resamples of items for the alpha interval; 0 skips it.
    ci : float
        Coverage of the interval.
    random_state : int, Generator or None
        Seed for a reproducible interval.

    Returns
    -------
    AgreementReport
        Call ``.to_dict()`` for JSON.
    """
    c = _code(df, item=item, rater=rater, value=value, level=level, dense_items=True)
    _check_one_rating_per_rater(c, item, rater)
    assert c.raters is not None
    p = _patterns(c)
    alpha = _alpha_from_coincidences(_coincidences(p), level, c.numeric)
    interval = (math.nan, math.nan)
    if n_boot > 0:
        if not 0.0 < ci < 1.0:
            raise ValueError(f"ci must be between 0 and 1; got {ci}")
        samples = _alpha_bootstrap(p, c, level, n_boot=n_boot, rng=np.random.default_rng(random_state))
        interval = _percentile_interval(samples, ci)
    try:
        fleiss: float | None = _fleiss(p)
    except ValueError:
        fleiss = None
    nominal = c if level == "nominal" else _code(df, item=item, rater=rater, value=value, dense_items=True)
    nominal_p = p if level == "nominal" else _patterns(nominal)
    return AgreementReport(
        level=level,
        n_items=p.n_items,
        n_raters=len(c.raters),
        n_ratings=len(c.value),
        n_pairable_items=p.n_pairable,
        krippendorff_alpha=alpha,
        krippendorff_alpha_ci=interval,
        ci=ci,
        fleiss_kappa=fleiss,
        percent_agreement=_percent(nominal_p),
        cohen_kappa_pairs=_cohen_pairs(nominal, None),
        per_class=_per_class(nominal_p, nominal.domain),
    )
