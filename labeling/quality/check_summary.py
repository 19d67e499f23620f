"""What the Data page's Checks tab shows, stored per data change: call :func:`stored_checks`.

The checks on the measures stored at import (:func:`labeling.data.checks.measure_checks`) read every
live clip: at a million clips that is seconds of work. Like the Overview's summary
(:mod:`labeling.quality.data_summaries`), the ``data_checks`` job computes them once per change of the
clips or of the conventions' rules (a new label changes neither) and stores them; every page view
reads that one row, and a page shows the previous report, with its age, while the worker computes
the next.

The duplicate checks decode every clip's audio, far too much to repeat after each change: the
``duplicate_checks`` job runs them when someone asks (:func:`stored_duplicate_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Clip, ConventionVersion
from labeling.data.checks import FINDINGS_KEPT, CheckReport, measure_checks
from labeling.quality.report_store import stored_or_computed

if TYPE_CHECKING:
    from db.engine import Database
    from labeling.platform.workspace import Workspace

CHECKS = "data_checks"
DUPLICATES = "duplicate_checks"
PARAMS: dict[str, int] = {}
#: The jobs that compute them (:mod:`labeling.job_kinds`).
JOB_KIND = "data_checks"
DUPLICATES_JOB_KIND = "duplicate_checks"


@dataclass(frozen=True)
class StoredChecks:
    """A stored check report: ``fresh`` False when the clips or the rules changed after it was computed."""

    report: CheckReport
    fresh: bool
    computed_at: datetime
    seconds: float


def checks_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """What the checks read: the clips (new ones, retired ones; a clip's audio and measures never
    change) and the newest conventions version, whose rules they apply. Labels are not part of it, so
    the refresh queued after each label finds the report current in two index reads."""
    newest = s.scalar(
        select(func.max(ConventionVersion.version)).where(ConventionVersion.project_id == project_id)
    )
    top = s.scalar(select(func.max(Clip.id)).where(Clip.project_id == project_id))
    retired = s.execute(
        # A literal condition, so both engines answer from the partial index ix_clips_deleted.
        select(func.count(), func.max(Clip.deleted_at)).where(
            Clip.project_id == project_id, text("deleted_at IS NOT NULL")
        )
    ).one()
    return (top, *retired, newest)


def _value(report: CheckReport) -> dict[str, Any]:
    # As measure_checks keeps them: complete counts, the first findings of each check.
    summary = report.summary.drop(columns=[c for c in ("clip_ids",) if c in report.summary.columns])
    findings = report.findings.groupby("check", sort=False).head(FINDINGS_KEPT).reset_index(drop=True)
    return {
        "project": report.project,
        "rules": report.rules,
        "rules_source": report.rules_source,
        "n_clips": report.n_clips,
        "findings": findings,
        "summary": summary,
    }


def _report(value: dict[str, Any]) -> CheckReport:
    return CheckReport(
        project=str(value["project"]),
        rules=dict(value["rules"]),
        rules_source=str(value["rules_source"]),
        n_clips=int(value["n_clips"]),
        findings=value["findings"],
        summary=value["summary"],
    )


def stored_checks(
    db: Database, project_id: int, *, allow_stale: bool = False, recompute: bool = False
) -> StoredChecks:
    """The measure checks (:func:`~labeling.data.checks.measure_checks`), stored; ``allow_stale`` and
    ``recompute`` as in :func:`~labeling.quality.report_store.stored_or_computed`."""
    r = stored_or_computed(
        db,
        project_id,
        CHECKS,
        PARAMS,
        lambda s: _value(measure_checks(s, project_id)),
        allow_stale=allow_stale,
        recompute=recompute,
        fingerprint=checks_fingerprint,
    )
    return StoredChecks(_report(r.value), r.fresh, r.computed_at, r.seconds)


def stored_duplicate_checks(
    ws: Workspace,
    project_id: int,
    *,
    compute: bool = False,
    progress: Any = None,
) -> StoredChecks | None:
    """Every check, duplicates included (:func:`~labeling.data.checks.run_data_checks`), as last run
    by the ``duplicate_checks`` job; None if it never ran. ``compute`` runs them (the job's work)."""
    from labeling.data.checks import run_data_checks
    from labeling.quality.report_store import read_report, token_digest

    if compute:
        r = stored_or_computed(
            ws.db,
            project_id,
            DUPLICATES,
            PARAMS,
            lambda s: _value(run_data_checks(ws, project_id, progress=progress)),
            recompute=True,
            fingerprint=checks_fingerprint,
        )
        return StoredChecks(_report(r.value), r.fresh, r.computed_at, r.seconds)
    with ws.db.read() as s:
        stored = read_report(s, project_id, DUPLICATES, PARAMS)
        if stored is None:
            return None
        fresh = stored.token == token_digest(checks_fingerprint(s, project_id))
    return StoredChecks(_report(stored.value), fresh, stored.computed_at, stored.seconds)
