"""Back into the loop: :func:`labeling_sample` / :func:`send_to_labeling` put a uniform random sample (so
accuracy estimates stay unbiased) plus the most atypical, low-confidence and empty-output clips into
the labeling queue, counting what was sent before (:func:`sample_sent`); :func:`admit_labelled` lets
the labelled ones into the next dataset version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import (
    Clip,
    ClipDriftMeasures,
    ImportBatch,
    ProductionClip,
    Resolution,
    utcnow,
)
from labeling.data.clips import QUALITY_COLUMNS
from labeling.monitor.measures import batch_frame, batch_row, reference_frame
from labeling.monitor.settings import (
    PRIORITY,
    MonitoringError,
    project_settings,
    random_sample_target,
    resolve_project,
)
from labeling.platform.audit import record
from labeling.platform.workspace import Workspace

#: What :func:`labeling_sample` returns per clip (``sent_before``: the reason a clip was already sent
#: for, when the random draw picks a clip sent for being unsure or atypical).
SAMPLE_COLUMNS = (
    "production_clip_id",
    "original_name",
    "reason",
    "priority",
    "predicted",
    "confidence",
    "atypicality",
    "sent_before",
)
#: The parts of a labeling sample, in words.
REASON_NAMES = {
    "random": "random",
    "empty": "empty output",
    "low_confidence": "low confidence",
    "atypical": "atypical",
}


def _reasons_in_words(counts: Mapping[str, int]) -> str:
    order = [r for r in PRIORITY if counts.get(r)] + [r for r in counts if r not in PRIORITY and counts[r]]
    return ", ".join(f"{int(counts[r]):,} {REASON_NAMES.get(r, r)}" for r in order)


@dataclass(frozen=True)
class SentSample:
    """What of a batch was already sent to labeling (:func:`sample_sent`)."""

    batch: str
    n_batch: int  # requests in the batch
    by_reason: dict[str, int]  # clips of the batch sent to labeling now, by why they were picked
    sends: list[dict[str, Any]]  # one per send, oldest first: at, by, n, reasons
    random_target: int  # random clips the project's rules ask of this batch

    @property
    def n(self) -> int:
        return sum(self.by_reason.values())

    @property
    def random(self) -> int:
        return int(self.by_reason.get("random", 0))

    def describe(self) -> str:
        """In words, e.g. "60 clips of this batch already sent to labeling (40 random, 10 low
        confidence, 10 atypical), on 2026-11-30 10:15 UTC by eli."."""
        if not self.n:
            return "Nothing of this batch has been sent to labeling yet."

        def when(e: Mapping[str, Any]) -> str:
            return f"{e['at']:%Y-%m-%d %H:%M} UTC" + (f" by {e['by']}" if e.get("by") else "")

        text = (
            f"{self.n:,} clips of this batch already sent to labeling ({_reasons_in_words(self.by_reason)})"
        )
        if len(self.sends) == 1:
            text += f", on {when(self.sends[0])}"
        elif self.sends:
            text += f", in {len(self.sends)} sends: " + "; ".join(
                f"{e['n']:,} on {when(e)}" for e in self.sends
            )
        return text + "."


def sample_sent(ws: Workspace, project: str | int, batch: str | int) -> SentSample:
    """What was already sent to labeling for a batch: how many clips, for which reasons, and when and
    by whom (from the audit log of each send)."""
    from db.models import AuditEvent, User

    with ws.db.read() as s:
        info = resolve_project(s, project)
        row = batch_row(s, info.id, batch)
        n_batch = int(
            s.scalar(
                select(func.count()).select_from(ProductionClip).where(ProductionClip.batch_id == row.id)
            )
            or 0
        )
        by_reason = dict(
            s.execute(
                select(ProductionClip.sample_reason, func.count())
                .where(ProductionClip.batch_id == row.id, ProductionClip.sample_reason.is_not(None))
                .group_by(ProductionClip.sample_reason)
            ).all()
        )
        events = s.execute(
            select(AuditEvent.created_at, AuditEvent.new, User.name)
            .outerjoin(User, User.id == AuditEvent.actor_id)
            .where(
                AuditEvent.project_id == info.id,
                AuditEvent.entity == "production_batch",
                AuditEvent.entity_id == str(row.id),
                AuditEvent.action == "update",
            )
            .order_by(AuditEvent.id)
        ).all()
        name = row.name
    st = project_settings(info)
    sends = [
        {
            "at": at,
            "by": who,
            "n": int(new.get("sent_to_labeling") or 0),
            "reasons": dict(new.get("reasons") or {}),
        }
        for at, new, who in events
        if isinstance(new, dict) and new.get("sent_to_labeling")
    ]
    target = random_sample_target(st, n_batch)
    return SentSample(
        batch=name,
        n_batch=n_batch,
        by_reason={str(k): int(v) for k, v in by_reason.items()},
        sends=sends,
        random_target=target,
    )


def labeling_sample(
    ws: Workspace, project: str | int, batch: str | int, *, more_random: int = 0, random_state: int = 0
) -> pd.DataFrame:
    """What "send to labeling" would queue: ``production_clip_id, original_name, reason, priority,
    predicted, confidence, atypicality, sent_before``.

    A uniform random ``sample_fraction`` of the batch (at least ``sample_minimum`` clips, and at least
    the ``min_labels`` the accuracy test needs, so that labelling one sample can answer it:
    :func:`~labeling.monitor.settings.random_sample_target`), so that accuracy on it estimates the
    batch's without bias; then the ``sample_extra`` most atypical clips
    (largest robust z-score of any input measure against the reference), the lowest-confidence ones
    and every empty output (up to ``sample_extra``).

    Clips sent before count toward these numbers: a batch already sampled gets only what its sample
    still lacks, and nothing once it is complete (:func:`sample_sent` says what was sent). To grow it,
    ask for ``more_random`` random clips beyond the rules. They are drawn from every clip not yet in
    the random sample, those sent for another reason included (``sent_before`` names it), so that the
    random sample stays uniform over the batch.
    """
    if more_random < 0:
        raise MonitoringError("ask for zero or more extra random clips")
    with ws.db.read() as s:
        info = resolve_project(s, project)
        cur = batch_frame(s, info, batch)
    st = project_settings(info)
    sent = cur["sample_reason"].value_counts()
    target = random_sample_target(st, len(cur))
    pool = cur[cur["sample_reason"].ne("random") | cur["sample_reason"].isna()]
    k = min(len(pool), max(0, target - int(sent.get("random", 0))) + int(more_random))
    rng = np.random.default_rng(random_state)
    chosen: dict[int, str] = {
        int(i): "random" for i in rng.choice(pool["production_clip_id"].to_numpy(), size=k, replace=False)
    }
    todo = cur[cur["sample_reason"].isna()]
    todo = todo.assign(atypicality=_atypicality(ws, project, todo).to_numpy() if len(todo) else np.nan)
    extra = int(st["sample_extra"])

    def still(reason: str) -> int:
        return max(0, extra - int(sent.get(reason, 0)))

    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if "empty" in rest:
        for i in rest[rest["empty"] == 1]["production_clip_id"].head(still("empty")):
            chosen.setdefault(int(i), "empty")
    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if rest["confidence"].notna().any() and still("low_confidence"):
        for i in rest.nsmallest(still("low_confidence"), "confidence")["production_clip_id"]:
            chosen.setdefault(int(i), "low_confidence")
    rest = todo[~todo["production_clip_id"].isin(chosen)]
    if rest["atypicality"].notna().any() and still("atypical"):
        for i in rest.nlargest(still("atypical"), "atypicality")["production_clip_id"]:
            chosen.setdefault(int(i), "atypical")
    atypicality = todo.set_index("production_clip_id")["atypicality"]
    out = cur[cur["production_clip_id"].isin(chosen)].copy()
    out["sent_before"] = out["sample_reason"]
    out["atypicality"] = out["production_clip_id"].map(atypicality)
    out["reason"] = out["production_clip_id"].map(chosen)
    out["priority"] = out["reason"].map(PRIORITY)
    out = out.reindex(columns=list(SAMPLE_COLUMNS))
    return out.sort_values(["priority", "production_clip_id"], ascending=[False, True]).reset_index(drop=True)


def _atypicality(ws: Workspace, project: str | int, cur: pd.DataFrame) -> pd.Series:
    from analysis.drift import MEASURES

    try:
        ref = reference_frame(ws, project)
    except MonitoringError:
        return pd.Series(np.nan, index=cur.index)
    cols = [
        c
        for c, spec in MEASURES.items()
        if spec.family == "input" and spec.kind == "continuous" and c in ref and c in cur
    ]
    if not cols:
        return pd.Series(np.nan, index=cur.index)
    r = ref[cols].apply(pd.to_numeric, errors="coerce")
    med = r.median()
    scale = (r.quantile(0.75) - r.quantile(0.25)) / 1.349
    scale = scale.where(scale > 0, r.std()).replace(0, np.nan)
    z = (cur[cols].apply(pd.to_numeric, errors="coerce") - med).abs() / scale
    return z.max(axis=1, skipna=True)


def send_to_labeling(
    ws: Workspace,
    project: str | int,
    batch: str | int,
    sample: pd.DataFrame,
    *,
    previewed: SentSample | None = None,
    actor_id: int | None = None,
) -> int:
    """Queue the previewed sample (:func:`labeling_sample`) for labeling, in one transaction.

    Each clip becomes a project clip with its priority: the random sample in the ``test`` split (it
    measures the new traffic), the others in ``train``. A clip sent before for another reason that
    the random draw picked joins the random sample (its clip keeps its labels). They stay out of
    dataset versions and label-issue detection until :func:`admit_labelled`. With ``previewed``
    (what :func:`sample_sent` said beside the preview), a batch whose sample changed since — someone
    else sent it meanwhile — is refused, so nothing is sent twice. Returns how many clips were queued.
    """
    if sample.empty:
        return 0
    reasons = dict(zip(sample["production_clip_id"].astype(int), sample["reason"], strict=True))
    with ws.db.write() as s:
        info = resolve_project(s, project)
        row = batch_row(s, info.id, batch)
        if previewed is not None:
            now = dict(
                s.execute(
                    select(ProductionClip.sample_reason, func.count())
                    .where(ProductionClip.batch_id == row.id, ProductionClip.sample_reason.is_not(None))
                    .group_by(ProductionClip.sample_reason)
                ).all()
            )
            now_by_reason = {str(k): int(v) for k, v in now.items()}
            if now_by_reason != previewed.by_reason:
                raise MonitoringError(
                    f"batch {row.name!r} was sent to labeling since this preview "
                    f"({_reasons_in_words(dict(now_by_reason)) or 'nothing'} now): preview it again"
                )
        prod = s.scalars(
            select(ProductionClip).where(
                ProductionClip.batch_id == row.id,
                ProductionClip.id.in_(list(reasons)),
                ProductionClip.sample_reason.is_(None) | (ProductionClip.sample_reason != "random"),
            )
        ).all()
        prod = [p for p in prod if p.sample_reason is None or reasons[p.id] == "random"]
        existing = dict(
            s.execute(
                select(Clip.sha256, Clip.id).where(
                    Clip.project_id == info.id, Clip.sha256.in_([p.sha256 for p in prod])
                )
            ).all()
        )
        n = promoted = 0
        sent: dict[str, int] = {}
        for p in prod:
            reason = reasons[p.id]
            clip_id = existing.get(p.sha256)
            if clip_id is None:
                m = p.measures or {}
                clip = Clip(
                    project_id=info.id,
                    sha256=p.sha256,
                    storage_key=p.storage_key,
                    original_name=p.original_name,
                    duration_s=p.duration_s,
                    sample_rate=p.sample_rate,
                    channels=p.channels,
                    frames=p.frames,
                    audio_format=p.audio_format,
                    meta={
                        **{k: v for k, v in (p.meta or {}).items() if isinstance(v, str | int | float)},
                        "production_batch": row.name,
                        **({"device": p.device} if p.device else {}),
                    },
                    split="test" if reason == "random" else "train",
                    import_batch_id=row.id,
                    annotations_needed=info.annotations_per_clip,
                    priority=PRIORITY.get(reason, 1),
                    **{c: m.get(c) for c in QUALITY_COLUMNS},
                )
                s.add(clip)
                s.flush()
                clip_id = clip.id
                existing[p.sha256] = clip_id
                dm = {
                    k: m.get(k) for k in ("pitch_hz", "centroid_hz", "speaking_rate", "wada_snr_db") if k in m
                }
                if dm and s.get(ClipDriftMeasures, clip_id) is None:
                    s.add(ClipDriftMeasures(clip_id=clip_id, measures=dm))
            elif p.sample_reason is not None:  # sent before for another reason: now in the random sample
                promoted += 1
                clip_row = s.get(Clip, clip_id)
                if clip_row is not None:
                    clip_row.priority = max(clip_row.priority or 0, PRIORITY[reason])
                    if p.admitted_at is None:
                        clip_row.split = "test"
            p.clip_id = clip_id
            p.sample_reason = reason
            sent[reason] = sent.get(reason, 0) + 1
            n += 1
        from labeling.data.clip_metadata import index_clip_metadata

        index_clip_metadata(s, info.id)
        record(
            s,
            entity="production_batch",
            entity_id=row.id,
            action="update",
            new={"sent_to_labeling": n, "reasons": sent, "moved_to_random": promoted},
            actor_id=actor_id,
            project_id=info.id,
        )
    return n


def labelled_waiting(s: Session, project_id: int) -> pd.DataFrame:
    """Production clips sent to labeling, labelled, and not yet admitted: what "add to the next
    version" would add (``production_clip_id, clip_id, batch, label, reason``)."""
    q = (
        select(
            ProductionClip.id,
            ProductionClip.clip_id,
            ImportBatch.name,
            Resolution.label,
            ProductionClip.sample_reason,
        )
        .join(Resolution, Resolution.clip_id == ProductionClip.clip_id)
        .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
        .where(ProductionClip.project_id == project_id, ProductionClip.admitted_at.is_(None))
        .order_by(ProductionClip.id)
    )
    return pd.DataFrame(
        s.execute(q).all(), columns=["production_clip_id", "clip_id", "batch", "label", "reason"]
    )


def admit_labelled(ws: Workspace, project: str | int, *, actor_id: int | None = None) -> int:
    """Let the labelled production clips into the next dataset version; returns how many."""
    with ws.db.write() as s:
        info = resolve_project(s, project)
        waiting = labelled_waiting(s, info.id)
        if waiting.empty:
            return 0
        ids = waiting["production_clip_id"].astype(int).tolist()
        s.execute(update(ProductionClip).where(ProductionClip.id.in_(ids)).values(admitted_at=utcnow()))
        record(
            s,
            entity="production_clips",
            entity_id=info.id,
            action="update",
            new={"admitted": len(ids)},
            actor_id=actor_id,
            project_id=info.id,
        )
        return len(ids)
