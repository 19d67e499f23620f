"""Adjudicating annotators' regions of one recording: :func:`disagreement_spans`, :func:`compose_final`,
:func:`region_changes`.

A reviewer settles a recording span by span. :func:`review_spans` cuts the recording into stretches
where someone drew something (every group of regions that overlap, whoever drew them), and cuts such a
group again inside each stretch of at least ``min_agreed`` seconds where every annotator marks the same
classes, so that on a dense recording each span holds one place the annotators part ways rather than
most of the recording. :func:`disagreement_spans` says for each span whether the annotators agree on it
(the same number of regions, the same classes and transcripts, every boundary within a tolerance), each
annotator's regions cut to the span. :func:`compose_final` builds a final set from a choice per span of
whose regions to keep, joining the pieces of a region cut where everyone agreed; :func:`region_changes`
says what a new set changes against the one it replaces.

Regions are long, as :mod:`analysis.regions` takes them: ``annotator, start, end, label`` and
optionally ``text``. All functions are pure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The columns of :func:`disagreement_spans`.
SPAN_COLUMNS = ["span", "start", "end", "agreed", "annotators"]
#: Seconds every annotator must mark alike before a group of overlapping regions is cut there.
MIN_AGREED_S = 0.5
_EPS = 1e-9


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def review_spans(
    regions: pd.DataFrame, *, annotators: list[str] | None = None, min_agreed: float = MIN_AGREED_S
) -> pd.DataFrame:
    """The spans a reviewer settles one by one: ``span``, ``start``, ``end`` (seconds), in time order.

    Regions that overlap, directly or through a chain of others, make a group. A group is cut again
    in the middle of every stretch of at least ``min_agreed`` seconds inside it where every annotator
    marks the same classes (so the regions there would be kept whoever is chosen), unless the stretch
    starts the group or ends it (a cut there would only split off a piece nobody disputes), or a
    region with a transcript covers it (a transcript is adjudicated whole). Each span then holds one
    place where the annotators part ways.
    """
    if regions.empty:
        return pd.DataFrame({"span": [], "start": [], "end": []}).astype(
            {"span": np.int64, "start": "float64", "end": "float64"}
        )
    names = sorted(set(regions["annotator"])) if annotators is None else list(annotators)
    starts, ends = regions["start"].to_numpy(float), regions["end"].to_numpy(float)
    order = np.lexsort((ends, starts))
    s_sorted, run_end = starts[order], np.maximum.accumulate(ends[order])
    new = np.r_[True, s_sorted[1:] >= run_end[:-1]]
    chain_start = s_sorted[new]
    chain_end = np.maximum.reduceat(ends[order], np.flatnonzero(new))
    # Elementary stretches between consecutive boundaries; per stretch, who marks which class.
    bounds = np.unique(np.r_[starts, ends])
    first, stop = np.searchsorted(bounds, starts), np.searchsorted(bounds, ends)
    who = pd.Index(names).get_indexer(regions["annotator"])
    label_codes, label_names = pd.factorize(regions["label"].astype(str))
    n_labels = max(len(label_names), 1)
    column = np.where(who >= 0, who * n_labels + label_codes, len(names) * n_labels)
    delta = np.zeros((len(bounds), len(names) * n_labels + 1), dtype=np.int64)
    np.add.at(delta, (first, column), 1)
    np.add.at(delta, (stop, column), -1)
    active = (np.cumsum(delta, axis=0)[:-1, :-1] > 0).reshape(len(bounds) - 1, len(names), n_labels)
    texted = np.array([bool(_text(t)) for t in regions.get("text", [None] * len(regions))], dtype=bool)
    covered = np.zeros(len(bounds), dtype=np.int64)
    np.add.at(covered, first[texted], 1)
    np.add.at(covered, stop[texted], -1)
    agreed = (
        (active == active[:, :1, :]).all(axis=(1, 2))
        & active.any(axis=(1, 2))
        & (np.cumsum(covered)[:-1] == 0)
    )
    edges = np.flatnonzero(np.diff(np.r_[0, agreed.astype(np.int8), 0]))
    run_start, run_stop = bounds[edges[0::2]], bounds[edges[1::2]]
    chain = np.searchsorted(chain_start, run_start, side="right") - 1
    inner = (
        (run_stop - run_start >= min_agreed - _EPS)
        & (run_start > chain_start[chain])
        & (run_stop < chain_end[chain])
    )
    cuts = np.clip(np.round((run_start + run_stop) / 2, 3), run_start, run_stop)[inner]
    span_start = np.sort(np.r_[chain_start, cuts])
    span_end = np.sort(np.r_[chain_end, cuts])
    return pd.DataFrame(
        {"span": np.arange(len(span_start), dtype=np.int64), "start": span_start, "end": span_end}
    )


def span_pieces(regions: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """``regions`` cut at the span edges: one row per region and span it reaches, with ``span``,
    ``start`` and ``end`` within the span, ``region`` (the index label of the region it comes from)
    and ``cut_start`` / ``cut_end`` (whether that end is a cut rather than the region's own)."""
    starts, ends = regions["start"].to_numpy(float), regions["end"].to_numpy(float)
    span_start, span_end = spans["start"].to_numpy(float), spans["end"].to_numpy(float)
    first = np.searchsorted(span_start, starts, side="right") - 1
    last = np.searchsorted(span_start, ends, side="left") - 1
    count = np.maximum(last - first + 1, 0)
    rows = np.repeat(np.arange(len(regions)), count)
    span = first[rows] + (np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count))
    piece_start = np.maximum(starts[rows], span_start[span])
    piece_end = np.minimum(ends[rows], span_end[span])
    return (
        regions.iloc[rows]
        .assign(
            span=spans["span"].to_numpy()[span],
            start=piece_start,
            end=piece_end,
            region=regions.index[rows],
            cut_start=piece_start > starts[rows],
            cut_end=piece_end < ends[rows],
        )
        .reset_index(drop=True)
    )


def assign_spans(regions: pd.DataFrame, *, min_agreed: float = MIN_AGREED_S) -> pd.Series:
    """The span (:func:`review_spans`) each region starts in, index aligned; spans are numbered
    from the start of the recording. A region cut where everyone agreed reaches into the next spans."""
    if regions.empty:
        return pd.Series([], index=regions.index, dtype=np.int64)
    spans = review_spans(regions, min_agreed=min_agreed)
    where = (
        np.searchsorted(spans["start"].to_numpy(float), regions["start"].to_numpy(float), side="right") - 1
    )
    return pd.Series(spans["span"].to_numpy()[where], index=regions.index, dtype=np.int64)


def _same(a: pd.DataFrame, b: pd.DataFrame, tolerance: float) -> bool:
    if len(a) != len(b):
        return False
    a, b = a.sort_values(["start", "end"]), b.sort_values(["start", "end"])
    close = np.abs(a[["start", "end"]].to_numpy(float) - b[["start", "end"]].to_numpy(float))
    labels = (a["label"].astype(str).to_numpy() == b["label"].astype(str).to_numpy()).all()
    texts = [_text(t) for t in a.get("text", [None] * len(a))] == [
        _text(t) for t in b.get("text", [None] * len(b))
    ]
    return bool(labels and texts and (close <= tolerance + _EPS).all())


def disagreement_spans(
    regions: pd.DataFrame,
    *,
    annotators: list[str] | None = None,
    tolerance: float = 0.2,
    min_agreed: float = MIN_AGREED_S,
) -> pd.DataFrame:
    """The spans of a recording where annotators drew regions (:func:`review_spans`), and whether
    they agree on each.

    Parameters
    ----------
    regions
        One recording's regions, long: ``annotator``, ``start``, ``end``, ``label`` (``text`` optional).
    annotators
        Everyone whose set counts (an annotator with no region in a span disagrees with one who has);
        default: those in ``regions``.
    tolerance
        Seconds two boundaries may differ and still agree.
    min_agreed
        Seconds of agreement inside a group of overlapping regions where it is cut (see :func:`review_spans`).

    Returns
    -------
    pandas.DataFrame
        :data:`SPAN_COLUMNS`: ``span`` number, its ``start`` and ``end`` (seconds), ``agreed`` and
        ``annotators``, a dict of annotator to a short description of what they drew there (their
        regions cut to the span).
    """
    names = sorted(set(regions["annotator"])) if annotators is None else list(annotators)
    spans = review_spans(regions, annotators=names, min_agreed=min_agreed)
    pieces = span_pieces(regions, spans)
    rows = []
    for k, part in pieces.groupby("span", sort=True):
        sets = {a: part[part["annotator"] == a] for a in names}
        first = sets[names[0]] if names else part.iloc[:0]
        agreed = all(_same(first, other, tolerance) for other in sets.values())
        said = {
            a: ", ".join(f"{r.label} {r.start:.2f}–{r.end:.2f}" for r in s.sort_values("start").itertuples())
            or "—"
            for a, s in sets.items()
        }
        span = spans.loc[spans["span"] == k].iloc[0]
        rows.append((int(k), float(span["start"]), float(span["end"]), agreed, said))
    return pd.DataFrame(rows, columns=SPAN_COLUMNS)


def compose_final(
    regions: pd.DataFrame,
    choices: Mapping[int, str | None],
    *,
    default: str | None = None,
    min_agreed: float = MIN_AGREED_S,
) -> pd.DataFrame:
    """A final set: in each span (:func:`review_spans`) the regions of the annotator chosen for it.

    ``choices`` maps a span number to an annotator, or to None to keep nothing there; a span not in
    ``choices`` takes ``default`` (None: nothing). A region cut at a span edge keeps its piece in each
    span that chose its annotator; pieces of one class that meet at a cut (everyone marked that class
    there) are joined again, so choosing one annotator everywhere gives back their regions. Returns
    ``start, end, label, text`` rows in order.
    """
    columns = [c for c in ("start", "end", "label", "text") if c in regions.columns]
    if regions.empty:
        out = regions[columns].reset_index(drop=True)
    else:
        pieces = span_pieces(regions, review_spans(regions, min_agreed=min_agreed))
        keep = [
            choices.get(int(k), default) == who
            for k, who in zip(pieces["span"], pieces["annotator"], strict=True)
        ]
        kept = pieces[keep].sort_values(["start", "end"], kind="stable").reset_index(drop=True)
        out = _join_at_cuts(kept)[columns]
    out = out.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
    if "text" not in out.columns:
        out["text"] = None
    return out


def _join_at_cuts(pieces: pd.DataFrame) -> pd.DataFrame:
    """Pieces whose end is a cut joined to a piece of the same class that starts at that cut (the
    piece of the same region first)."""
    open_at: dict[tuple[float, str], list[int]] = {}
    ends = pieces["end"].to_numpy(float).copy()
    alive = np.ones(len(pieces), dtype=bool)
    owner = np.arange(len(pieces))
    region = pieces["region"].to_numpy()
    for i, piece in enumerate(pieces.itertuples(index=False)):
        key = (float(piece.start), str(piece.label))
        waiting = open_at.get(key, []) if piece.cut_start else []
        if waiting:
            same = [j for j in waiting if region[j] == region[i]]
            j = (same or waiting)[0]
            waiting.remove(j)
            alive[i] = False
            owner[i] = owner[j]
            ends[owner[j]] = float(piece.end)
        if piece.cut_end:
            open_at.setdefault((float(piece.end), str(piece.label)), []).append(i)
    return pieces.assign(end=ends)[alive]


def region_changes(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """What replacing the set ``old`` with ``new`` changes: every region of either, with ``change``
    ``kept``, ``added`` or ``removed`` (``start``, ``end``, ``label``, ``text``), in time order."""

    def keys(frame: pd.DataFrame) -> list[tuple[float, float, str, str]]:
        texts = frame["text"] if "text" in frame.columns else [None] * len(frame)
        return [
            (round(float(a), 6), round(float(b), 6), str(c), _text(t))
            for a, b, c, t in zip(frame["start"], frame["end"], frame["label"], texts, strict=True)
        ]

    before, after = keys(old), keys(new)
    rows = [(*k, "kept" if k in after else "removed") for k in before]
    rows += [(*k, "added") for k in after if k not in before]
    out = pd.DataFrame(rows, columns=["start", "end", "label", "text", "change"])
    return out.sort_values(["start", "end", "change"], kind="stable").reset_index(drop=True)
