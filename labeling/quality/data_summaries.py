"""What the Overview and Clips pages show about the whole project, stored per data change.

Counting a project's clips, binning their durations and loudness, and listing the splits, labels,
tags and value ranges the Clips filters offer each read every clip: at a million clips that is
seconds of work. Like the agreement report (:mod:`labeling.quality.report_store`), both summaries are
computed once per change of the data by the ``data_summaries`` job, queued after each change, and
read by every page view as one stored row; a page shows the previous one, with its age, while the
worker computes the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from labeling.data.clip_query import FilterOptions, clip_filter_options
from labeling.data.overview import Histogram, Overview, project_overview
from labeling.quality.report_store import stored_or_computed

if TYPE_CHECKING:
    from db.engine import Database

CLIP_FACETS = "clip_facets"
OVERVIEW = "overview"
PARAMS: dict[str, int] = {}
#: The job that keeps both summaries current (:mod:`labeling.job_kinds`).
JOB_KIND = "data_summaries"


@dataclass(frozen=True)
class Summary:
    """A stored summary: ``fresh`` False when the data changed after it was computed."""

    value: Any
    fresh: bool
    computed_at: datetime
    seconds: float


def _facets_value(options: FilterOptions) -> dict[str, Any]:
    return {
        "n_clips": options.n_clips,
        "splits": list(options.splits),
        "labels": list(options.labels),
        "tags": list(options.tags),
        "metadata_keys": list(options.metadata_keys),
        "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in options.ranges.items()},
    }


def _facets(value: dict[str, Any]) -> FilterOptions:
    return FilterOptions(
        n_clips=int(value["n_clips"]),
        splits=list(value["splits"]),
        labels=list(value["labels"]),
        tags=list(value["tags"]),
        metadata_keys=list(value["metadata_keys"]),
        ranges={k: (float(lo), float(hi)) for k, (lo, hi) in value["ranges"].items()},
    )


def clip_facets(
    db: Database, project_id: int, *, allow_stale: bool = False, recompute: bool = False
) -> Summary:
    """The Clips page's filter options and clip count (:func:`clip_filter_options`), stored;
    ``allow_stale`` and ``recompute`` as in :func:`~labeling.quality.report_store.stored_or_computed`."""
    r = stored_or_computed(
        db,
        project_id,
        CLIP_FACETS,
        PARAMS,
        lambda s: _facets_value(clip_filter_options(s, project_id)),
        allow_stale=allow_stale,
        recompute=recompute,
    )
    return Summary(_facets(r.value), r.fresh, r.computed_at, r.seconds)


def _histogram_value(h: Histogram) -> dict[str, list[float]]:
    return {"edges": [float(x) for x in h.edges], "counts": [int(x) for x in h.counts]}


def _histogram(value: dict[str, list[float]]) -> Histogram:
    return Histogram(np.asarray(value["edges"], dtype=float), np.asarray(value["counts"], dtype=np.int64))


def _overview_value(view: Overview) -> dict[str, Any]:
    return {
        "summary": view.summary,
        "labels": view.labels,
        "splits": view.splits,
        "duration": _histogram_value(view.duration),
        "loudness": _histogram_value(view.loudness),
        "tags": view.tags,
        "metadata_keys": list(view.metadata_keys),
        "batches": view.batches,
        "metadata": dict(view.metadata),
    }


def _series(value: pd.Series) -> pd.Series:
    return value.astype("int64").rename(None)


def _overview(value: dict[str, Any]) -> Overview:
    return Overview(
        summary=dict(value["summary"]),
        labels=_series(value["labels"]),
        splits=_series(value["splits"]),
        duration=_histogram(value["duration"]),
        loudness=_histogram(value["loudness"]),
        tags=_series(value["tags"]),
        metadata_keys=list(value["metadata_keys"]),
        batches=value["batches"],
        metadata={str(k): _series(v) for k, v in value["metadata"].items()},
    )


def overview_summary(
    db: Database, project_id: int, *, allow_stale: bool = False, recompute: bool = False
) -> Summary:
    """What the Overview page shows (:func:`project_overview`), stored; options as in :func:`clip_facets`."""

    def compute(s: Session) -> dict[str, Any]:
        return _overview_value(project_overview(s, project_id))

    r = stored_or_computed(
        db, project_id, OVERVIEW, PARAMS, compute, allow_stale=allow_stale, recompute=recompute
    )
    return Summary(_overview(r.value), r.fresh, r.computed_at, r.seconds)
