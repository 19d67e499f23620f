"""Agreement between annotators' time regions on long recordings.

Each function takes regions long (one row per region: ``start``, ``end`` in seconds, ``label``, the
annotator in ``rater="annotator"`` and the recording in ``item="recording_id"``; see
:mod:`analysis.regions`) and the recordings' durations.

- :func:`boundary_agreement` / :func:`pairwise_boundary_agreement`: do the annotators put region
  onsets and offsets in the same places, within a tolerance (±200 ms by default)? Precision, recall
  and F1 after an optimal one-to-one matching (a maximum bipartite matching, as ``mir_eval`` does).
- :func:`frame_cohen_kappa` (two annotators) and :func:`frame_fleiss_kappa` / :func:`frame_agreement_by_item`
  (any number): chance-corrected agreement on what each 10 ms frame is. A frame's category is the
  *set* of classes active in it (none, ``speech``, ``music``, ``speech+music``…), so overlapping
  classes need no special rule. Computed exactly from region boundaries, without materialising frames.
- :func:`unitizing_alpha`: Krippendorff's unitizing alpha (uα) for continuous data, which judges
  both where units are and how long they are, per class and overall.
- :func:`region_agreement` computes all of the above in one call, for a report or a review page.
- :func:`diarization_error` / :func:`jaccard_error`: DER with its parts (missed speech, false alarm,
  speaker confusion) and JER of one annotation against another, with the optimal (Hungarian) speaker
  mapping, an optional collar and the option to skip overlapped speech, as ``pyannote.metrics`` defines
  them; :func:`pairwise_diarization_error` runs it over every pair of annotators.

All functions are pure: they never modify their inputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from analysis.regions import FRAME_STEP, RegionError, frame_count, frame_span, normalise_regions

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Durations: TypeAlias = float | pd.Series | Mapping[Any, float]

BOUNDARY_KINDS = ("onset", "offset", "region")
# Distances within this of the tolerance count as inside it: 0.3 - 0.1 is 0.19999999999999998.
_EPS = 1e-9
_MAX_LABELS = 52


def _distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Sorted distinct values. By sorting: numpy 2's hash-based ``np.unique`` of integers is far slower."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) == 0:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _as_categories(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the name columns as categories: every later grouping, sort and lookup then
    works on their integer codes rather than hashing the strings again (the figures do not change)."""
    todo = [c for c in columns if c in frame.columns and not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.assign(**{c: pd.Categorical(frame[c]) for c in todo}) if todo else frame


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RegionError(f"regions need the column(s) {missing}; got {list(frame.columns)}")


def _item_codes(frame: pd.DataFrame, item: str) -> tuple[IntArray, pd.Index]:
    if item not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64), pd.Index([None])
    codes, uniques = pd.factorize(frame[item], sort=True)
    if (codes < 0).any():
        raise RegionError(f"some regions have no {item}")
    return codes.astype(np.int64), pd.Index(uniques)


def _item_durations(durations: Durations, items: pd.Index, item: str) -> FloatArray:
    if isinstance(durations, int | float | np.integer | np.floating):
        return np.full(len(items), float(durations))
    lookup = pd.Series(durations, dtype="float64")
    values = lookup.reindex(items).to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(values).any():
        missing = list(items[np.isnan(values)][:5])
        raise RegionError(f"no duration for {item} {missing}")
    return values


def _presence(
    annotated: pd.DataFrame | None, items: pd.Index, raters: pd.Index, item: str, rater: str
) -> BoolArray | None:
    """``present[i, r]``: rater ``r`` annotated recording ``i`` (None: everyone annotated everything)."""
    if annotated is None:
        return None
    _require(annotated, [rater])
    if item in annotated.columns:
        i = items.get_indexer(annotated[item])
    else:
        i = np.zeros(len(annotated), dtype=np.int64)
    r = raters.get_indexer(annotated[rater])
    keep = (i >= 0) & (r >= 0)
    present = np.zeros((len(items), len(raters)), dtype=bool)
    present[i[keep], r[keep]] = True
    return None if present.all() else present


# --------------------------------------------------------------------------------------------------
# Boundary agreement


def _prf(matched: int, n_ref: int, n_est: int) -> tuple[float, float, float]:
    precision = matched / n_est if n_est else 0.0
    recall = matched / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def _window_pairs(ref_key: FloatArray, est_key: FloatArray, width: float) -> tuple[IntArray, IntArray]:
    """All (i, j) with est_key[j] within ``width`` of ref_key[i] (keys may carry item offsets)."""
    order = np.argsort(est_key, kind="stable")
    sorted_key = est_key[order]
    lo = np.searchsorted(sorted_key, ref_key - width, side="left")
    hi = np.searchsorted(sorted_key, ref_key + width, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(ref_key)), counts)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, order[np.repeat(lo, counts) + rank]


def _matched(n_ref: int, n_est: int, rows: IntArray, cols: IntArray) -> int:
    if len(rows) == 0:
        return 0
    graph = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_ref, n_est))
    match = maximum_bipartite_matching(graph, perm_type="column")
    return int(np.count_nonzero(match >= 0))


def boundary_agreement(
    reference: pd.DataFrame,
    estimate: pd.DataFrame,
    *,
    tolerance: float = 0.2,
    same_label: bool = False,
    label: str = "label",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Onset, offset and whole-region precision/recall/F1 of ``estimate`` against ``reference``.

    A reference boundary and an estimated one *match* when they are at most ``tolerance`` seconds apart
    (in the same recording, and of the same class when ``same_label``); each boundary matches at most
    once, and the matching is a maximum one (the largest number of pairs), as ``mir_eval.onset`` and
    ``mir_eval.transcription`` compute it. A *region* matches when both its onset and its offset do,
    with the same partner.

    Parameters
    ----------
    reference, estimate
        Long regions with ``start``, ``end`` (and ``label`` when ``same_label``; ``item`` when they
        span several recordings; both or neither must have it).
    tolerance
        Seconds either side of a boundary.

    Returns
    -------
    pandas.DataFrame
        One row per kind (``onset``, ``offset``, ``region``) with ``n_reference``, ``n_estimate``,
        ``matched``, ``precision``, ``recall`` and ``f1`` (0 where undefined, as mir_eval does).
    """
    _require(reference, ["start", "end"])
    _require(estimate, ["start", "end"])
    if tolerance < 0:
        raise RegionError(f"tolerance must be at least 0, got {tolerance}")
    if (item in reference.columns) != (item in estimate.columns):
        raise RegionError(f"both or neither of reference and estimate must have the column {item!r}")
    both = pd.concat(
        [
            reference[[c for c in (item, label) if c in reference.columns]],
            estimate[[c for c in (item, label) if c in estimate.columns]],
        ],
        ignore_index=True,
    )
    n_ref = len(reference)
    item_codes, _ = _item_codes(both, item)
    label_codes = None
    if same_label:
        _require(both, [label])
        label_codes = pd.factorize(both[label])[0]
    return _boundary_table(
        _Boundaries(
            reference["start"].to_numpy(dtype=np.float64),
            reference["end"].to_numpy(dtype=np.float64),
            item_codes[:n_ref],
            None if label_codes is None else label_codes[:n_ref],
        ),
        _Boundaries(
            estimate["start"].to_numpy(dtype=np.float64),
            estimate["end"].to_numpy(dtype=np.float64),
            item_codes[n_ref:],
            None if label_codes is None else label_codes[n_ref:],
        ),
        tolerance=tolerance,
    )


@dataclass(frozen=True)
class _Boundaries:
    """One annotator's regions as arrays: starts, ends, recording codes and (optionally) class codes."""

    start: FloatArray
    end: FloatArray
    item: IntArray
    label: IntArray | None = None


def _boundary_table(ref: _Boundaries, est: _Boundaries, *, tolerance: float) -> pd.DataFrame:
    """:func:`boundary_agreement` on arrays (recording and class codes shared by both sides)."""
    rs, re_, ref_item = ref.start, ref.end, ref.item
    es, ee, est_item = est.start, est.end, est.item
    n_ref, n_est = len(rs), len(es)
    # Keys keep recordings apart in one sorted search; exact tests below use the original times.
    span = float(np.nanmax(np.r_[re_, ee, rs, es, 0.0])) + 2 * tolerance + 1.0
    width = tolerance + _EPS
    pairs: dict[str, tuple[IntArray, IntArray]] = {}
    for kind, r_t, e_t in (("onset", rs, es), ("offset", re_, ee)):
        rows, cols = _window_pairs(r_t + ref_item * span, e_t + est_item * span, width)
        keep = (ref_item[rows] == est_item[cols]) & (np.abs(r_t[rows] - e_t[cols]) <= width)
        if ref.label is not None and est.label is not None:
            keep &= ref.label[rows] == est.label[cols]
        pairs[kind] = (rows[keep], cols[keep])
    rows, cols = pairs["onset"]
    both_ends = np.abs(re_[rows] - ee[cols]) <= width
    pairs["region"] = (rows[both_ends], cols[both_ends])
    records = []
    for kind in BOUNDARY_KINDS:
        matched = _matched(n_ref, n_est, *pairs[kind])
        precision, recall, f1 = _prf(matched, n_ref, n_est)
        records.append((kind, n_ref, n_est, matched, precision, recall, f1))
    return pd.DataFrame(
        records, columns=["kind", "n_reference", "n_estimate", "matched", "precision", "recall", "f1"]
    )


def pairwise_boundary_agreement(
    regions: pd.DataFrame,
    *,
    tolerance: float = 0.2,
    same_label: bool = False,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> pd.DataFrame:
    """:func:`boundary_agreement` for every pair of annotators (the first of the pair as reference).

    F1 does not depend on which of the two is the reference; precision and recall swap.

    Parameters
    ----------
    annotated
        Who annotated which recording: rows of ``item`` and ``rater`` (see :func:`region_agreement`).
        Each pair is then compared on the recordings both annotated. None: everyone annotated every
        recording in ``regions``.

    Returns
    -------
    pandas.DataFrame
        Columns ``rater_a``, ``rater_b``, ``n_recordings`` (recordings the pair shares) and those of
        :func:`boundary_agreement`, one row per pair and kind; pairs who share no recording are left out.
    """
    _require(regions, ["start", "end", rater])
    if tolerance < 0:
        raise RegionError(f"tolerance must be at least 0, got {tolerance}")
    if same_label:
        _require(regions, [label])
    # Codes of raters, recordings and classes once for the whole frame, not once per pair.
    rater_codes, raters = pd.factorize(regions[rater], sort=True)
    names = list(raters)
    item_codes, items = _item_codes(regions, item)
    present = _presence(annotated, items, pd.Index(raters), item, rater)
    label_codes = pd.factorize(regions[label])[0] if same_label else None
    starts = regions["start"].to_numpy(dtype=np.float64)
    ends = regions["end"].to_numpy(dtype=np.float64)

    def side(code: int, shared: BoolArray | None) -> _Boundaries:
        of_rater = rater_codes == code
        rows = np.flatnonzero(of_rater if shared is None else of_rater & shared[item_codes])
        return _Boundaries(
            starts[rows], ends[rows], item_codes[rows], None if label_codes is None else label_codes[rows]
        )

    sides = [side(code, None) for code in range(len(names))]
    parts = []
    for a, b in itertools.combinations(range(len(names)), 2):
        if present is None:
            table = _boundary_table(sides[a], sides[b], tolerance=tolerance)
            n_shared = len(items)
        else:
            shared = present[:, a] & present[:, b]
            n_shared = int(shared.sum())
            if not n_shared:
                continue
            table = _boundary_table(side(a, shared), side(b, shared), tolerance=tolerance)
        parts.append(table.assign(rater_a=names[a], rater_b=names[b], n_recordings=n_shared))
    columns = [
        "rater_a",
        "rater_b",
        "n_recordings",
        "kind",
        "n_reference",
        "n_estimate",
        "matched",
        "precision",
        "recall",
        "f1",
    ]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# --------------------------------------------------------------------------------------------------
# Frame agreement


@dataclass(frozen=True)
class _FrameCodes:
    """Frames grouped into runs where no annotator's classes change.

    ``codes[j, r]`` is the bitmask of classes rater ``r`` marks in run ``j``, ``frames[j]`` its number
    of frames, ``item[j]`` its recording; ``present[i, r]`` says whether rater ``r`` annotated
    recording ``i`` (None: every rater annotated every recording).
    """

    codes: IntArray
    frames: IntArray
    item: IntArray
    raters: pd.Index
    items: pd.Index
    labels: pd.Index
    present: BoolArray | None = None

    @cached_property
    def counts(self) -> IntArray:
        """Per run, how many raters chose each category (:func:`_category_counts`), computed once;
        raters who did not annotate the run's recording are not counted."""
        if self.present is None:
            return _category_counts(self.codes)[0]
        absent = int(self.codes.max()) + 1 if self.codes.size else 0
        masked = np.where(self.present[self.item], self.codes, absent)
        counts, _ = _category_counts(masked, drop=absent)
        return counts

    @cached_property
    def raters_per_item(self) -> IntArray:
        """How many raters annotated each recording."""
        if self.present is None:
            return np.full(len(self.items), len(self.raters), dtype=np.int64)
        return self.present.sum(axis=1).astype(np.int64)


def _frame_codes(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    step: float,
    labels: Sequence[str] | None,
    label: str,
    rater: str,
    item: str,
    merged: pd.DataFrame | None = None,
    annotated: pd.DataFrame | None = None,
) -> _FrameCodes:
    """``merged``: ``regions`` already normalised (touching regions may stay apart: their frames
    do not overlap, so the runs are the same up to splits that change no sum); ``annotated`` as
    :func:`region_agreement` takes it."""
    _require(regions, ["start", "end", label, rater])
    items_all = _item_codes(regions, item)[1]
    n_frames = np.array(
        [frame_count(d, step) for d in _item_durations(durations, items_all, item)], dtype=np.int64
    )
    if merged is None:
        regions = _as_categories(regions, [rater, label])
        merged = normalise_regions(regions, duration=durations, label=label, rater=rater, item=item)
    item_codes, items = _item_codes(merged, item)
    # Keep the recording order of the full input, so recordings without regions still count.
    item_codes = items_all.get_indexer(items[item_codes]).astype(np.int64) if len(merged) else item_codes
    label_index = pd.Index(sorted(merged[label].unique()) if labels is None else list(labels))
    if len(label_index) > _MAX_LABELS:
        raise RegionError(f"frame agreement handles at most {_MAX_LABELS} classes, got {len(label_index)}")
    label_codes = label_index.get_indexer(merged[label])
    if (label_codes < 0).any():
        raise RegionError(f"regions carry labels outside {list(label_index)}")
    rater_codes, raters = pd.factorize(merged[rater], sort=True)
    offsets = np.concatenate([[0], np.cumsum(n_frames)])
    first, stop = frame_span(merged["start"].to_numpy(), merged["end"].to_numpy(), step)
    limit = n_frames[item_codes] if len(merged) else np.zeros(0, dtype=np.int64)
    first = np.minimum(first, limit) + offsets[item_codes]
    stop = np.minimum(stop, limit) + offsets[item_codes]
    bounds = _distinct(np.concatenate([offsets, first, stop]))
    # Bitmasks summed as floats stay exact below 2**53, hence the limit of 52 classes.
    bits = np.ldexp(1.0, label_codes)
    n_r = len(raters)
    at = np.concatenate([np.searchsorted(bounds, first), np.searchsorted(bounds, stop)]) * n_r
    delta = np.bincount(
        at + np.concatenate([rater_codes, rater_codes]),
        weights=np.concatenate([bits, -bits]),
        minlength=len(bounds) * n_r,
    ).reshape(len(bounds), n_r)
    codes = np.cumsum(delta, axis=0)[:-1].astype(np.int64)
    frames = np.diff(bounds)
    run_item = np.searchsorted(offsets, bounds[:-1], side="right") - 1
    keep = frames > 0
    return _FrameCodes(
        codes=codes[keep],
        frames=frames[keep],
        item=run_item[keep],
        raters=pd.Index(raters),
        items=items_all,
        labels=label_index,
        present=_presence(annotated, items_all, pd.Index(raters), item, rater),
    )


def _category_counts(codes: IntArray, *, drop: int | None = None) -> tuple[IntArray, int]:
    """Per run, how many raters chose each category (categories = distinct code values); the code
    ``drop`` (the largest, if given) marks a rater who is not counted."""
    top = int(codes.max()) + 1 if codes.size else 0
    if top <= 4096:
        inverse, n_cat = codes, top  # few classes: the bitmask itself indexes the category
    else:
        _, inverse = np.unique(codes, return_inverse=True)
        inverse = inverse.reshape(codes.shape)
        n_cat = int(inverse.max()) + 1
    flat = (np.arange(codes.shape[0])[:, None] * n_cat + inverse).ravel()
    counts = np.bincount(flat, minlength=codes.shape[0] * n_cat).reshape(codes.shape[0], n_cat)
    if drop is not None and n_cat and (codes == drop).any():
        counts = counts[:, :-1]  # the largest code, whichever way the categories were numbered
    used = counts.any(axis=0)
    return counts[:, used], int(used.sum())


def _fleiss(counts: IntArray, weights: IntArray, groups: IntArray, n_groups: int) -> FloatArray:
    """Fleiss' kappa per group of runs, each run weighted by its number of frames."""
    raters = counts.sum(axis=1)
    if len(raters) and (raters != raters[0]).any():
        return _fleiss_varying(counts, raters, weights, groups, n_groups)
    m = raters[0] if len(raters) else 0
    if m < 2:
        return np.full(n_groups, np.nan)
    w = weights.astype(np.float64)
    agree = ((counts.astype(np.float64) ** 2).sum(axis=1) - m) / (m * (m - 1))
    total = np.bincount(groups, weights=w, minlength=n_groups)
    agree_sum = np.bincount(groups, weights=w * agree, minlength=n_groups)
    shares = np.column_stack(
        [np.bincount(groups, weights=counts[:, j] * w, minlength=n_groups) for j in range(counts.shape[1])]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bar = agree_sum / total
        p_e = ((shares / (total[:, None] * m)) ** 2).sum(axis=1)
        kappa = (p_bar - p_e) / (1.0 - p_e)
    return np.where(total > 0, kappa, np.nan)


def _fleiss_varying(
    counts: IntArray, raters: IntArray, weights: IntArray, groups: IntArray, n_groups: int
) -> FloatArray:
    """Fleiss' kappa when the number of raters varies from run to run, as Gwet (*Handbook of
    Inter-Rater Reliability*, 4th ed., 2014) extends it to missing ratings: observed agreement is the
    mean, over frames rated by two or more, of ``(Σ n_ij² − m_i) / (m_i(m_i − 1))`` among the frame's
    own ``m_i`` raters; a category's share is the mean over rated frames of ``n_ij / m_i``. With
    ``m_i`` constant both are Fleiss' own."""
    w = weights.astype(np.float64)
    m = raters.astype(np.float64)
    paired = np.where(raters >= 2, w, 0.0)
    rated = np.where(raters >= 1, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = np.where(raters >= 2, ((counts.astype(np.float64) ** 2).sum(axis=1) - m) / (m * (m - 1)), 0.0)
        share = np.where(raters[:, None] >= 1, counts / m[:, None], 0.0)
    total = np.bincount(groups, weights=paired, minlength=n_groups)
    seen = np.bincount(groups, weights=rated, minlength=n_groups)
    agree_sum = np.bincount(groups, weights=paired * agree, minlength=n_groups)
    shares = np.column_stack(
        [np.bincount(groups, weights=share[:, j] * rated, minlength=n_groups) for j in range(counts.shape[1])]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bar = agree_sum / total
        p_e = ((shares / seen[:, None]) ** 2).sum(axis=1)
        kappa = (p_bar - p_e) / (1.0 - p_e)
    return np.where(total > 0, kappa, np.nan)


def frame_fleiss_kappa(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    step: float = FRAME_STEP,
    labels: Sequence[str] | None = None,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> float:
    """Fleiss' kappa over the frames of all recordings, each frame's category the set of its classes.

    Every annotator in ``regions`` is taken to have annotated every recording in it, unless
    ``annotated`` (as :func:`region_agreement` takes it) says who annotated which: frames an annotator
    left unmarked count as "no class". Equals ``statsmodels``' ``fleiss_kappa`` on the frame table
    (frames × categories) at ``step``; with ``annotated``, a frame has as many ratings as its
    recording has annotators, and the kappa is Gwet's extension of Fleiss' to missing ratings (the
    mean agreement of frames rated by two or more; category shares averaged over rated frames).

    Parameters
    ----------
    regions
        Long regions of at least two annotators.
    durations
        Recording length in seconds, one number or per recording (keyed by ``item``).
    step
        Frame step in seconds (10 ms by default).
    labels
        The class set; default: the classes present.
    """
    fc = _frame_codes(
        regions,
        durations=durations,
        step=step,
        labels=labels,
        label=label,
        rater=rater,
        item=item,
        annotated=annotated,
    )
    return _fleiss_pooled(fc)


def _fleiss_pooled(fc: _FrameCodes) -> float:
    if len(fc.raters) < 2:
        raise RegionError("Fleiss' kappa needs regions of at least two annotators")
    counts = fc.counts
    return float(_fleiss(counts, fc.frames, np.zeros(len(fc.frames), dtype=np.int64), 1)[0])


def frame_agreement_by_item(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    step: float = FRAME_STEP,
    labels: Sequence[str] | None = None,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Per recording: frames, the share of frames on which all annotators agree, and Fleiss' kappa.

    Each recording is judged among the annotators who annotated it (``annotated``, as
    :func:`region_agreement` takes it; default: everyone).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``item``; columns ``n_frames``, ``n_annotators``, ``unanimous`` (share of frames
        with one category) and ``fleiss_kappa`` (NaN when no frame varies, e.g. everyone marked
        nothing, or fewer than two annotated the recording). Sorted by kappa, lowest first: the
        recordings a reviewer should look at.
    """
    fc = _frame_codes(
        regions,
        durations=durations,
        step=step,
        labels=labels,
        label=label,
        rater=rater,
        item=item,
        annotated=annotated,
    )
    return _by_item(fc, item)


def _by_item(fc: _FrameCodes, item: str) -> pd.DataFrame:
    if len(fc.raters) < 2:
        raise RegionError("frame agreement needs regions of at least two annotators")
    counts = fc.counts
    n = len(fc.items)
    per_item = fc.raters_per_item
    kappa = _fleiss(counts, fc.frames, fc.item, n)
    kappa = np.where(per_item >= 2, kappa, np.nan)
    frames = np.bincount(fc.item, weights=fc.frames, minlength=n)
    unanimous_frames = np.bincount(
        fc.item, weights=fc.frames * (counts.max(axis=1) == per_item[fc.item]), minlength=n
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        unanimous = unanimous_frames / frames
    table = pd.DataFrame(
        {
            "n_frames": frames.astype(np.int64),
            "n_annotators": per_item,
            "unanimous": unanimous,
            "fleiss_kappa": kappa,
        },
        index=pd.Index(fc.items, name=item),
    )
    return table.sort_values("fleiss_kappa", na_position="last", kind="stable")


def frame_cohen_kappa(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    step: float = FRAME_STEP,
    labels: Sequence[str] | None = None,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Cohen's kappa on frames for every pair of annotators, over all recordings pooled.

    Equals ``sklearn.metrics.cohen_kappa_score`` on the two annotators' frame categories at ``step``.

    With ``annotated`` (as :func:`region_agreement` takes it) each pair is compared on the frames of
    the recordings both annotated; pairs who share none are left out.

    Returns
    -------
    pandas.DataFrame
        Columns ``rater_a``, ``rater_b``, ``n_recordings`` and ``n_frames`` (what the pair shares),
        ``agreement`` (observed share of equal frames) and ``kappa`` (NaN when both mark every frame
        alike, so chance agreement is 1).
    """
    fc = _frame_codes(
        regions,
        durations=durations,
        step=step,
        labels=labels,
        label=label,
        rater=rater,
        item=item,
        annotated=annotated,
    )
    return _cohen_pairs(fc)


def _cohen_pairs(fc: _FrameCodes) -> pd.DataFrame:
    rows = []
    weights = fc.frames.astype(np.float64)
    all_total = float(weights.sum())
    for i, j in itertools.combinations(range(len(fc.raters)), 2):
        if fc.present is None:
            a, b, w, total, n_shared = fc.codes[:, i], fc.codes[:, j], weights, all_total, len(fc.items)
        else:
            shared = fc.present[:, i] & fc.present[:, j]
            n_shared = int(shared.sum())
            if not n_shared:
                continue
            runs = shared[fc.item]
            a, b, w = fc.codes[runs, i], fc.codes[runs, j], weights[runs]
            total = float(w.sum())
        if len(a) and max(int(a.max()), int(b.max())) < 4096:
            ia, ib, k = a, b, max(int(a.max()), int(b.max())) + 1  # the bitmask is the category
        else:
            cats, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
            ia, ib, k = inverse[: len(a)], inverse[len(a) :], len(cats)
        table = np.bincount(ia * k + ib, weights=w, minlength=k * k).reshape(k, k) / total
        observed = float(np.trace(table))
        chance = float(table.sum(axis=1) @ table.sum(axis=0))
        kappa = (observed - chance) / (1.0 - chance) if chance < 1.0 else math.nan
        rows.append((fc.raters[i], fc.raters[j], n_shared, int(total), observed, kappa))
    return pd.DataFrame(
        rows, columns=["rater_a", "rater_b", "n_recordings", "n_frames", "agreement", "kappa"]
    )


# --------------------------------------------------------------------------------------------------
# Krippendorff's unitizing alpha


@dataclass(frozen=True)
class UnitizingAlpha:
    """Krippendorff's uα overall and per class.

    ``per_label`` is indexed by class with columns ``observed`` and ``expected`` (the disagreements
    uDo and uDe), ``alpha`` (1 − uDo/uDe) and ``n_units`` (units of that class, all annotators).
    """

    alpha: float
    per_label: pd.DataFrame


@dataclass(frozen=True)
class _Segments:
    """One annotator's partition of the continuum into units of a class and the gaps between them."""

    start: IntArray
    end: IntArray
    unit: BoolArray


def _segments(us: IntArray, ue: IntArray, item_bounds: IntArray) -> _Segments:
    # Units of one annotator and class never overlap (merged beforehand), so every stretch between
    # consecutive boundaries is either inside exactly one unit or a whole gap within one recording.
    bounds = _distinct(np.concatenate([item_bounds, us, ue]))
    start, end = bounds[:-1], bounds[1:]
    if len(us) == 0:  # no unit of this class from this annotator: the whole continuum is gap
        return _Segments(start=start, end=end, unit=np.zeros(len(start), dtype=bool))
    owner = np.searchsorted(us, start, side="right") - 1
    unit = (owner >= 0) & (ue[np.maximum(owner, 0)] > start)
    return _Segments(start=start, end=end, unit=unit)


def _observed_sum(a: _Segments, b: _Segments, weights: tuple[IntArray, FloatArray] | None = None) -> float:
    """Sum of Krippendorff's δ² over every overlapping pair of segments of two annotators.

    ``weights``: the recordings' bounds on the continuum and a weight per recording that multiplies
    each pair's δ² there (0 where the two did not both annotate it)."""
    # Both start lists are sorted: a stable sort of the two end to end merges them in linear time,
    # and running counts give, for each distinct start, the segment of each annotator it falls in.
    starts = np.concatenate([a.start, b.start])
    order = np.argsort(starts, kind="stable")
    merged = starts[order]
    from_a = order < len(a.start)
    last = np.r_[merged[1:] != merged[:-1], True] if len(merged) else np.zeros(0, dtype=bool)
    ia = np.cumsum(from_a)[last] - 1
    ib = np.cumsum(~from_a)[last] - 1
    sa, ea, ua = a.start[ia], a.end[ia], a.unit[ia]
    sb, eb, ub = b.start[ib], b.end[ib], b.unit[ib]
    sa_f, ea_f, sb_f, eb_f = (x.astype(np.float64) for x in (sa, ea, sb, eb))
    both = ua & ub
    # A unit facing a gap that contains it is wholly missed by the other annotator.
    a_in_gap = ua & ~ub & (sb <= sa) & (ea <= eb)
    b_in_gap = ub & ~ua & (sa <= sb) & (eb <= ea)
    d = np.where(both, (sa_f - sb_f) ** 2 + (ea_f - eb_f) ** 2, 0.0)
    d = np.where(a_in_gap, (ea_f - sa_f) ** 2, d)
    d = np.where(b_in_gap, (eb_f - sb_f) ** 2, d)
    if weights is not None:
        item_bounds, per_item = weights
        d = d * per_item[np.searchsorted(item_bounds, merged[last], side="right") - 1]
    return float(d.sum())


def _expected(unit_lengths: FloatArray, gap_lengths: FloatArray, pairable: float, length: float) -> float:
    """uDe of one class; ``pairable`` is the summed length of every annotator's continuum (``m·L``)."""
    n_c = len(unit_lengths)
    if n_c == 0:
        return math.nan
    ln = unit_lengths
    gaps = np.sort(gap_lengths)
    tail_sum = np.concatenate([np.cumsum(gaps[::-1])[::-1], [0.0]])
    first = np.searchsorted(gaps, ln, side="left")
    n_ge = len(gaps) - first
    # Σ over gaps g ≥ l of (g − l + 1): the places a unit of length l fits in those gaps.
    fits = tail_sum[first] - (ln - 1.0) * n_ge
    within = (n_c - 1) * (2 * ln**3 - 3 * ln**2 + ln) / 3.0
    numerator = (2.0 / length) * float(np.sum(within + ln**2 * fits))
    denominator = pairable * (pairable - 1) - float(np.sum(ln * (ln - 1)))
    return numerator / denominator


def unitizing_alpha(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    resolution: float = FRAME_STEP,
    labels: Sequence[str] | None = None,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> UnitizingAlpha:
    """Krippendorff's alpha for unitizing a continuum (uα), per class and overall.

    The definition of Krippendorff (1995, "On the reliability of unitizing continuous data",
    *Sociological Methodology* 25) as given in *Content Analysis*, 2nd ed. (2004), section 11.6: per
    class, each annotator splits the continuum into units of that class and gaps; the observed
    disagreement sums, over pairs of annotators, the squared differences of the start and end of
    overlapping units, and the squared length of a unit that falls wholly inside the other's gap,
    over ``m(m−1)L²``; the expected disagreement is that of all the ways the same units and gaps
    could have been placed. uα = 1 − ΣuDo / ΣuDe over classes.

    Times are counted in steps of ``resolution`` seconds (boundaries are rounded to it); finer steps
    change the expected disagreement slightly, as Krippendorff's examples at growing lengths show.
    Units of one annotator and class that overlap are merged first; units that only touch stay two.
    Several recordings are laid end to end into one continuum, with the end of each recording a
    boundary for every annotator (no gap runs from one recording into the next). Every annotator in
    ``regions`` is taken to have unitized every recording, unless ``annotated`` (as
    :func:`region_agreement` takes it) says who unitized which: then, as Krippendorff's alpha treats
    values missing from some units, only recordings two or more annotated count, a pair's δ² in a
    recording of ``m_r`` annotators weighs ``1/(m_r − 1)``, and the ``m·L`` of the formulas becomes
    ``Σ m_r·L_r``, which is uα itself when every recording has the same annotators.

    Parameters
    ----------
    regions
        Long regions of at least two annotators.
    durations
        Recording length in seconds, one number or per recording (keyed by ``item``).
    resolution
        Seconds per step of the continuum (10 ms by default).
    labels
        Classes to assess; default: the classes present.

    Returns
    -------
    UnitizingAlpha
    """
    _require(regions, ["start", "end", label, rater])
    if resolution <= 0:
        raise RegionError(f"resolution must be positive, got {resolution}")
    regions = _as_categories(regions, [rater, label])
    merged = normalise_regions(
        regions, duration=durations, touching=False, label=label, rater=rater, item=item
    )
    return _unitizing(
        regions,
        merged,
        durations=durations,
        resolution=resolution,
        labels=labels,
        label=label,
        rater=rater,
        item=item,
        annotated=annotated,
    )


def _unitizing(
    regions: pd.DataFrame,
    merged: pd.DataFrame,
    *,
    durations: Durations,
    resolution: float,
    labels: Sequence[str] | None,
    label: str,
    rater: str,
    item: str,
    annotated: pd.DataFrame | None = None,
) -> UnitizingAlpha:
    """:func:`unitizing_alpha` with the units already merged (``normalise_regions``, not touching)."""
    _, items = _item_codes(regions, item)
    lengths = np.rint(_item_durations(durations, items, item) / resolution).astype(np.int64)
    item_bounds = np.concatenate([[0], np.cumsum(lengths)])
    total = float(item_bounds[-1])
    raters = pd.Index(sorted(regions[rater].dropna().unique()))
    m = len(raters)
    if m < 2:
        raise RegionError("unitizing alpha needs regions of at least two annotators")
    present = _presence(annotated, items, raters, item, rater)
    codes, merged_items = _item_codes(merged, item)
    offset = item_bounds[items.get_indexer(merged_items[codes])] if len(merged) else np.zeros(0, np.int64)
    limit = offset + lengths[items.get_indexer(merged_items[codes])] if len(merged) else offset
    us = np.minimum(np.rint(merged["start"].to_numpy() / resolution).astype(np.int64) + offset, limit)
    ue = np.minimum(np.rint(merged["end"].to_numpy() / resolution).astype(np.int64) + offset, limit)
    r_codes = raters.get_indexer(merged[rater])
    names = sorted(merged[label].unique()) if labels is None else list(labels)
    label_codes = pd.Index(names).get_indexer(merged[label])
    rows = []
    for k, name in enumerate(names):
        of_class = (label_codes == k) & (ue > us)
        segments = []
        for r in range(m):
            pick = of_class & (r_codes == r)
            order = np.argsort(us[pick], kind="stable")
            segments.append(_segments(us[pick][order], ue[pick][order], item_bounds))
        if present is not None:
            rows.append(_unitizing_varying(name, segments, present, lengths, item_bounds))
            continue
        observed = sum(_observed_sum(a, b) for a, b in itertools.combinations(segments, 2))
        observed = 2.0 * observed / (m * (m - 1) * total**2)
        unit_lengths = np.concatenate([(s.end - s.start)[s.unit] for s in segments]).astype(np.float64)
        gap_lengths = np.concatenate([(s.end - s.start)[~s.unit] for s in segments]).astype(np.float64)
        expected = _expected(unit_lengths, gap_lengths, m * total, total)
        with np.errstate(invalid="ignore", divide="ignore"):
            alpha = 1.0 - observed / expected if expected > 0 else math.nan
        rows.append((name, observed, expected, alpha, len(unit_lengths)))
    per_label = pd.DataFrame(rows, columns=[label, "observed", "expected", "alpha", "n_units"]).set_index(
        label
    )
    valid = per_label["expected"].notna()
    expected_sum = float(per_label.loc[valid, "expected"].sum())
    alpha = (
        1.0 - float(per_label.loc[valid, "observed"].sum()) / expected_sum if expected_sum > 0 else math.nan
    )
    return UnitizingAlpha(alpha=alpha, per_label=per_label)


def _unitizing_varying(
    name: object, segments: list[_Segments], present: BoolArray, lengths: IntArray, item_bounds: IntArray
) -> tuple[object, float, float, float, int]:
    """One class's row of :func:`_unitizing` when annotators annotated different recordings.

    As Krippendorff's alpha does for values missing from some units: a recording counts only when two
    or more annotated it; there, each pair's δ² weighs ``1/(m_r − 1)`` (``m_r`` its annotators), and
    the pairable length ``m·L`` becomes ``Σ m_r·L_r``. Units and gaps are those of each annotator on
    the recordings they annotated. With the same annotators everywhere this is uα itself."""
    per_item = present.sum(axis=1)
    pairable = per_item >= 2
    if not pairable.any():
        raise RegionError("unitizing alpha needs a recording annotated by at least two annotators")
    with np.errstate(divide="ignore"):
        weight = np.where(pairable, 1.0 / (per_item - 1), 0.0)
    length = float(lengths[pairable].sum())
    pairable_length = float((per_item * lengths)[pairable].sum())
    kept = []
    for r, seg in enumerate(segments):
        on = (present[:, r] & pairable)[np.searchsorted(item_bounds, seg.start, side="right") - 1]
        kept.append(_Segments(start=seg.start[on], end=seg.end[on], unit=seg.unit[on]))
    observed = 0.0
    for (i, a), (j, b) in itertools.combinations(enumerate(segments), 2):
        both = np.where(present[:, i] & present[:, j], weight, 0.0)
        if both.any():
            observed += _observed_sum(a, b, (item_bounds, both))
    observed = 2.0 * observed / (pairable_length * length)
    unit_lengths = np.concatenate([(s.end - s.start)[s.unit] for s in kept]).astype(np.float64)
    gap_lengths = np.concatenate([(s.end - s.start)[~s.unit] for s in kept]).astype(np.float64)
    expected = _expected(unit_lengths, gap_lengths, pairable_length, length)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = 1.0 - observed / expected if expected > 0 else math.nan
    return (name, observed, expected, alpha, len(unit_lengths))


@dataclass(frozen=True)
class RegionAgreement:
    """Every agreement figure of one set of annotated recordings, as :func:`region_agreement` gives it.

    ``fleiss_kappa`` over all frames; ``cohen_kappa`` per pair (:func:`frame_cohen_kappa`); ``by_item``
    per recording, least agreement first (:func:`frame_agreement_by_item`); ``boundaries`` per pair and
    kind (:func:`pairwise_boundary_agreement`); ``unitizing`` (:func:`unitizing_alpha`).
    """

    fleiss_kappa: float
    cohen_kappa: pd.DataFrame
    by_item: pd.DataFrame
    boundaries: pd.DataFrame
    unitizing: UnitizingAlpha


def region_agreement(
    regions: pd.DataFrame,
    *,
    durations: Durations,
    step: float = FRAME_STEP,
    tolerance: float = 0.2,
    labels: Sequence[str] | None = None,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> RegionAgreement:
    """All of the region agreement measures at once, sharing the frame work between the kappas.

    Parameters are those of the functions it gathers: ``step`` is the frame step of the kappas and
    the resolution of uα, ``tolerance`` that of the boundary scores (which ignore classes).

    ``annotated`` says who annotated which recording, one row per pair (columns ``item`` and
    ``rater``), when not everyone did: an annotator then counts only on their recordings. Pairwise
    figures compare each pair on the recordings both annotated (pairs who share none are left out);
    Fleiss' kappa and uα take each recording among its own annotators (recordings one annotated
    count only in Fleiss' category shares). None: every annotator in ``regions`` annotated every
    recording in it, and one who drew nothing in a recording said "nothing here".
    """
    _require(regions, ["start", "end", label, rater])
    regions = _as_categories(regions, [rater, label])
    # One merge serves both: uα keeps touching units apart, and touching regions share no frame.
    units = normalise_regions(
        regions, duration=durations, touching=False, label=label, rater=rater, item=item
    )
    fc = _frame_codes(
        regions,
        durations=durations,
        step=step,
        labels=labels,
        label=label,
        rater=rater,
        item=item,
        merged=units,
        annotated=annotated,
    )
    return RegionAgreement(
        fleiss_kappa=_fleiss_pooled(fc),
        cohen_kappa=_cohen_pairs(fc),
        by_item=_by_item(fc, item),
        boundaries=pairwise_boundary_agreement(
            regions, tolerance=tolerance, annotated=annotated, rater=rater, item=item
        ),
        unitizing=_unitizing(
            regions,
            units,
            durations=durations,
            resolution=step,
            labels=labels,
            label=label,
            rater=rater,
            item=item,
            annotated=annotated,
        ),
    )


# --------------------------------------------------------------------------------------------------
# Diarization error rate and Jaccard error rate


@dataclass(frozen=True)
class _Timeline:
    """Elementary segments of one recording with who speaks in each, in reference and hypothesis."""

    duration: FloatArray  # evaluated seconds of each segment (0 outside the evaluation map)
    ref: BoolArray  # (n_segments, n_ref_speakers)
    hyp: BoolArray  # (n_segments, n_hyp_speakers)


def _intervals_union(starts: FloatArray, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
    if len(starts) == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    return s[new], np.maximum.reduceat(e, np.flatnonzero(new))


def _activity(
    bounds: FloatArray, starts: FloatArray, ends: FloatArray, speakers: IntArray, n_speakers: int
) -> BoolArray:
    delta = np.zeros((len(bounds), n_speakers), dtype=np.int64)
    np.add.at(delta, (np.searchsorted(bounds, starts), speakers), 1)
    np.add.at(delta, (np.searchsorted(bounds, ends), speakers), -1)
    return np.cumsum(delta, axis=0)[:-1] > 0


def _timeline(
    ref: pd.DataFrame,
    hyp: pd.DataFrame,
    *,
    uem: tuple[float, float] | None,
    collar: float,
    skip_overlap: bool,
    label: str,
) -> tuple[_Timeline, pd.Index, pd.Index]:
    rs, re_ = ref["start"].to_numpy(np.float64), ref["end"].to_numpy(np.float64)
    hs, he = hyp["start"].to_numpy(np.float64), hyp["end"].to_numpy(np.float64)
    if uem is None:
        # pyannote.metrics' default: the smallest span holding both annotations.
        every_start, every_end = np.r_[rs, hs], np.r_[re_, he]
        uem = (float(every_start.min()), float(every_end.max())) if len(every_start) else (0.0, 0.0)
    lo, hi = uem
    removed_s: list[FloatArray] = []
    removed_e: list[FloatArray] = []
    if collar > 0:
        for t in (rs, re_):
            removed_s.append(t - collar / 2)
            removed_e.append(t + collar / 2)
    r_codes, r_names = pd.factorize(ref[label], sort=True)
    h_codes, h_names = pd.factorize(hyp[label], sort=True)
    if skip_overlap and len(rs):
        b = _distinct(np.r_[rs, re_])
        speaking = _activity(b, rs, re_, r_codes.astype(np.int64), len(r_names)).sum(axis=1)
        over = speaking >= 2
        removed_s.append(b[:-1][over])
        removed_e.append(b[1:][over])
    cut_s, cut_e = _intervals_union(
        np.concatenate(removed_s) if removed_s else np.zeros(0),
        np.concatenate(removed_e) if removed_e else np.zeros(0),
    )
    bounds = _distinct(np.clip(np.r_[lo, hi, rs, re_, hs, he, cut_s, cut_e], lo, hi))
    mids = (bounds[:-1] + bounds[1:]) / 2
    inside_cut = np.zeros(len(mids), dtype=bool)
    if len(cut_s):
        k = np.searchsorted(cut_s, mids, side="right") - 1
        inside_cut = (k >= 0) & (cut_e[np.maximum(k, 0)] > mids)
    duration = np.where(inside_cut, 0.0, np.diff(bounds))
    ref_act = _activity(
        bounds, np.clip(rs, lo, hi), np.clip(re_, lo, hi), r_codes.astype(np.int64), len(r_names)
    )
    hyp_act = _activity(
        bounds, np.clip(hs, lo, hi), np.clip(he, lo, hi), h_codes.astype(np.int64), len(h_names)
    )
    return _Timeline(duration=duration, ref=ref_act, hyp=hyp_act), pd.Index(r_names), pd.Index(h_names)


def _mapping(tl: _Timeline) -> tuple[IntArray, IntArray]:
    """Reference and hypothesis speakers paired to maximise their shared time (Hungarian)."""
    if tl.ref.shape[1] == 0 or tl.hyp.shape[1] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    shared = tl.ref.T.astype(np.float64) @ (tl.hyp * tl.duration[:, None])
    r, h = linear_sum_assignment(-shared)
    keep = shared[r, h] > 0
    return r[keep].astype(np.int64), h[keep].astype(np.int64)


DER_COLUMNS = ["total", "correct", "missed", "false_alarm", "confusion", "der"]


def _der_parts(tl: _Timeline) -> tuple[float, float, float, float, float]:
    r, h = _mapping(tl)
    n_ref = tl.ref.sum(axis=1)
    n_hyp = tl.hyp.sum(axis=1)
    n_correct = (tl.ref[:, r] & tl.hyp[:, h]).sum(axis=1)
    d = tl.duration
    total = float(d @ n_ref)
    correct = float(d @ n_correct)
    missed = float(d @ np.maximum(0, n_ref - n_hyp))
    false_alarm = float(d @ np.maximum(0, n_hyp - n_ref))
    confusion = float(d @ (np.minimum(n_ref, n_hyp) - n_correct))
    return total, correct, missed, false_alarm, confusion


def _der(total: float, missed: float, false_alarm: float, confusion: float) -> float:
    error = missed + false_alarm + confusion
    if total == 0:
        return 0.0 if error == 0 else 1.0  # pyannote.metrics' convention for an empty reference
    return error / total


def _per_item(
    reference: pd.DataFrame,
    hypothesis: pd.DataFrame,
    durations: Durations | None,
    label: str,
    item: str,
) -> list[tuple[object, pd.DataFrame, pd.DataFrame, tuple[float, float] | None]]:
    _require(reference, ["start", "end", label])
    _require(hypothesis, ["start", "end", label])
    if (item in reference.columns) != (item in hypothesis.columns):
        raise RegionError(f"both or neither of reference and hypothesis must have the column {item!r}")
    by = [c for c in (item,) if c in reference.columns] + [label]
    ref = normalise_regions(reference, by=by, label=label, item=item)
    hyp = normalise_regions(hypothesis, by=by, label=label, item=item)
    if item not in ref.columns:
        uem = None if durations is None else (0.0, float(durations))  # type: ignore[arg-type]
        return [(None, ref, hyp, uem)]
    items = pd.Index(sorted(set(ref[item].unique()) | set(hyp[item].unique())))
    if durations is not None and not isinstance(durations, int | float):
        items = items.union(pd.Index(pd.Series(durations).index))
    spans = None if durations is None else _item_durations(durations, items, item)
    ref_groups = dict(tuple(ref.groupby(item, sort=False)))
    hyp_groups = dict(tuple(hyp.groupby(item, sort=False)))
    empty = ref.iloc[:0]
    out = []
    for k, name in enumerate(items):
        uem = None if spans is None else (0.0, float(spans[k]))
        out.append((name, ref_groups.get(name, empty), hyp_groups.get(name, empty), uem))
    return out


def diarization_error(
    reference: pd.DataFrame,
    hypothesis: pd.DataFrame,
    *,
    durations: Durations | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
    label: str = "label",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Diarization error rate of ``hypothesis`` against ``reference``, per recording and in total.

    Follows ``pyannote.metrics.diarization.DiarizationErrorRate``: hypothesis speakers are mapped
    one-to-one onto reference speakers to maximise their shared time (Hungarian algorithm); then, on
    every stretch of time, with ``n_ref`` reference and ``n_hyp`` hypothesis speakers of which
    ``n_ok`` are mapped pairs, missed speech is ``max(0, n_ref − n_hyp)``, false alarm
    ``max(0, n_hyp − n_ref)`` and confusion ``min(n_ref, n_hyp) − n_ok`` speaker-seconds. DER is their
    sum over the total reference speaker time.

    Parameters
    ----------
    reference, hypothesis
        Long regions whose ``label`` is the speaker (or class); with ``item`` for several recordings.
    durations
        Evaluated span ``[0, duration]`` per recording (one number, or keyed by ``item``). None
        evaluates the span from the first to the last region of either side, as pyannote does
        without a UEM.
    collar
        Seconds removed from evaluation around each reference boundary (half before, half after).
    skip_overlap
        Leave out stretches where two or more reference speakers talk at once.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``item`` plus a last row ``"total"`` (sums; DER of the sums, as pyannote's
        ``abs(metric)`` gives), columns ``total``, ``correct``, ``missed``, ``false_alarm``,
        ``confusion`` (seconds) and ``der``.
    """
    if collar < 0:
        raise RegionError(f"collar must be at least 0, got {collar}")
    rows, names = [], []
    for name, ref, hyp, uem in _per_item(reference, hypothesis, durations, label, item):
        tl, _, _ = _timeline(ref, hyp, uem=uem, collar=collar, skip_overlap=skip_overlap, label=label)
        total, correct, missed, false_alarm, confusion = _der_parts(tl)
        rows.append(
            (total, correct, missed, false_alarm, confusion, _der(total, missed, false_alarm, confusion))
        )
        names.append(name)
    table = pd.DataFrame(rows, columns=DER_COLUMNS, index=pd.Index(names, name=item, dtype=object))
    sums = table[DER_COLUMNS[:-1]].sum()
    table.loc["total"] = [
        *sums.to_list(),
        _der(sums["total"], sums["missed"], sums["false_alarm"], sums["confusion"]),
    ]
    return table


def jaccard_error(
    reference: pd.DataFrame,
    hypothesis: pd.DataFrame,
    *,
    durations: Durations | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
    label: str = "label",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Jaccard error rate (JER, DIHARD II) per recording and in total, as ``pyannote.metrics`` computes it.

    Speakers are mapped as for :func:`diarization_error`; each reference speaker scores
    1 − |ref ∩ hyp| / |ref ∪ hyp| of time with its hypothesis speaker, or 1 if it has none. JER is the
    mean over reference speakers, so a speaker who says little counts as much as one who talks all along.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``item`` plus ``"total"``; columns ``speakers`` (reference speakers), ``error``
        (sum of their errors) and ``jer`` (error / speakers, 1 with no reference speaker).
    """
    rows, names = [], []
    for name, ref, hyp, uem in _per_item(reference, hypothesis, durations, label, item):
        tl, _, _ = _timeline(ref, hyp, uem=uem, collar=collar, skip_overlap=skip_overlap, label=label)
        r, h = _mapping(tl)
        d = tl.duration
        # Speakers who never speak inside the evaluated span are not counted (pyannote crops first).
        present = (tl.ref * d[:, None]).sum(axis=0) > 0
        errors = np.ones(tl.ref.shape[1])
        inter = (tl.ref[:, r] & tl.hyp[:, h]).T.astype(np.float64) @ d
        union = (tl.ref[:, r] | tl.hyp[:, h]).T.astype(np.float64) @ d
        errors[r] = 1.0 - inter / union
        speakers = int(present.sum())
        error = float(errors[present].sum())
        rows.append((speakers, error, error / speakers if speakers else 1.0))
        names.append(name)
    table = pd.DataFrame(
        rows, columns=["speakers", "error", "jer"], index=pd.Index(names, name=item, dtype=object)
    )
    speakers, error = int(table["speakers"].sum()), float(table["error"].sum())
    table.loc["total"] = [speakers, error, error / speakers if speakers else 1.0]
    table["speakers"] = table["speakers"].astype(np.int64)
    return table


def pairwise_diarization_error(
    regions: pd.DataFrame,
    *,
    durations: Durations | None = None,
    collar: float = 0.0,
    skip_overlap: bool = False,
    annotated: pd.DataFrame | None = None,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
) -> pd.DataFrame:
    """DER and JER between every pair of annotators, the first of each pair taken as reference.

    With ``annotated`` (rows of ``item`` and ``rater``: who annotated which recording) each pair is
    compared on the recordings both annotated, and pairs who share none are left out; None compares
    every pair on every recording.

    Returns
    -------
    pandas.DataFrame
        Columns ``rater_a``, ``rater_b``, ``n_recordings`` (the recordings compared), the
        :func:`diarization_error` total row's columns and ``jer``.
    """
    _require(regions, [rater])
    names = sorted(regions[rater].dropna().unique())
    has_items = item in regions.columns
    every = set(regions[item].unique()) if has_items else {None}
    if has_items and durations is not None and not isinstance(durations, int | float):
        every |= set(pd.Series(durations).index)
    covered: dict[object, set[object]] = {}
    if annotated is not None:
        _require(annotated, [rater, *([item] if has_items else [])])
        for who, what in zip(
            annotated[rater], annotated[item] if has_items else [None] * len(annotated), strict=True
        ):
            covered.setdefault(who, set()).add(what)
    rows = []
    for a, b in itertools.combinations(names, 2):
        ref, hyp = regions[regions[rater] == a], regions[regions[rater] == b]
        spans = durations
        shared = every
        if annotated is not None:
            shared = covered.get(a, set()) & covered.get(b, set()) & every
            if not shared:
                continue
            if has_items:
                ref, hyp = ref[ref[item].isin(shared)], hyp[hyp[item].isin(shared)]
                if durations is not None and not isinstance(durations, int | float):
                    spans = pd.Series(durations, dtype="float64")
                    spans = spans[spans.index.isin(shared)]
        options = dict(durations=spans, collar=collar, skip_overlap=skip_overlap, label=label, item=item)
        der = diarization_error(ref, hyp, **options).loc["total"]  # type: ignore[arg-type]
        jer = jaccard_error(ref, hyp, **options).loc["total", "jer"]  # type: ignore[arg-type]
        rows.append((a, b, len(shared), *der.to_list(), float(jer)))
    return pd.DataFrame(rows, columns=["rater_a", "rater_b", "n_recordings", *DER_COLUMNS, "jer"])
