"""Drift checks: :func:`run_drift_check` compares a production batch (:mod:`labeling.monitor.production`)
with the reference using :func:`analysis.drift.drift_report` and :func:`analysis.drift.concept_drift`,
stores the check in ``drift_checks`` and returns it with its level under
:func:`analysis.drift.alarm_level` over the batch history (:func:`batch_standings`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import (
    DriftCheck,
)
from labeling.data.projects import ProjectInfo
from labeling.monitor.measures import (
    SampleAccuracy,
    batch_frame,
    batch_row,
    refresh_batch_measures,
    sample_accuracy,
)
from labeling.monitor.production import (
    production_batches,
)
from labeling.monitor.reference import cached_reference_summary, reference_columns
from labeling.monitor.settings import project_settings, resolve_project
from labeling.platform.progress import StageProgress
from labeling.platform.workspace import Workspace


def plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return plain(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass(frozen=True)
class DriftCheckResult:
    id: int
    batch: str
    batch_id: int
    reference_version_id: int | None
    drift: bool
    level: str  # none / warning / alarm / too_small (see batch_standings)
    reasons: list[str]
    report: dict[str, Any]
    concept: dict[str, Any] | None
    created_at: datetime | None = None
    accuracy_note: str | None = None  # the accuracy in words, whether or not it is a reason

    def to_dict(self) -> dict[str, Any]:
        d = {
            **self.report,
            "check_id": self.id,
            "batch": self.batch,
            "batch_id": self.batch_id,
            "reference_version_id": self.reference_version_id,
            "drift": self.drift,
            "level": self.level,
            "reasons": self.reasons,
            "concept": self.concept,
            "accuracy_note": self.accuracy_note,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
        return plain(d)


def _as_report(stats: Mapping[str, Any]) -> Any:
    """A stored check as the DriftReport the alarm rule reads (verdict, smallest p, concept)."""
    from analysis.drift import DriftReport, MeasureResult

    concept, wer = stats.get("concept"), stats.get("wer")
    fields = set(MeasureResult.__dataclass_fields__)
    return DriftReport(
        drift=bool(stats.get("drift")),
        level=str(stats.get("report_level") or stats.get("level") or "none"),
        measures=[],
        multivariate=None,
        reasons=[],
        n_reference=int(stats.get("n_reference") or 0),
        n_batch=int(stats.get("n_batch") or 0),
        min_p=float(stats["min_p"]) if stats.get("min_p") is not None else math.nan,
        concept=MeasureResult(**{k: v for k, v in concept.items() if k in fields}) if concept else None,
        wer=MeasureResult(**{k: v for k, v in wer.items() if k in fields}) if wer else None,
    )


def latest_checks(s: Session, project_id: int) -> dict[int, DriftCheck]:
    rows = s.scalars(
        select(DriftCheck).where(DriftCheck.project_id == project_id).order_by(DriftCheck.id)
    ).all()
    return {r.current_batch_id: r for r in rows if r.current_batch_id is not None}


#: What the reasons call the clips accuracy is measured on (see :func:`labelled_random_sample`).
SAMPLE_NAME = "labelled random-sample clips"
#: The reason :func:`run_drift_check` adds when a batch drifted right after another one did.
TWO_IN_A_ROW = "drifted in two batches in a row"


@dataclass(frozen=True)
class BatchStanding:
    """A checked batch as it stands now: its latest check's measures, with accuracy counted on the
    labels the batch has now (labels given after the check count at once)."""

    level: str
    reasons: list[str]
    concept: dict[str, Any] | None  # the accuracy test (analysis.drift.concept_test) as a dict
    accuracy: SampleAccuracy
    accuracy_note: str | None  # the accuracy in words, whether or not it is a reason
    wer: dict[str, Any] | None = None  # the word-error-rate test (analysis.drift.wer_drift) as a dict
    wer_note: str | None = None  # the WER in words, whether or not it is a reason


def _measure_reasons(stats: Mapping[str, Any]) -> list[str]:
    """A stored check's reasons that come from its measures (not accuracy, not the batch history)."""
    if "measure_reasons" in stats:
        return list(stats["measure_reasons"] or [])
    # Checks stored before the measures' reasons were kept apart.
    return [r for r in stats.get("reasons") or [] if not str(r).startswith("accuracy ") and r != TWO_IN_A_ROW]


def _concept_now(stats: Mapping[str, Any], acc: SampleAccuracy, settings: Mapping[str, float]) -> Any | None:
    """The accuracy test of a stored check's reference against the batch's labels now."""
    from analysis.drift import concept_test

    ref = (stats.get("concept") or {}).get("reference") or {}
    n = int(ref.get("n") or 0)
    if n == 0:
        return None
    correct = ref.get("correct")
    if correct is None:  # checks stored before the counts were kept
        correct = round(float(ref.get("accuracy") or 0.0) * n)
    return concept_test(
        int(correct),
        n,
        acc.correct,
        acc.n,
        alpha=float(settings["alpha"]),
        min_labels=int(settings["min_labels"]),
    )


def batch_standings(s: Session, project: str | int | ProjectInfo) -> dict[int, BatchStanding]:
    """Each checked batch's level and reasons, by batch id, oldest batch first.

    The level follows :func:`analysis.drift.alarm_level` over the batch history (each batch's latest
    check, in the order the batches arrived): one drifted batch is a warning; two in a row, a p-value
    under the project's ``alarm_p`` or concept drift an alarm. A batch under ``min_batch`` clips is
    ``too_small``: it has no verdict, so it is never an alarm (and leaves the levels of the batches
    around it as they were). The measures are the stored check's; accuracy is counted on the batch's
    labelled random sample as it is now (:func:`sample_accuracy`), so the alarm, the accuracy tile, the
    by-tag table and the shadow comparison always say the same, and a new check cannot lose it.
    """
    from analysis.drift import alarm_level, concept_reason

    info = resolve_project(s, project)
    settings = project_settings(info)
    min_labels = int(settings["min_labels"])
    latest = latest_checks(s, info.id)
    accuracy = sample_accuracy(s, info.id)
    earlier: list[Any] = []
    out: dict[int, BatchStanding] = {}
    for b in production_batches(s, info.id)["batch_id"].astype(int):
        check = latest.get(b)
        if check is None:
            continue
        stats = dict(check.statistics or {})
        acc = accuracy.get(b, SampleAccuracy())
        concept = _concept_now(stats, acc, settings)
        report = replace(_as_report(stats), concept=concept)
        level = alarm_level([*earlier, report], alarm_p=float(settings["alarm_p"]))
        if report.level == "too_small":  # no verdict: never an alarm, whatever came before
            level = "too_small"
        reasons = _measure_reasons(stats)
        note = concept_reason(concept, min_labels=min_labels, sample=SAMPLE_NAME) if concept else None
        if concept is not None and concept.drift and report.level != "too_small":
            reasons.append(str(note))
        judged = [r for r in earlier if r.level != "too_small"]
        if level == "alarm" and report.drift and judged and judged[-1].drift:
            reasons.append(TWO_IN_A_ROW)
        out[b] = BatchStanding(
            level=level,
            reasons=reasons,
            concept=None if concept is None else plain(concept.to_dict()),
            accuracy=acc,
            accuracy_note=note,
            wer=stats.get("wer"),
            wer_note=(stats.get("wer") or {}).get("reason") or None,
        )
        earlier.append(report)
    return out


def run_drift_check(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    *,
    reference: str | int | None = None,
    actor_id: int | None = None,
    progress: StageProgress | None = None,
    random_state: int | None = 0,
) -> DriftCheckResult:
    """Compare a production batch with the reference, store the check, and say its level.

    The level is the batch's standing right after the check (:func:`batch_standings`). Concept drift
    is measured on the labelled *random* sample only (:func:`labelled_random_sample`), so that the
    clips picked for being atypical or unsure do not bias the accuracy estimate.
    """
    from analysis.drift import concept_reason, drift_report

    with ws.db.read() as s:
        info = resolve_project(s, project)
        batch_id = batch_row(s, info.id, batch).id  # an unknown batch is refused before any audio is measured
    refresh_batch_measures(
        ws,
        batch_id,
        None if progress is None else (lambda d, t: progress("Measuring the batch again, clip", d, t)),
    )
    with ws.db.read() as s:
        cur = batch_frame(s, info, batch)
    ref = cached_reference_summary(
        ws, project, version=reference, progress=progress, random_state=random_state
    )
    settings = project_settings(info)
    if progress:
        progress(f"Comparing {len(cur):,} production clips with {ref.summary.n:,} reference clips", 0, 1)
    min_labels = int(settings["min_labels"])
    report = drift_report(
        ref.summary,
        reference_columns(cur),
        alpha=float(settings["alpha"]),
        min_batch=int(settings["min_batch"]),
        random_state=random_state,
        min_labels=min_labels,
        sample=SAMPLE_NAME,
    )
    report_dict = plain(report.to_dict())
    said = (
        concept_reason(report.concept, min_labels=min_labels, sample=SAMPLE_NAME) if report.concept else None
    )
    stats = {
        **report_dict,
        "report_level": report.level,
        "measure_reasons": [r for r in report.reasons if r != said],
        "n_labelled": int(cur["correct"].notna().sum()) if "correct" in cur else 0,
        "reference_version_id": ref.version_id,
    }
    with ws.db.write() as s:
        batch_id = int(cur.attrs["batch_id"])
        check = DriftCheck(
            project_id=info.id,
            reference_version_id=ref.version_id,
            current_batch_id=batch_id,
            test="drift_report",
            threshold=float(settings["alpha"]),
            statistics=plain(stats),
            verdict="none",
            created_by=actor_id,
        )
        s.add(check)
        s.flush()
        standing = batch_standings(s, info)[batch_id]
        check.verdict = standing.level
        check.statistics = plain({**stats, "level": standing.level, "reasons": standing.reasons})
        s.flush()
        return DriftCheckResult(
            id=check.id,
            batch=str(cur.attrs["batch"]),
            batch_id=batch_id,
            reference_version_id=check.reference_version_id,
            drift=bool(report.drift)
            or bool((standing.concept or {}).get("drift"))
            or bool(report.wer is not None and report.wer.drift),
            level=standing.level,
            reasons=standing.reasons,
            report=report_dict,
            concept=standing.concept,
            created_at=check.created_at,
            accuracy_note=standing.accuracy_note,
        )


def latest_check(ws: Workspace, project: str | int, batch: str | int) -> DriftCheckResult | None:
    """A batch's latest check, with its level, reasons and accuracy as they stand now
    (:func:`batch_standings`)."""
    with ws.db.read() as s:
        info = resolve_project(s, project)
        row = batch_row(s, info.id, batch)
        check = s.scalar(
            select(DriftCheck)
            .where(DriftCheck.project_id == info.id, DriftCheck.current_batch_id == row.id)
            .order_by(DriftCheck.id.desc())
            .limit(1)
        )
        if check is None:
            return None
        standing = batch_standings(s, info)[row.id]
        st = dict(check.statistics or {})
        return DriftCheckResult(
            id=check.id,
            batch=row.name,
            batch_id=row.id,
            reference_version_id=check.reference_version_id,
            drift=bool(st.get("drift"))
            or bool((standing.concept or {}).get("drift"))
            or bool((st.get("wer") or {}).get("drift")),
            level=standing.level,
            reasons=standing.reasons,
            report={k: v for k, v in st.items() if k not in {"concept", "reasons", "level"}},
            concept=standing.concept,
            created_at=check.created_at,
            accuracy_note=standing.accuracy_note,
        )
