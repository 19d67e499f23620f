"""Filtering a clip frame (see ``labeling.data.clips.clip_frame``): call :func:`filter_clips`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def filter_clips(
    frame: pd.DataFrame,
    *,
    splits: Sequence[str] = (),
    labels: Sequence[str] = (),
    tags_all: Sequence[str] = (),
    metadata: Mapping[str, Sequence[str]] | None = None,
    name_contains: str = "",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    unlabelled_only: bool = False,
) -> pd.DataFrame:
    """Rows of ``frame`` matching every given condition (empty conditions match everything).

    Parameters
    ----------
    frame : DataFrame
        Needs ``split``, ``label``, ``tags`` (lists) and ``original_name``, plus any metadata or
        numeric columns named in ``metadata`` and ``ranges``.
    tags_all : tags a clip must all carry.
    metadata : column -> accepted values.
    ranges : numeric column -> inclusive (low, high); missing values never match a range.
    """
    keep = np.ones(len(frame), dtype=bool)
    if splits:
        keep &= frame["split"].isin(list(splits)).to_numpy()
    if labels:
        keep &= frame["label"].isin(list(labels)).to_numpy()
    if unlabelled_only:
        keep &= frame["label"].isna().to_numpy() & frame["transcript"].isna().to_numpy()
    if tags_all:
        wanted = set(tags_all)
        keep &= np.fromiter((wanted.issubset(t) for t in frame["tags"]), dtype=bool, count=len(frame))
    for column, values in (metadata or {}).items():
        if values:
            keep &= frame[column].astype("string").isin([str(v) for v in values]).fillna(False).to_numpy()
    if name_contains:
        keep &= frame["original_name"].str.contains(name_contains, case=False, regex=False).to_numpy()
    for column, (low, high) in (ranges or {}).items():
        values = pd.to_numeric(frame[column], errors="coerce")
        keep &= values.between(low, high).fillna(False).to_numpy()
    return frame[keep]
