"""A clip replaced by a fixed copy hands its place in the labeling workflow to the copy:
:func:`carry_workflow`, and :func:`workflow_summary` to say beforehand what that place holds.

A fix (trimmed silence, normalised loudness) changes how a recording sounds, not what it says, so
the annotations made on the original still describe the copy. The copy takes over, unchanged, the
original's annotations, its final label (with its method: an open disagreement stays open for a
reviewer, an adjudication stays adjudicated), its flags, its gold-example links, the annotators'
claims and skips, and its queue state (annotations needed, given, priority). The original is
retired with no workflow left on it; its audio and the dataset versions that hold it are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import Annotation, Claim, Clip, ClipFlag, GoldExample, Resolution, utcnow

#: Final-label methods that settle a disagreement (a person or the project's rule decided).
SETTLED = ("adjudicated", "unanimous", "majority")
_MOVED = (
    ("annotations", Annotation),
    ("resolution", Resolution),
    ("flags", ClipFlag),
    ("gold_examples", GoldExample),
    ("claims", Claim),
)


def carry_workflow(s: Session, old: Clip, new: Clip) -> dict[str, Any]:
    """Move ``old``'s workflow onto ``new`` (a clip just made from it), in the caller's transaction.

    Lock ``old`` (``SELECT … FOR UPDATE``) before calling, so no annotation lands on it meanwhile.
    Returns what moved, for the audit event: ids of annotations, flags and gold examples, the final
    label's method (or None) and the number of claims.
    """
    moved: dict[str, Any] = {
        "annotations": list(s.scalars(select(Annotation.id).where(Annotation.clip_id == old.id))),
        "resolution": s.scalar(select(Resolution.method).where(Resolution.clip_id == old.id)),
        "flags": list(s.scalars(select(ClipFlag.id).where(ClipFlag.clip_id == old.id))),
        "gold_examples": list(s.scalars(select(GoldExample.id).where(GoldExample.clip_id == old.id))),
        "claims": s.scalar(select(func.count()).select_from(Claim).where(Claim.clip_id == old.id)) or 0,
    }
    for _, model in _MOVED:
        s.execute(
            update(model)
            .where(model.clip_id == old.id)
            .values(clip_id=new.id)
            .execution_options(synchronize_session=False)
        )
    new.annotations_needed = old.annotations_needed
    new.annotation_count = old.annotation_count
    new.priority = old.priority
    old.annotation_count = 0  # its annotations now belong to the copy
    return moved


@dataclass(frozen=True)
class WorkflowSummary:
    """What the workflow of a set of clips holds: what a fix would hand to the fixed copies."""

    n_clips: int
    annotations: int
    annotated_clips: int
    waiting: int  # clips still waiting for annotations (in the labeling queue)
    disagreements: int  # clips whose annotators disagree, not yet settled by a reviewer or a rule
    final_labels: int
    adjudicated: int
    open_flags: int
    gold_examples: int  # clips that are gold examples (of any conventions version)
    claims: int  # annotators holding or having skipped one of the clips right now

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def workflow_summary(s: Session, clip_ids: Sequence[int]) -> WorkflowSummary:
    """Count the workflow held by ``clip_ids`` (read-only)."""
    ids = sorted({int(c) for c in clip_ids})
    counts = {k: 0 for k in WorkflowSummary.__dataclass_fields__}
    counts["n_clips"] = len(ids)
    now = utcnow()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        per_clip = s.execute(
            select(
                Annotation.clip_id,
                func.count(),
                func.count(func.distinct(Annotation.label)),
                func.count(func.distinct(Annotation.transcript)),
            )
            .where(Annotation.clip_id.in_(chunk))
            .group_by(Annotation.clip_id)
        ).all()
        resolved = select(Resolution.clip_id, Resolution.method).where(Resolution.clip_id.in_(chunk))
        methods = dict(s.execute(resolved).all())
        counts["annotations"] += sum(r[1] for r in per_clip)
        counts["annotated_clips"] += len(per_clip)
        counts["disagreements"] += sum(
            max(labels, texts) > 1 and methods.get(cid) not in SETTLED for cid, _, labels, texts in per_clip
        )
        counts["final_labels"] += len(methods)
        counts["adjudicated"] += sum(1 for m in methods.values() if m == "adjudicated")
        counts["waiting"] += (
            s.scalar(
                select(func.count())
                .select_from(Clip)
                .where(Clip.id.in_(chunk), Clip.annotation_count < Clip.annotations_needed)
            )
            or 0
        )
        counts["open_flags"] += (
            s.scalar(
                select(func.count())
                .select_from(ClipFlag)
                .where(ClipFlag.clip_id.in_(chunk), ClipFlag.resolved_at.is_(None))
            )
            or 0
        )
        counts["gold_examples"] += (
            s.scalar(
                select(func.count(func.distinct(GoldExample.clip_id))).where(GoldExample.clip_id.in_(chunk))
            )
            or 0
        )
        counts["claims"] += (
            s.scalar(
                select(func.count())
                .select_from(Claim)
                .where(Claim.clip_id.in_(chunk), Claim.expires_at > now)
            )
            or 0
        )
    return WorkflowSummary(**counts)
