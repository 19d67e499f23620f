"""Error analysis per region: where a model's regions go wrong, and which slice is worth fixing first.

Call :func:`region_errors` with the final (reference) regions and a model's regions — imported, from
the built-in VAD, or from frame posteriors through :func:`regions_from_posteriors` — to get one row per
region with its correct, missed, confused and false-alarm seconds. Then:

- :func:`region_slice_table` slices those errors by 0/1 tag columns (``noise_car``,
  ``low_bandwidth``, …, of the region or its recording), with human-level performance per tag and
  the same priority (gap × share) as :func:`analysis.slices.slice_table` gives clips;
- :func:`region_metadata_slices` slices by the values of categorical columns (``speaker``, ``accent``);
- :func:`per_class_region_table` breaks the errors down by class;
- :func:`region_transcript_pairs` pairs the reference regions' transcripts with the hypothesis'
  (each hypothesis region goes to the reference region it overlaps most), for a WER of region
  transcripts with :func:`analysis.text.error_rates`.

The error rate of a slice is a detection error rate: (missed + confusion + false alarm) seconds over
the reference seconds in the slice. When neither side overlaps itself and ``mapping="optimal"``, the
sums over all rows equal the parts of the diarization error rate
(:func:`analysis.region_agreement.diarization_error`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import linear_sum_assignment

from analysis.regions import FRAME_STEP, RegionError, activity_regions, normalise_regions
from analysis.slices import hlp_by_name, tag_mask

FloatArray = npt.NDArray[np.float64]
Durations: TypeAlias = float | pd.Series | Mapping[Any, float]
Mapping_ = Literal["identity", "optimal"]

ERROR_COLUMNS = ["side", "duration", "correct", "missed", "confusion", "false_alarm", "error"]


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RegionError(f"regions need the column(s) {missing}; got {list(frame.columns)}")


class _Union:
    """Disjoint sorted intervals with the covered length of any span in O(log n)."""

    def __init__(self, starts: FloatArray, ends: FloatArray) -> None:
        if len(starts):
            order = np.argsort(starts, kind="stable")
            s, e = starts[order], ends[order]
            run_end = np.maximum.accumulate(e)
            new = np.r_[True, s[1:] > run_end[:-1]]
            self.start = s[new]
            self.end = np.maximum.reduceat(e, np.flatnonzero(new))
        else:
            self.start = self.end = np.zeros(0)
        self.cum = np.r_[0.0, np.cumsum(self.end - self.start)]

    def _upto(self, t: FloatArray) -> FloatArray:
        k = np.searchsorted(self.start, t, side="right") - 1
        inside = np.clip(t - self.start[np.maximum(k, 0)], 0.0, (self.end - self.start)[np.maximum(k, 0)])
        return np.where(k >= 0, self.cum[np.maximum(k, 0)] + inside, 0.0)

    def covered(self, start: FloatArray, end: FloatArray) -> FloatArray:
        if len(self.start) == 0:
            return np.zeros(len(start))
        return self._upto(end) - self._upto(start)


def _union_of(frame: pd.DataFrame) -> _Union:
    return _Union(frame["start"].to_numpy(np.float64), frame["end"].to_numpy(np.float64))


def _optimal_labels(ref: pd.DataFrame, hyp: pd.DataFrame, label: str) -> pd.Series:
    """Hypothesis labels renamed to the reference labels they share most time with (Hungarian)."""
    ref_labels = sorted(ref[label].unique())
    hyp_labels = sorted(hyp[label].unique())
    shared = np.zeros((len(ref_labels), len(hyp_labels)))
    for j, h in enumerate(hyp_labels):
        theirs = _union_of(hyp[hyp[label] == h])
        for i, r in enumerate(ref_labels):
            mine = ref[ref[label] == r]
            shared[i, j] = theirs.covered(mine["start"].to_numpy(), mine["end"].to_numpy()).sum()
    # A hypothesis speaker left without a partner must not match a reference label by its name.
    rename: dict[Any, Any] = {h: f"unmapped:{h}" for h in hyp_labels}
    for i, j in zip(*linear_sum_assignment(-shared), strict=True):
        if shared[i, j] > 0:
            rename[hyp_labels[j]] = ref_labels[i]
    return hyp[label].map(rename)


def region_errors(
    reference: pd.DataFrame,
    hypothesis: pd.DataFrame,
    *,
    durations: Durations | None = None,
    mapping: Mapping_ = "identity",
    label: str = "label",
    item: str = "recording_id",
) -> pd.DataFrame:
    """Per region: how much of it the other side got right, missed, confused or invented.

    Parameters
    ----------
    reference
        Final regions, long (``start``, ``end``, ``label``, ``item`` for several recordings, and any
        tag or metadata columns, which are kept). Regions of one recording and class that overlap are
        merged first, keeping the first one's other columns.
    hypothesis
        A model's regions in the same shape.
    durations
        Recording lengths (one number, or keyed by ``item``); regions are clipped to them. Optional.
    mapping
        ``"identity"``: classes are compared by name (speech/music, event classes). ``"optimal"``:
        hypothesis labels are renamed per recording to the reference labels they overlap most, one to
        one (Hungarian), as for speaker diarization where a model's speaker names are arbitrary.

    Returns
    -------
    pandas.DataFrame
        One row per reference region (``side="reference"``): ``duration``, ``correct`` (seconds the
        hypothesis has the same class), ``confusion`` (some other class only), ``missed`` (nothing).
        Then one row per hypothesis region (``side="hypothesis"``): ``false_alarm`` (seconds with no
        reference region). ``error`` is missed + confusion + false alarm. The regions' own columns come
        first; the hypothesis' mapped label is in ``label`` and its original in ``hypothesis_label``.
    """
    _require(reference, ["start", "end", label])
    _require(hypothesis, ["start", "end", label])
    if mapping not in ("identity", "optimal"):
        raise RegionError(f"mapping must be 'identity' or 'optimal', got {mapping!r}")
    if (item in reference.columns) != (item in hypothesis.columns):
        raise RegionError(f"both or neither of reference and hypothesis must have the column {item!r}")
    by = [c for c in (item,) if c in reference.columns] + [label]
    ref = normalise_regions(reference, duration=durations, by=by, label=label, item=item)
    hyp = normalise_regions(hypothesis, duration=durations, by=by, label=label, item=item)
    hyp["hypothesis_label"] = hyp[label]
    has_item = item in ref.columns
    ref_groups = dict(tuple(ref.groupby(item, sort=False))) if has_item else {None: ref}
    hyp_groups = dict(tuple(hyp.groupby(item, sort=False))) if has_item else {None: hyp}
    parts = []
    for key in sorted(set(ref_groups) | set(hyp_groups), key=str):
        r = ref_groups.get(key, ref.iloc[:0])
        h = hyp_groups.get(key, hyp.iloc[:0]).copy()
        if mapping == "optimal" and len(r) and len(h):
            h[label] = _optimal_labels(r, h, label)
        rs, re_ = r["start"].to_numpy(np.float64), r["end"].to_numpy(np.float64)
        hs, he = h["start"].to_numpy(np.float64), h["end"].to_numpy(np.float64)
        any_hyp = _union_of(h).covered(rs, re_)
        correct = np.zeros(len(r))
        for name, block in h.groupby(label, sort=False):
            same = (r[label] == name).to_numpy()
            if same.any():
                correct[same] = _union_of(block).covered(rs[same], re_[same])
        duration = re_ - rs
        ref_rows = r.assign(
            side="reference",
            duration=duration,
            correct=correct,
            missed=duration - any_hyp,
            confusion=any_hyp - correct,
            false_alarm=0.0,
        )
        h_duration = he - hs
        hyp_rows = h.assign(
            side="hypothesis",
            duration=h_duration,
            correct=0.0,
            missed=0.0,
            confusion=0.0,
            false_alarm=h_duration - _union_of(r).covered(hs, he),
        )
        parts += [ref_rows, hyp_rows]
    out = pd.concat(parts, ignore_index=True) if parts else ref.assign(**{c: [] for c in ERROR_COLUMNS})
    # Rounding leaves -1e-17 where a region is wholly covered.
    for col in ("missed", "confusion", "false_alarm"):
        out[col] = out[col].clip(lower=0.0)
    out["error"] = out["missed"] + out["confusion"] + out["false_alarm"]
    return out


def regions_from_posteriors(
    posteriors: npt.ArrayLike,
    *,
    labels: Sequence[str],
    step: float = FRAME_STEP,
    onset: float = 0.5,
    offset: float | None = None,
    min_duration: float = 0.0,
    min_gap: float = 0.0,
) -> pd.DataFrame:
    """Regions from frame posteriors ``(n_frames, n_labels)``, one class at a time, with hysteresis.

    A class starts where its posterior reaches ``onset`` and lasts while it stays at or above
    ``offset`` (default: ``onset``); see :func:`analysis.regions.activity_regions` for the rules on
    short gaps and regions. Classes may overlap.

    Returns
    -------
    pandas.DataFrame
        Columns ``start``, ``end``, ``label``, sorted by start.
    """
    scores = np.asarray(posteriors, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise RegionError(f"posteriors must have shape (frames, {len(labels)}), got {scores.shape}")
    parts = [
        activity_regions(
            scores[:, k],
            high=onset,
            low=offset,
            step=step,
            min_duration=min_duration,
            min_gap=min_gap,
            label=name,
        )
        for k, name in enumerate(labels)
    ]
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(["start", "label"], kind="stable")
        .reset_index(drop=True)
    )


def _slice_rows(
    names: list[str],
    masks: list[np.ndarray],
    errors: pd.DataFrame,
    hlp: pd.Series | Mapping[str, float] | None,
) -> pd.DataFrame:
    is_ref = (errors["side"] == "reference").to_numpy()
    duration = np.where(is_ref, errors["duration"].to_numpy(np.float64), 0.0)
    error = errors["error"].to_numpy(np.float64)
    total_duration = float(duration.sum())
    total_error = float(error.sum())
    n = np.array([np.count_nonzero(m & is_ref) for m in masks], dtype=np.int64)
    dur = np.array([duration[m].sum() for m in masks], dtype=np.float64)
    err = np.array([error[m].sum() for m in masks], dtype=np.float64)
    human = hlp_by_name(hlp, names)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(dur > 0, err / dur, np.nan)
        share = dur / total_duration if total_duration > 0 else np.full(len(names), np.nan)
        error_share = err / total_error if total_error > 0 else np.zeros(len(names))
    # Positive gap = room to improve: the model's error rate above the annotators' own.
    gap = rate - human
    table = pd.DataFrame(
        {
            "tag": names,
            "n": n,
            "duration": dur,
            "share": share,
            "error_rate": rate,
            "error_share": error_share,
            "hlp": human,
            "gap": gap,
            "priority": gap * share,
        }
    )
    return table.sort_values(
        ["priority", "error_share"], ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def region_slice_table(
    errors: pd.DataFrame,
    *,
    tag_cols: Sequence[str],
    hlp: pd.Series | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per tag: how much reference time it holds, the model's error rate there, and its priority.

    Parameters
    ----------
    errors
        :func:`region_errors` output with the 0/1 tag columns ``tag_cols`` (a region's own tags, or
        its recording's merged onto both sides). A hypothesis row counts in a slice when it carries
        the tag; without the column's value (NaN) it counts in none.
    hlp
        Human error rate per tag (e.g. one annotator's DER against the final regions); tags without
        one get NaN gap and priority.

    Returns
    -------
    pandas.DataFrame
        Columns ``tag, n`` (reference regions), ``duration`` (their seconds), ``share`` (of all
        reference seconds), ``error_rate`` (error seconds / reference seconds), ``error_share`` (of all
        error seconds), ``hlp``, ``gap`` (error rate − HLP) and ``priority`` (gap × share: the error
        rate the whole data set would lose if the slice reached HLP). Sorted by priority, then error
        share, descending, as :func:`analysis.slices.slice_table`.
    """
    _require(errors, ["side", "duration", "error", *tag_cols])
    masks = [tag_mask(errors[c], error=RegionError, categorical="region_metadata_slices") for c in tag_cols]
    return _slice_rows([str(c) for c in tag_cols], masks, errors, hlp)


def region_metadata_slices(
    errors: pd.DataFrame,
    *,
    cols: Sequence[str],
    hlp: pd.Series | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """:func:`region_slice_table` over the values of categorical columns, one slice ``"col=value"`` each."""
    _require(errors, ["side", "duration", "error", *cols])
    names: list[str] = []
    masks: list[np.ndarray] = []
    for col in cols:
        codes, uniques = pd.factorize(errors[col], sort=True)
        for k, value in enumerate(uniques):
            names.append(f"{col}={value}")
            masks.append(codes == k)
    return _slice_rows(names, masks, errors, hlp)


def per_class_region_table(errors: pd.DataFrame, *, label: str = "label") -> pd.DataFrame:
    """Per class: reference regions and seconds, and the correct, missed, confused and false-alarm seconds.

    False alarms count under the class the hypothesis gave (after mapping); the rest under the
    reference class. ``error_rate`` is their sum over the class's reference seconds.

    Returns
    -------
    pandas.DataFrame
        Indexed by class; columns ``n``, ``duration``, ``correct``, ``missed``, ``confusion``,
        ``false_alarm``, ``error_rate``.
    """
    _require(errors, ["side", "duration", label, "correct", "missed", "confusion", "false_alarm"])
    ref = errors[errors["side"] == "reference"]
    hyp = errors[errors["side"] == "hypothesis"]
    table = ref.groupby(label).agg(
        n=("duration", "size"),
        duration=("duration", "sum"),
        correct=("correct", "sum"),
        missed=("missed", "sum"),
        confusion=("confusion", "sum"),
    )
    false_alarm = hyp.groupby(label)["false_alarm"].sum()
    table = table.reindex(table.index.union(false_alarm.index), fill_value=0)
    table["false_alarm"] = false_alarm.reindex(table.index, fill_value=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (table["missed"] + table["confusion"] + table["false_alarm"]) / table["duration"]
    table["error_rate"] = rate.where(table["duration"] > 0)
    table["n"] = table["n"].astype(np.int64)
    return table


def region_transcript_pairs(
    reference: pd.DataFrame,
    hypothesis: pd.DataFrame,
    *,
    text: str = "text",
    label: str = "label",
    item: str = "recording_id",
) -> pd.DataFrame:
    """The transcript of each reference region beside what the hypothesis says over the same time.

    Each hypothesis region with a transcript goes to the reference region (of the same recording)
    it overlaps most, the earlier one on a tie; a reference region's hypothesis text is the texts it
    received, in time order, joined by a space (empty when it received none: every word deleted). A
    hypothesis transcript that overlaps no reference region is a row of its own with an empty
    reference text (every word inserted), so summing word errors over the rows gives the WER of the
    whole set.

    Parameters
    ----------
    reference, hypothesis
        Long regions (``start``, ``end``, ``label``, ``text``; ``item`` for several recordings). Rows
        of the reference without text are left out, as are hypothesis rows without text.

    Returns
    -------
    pandas.DataFrame
        ``item`` (when given), ``start``, ``end``, ``label`` (of the reference region; None for an
        unmatched hypothesis row), ``reference_text``, ``hypothesis_text``; sorted by item and start.
    """
    _require(reference, ["start", "end"])
    _require(hypothesis, ["start", "end"])
    if (item in reference.columns) != (item in hypothesis.columns):
        raise RegionError(f"both or neither of reference and hypothesis must have the column {item!r}")
    has_item = item in reference.columns

    def with_text(frame: pd.DataFrame) -> pd.DataFrame:
        if text not in frame.columns:
            return frame.iloc[:0]
        keep = frame[text].map(lambda v: isinstance(v, str) and v.strip() != "")
        return frame[keep.to_numpy(dtype=bool)]

    ref, hyp = with_text(reference), with_text(hypothesis)
    keys = sorted(set(ref[item].unique()) | set(hyp[item].unique()) if has_item else {None}, key=str)
    rows: list[dict[str, Any]] = []
    for key in keys:
        r = ref[ref[item] == key] if has_item else ref
        h = hyp[hyp[item] == key] if has_item else hyp
        r = r.sort_values(["start", "end"], kind="stable")
        h = h.sort_values(["start", "end"], kind="stable")
        rs, re_ = r["start"].to_numpy(np.float64), r["end"].to_numpy(np.float64)
        got: list[list[str]] = [[] for _ in range(len(r))]
        for hs, he, words in zip(h["start"], h["end"], h[text], strict=True):
            overlap = np.minimum(re_, he) - np.maximum(rs, hs)
            best = int(np.argmax(overlap)) if len(overlap) else -1
            if best >= 0 and overlap[best] > 0:
                got[best].append(str(words).strip())
            else:
                rows.append(
                    {
                        item: key,
                        "start": float(hs),
                        "end": float(he),
                        label: None,
                        "reference_text": "",
                        "hypothesis_text": str(words).strip(),
                    }
                )
        labels = r[label] if label in r.columns else pd.Series([None] * len(r))
        for k, (start, end, name, words) in enumerate(zip(rs, re_, labels, r[text], strict=True)):
            rows.append(
                {
                    item: key,
                    "start": float(start),
                    "end": float(end),
                    label: name,
                    "reference_text": str(words).strip(),
                    "hypothesis_text": " ".join(got[k]),
                }
            )
    out = pd.DataFrame(rows, columns=[item, "start", "end", label, "reference_text", "hypothesis_text"])
    order = [item, "start", "end"] if has_item else ["start", "end"]
    out = out.sort_values(order, kind="stable").reset_index(drop=True)
    return out if has_item else out.drop(columns=[item])


ERROR_KINDS = ("missed", "false alarm", "confusion")
SPAN_COLUMNS = ["row", "kind", "start", "end", "duration", "reference", "hypothesis"]


def error_spans(errors: pd.DataFrame, *, label: str = "label", item: str = "recording_id") -> pd.DataFrame:
    """Where in time each error of :func:`region_errors` lies: one row per stretch of one kind.

    Parameters
    ----------
    errors
        :func:`region_errors`' frame (``side``, ``start``, ``end``, ``label`` — the hypothesis' mapped
        label — and ``item`` when there are several recordings), indexed as it was returned or
        filtered; other columns are ignored.

    Returns
    -------
    pandas.DataFrame
        ``item`` (when present), ``row`` (the index of the region the error is charged to: the reference
        region for ``missed`` and ``confusion``, the hypothesis region for ``false alarm``), ``kind``,
        ``start``, ``end``, ``duration``, and the classes heard there: ``reference`` and ``hypothesis``
        (``+``-joined, empty when none). Per region and kind the durations add up to its ``missed``,
        ``confusion`` or ``false_alarm`` seconds. Sorted by ``item``, ``start``.
    """
    _require(errors, ["side", "start", "end", label])
    has_item = item in errors.columns
    columns = ([item] if has_item else []) + SPAN_COLUMNS
    groups = errors.groupby(item, sort=True) if has_item else [(None, errors)]
    out: list[dict[str, Any]] = []
    for key, rows in groups:
        is_ref = (rows["side"] == "reference").to_numpy()
        starts = rows["start"].to_numpy(np.float64)
        ends = rows["end"].to_numpy(np.float64)
        labels = rows[label].astype(str).to_numpy()
        cuts = np.unique(np.r_[starts, ends])
        if len(cuts) < 2:
            continue
        a, b = cuts[:-1], cuts[1:]
        mid = (a + b) / 2
        covers = (starts[None, :] <= mid[:, None]) & (mid[:, None] < ends[None, :])  # piece × region
        ref_cover, hyp_cover = covers & is_ref, covers & ~is_ref
        open_: dict[tuple[int, str], dict[str, Any]] = {}
        for i in range(len(mid)):
            heard_ref = sorted({labels[j] for j in np.flatnonzero(ref_cover[i])})
            heard_hyp = sorted({labels[j] for j in np.flatnonzero(hyp_cover[i])})
            charged: list[tuple[int, str]] = []
            if heard_ref and not heard_hyp:
                charged = [(int(j), "missed") for j in np.flatnonzero(ref_cover[i])]
            elif heard_hyp and not heard_ref:
                charged = [(int(j), "false alarm") for j in np.flatnonzero(hyp_cover[i])]
            elif heard_ref:
                charged = [
                    (int(j), "confusion") for j in np.flatnonzero(ref_cover[i]) if labels[j] not in heard_hyp
                ]
            now = set()
            for j, kind in charged:
                now.add((j, kind))
                span = open_.get((j, kind))
                if span is not None and span["end"] == a[i]:
                    span["end"] = float(b[i])
                    continue
                if span is not None:
                    out.append(span)
                open_[(j, kind)] = {
                    **({item: key} if has_item else {}),
                    "row": rows.index[j],
                    "kind": kind,
                    "start": float(a[i]),
                    "end": float(b[i]),
                    "reference": "+".join(heard_ref),
                    "hypothesis": "+".join(heard_hyp),
                }
            for done in [k for k in open_ if k not in now]:
                out.append(open_.pop(done))
        out += open_.values()
    table = pd.DataFrame(out, columns=[c for c in columns if c != "duration"])
    table.insert(table.columns.get_loc("end") + 1, "duration", table["end"] - table["start"])
    sort = ([item] if has_item else []) + ["start", "kind"]
    return table.sort_values(sort, kind="stable").reset_index(drop=True)
