"""What the Overview and Clips pages show about the whole project, stored per data change.

Counting a project's clips, binning their durations and loudness, and listing the splits, labels,
tags and value ranges the Clips filters offer each read every clip: at a million clips that is
seconds of work. Like the agreement report (:mod:`labeling.quality.report_store`), both summaries are
computed once per change of the data by the ``data_summaries`` job, queued after each change, and
read by every page view as one stored row; a page shows the previous one, with its age, while the
worker computes the next.

Most changes are labels, and most labels change no clip count: the worker's
:func:`refresh_data_summaries` moves the clips whose final label changed since the stored summaries'
watermark (the audit log's events, which record old and new label) between the label counts, and
counts everything afresh only when clips were imported, retired or tagged, or when the watermark
cannot be trusted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import AuditEvent, Clip, ClipTag, ImportBatch, Resolution
from labeling.data.clip_query import FilterOptions, clip_filter_options
from labeling.data.clips import data_fingerprint
from labeling.data.overview import NONE, Histogram, Overview, project_overview
from labeling.quality.report_store import read_report, save_report, stored_or_computed, token_digest

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


# --- keeping both current, by the changes since the last one ------------------------------------------

#: Bumped when the stored summaries' layout or meaning changes: an older one is then computed afresh.
FORMAT = 1
#: Audit events are numbered as they are written, not as their transactions commit: one written just
#: before the watermark may only become visible after it. Events this close below the watermark are
#: read again, and those already applied (kept by id) skipped.
MARGIN = 10_000
#: Audited changes that alter neither summary (the rest but final labels call for a full count).
UNCHANGING = (
    "annotation",
    "clip_flag",
    "convention",
    "gold_example",
    "dataset_version",
    "model_run",
    "drift_alarm",
    "slice_action",
    "user",
    "session",
    "sign_in_failure",
)


@contextmanager
def _snapshot(db: Database) -> Iterator[Session]:
    """A read transaction that sees one moment of the database throughout (SQLite's read transaction
    already does; PostgreSQL's default sees each statement's own moment)."""
    with db.read() as s:
        if not db.is_sqlite:
            s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield s


def _clip_mark(s: Session, project_id: int) -> list[str]:
    """What moves when clips, their tags or batches change (imports, fixes, retirements, tagging):
    each an index lookup, as in :func:`~labeling.data.clips.data_fingerprint`."""
    parts = [
        s.scalar(select(func.max(Clip.id)).where(Clip.project_id == project_id)),
        *s.execute(
            select(func.count(), func.max(Clip.deleted_at)).where(
                Clip.project_id == project_id, text("deleted_at IS NOT NULL")
            )
        ).one(),
        s.scalar(select(func.count()).select_from(ClipTag)),
        s.scalar(select(func.max(ClipTag.id))),
        s.scalar(select(func.count()).select_from(ImportBatch).where(ImportBatch.project_id == project_id)),
    ]
    return [str(p) for p in parts]


def _audit_top(s: Session, project_id: int) -> int:
    return int(s.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.project_id == project_id)) or 0)


def _res_top(s: Session, project_id: int) -> str | None:
    top = s.scalar(select(func.max(Resolution.updated_at)).where(Resolution.project_id == project_id))
    return None if top is None else str(top)


def _events_since(s: Session, project_id: int, low: int) -> list[Any]:
    return list(
        s.execute(
            select(AuditEvent.id, AuditEvent.entity, AuditEvent.entity_id, AuditEvent.action)
            .add_columns(AuditEvent.old, AuditEvent.new)
            .where(
                AuditEvent.project_id == project_id,
                AuditEvent.id > low,
                AuditEvent.entity.not_in(UNCHANGING),
            )
            .order_by(AuditEvent.id)
        ).all()
    )


def _watermark(s: Session, project_id: int) -> dict[str, Any]:
    top = _audit_top(s, project_id)
    return {
        "format": FORMAT,
        "clips": _clip_mark(s, project_id),
        "audit_id": top,
        "seen": [int(r.id) for r in _events_since(s, project_id, top - MARGIN)],
        "res_updated": _res_top(s, project_id),
    }


def _label_counts(labels: dict[str, int], n_clips: int) -> pd.Series:
    """As :func:`~labeling.data.overview.project_overview` lists them: most first, then ``(none)``."""
    kept = {k: int(v) for k, v in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0}
    series = pd.Series(kept, dtype="int64")
    unlabelled = n_clips - int(series.sum())
    if unlabelled and len(series):
        series = pd.concat([series, pd.Series({NONE: unlabelled})]).sort_values(
            ascending=False, kind="stable"
        )
    return series


def _live_count(s: Session, project_id: int, *, labelled: bool) -> int:
    gone = select(Clip.id).where(Clip.project_id == project_id, text("deleted_at IS NOT NULL"))
    q = (
        select(func.count())
        .select_from(Resolution)
        .where(Resolution.project_id == project_id, Resolution.clip_id.not_in(gone))
    )
    if labelled:
        q = q.where(Resolution.label.is_not(None))
    return int(s.scalar(q) or 0)


def _updated(s: Session, project_id: int, overview: Any, facets: Any) -> tuple[Any, Any] | None:
    """Both stored values brought up to date by the final labels changed since their watermark, or
    None when that cannot be trusted (other changes, another format, unaudited writes)."""
    mark = overview.get("watermark") if isinstance(overview, dict) else None
    if not mark or mark.get("format") != FORMAT or _clip_mark(s, project_id) != list(mark["clips"]):
        return None
    old_top = int(mark["audit_id"])
    seen = {int(i) for i in mark["seen"]}
    rows = _events_since(s, project_id, old_top - MARGIN)
    gone = {
        str(c)
        for c in s.scalars(
            select(Clip.id).where(Clip.project_id == project_id, text("deleted_at IS NOT NULL"))
        )
    }
    labels = {str(k): int(v) for k, v in overview["labels"].items() if k != NONE}
    n_resolved = int(overview["summary"]["n_resolved"])
    touched: set[str] = set()
    for r in rows:
        if r.id in seen:
            continue
        if r.entity != "resolution":
            return None  # a change to the clips themselves
        if r.action != "delete":
            touched.add(r.entity_id)
        if r.entity_id in gone:
            continue
        old, new = r.old or {}, r.new or {}
        if r.action == "update" and ("label" not in old or "label" not in new):
            return None
        n_resolved += {"create": 1, "delete": -1}.get(r.action, 0)
        if r.action != "create" and old.get("label") is not None:
            labels[str(old["label"])] = labels.get(str(old["label"]), 0) - 1
        if r.action != "delete" and new.get("label") is not None:
            labels[str(new["label"])] = labels.get(str(new["label"]), 0) + 1
    # Written without an audit event (a bulk load, a script): the counts would drift, so count afresh.
    if min(labels.values(), default=0) < 0 or n_resolved != _live_count(s, project_id, labelled=False):
        return None
    if sum(labels.values()) != _live_count(s, project_id, labelled=True):
        return None
    since = mark["res_updated"]
    if since is not None:
        moved = s.scalar(
            select(func.count())
            .select_from(Resolution)
            .where(
                Resolution.project_id == project_id,
                Resolution.updated_at > pd.Timestamp(since).to_pydatetime(),
            )
        )
        if int(moved or 0) > len(touched):
            return None
    n_clips = int(overview["summary"]["n_clips"])
    new_overview = {
        **overview,
        "summary": {**overview["summary"], "n_resolved": n_resolved},
        "labels": _label_counts(labels, n_clips),
        "watermark": _watermark(s, project_id),
    }
    new_facets = {**facets, "labels": sorted(k for k, v in labels.items() if v > 0)}
    return new_overview, new_facets


def refresh_data_summaries(db: Database, project_id: int) -> str:
    """Bring both stored summaries up to date; how: ``"current"`` (nothing to do), ``"incremental"``
    (only final labels changed since: the changed clips' labels moved between the counts) or
    ``"full"`` (everything counted again: clips imported, retired or tagged, an older format, or
    changes the audit log cannot vouch for)."""
    started = time.perf_counter()
    with _snapshot(db) as s:
        token = data_fingerprint(s, project_id)
        overview = read_report(s, project_id, OVERVIEW, PARAMS)
        facets = read_report(s, project_id, CLIP_FACETS, PARAMS)
        updated = None
        if overview is not None and facets is not None:
            if overview.token == facets.token == token_digest(token):
                return "current"
            updated = _updated(s, project_id, overview.value, facets.value)
        if updated is None:
            how = "full"
            mark = _watermark(s, project_id)
            new_overview = {**_overview_value(project_overview(s, project_id)), "watermark": mark}
            new_facets = _facets_value(clip_filter_options(s, project_id))
        else:
            how = "incremental"
            new_overview, new_facets = updated
    seconds = time.perf_counter() - started
    if updated is not None and overview is not None and facets is not None:
        # A report's seconds say what counting afresh costs (pages compute cheap ones themselves).
        seconds = max(overview.seconds, facets.seconds)
    with db.write() as s:
        save_report(s, project_id, OVERVIEW, PARAMS, token, new_overview, seconds=seconds)
        save_report(s, project_id, CLIP_FACETS, PARAMS, token, new_facets, seconds=seconds)
    return how
