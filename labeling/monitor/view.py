"""What the Monitoring page draws: :func:`monitoring_view`, :func:`measure_detail` and
:func:`tag_breakdown`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import (
    ClipTag,
    DriftCheck,
    LiveModel,
    MonitoringAction,
    ProductionClip,
)
from labeling.monitor.alarms import MonitorSummary, monitor_summary
from labeling.monitor.drift import latest_check, latest_checks
from labeling.monitor.live import LiveModelInfo, live_model
from labeling.monitor.loop import labelled_waiting
from labeling.monitor.measures import batch_frame, reference_frame
from labeling.monitor.settings import MonitoringError, project_settings, resolve_project
from labeling.platform.workspace import Workspace


@dataclass(frozen=True)
class MonitoringView:
    """Everything the Monitoring page shows for a project, from the stored checks and traffic."""

    live: LiveModelInfo | None
    summary: MonitorSummary
    measures: pd.DataFrame  # one row per (checked batch, measure); see :func:`monitoring_view`
    software: pd.DataFrame  # one row per batch: latency, requests per minute, error/empty/retry shares
    order: list[str]  # measures, those drifted in the newest check first
    min_batch: int
    waiting: int  # labelled production clips not yet added to a dataset version


def _middle(summary: Mapping[str, Any] | None) -> float | None:
    if not summary:
        return None
    for key in ("median", "share", "mean"):
        value = summary.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _software(s: Session, project_id: int) -> pd.DataFrame:
    q = select(
        ProductionClip.batch_id,
        ProductionClip.timestamp,
        ProductionClip.latency_ms,
        ProductionClip.error,
        ProductionClip.prediction,
        ProductionClip.transcript,
        ProductionClip.user_action,
    ).where(ProductionClip.project_id == project_id)
    cols = ["batch_id", "timestamp", "latency_ms", "error", "prediction", "transcript", "user_action"]
    raw = pd.DataFrame(s.execute(q).all(), columns=cols)
    out = []
    for batch_id, g in raw.groupby("batch_id", sort=False):
        minutes = (g["timestamp"].max() - g["timestamp"].min()).total_seconds() / 60
        lat = pd.to_numeric(g["latency_ms"], errors="coerce").dropna()
        empty = g["prediction"].fillna("").eq("") & g["transcript"].fillna("").str.strip().eq("")
        action = g["user_action"].fillna("")
        out.append(
            {
                "batch_id": int(batch_id),
                "n": len(g),
                "latency_p50": float(lat.quantile(0.5)) if len(lat) else np.nan,
                "latency_p95": float(lat.quantile(0.95)) if len(lat) else np.nan,
                "requests_per_min": len(g) / minutes if minutes > 0 else np.nan,
                "error_rate": float(g["error"].notna().mean()),
                "empty_rate": float(empty.mean()),
                "retry_rate": float(action.eq("retry").mean()),
                "typing_rate": float(action.eq("switched_to_typing").mean()),
            }
        )
    cols = ["batch_id", "n", "latency_p50", "latency_p95", "requests_per_min", "error_rate", "empty_rate"]
    return pd.DataFrame(out, columns=[*cols, "retry_rate", "typing_rate"])


def monitoring_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """Changes whenever what the Monitoring page shows could, apart from labels (key on
    :func:`labeling.data.clips.data_fingerprint` too): checks, live-model marks, alarm answers, logged
    traffic and what of it was sent to labeling or admitted to a version."""

    def newest(model: Any) -> Any:
        return s.scalar(select(func.max(model.id)).where(model.project_id == project_id))

    traffic = s.execute(
        select(
            func.count(),
            func.max(ProductionClip.id),
            func.count(ProductionClip.clip_id),
            func.count(ProductionClip.admitted_at),
            # A clip queued as atypical can join the random sample, which accuracy is measured on.
            func.count(case((ProductionClip.sample_reason == "random", 1))),
        ).where(ProductionClip.project_id == project_id)
    ).one()
    return (newest(DriftCheck), newest(LiveModel), newest(MonitoringAction), *traffic)


def monitoring_view(ws: Workspace, project: str | int) -> MonitoringView:
    """The page's data: per checked batch and measure (``batch_id, batch, created_at, measure, label,
    family, kind, unit, value`` (the batch's median or share), ``ref_p5, ref_median, ref_p95, drift,
    p_value, effect, effect_unit, n, too_small``), the software measures per batch, and the summary."""
    from analysis.drift import MEASURES

    summary = monitor_summary(ws, project)
    with ws.db.read() as s:
        info = resolve_project(s, project)
        live = live_model(s, info)
        checks = {b: dict(c.statistics or {}) for b, c in latest_checks(s, info.id).items()}
        software = _software(s, info.id)
        waiting = len(labelled_waiting(s, info.id))
    min_batch = int(project_settings(info)["min_batch"])
    batches = summary.batches
    rows = []
    for b in batches.itertuples():
        st = checks.get(int(b.batch_id))
        if st is None:
            continue
        for m in st.get("measures") or []:
            spec = MEASURES.get(m.get("name"))
            if spec is None:
                continue
            ref, cur = m.get("reference") or {}, m.get("batch") or {}
            label, unit, value, ref_mid = spec.label, spec.unit, _middle(cur), _middle(ref)
            if spec.kind == "rate":  # shares, drawn in percent beside the reference's share
                unit = "%"
                value = None if value is None else 100 * value
                ref_mid = None if ref_mid is None else 100 * ref_mid
            elif spec.kind == "categorical":  # how much of the mix moved (total-variation distance)
                label, unit = f"{spec.label} mix change", "% of clips"
                value = None if m.get("effect") is None else 100 * float(m["effect"])
                ref_mid = 0.0
            rows.append(
                {
                    "batch_id": int(b.batch_id),
                    "batch": b.name,
                    "created_at": b.created_at,
                    "measure": spec.name,
                    "label": label,
                    "family": spec.family,
                    "kind": spec.kind,
                    "unit": unit,
                    "value": value,
                    "ref_p5": ref.get("p5"),
                    "ref_median": ref_mid,
                    "ref_p95": ref.get("p95"),
                    "drift": bool(m.get("drift")),
                    "p_value": m.get("p_value"),
                    "effect": m.get("effect"),
                    "effect_unit": m.get("effect_unit"),
                    "n": int(cur.get("n") or st.get("n_batch") or 0),
                    "too_small": int(st.get("n_batch") or 0) < min_batch,
                }
            )
        # Accuracy as it stands now (the stored check's reference, the batch's labels today).
        concept = b.concept if isinstance(b.concept, dict) else {}
        if concept:
            ref, cur = concept.get("reference") or {}, concept.get("batch") or {}
            acc, ref_acc = cur.get("accuracy"), ref.get("accuracy")
            rows.append(
                {
                    "batch_id": int(b.batch_id),
                    "batch": b.name,
                    "created_at": b.created_at,
                    "measure": "accuracy",
                    "label": "Accuracy on the labelled random sample",
                    "family": "output",
                    "kind": "concept",
                    "unit": "%",
                    "value": None if acc is None else 100 * acc,
                    "ref_p5": None,
                    "ref_median": None if ref_acc is None else 100 * ref_acc,
                    "ref_p95": None,
                    "drift": bool(concept.get("drift")),
                    "p_value": concept.get("p_value"),
                    "effect": concept.get("effect"),
                    "effect_unit": "pp",
                    "n": int(cur.get("n") or 0),
                    "too_small": int(cur.get("n") or 0) < int(project_settings(info)["min_labels"]),
                }
            )
    measures = pd.DataFrame(rows)
    order: list[str] = []
    if not measures.empty:
        newest = measures[measures["batch_id"] == measures["batch_id"].iloc[-1]]
        ranked = newest.assign(p=newest["p_value"].fillna(1.0)).sort_values(
            ["drift", "p"], ascending=[False, True]
        )
        order = list(dict.fromkeys([*ranked["measure"], *measures["measure"]]))
    software = batches[["batch_id", "name", "created_at"]].merge(software, on="batch_id", how="left")
    return MonitoringView(live, summary, measures, software, order, min_batch, waiting)


@dataclass(frozen=True)
class MeasureDetail:
    measure: str
    label: str
    unit: str
    kind: str
    reference: pd.Series  # the reference clips' values
    batch: pd.Series  # the batch clips' values
    tails: pd.DataFrame  # production_clip_id, original_name, storage_key, value, side (low/high)


def measure_detail(
    ws: Workspace, project: str | int, batch: str | int, measure: str, *, per_side: int = 3
) -> MeasureDetail:
    """Reference and batch values of one measure, and the batch clips furthest in each tail (outside
    the reference's 5th–95th percentile band when any are), to listen to."""
    from analysis.drift import MEASURES

    spec = MEASURES.get(measure)
    if measure == "accuracy":
        raise MonitoringError("accuracy is one number per batch: see it per tag in the table below")
    if spec is None:
        raise MonitoringError(f"unknown measure {measure!r}; measures: {', '.join(MEASURES)}")
    ref = reference_frame(ws, project)
    with ws.db.read() as s:
        cur = batch_frame(s, project, batch)
    if measure not in cur:
        raise MonitoringError(f"batch {batch!r} has no {spec.label.lower()} values")
    r = ref[measure] if measure in ref else pd.Series(dtype=float)
    b = cur[measure]
    if spec.kind == "categorical":
        return MeasureDetail(
            measure, spec.label, spec.unit, spec.kind, r.astype(str), b.astype(str), cur.iloc[:0]
        )
    r, b = pd.to_numeric(r, errors="coerce").dropna(), pd.to_numeric(b, errors="coerce")
    valued = cur.assign(value=b).dropna(subset=["value"])
    cols = ["production_clip_id", "original_name", "storage_key", "value"]
    low = valued.nsmallest(per_side, "value")[cols].assign(side="low")
    high = valued.nlargest(per_side, "value")[cols].assign(side="high")
    if len(r):
        p5, p95 = r.quantile(0.05), r.quantile(0.95)
        below, above = low[low["value"] < p5], high[high["value"] > p95]
        low, high = (below if len(below) else low), (above if len(above) else high)
    tails = pd.concat([low, high]).drop_duplicates("production_clip_id").reset_index(drop=True)
    return MeasureDetail(measure, spec.label, spec.unit, spec.kind, r, b.dropna(), tails)


def tag_breakdown(ws: Workspace, project: str | int, batch: str | int) -> pd.DataFrame:
    """Drift and accuracy per slice of a batch: the logged device, user action and metadata values
    (few distinct values), and the tags of the batch's clips sent to labeling. Columns ``slice, n,
    n_labelled, accuracy`` (``n_labelled``: the slice's clips in the labelled random sample of
    :func:`labelled_random_sample`, which ``accuracy`` is measured on) and, per input measure drifted
    in the batch's latest check, the slice's median beside the reference's (``<measure>`` and
    ``<measure> reference``)."""
    ref = reference_frame(ws, project)
    with ws.db.read() as s:
        info = resolve_project(s, project)
        cur = batch_frame(s, info, batch)
        clip_ids = cur["clip_id"].dropna().astype(int).tolist()
        tags = pd.DataFrame(
            s.execute(select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(clip_ids))).all(),
            columns=["clip_id", "tag"],
        )
    check = latest_check(ws, project, batch)
    drifted = [
        m["name"]
        for m in (check.report.get("measures") if check else []) or []
        if m.get("drift") and m.get("family") == "input" and m.get("name") in cur
    ][:3]
    slices: dict[str, pd.Series] = {"all": pd.Series(True, index=cur.index)}
    for col in ("device", "user_action"):
        for value in cur[col].dropna().unique()[:20]:
            slices[f"{col}:{value}"] = cur[col] == value
    meta = pd.DataFrame(list(cur["meta"]), index=cur.index)
    for col in meta.columns:
        values = meta[col].dropna()
        if 1 < values.nunique() <= 10:
            for value in values.unique():
                slices[f"{col}:{value}"] = meta[col] == value
    for tag, group in tags.groupby("tag"):
        slices[str(tag)] = cur["clip_id"].isin(group["clip_id"])
    rows = []
    for name, mask in slices.items():
        part = cur[mask.fillna(False).astype(bool)]
        labelled = part[part["correct"].notna()]
        row: dict[str, Any] = {
            "slice": name,
            "n": len(part),
            "n_labelled": len(labelled),
            "accuracy": float(labelled["correct"].astype(float).mean()) if len(labelled) else np.nan,
        }
        for m in drifted:
            row[m] = float(pd.to_numeric(part[m], errors="coerce").median())
            row[f"{m} reference"] = (
                float(pd.to_numeric(ref[m], errors="coerce").median()) if m in ref else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows)
