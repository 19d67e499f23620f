"""Which project clips came from production traffic and are still held out of the data.

A production clip sent to labeling becomes a project clip so annotators can label it, but it enters
dataset versions, training on the current labels and label-issue detection only once an engineer adds
it (``labeling.monitor.loop.admit_labelled``). Services that select clips for those leave out
:func:`held_back_clip_ids`.
"""

from __future__ import annotations

from sqlalchemy import Select, select

from db.models import ProductionClip


def held_back_clip_ids(project_id: int) -> Select:
    """A subquery of the project's clip ids that came from production and are not admitted yet."""
    return select(ProductionClip.clip_id).where(
        ProductionClip.project_id == project_id,
        ProductionClip.clip_id.is_not(None),
        ProductionClip.admitted_at.is_(None),
    )
