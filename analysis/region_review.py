"""Adjudicating annotators' regions of one recording: :func:`disagreement_spans`, :func:`compose_final`,
:func:`region_changes`.

A reviewer settles a recording span by span. :func:`disagreement_spans` cuts the recording into
stretches where someone drew something (every group of regions that overlap, whoever drew them) and
says for each whether the annotators agree on it (the same number of regions, the same classes and
transcripts, every boundary within a tolerance). :func:`compose_final` builds a final set from a
choice per span of whose regions to keep; :func:`region_changes` says what a new set changes
against the one it replaces.

Regions are long, as :mod:`analysis.regions` takes them: ``annotator, start, end, label`` and
optionally ``text``. All functions are pure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The columns of :func:`disagreement_spans`.
SPAN_COLUMNS = ["span", "start", "end", "agreed", "annotators"]
_EPS = 1e-9


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def assign_spans(regions: pd.DataFrame) -> pd.Series:
    """The span number of each region (index aligned): regions that overlap, directly or through a
    chain of others, share a span; spans are numbered from the start of the recording."""
    if regions.empty:
        return pd.Series([], index=regions.index, dtype=np.int64)
    order = regions.sort_values(["start", "end"], kind="stable")
    starts, ends = order["start"].to_numpy(float), order["end"].to_numpy(float)
    run_end = np.maximum.accumulate(ends)
    new = np.ones(len(order), dtype=bool)
    new[1:] = starts[1:] >= run_end[:-1]
    return pd.Series(np.cumsum(new) - 1, index=order.index, dtype=np.int64).reindex(regions.index)


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
    regions: pd.DataFrame, *, annotators: list[str] | None = None, tolerance: float = 0.2
) -> pd.DataFrame:
    """The spans of a recording where annotators drew regions, and whether they agree on each.

    Parameters
    ----------
    regions
        One recording's regions, long: ``annotator``, ``start``, ``end``, ``label`` (``text`` optional).
    annotators
        Everyone whose set counts (an annotator with no region in a span disagrees with one who has);
        default: those in ``regions``.
    tolerance
        Seconds two boundaries may differ and still agree.

    Returns
    -------
    pandas.DataFrame
        :data:`SPAN_COLUMNS`: ``span`` number, its ``start`` and ``end`` (seconds), ``agreed`` and
        ``annotators``, a dict of annotator to a short description of what they drew there.
    """
    names = sorted(set(regions["annotator"])) if annotators is None else list(annotators)
    span = assign_spans(regions)
    rows = []
    for k, part in regions.assign(span=span).groupby("span", sort=True):
        sets = {a: part[part["annotator"] == a] for a in names}
        first = sets[names[0]] if names else part.iloc[:0]
        agreed = all(_same(first, other, tolerance) for other in sets.values())
        said = {
            a: ", ".join(f"{r.label} {r.start:.2f}–{r.end:.2f}" for r in s.sort_values("start").itertuples())
            or "—"
            for a, s in sets.items()
        }
        rows.append((int(k), float(part["start"].min()), float(part["end"].max()), agreed, said))
    return pd.DataFrame(rows, columns=SPAN_COLUMNS)


def compose_final(
    regions: pd.DataFrame, choices: Mapping[int, str | None], *, default: str | None = None
) -> pd.DataFrame:
    """A final set: in each span (:func:`assign_spans`) the regions of the annotator chosen for it.

    ``choices`` maps a span number to an annotator, or to None to keep nothing there; a span not in
    ``choices`` takes ``default`` (None: nothing). Returns ``start, end, label, text`` rows in order.
    """
    span = assign_spans(regions)
    keep = [choices.get(k, default) == who for k, who in zip(span, regions["annotator"], strict=True)]
    columns = [c for c in ("start", "end", "label", "text") if c in regions.columns]
    out = regions.loc[keep, columns].sort_values(["start", "end"], kind="stable").reset_index(drop=True)
    if "text" not in out.columns:
        out["text"] = None
    return out


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
