"""Alarms: :func:`monitor_summary` is every batch's standing level and whether an alarm stands (not
acknowledged or snoozed: :func:`acknowledge`, :func:`snooze`).

An alarm on a batch stands until someone acknowledges that batch or snoozes the project's alarms,
whatever later batches show: a cron job that runs less often than batches arrive still sees it. The
four levels: ``none`` (no drift), ``warning`` (one drifted batch), ``alarm`` (two drifted batches in a
row, a p-value under ``alarm_p``, or concept drift) and ``too_small`` (fewer than ``min_batch`` clips:
no verdict, never an alarm). A batch not checked yet reads ``unchecked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select

from db.models import (
    MonitoringAction,
)
from labeling.monitor.drift import batch_standings, latest_checks, plain
from labeling.monitor.live import live_model
from labeling.monitor.measures import SampleAccuracy, batch_row, sample_accuracy
from labeling.monitor.production import (
    production_batches,
)
from labeling.monitor.settings import MonitoringError, project_settings, resolve_project
from labeling.platform.audit import record
from labeling.platform.workspace import Workspace


@dataclass(frozen=True)
class MonitorSummary:
    project: str
    live_model: str | None
    reference_version: str | None
    # batch_id, name, created_at, n, level, drift, reasons, checked_at, acknowledged, labelled, correct,
    # accuracy, accuracy_note, concept, labels_missing: see monitor_summary
    batches: pd.DataFrame
    alarm: bool  # an alarm stands: some batch is at alarm, not acknowledged, and alarms are not snoozed
    snoozed_until: datetime | None
    reasons: list[str] = field(default_factory=list)  # one per standing alarm, oldest batch first
    alarms: list[str] = field(default_factory=list)  # the batches whose alarm stands, oldest first
    min_labels: int = 30  # labelled random-sample clips the accuracy test needs

    def to_dict(self) -> dict[str, Any]:
        batches = self.batches.assign(
            created_at=self.batches["created_at"].map(lambda t: t.isoformat() if pd.notna(t) else None),
            checked_at=self.batches["checked_at"].map(lambda t: t.isoformat() if pd.notna(t) else None),
        )
        return plain(
            {
                "project": self.project,
                "live_model": self.live_model,
                "reference_version": self.reference_version,
                "alarm": self.alarm,
                "alarms": self.alarms,
                "min_labels": self.min_labels,
                "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
                "reasons": self.reasons,
                "batches": batches.to_dict(orient="records"),
            }
        )


def monitor_summary(ws: Workspace, project: str | int, *, now: datetime | None = None) -> MonitorSummary:
    """Every production batch with its standing level (:func:`batch_standings`), the accuracy of its
    labelled random sample (``labelled``, ``correct``, ``accuracy``, ``accuracy_note``, and the test
    as ``concept``; for a transcription project the word-error-rate test of its latest check as
    ``wer`` and in words as ``wer_note``; ``labels_missing``: how many more labelled random-sample
    clips the accuracy test needs for a verdict, 0 once it has them), and whether an alarm stands:
    on *any* batch whose level is ``alarm``, not acknowledged, while the project's alarms are not
    snoozed."""
    now = now or datetime.now(UTC)
    with ws.db.read() as s:
        info = resolve_project(s, project)
        live = live_model(s, info)
        batches = production_batches(s, info.id)
        standings = batch_standings(s, info)
        checked_at = {b: c.created_at for b, c in latest_checks(s, info.id).items()}
        drifted = {b: bool((c.statistics or {}).get("drift")) for b, c in latest_checks(s, info.id).items()}
        accuracy = sample_accuracy(s, info.id)
        min_labels = int(project_settings(info)["min_labels"])
        actions = s.execute(
            select(MonitoringAction.action, MonitoringAction.batch_id, MonitoringAction.until)
            .where(MonitoringAction.project_id == info.id)
            .order_by(MonitoringAction.id)
        ).all()
    acked = {b for a, b, _ in actions if a == "acknowledge" and b is not None}
    snoozes = [u for a, _, u in actions if a == "snooze" and u is not None and u > now]
    snoozed_until = max(snoozes) if snoozes else None
    ids = [int(b) for b in batches["batch_id"]]
    stand = [standings.get(b) for b in ids]
    counts = [accuracy.get(b, SampleAccuracy()) for b in ids]
    batches = batches.assign(
        level=[st.level if st else "unchecked" for st in stand],
        drift=[drifted.get(b) for b in ids],
        reasons=["; ".join(st.reasons) if st else "" for st in stand],
        checked_at=[checked_at.get(b) for b in ids],
        acknowledged=batches["batch_id"].isin(acked),
        labelled=[c.n for c in counts],
        correct=[c.correct for c in counts],
        accuracy=[c.accuracy for c in counts],
        accuracy_note=[st.accuracy_note if st else None for st in stand],
        concept=[st.concept if st else None for st in stand],
        wer=[st.wer if st else None for st in stand],
        wer_note=[st.wer_note if st else None for st in stand],
        labels_missing=[max(0, min_labels - c.n) for c in counts],
    )
    standing = batches[(batches["level"] == "alarm") & ~batches["acknowledged"]]
    if snoozed_until is not None:
        standing = standing.iloc[:0]
    why = [f"batch {r.name!r}: {r.reasons}" for r in standing.itertuples()]
    return MonitorSummary(
        project=info.name,
        live_model=live.run_name if live else None,
        reference_version=live.reference_version if live else None,
        batches=batches,
        alarm=not standing.empty,
        snoozed_until=snoozed_until,
        reasons=why,
        alarms=[str(n) for n in standing["name"]],
        min_labels=min_labels,
    )


def missing_labels_note(missing: int, needed: int) -> str | None:
    """How many labels a batch's accuracy test still lacks, in words (None when it has them)."""
    if missing <= 0:
        return None
    return (
        f"{missing:,} more labelled random-sample clips needed for an accuracy verdict "
        f"({needed:,} in all: send the batch to labeling and label its random sample)"
    )


def acknowledge(
    ws: Workspace, project: str | int, batch: str | int, *, note: str = "", actor_id: int | None = None
) -> None:
    """Acknowledge a batch's alarm: it no longer stands (the check and its reasons stay)."""
    with ws.db.write() as s:
        info = resolve_project(s, project)
        row = batch_row(s, info.id, batch)
        s.add(
            MonitoringAction(
                project_id=info.id, batch_id=row.id, action="acknowledge", note=note, created_by=actor_id
            )
        )
        record(
            s,
            entity="drift_alarm",
            entity_id=row.id,
            action="update",
            new={"acknowledged": True, "note": note},
            actor_id=actor_id,
            project_id=info.id,
        )


def snooze(
    ws: Workspace,
    project: str | int,
    *,
    hours: float,
    note: str = "",
    actor_id: int | None = None,
    now: datetime | None = None,
) -> datetime:
    """Silence the project's alarms for a while (``earmark monitor`` exits 0 meanwhile)."""
    if not 0 < hours <= 24 * 30:
        raise MonitoringError("snooze for between a minute and 30 days")
    until = (now or datetime.now(UTC)) + timedelta(hours=hours)
    with ws.db.write() as s:
        info = resolve_project(s, project)
        s.add(
            MonitoringAction(project_id=info.id, action="snooze", until=until, note=note, created_by=actor_id)
        )
        record(
            s,
            entity="drift_alarm",
            entity_id=info.id,
            action="update",
            new={"snoozed_until": until.isoformat(), "note": note},
            actor_id=actor_id,
            project_id=info.id,
        )
    return until
