"""Time regions on long recordings: :func:`validate_regions`, :func:`normalise_regions`, :func:`rasterise`.

A region is a span ``[start, end)`` in seconds of one recording with a class label, drawn by one
annotator, optionally with a transcript. Code that handles one region at a time uses :class:`Region`;
everything else takes regions *long*, one row per region, in a DataFrame with the columns

``start``, ``end`` (float seconds), ``label`` (class), and optionally ``annotator``, ``recording_id``,
``text`` and any tag or metadata columns, which are carried through untouched.

Column names are keyword options (``label="label"``, ``rater="annotator"``, ``item="recording_id"``)
as in :mod:`analysis.agreement`.

- :func:`validate_regions` refuses bad input with one message naming every bad row (negative start,
  start not before end, beyond the recording, missing label) and returns a clean copy.
- :func:`normalise_regions` clips regions to the recording, drops what is left empty, and merges
  regions of the same annotator and label that overlap (and, by default, that touch).
- :func:`region_overlaps` lists the pairs of regions that overlap within an annotator (two speakers
  at once, music under speech): whether that is allowed is the caller's rule, per class.
- :func:`rasterise` turns regions into per-class boolean frames at a frame step (10 ms by default);
  :func:`activity_regions` goes the other way, from a per-frame score to regions, with hysteresis.

Frames follow one rule everywhere (here and in :mod:`analysis.region_agreement`): frame ``i`` covers
``[i·step, (i+1)·step)`` and belongs to a region when its centre ``(i + ½)·step`` lies in
``[start, end)``. A recording of ``duration`` seconds has ``ceil(duration / step)`` frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FRAME_STEP = 0.01
# Times closer than this to a frame centre or a multiple of the step count as on it, so that
# 0.3 / 0.01 = 29.999999999999996 still lands on frame boundary 30.
_EPS = 1e-9
_MAX_ERRORS_SHOWN = 5

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class RegionError(ValueError):
    """Regions that cannot be used as given; the message says which rows and why."""


@dataclass(frozen=True)
class Region:
    """One region: ``[start, end)`` seconds with a class label, optionally by an annotator, with text.

    Raises :class:`RegionError` when ``start`` is negative or not before ``end``, or a bound is not finite.
    """

    start: float
    end: float
    label: str
    annotator: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise RegionError(f"region bounds must be finite, got [{self.start}, {self.end})")
        if self.start < 0:
            raise RegionError(f"region starts before the recording: start={self.start}")
        if not self.start < self.end:
            raise RegionError(f"region must start before it ends: [{self.start}, {self.end})")

    @property
    def duration(self) -> float:
        return self.end - self.start


def regions_frame(regions: Iterable[Region]) -> pd.DataFrame:
    """Long DataFrame (``start, end, label, annotator, text``) of :class:`Region` objects, in order."""
    rows = [asdict(r) for r in regions]
    columns = ["start", "end", "label", "annotator", "text"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["start"] = frame["start"].astype("float64")
    frame["end"] = frame["end"].astype("float64")
    return frame


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RegionError(f"regions need the column(s) {missing}; got {list(frame.columns)}")


def _bounds(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    try:
        start = pd.to_numeric(frame["start"]).to_numpy(dtype=np.float64, na_value=np.nan)
        end = pd.to_numeric(frame["end"]).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise RegionError(f"region start and end must be numbers of seconds: {exc}") from None
    return start, end


def _durations_of(
    frame: pd.DataFrame, duration: float | pd.Series | dict | None, item: str
) -> FloatArray | None:
    """Per-row recording duration, or None when no duration is known."""
    if duration is None:
        return None
    if isinstance(duration, int | float | np.floating | np.integer):
        return np.full(len(frame), float(duration))
    _require(frame, [item])
    lookup = pd.Series(duration, dtype="float64")
    values = frame[item].map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)
    unknown = frame.loc[np.isnan(values), item].unique()
    if len(unknown):
        raise RegionError(f"no duration for {item} {list(unknown[:_MAX_ERRORS_SHOWN])}")
    return values


def validate_regions(
    regions: pd.DataFrame,
    *,
    duration: float | pd.Series | dict | None = None,
    label: str = "label",
    item: str = "recording_id",
    tolerance: float = 1e-6,
) -> pd.DataFrame:
    """Check regions and return a clean copy with float ``start``/``end``; refuse bad input whole.

    Parameters
    ----------
    regions
        Long regions with ``start``, ``end`` and ``label``.
    duration
        Length of the recording in seconds (one number), or per recording: a Series or mapping keyed
        by the ``item`` column. None skips the check against the recording's end.
    label, item
        Column names.
    tolerance
        Seconds an end may pass the recording's duration (rounding in a player or a file format).

    Raises
    ------
    RegionError
        Naming the first rows (by index) that are bad and why; nothing is returned in part.
    """
    _require(regions, ["start", "end", label])
    start, end = _bounds(regions)
    limit = _durations_of(regions, duration, item)
    problems = {
        "start or end missing or not finite": ~(np.isfinite(start) & np.isfinite(end)),
        "starts before 0 s": start < 0,
        "does not start before it ends": ~(start < end),
        "missing label": regions[label].isna().to_numpy(),
    }
    if limit is not None:
        problems["ends after the recording"] = end > limit + tolerance
    messages = []
    for why, bad in problems.items():
        rows = regions.index[bad]
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:_MAX_ERRORS_SHOWN])
            more = f" and {len(rows) - _MAX_ERRORS_SHOWN} more" if len(rows) > _MAX_ERRORS_SHOWN else ""
            messages.append(f"{len(rows)} region(s) {why} (rows {shown}{more})")
    if messages:
        raise RegionError("; ".join(messages))
    clean = regions.copy()
    clean["start"] = start
    clean["end"] = end
    return clean


def normalise_regions(
    regions: pd.DataFrame,
    *,
    duration: float | pd.Series | dict | None = None,
    by: Sequence[str] | None = None,
    touching: bool = True,
    label: str = "label",
    rater: str = "annotator",
    item: str = "recording_id",
    text: str = "text",
) -> pd.DataFrame:
    """Clip regions to the recording and merge those of one annotator and label that overlap.

    Parameters
    ----------
    regions
        Long regions (validated with :func:`validate_regions` first when they come from a user).
    duration
        As for :func:`validate_regions`; regions are clipped to ``[0, duration]`` and those left
        empty are dropped. None clips at 0 only.
    by
        Columns whose equal values may merge; default: ``item``, ``rater`` (those present) and ``label``.
    touching
        Also merge regions that touch (one ends where the next starts). False keeps touching regions
        apart: adjacent utterances are two units, which is what unitizing agreement counts.
    text
        Transcript column, if present: merged regions join their texts with a space, in time order.

    Returns
    -------
    pandas.DataFrame
        Sorted by the ``by`` columns and start, with a fresh index. Other columns keep the values of
        the first region of each merged run.
    """
    _require(regions, ["start", "end", label])
    if by is None:
        by = [c for c in (item, rater) if c in regions.columns] + [label]
    _require(regions, by)
    start, end = _bounds(regions)
    limit = _durations_of(regions, duration, item)
    start = np.maximum(start, 0.0)
    if limit is not None:
        end = np.minimum(end, limit)
    keep = np.flatnonzero(start < end)
    if len(keep) == 0:
        return regions.iloc[:0].assign(start=start[:0], end=end[:0]).reset_index(drop=True)
    # Integer codes of the grouping columns (sorted by value, missing values a group of their own)
    # keep the sort and the comparisons in numpy: sorting a frame by string columns is far slower.
    # One code for the whole group (the codes in mixed radix, so its order is that of the columns in
    # turn): a sort by three keys instead of one per column.
    factors = [pd.factorize(regions[c].iloc[keep], sort=True, use_na_sentinel=False) for c in by]
    if math.prod(max(len(u), 1) for _, u in factors) < 2**62:
        group_code = np.zeros(len(keep), dtype=np.int64)
        for codes, uniques in factors:
            group_code = group_code * max(len(uniques), 1) + codes
    else:  # too many groups for one int64: rank the distinct combinations instead
        group_code = np.unique(np.column_stack([c for c, _ in factors]), axis=0, return_inverse=True)[
            1
        ].ravel()
    order = np.lexsort((end[keep], start[keep], group_code))
    rows = keep[order]
    s, e = start[rows], end[rows]
    ordered_code = group_code[order]
    same_group = np.zeros(len(rows), dtype=bool)
    same_group[1:] = ordered_code[1:] == ordered_code[:-1]
    # Running maximum of ends within each group, so a long region swallows later short ones.
    group = np.cumsum(~same_group)
    run_end = pd.Series(e).groupby(group).cummax().to_numpy()
    previous_end = np.r_[-np.inf, run_end[:-1]]
    joins = same_group & ((s <= previous_end) if touching else (s < previous_end))
    first = np.flatnonzero(~joins)
    out = regions.iloc[rows[first]].copy()
    out["start"] = s[first]
    out["end"] = np.maximum.reduceat(e, first)
    if text in regions.columns and joins.any():
        run = np.cumsum(~joins) - 1
        merged = np.bincount(run, minlength=len(first)) > 1
        members = merged[run]
        texts = regions[text].to_numpy(dtype=object)[rows[members]]
        joined = (
            pd.Series(texts)
            .groupby(run[members])
            .agg(lambda t: " ".join(x for x in t if isinstance(x, str) and x) or None)
        )
        column = out[text].to_numpy(dtype=object).copy()
        column[np.flatnonzero(merged)] = joined.to_numpy()
        out[text] = column
    return out.reset_index(drop=True)


def region_overlaps(
    regions: pd.DataFrame,
    *,
    within: Sequence[str] | None = None,
    rater: str = "annotator",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Pairs of regions that overlap in time within the same ``within`` group (default: item, rater).

    Returns
    -------
    pandas.DataFrame
        Columns ``first``, ``second`` (index labels of ``regions``, ``first`` starting earlier),
        ``start``, ``end`` of the shared span and ``overlap`` (seconds). Touching regions do not overlap.
    """
    _require(regions, ["start", "end"])
    if within is None:
        within = [c for c in (item, rater) if c in regions.columns]
    start, end = _bounds(regions)
    if within:
        groups = regions.groupby(list(within), sort=False, dropna=False).ngroup().to_numpy()
    else:
        groups = np.zeros(len(regions), dtype=np.int64)
    order = np.lexsort((start, groups))
    g, s, e = groups[order], start[order], end[order]
    firsts, seconds = [], []
    cuts = np.flatnonzero(np.diff(g)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(g)], strict=True):
        # Sorted by start, a region overlaps the later ones of its group that start before it ends.
        gs, ge = s[lo:hi], e[lo:hi]
        later = np.searchsorted(gs, ge, side="left") - np.arange(hi - lo) - 1
        later = np.maximum(later, 0)
        if not later.any():
            continue
        left = np.repeat(np.arange(hi - lo), later)
        rank = np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later)
        firsts.append(lo + left)
        seconds.append(lo + left + 1 + rank)
    if not firsts:
        return pd.DataFrame({"first": [], "second": [], "start": [], "end": [], "overlap": []}).astype(
            {"start": "float64", "end": "float64", "overlap": "float64"}
        )
    a = order[np.concatenate(firsts)]
    b = order[np.concatenate(seconds)]
    lo = np.maximum(start[a], start[b])
    hi = np.minimum(end[a], end[b])
    return pd.DataFrame(
        {"first": regions.index[a], "second": regions.index[b], "start": lo, "end": hi, "overlap": hi - lo}
    )


def frame_count(duration: float, step: float = FRAME_STEP) -> int:
    """Number of frames of a recording: ``ceil(duration / step)``, a final part-frame included."""
    if step <= 0:
        raise RegionError(f"frame step must be positive, got {step}")
    return max(0, math.ceil(duration / step - _EPS))


def frame_span(
    start: npt.ArrayLike, end: npt.ArrayLike, step: float = FRAME_STEP
) -> tuple[IntArray, IntArray]:
    """First and one-past-last frame whose centre lies in ``[start, end)``, elementwise."""
    first = np.ceil(np.asarray(start, dtype=np.float64) / step - 0.5 - _EPS).astype(np.int64)
    stop = np.ceil(np.asarray(end, dtype=np.float64) / step - 0.5 - _EPS).astype(np.int64)
    return np.maximum(first, 0), np.maximum(stop, 0)


@dataclass(frozen=True)
class Raster:
    """Per-class boolean frames of one recording: ``active[i, k]`` is class ``labels[k]`` in frame ``i``."""

    active: npt.NDArray[np.bool_]
    labels: tuple[str, ...]
    step: float

    @property
    def times(self) -> FloatArray:
        """Start time of each frame in seconds."""
        return np.arange(self.active.shape[0], dtype=np.float64) * self.step

    def column(self, label: str) -> npt.NDArray[np.bool_]:
        return self.active[:, self.labels.index(label)]


def rasterise(
    regions: pd.DataFrame,
    *,
    duration: float,
    step: float = FRAME_STEP,
    labels: Sequence[str] | None = None,
    label: str = "label",
) -> Raster:
    """Per-class boolean frame matrix of the regions of one recording (any annotators pooled).

    Parameters
    ----------
    regions
        Regions of one recording; overlapping regions simply both mark their frames.
    duration
        Recording length in seconds; gives ``ceil(duration / step)`` frames. Regions past it are cut.
    step
        Frame step in seconds (10 ms by default).
    labels
        Class order of the columns; default: the sorted labels present. Regions of other classes
        raise :class:`RegionError`.

    Returns
    -------
    Raster
        ``active`` of shape ``(n_frames, n_labels)``.
    """
    _require(regions, ["start", "end", label])
    names = tuple(sorted(regions[label].dropna().unique())) if labels is None else tuple(labels)
    codes = pd.Index(names).get_indexer(regions[label])
    if (codes < 0).any():
        unknown = sorted(set(regions.loc[codes < 0, label].astype(str)))
        raise RegionError(f"regions carry label(s) {unknown} outside {list(names)}")
    n = frame_count(duration, step)
    start, end = _bounds(regions)
    first, stop = frame_span(start, end, step)
    first, stop = np.minimum(first, n), np.minimum(stop, n)
    # A difference array per class: +1 where a region's frames begin, -1 where they end.
    delta = np.zeros((n + 1, len(names)), dtype=np.int32)
    np.add.at(delta, (first, codes), 1)
    np.add.at(delta, (stop, codes), -1)
    active = np.cumsum(delta[:-1], axis=0) > 0
    return Raster(active=active, labels=names, step=step)


def activity_regions(
    values: npt.ArrayLike,
    *,
    high: float,
    low: float | None = None,
    step: float = FRAME_STEP,
    min_duration: float = 0.0,
    min_gap: float = 0.0,
    label: str = "speech",
) -> pd.DataFrame:
    """Regions where a per-frame score is high, with hysteresis: the frame rule of a VAD.

    A region is a run of frames at or above ``low`` that holds at least one frame at or above
    ``high`` (so a score that dips briefly below ``high`` does not split it). Then gaps shorter than
    ``min_gap`` seconds are closed and regions shorter than ``min_duration`` dropped, in that order.

    Parameters
    ----------
    values
        One score per frame (frame ``i`` spans ``[i·step, (i+1)·step)``): a level in dB, a posterior.
    high, low
        Thresholds; ``low`` defaults to ``high`` (no hysteresis) and must not exceed it.
    step
        Frame step in seconds.

    Returns
    -------
    pandas.DataFrame
        Columns ``start``, ``end`` (seconds, on frame edges) and ``label``.
    """
    score = np.asarray(values, dtype=np.float64)
    if score.ndim != 1:
        raise RegionError("activity_regions expects one score per frame")
    low = high if low is None else low
    if low > high:
        raise RegionError(f"the low threshold ({low}) must not exceed the high one ({high})")
    above = np.r_[False, score >= low, False]
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    first, stop = edges[0::2], edges[1::2]
    if len(first):
        # reduceat runs to the next start, past this run's stop; mask what lies outside the runs.
        inside = np.where(above[1:-1], score, -np.inf)
        peak = np.maximum.reduceat(inside, first)
        keep = peak >= high
        first, stop = first[keep], stop[keep]
    if len(first) > 1 and min_gap > 0:
        joined = (first[1:] - stop[:-1]) * step < min_gap - _EPS
        first = first[np.r_[True, ~joined]]
        stop = stop[np.r_[~joined, True]]
    if min_duration > 0:
        long_enough = (stop - first) * step >= min_duration - _EPS
        first, stop = first[long_enough], stop[long_enough]
    return pd.DataFrame(
        {"start": first * step, "end": stop * step, "label": pd.Series([label] * len(first), dtype=object)}
    )
