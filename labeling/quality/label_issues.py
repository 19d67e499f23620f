"""Label-issue candidates of a project: call :func:`find_label_issue_candidates` for the table, and
:func:`flag_label_issues` to send them to review (or :func:`review_label_issues` for both at once).

Every labelled clip, whatever its split, gets class probabilities from the fixed model trained on
folds that did not contain it (:func:`analysis.model.out_of_fold_probabilities`, stratified by class,
not grouped by speaker: the question is whether a label looks wrong, not how the model generalises);
confident learning (:func:`analysis.label_issues.find_label_issues`) picks the clips whose given
label is probably wrong. Flagged clips get a ``ClipFlag`` of kind ``label_issue`` (which the review
page lists) and a higher queue priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from analysis.label_issues import find_label_issues
from analysis.model import out_of_fold_probabilities
from db.models import Clip, ClipFlag, Resolution, utcnow
from labeling.annotate.queue import set_priority
from labeling.data.features import FEATURES_STAGE, project_features
from labeling.data.production_hold import held_back_clip_ids
from labeling.data.projects import get_project
from labeling.data.versions import is_augmented
from labeling.platform.audit import record_many
from labeling.platform.progress import StageProgress
from labeling.platform.workspace import Workspace

FLAG_KIND = "label_issue"
#: Queue priority of a clip sent to review as a label-issue candidate.
REVIEW_PRIORITY = 10
CANDIDATE_COLUMNS = (
    "clip_id",
    "original_name",
    "split",
    "given_label",
    "suggested_label",
    "self_confidence",
    "suggested_confidence",
)


class LabelIssueError(ValueError):
    """Label issues cannot be looked for as asked; the message says why."""


def labelled_clips(s: Session, project_id: int) -> pd.DataFrame:
    """Live clips with a final class label, augmented copies left out: ``clip_id, original_name, split,
    label``.

    An augmented copy inherits its original's label, so it cannot be wrong on its own; and a copy in
    another fold would teach the model the original's label, wrong or not, and hide the issue.
    """
    rows = s.execute(
        select(Clip.id, Clip.original_name, Clip.split, Resolution.label, Clip.derivation)
        .join(Resolution, Resolution.clip_id == Clip.id)
        .where(Clip.project_id == project_id, Clip.deleted_at.is_(None), Resolution.label.is_not(None))
        .where(Clip.id.not_in(held_back_clip_ids(project_id)))
        .order_by(Clip.id)
    ).all()
    kept = [r[:4] for r in rows if not is_augmented(r[4])]
    return pd.DataFrame(kept, columns=["clip_id", "original_name", "split", "label"])


def find_label_issue_candidates(
    ws: Workspace,
    project: str | int,
    *,
    params: Mapping[str, Any] | None = None,
    n_folds: int = 5,
    random_state: int = 0,
    progress: StageProgress | None = None,
) -> pd.DataFrame:
    """Clips whose final label the fixed model finds implausible, most suspicious first.

    Parameters
    ----------
    project
        Name or id.
    params
        Parameters of :func:`analysis.model.build_pipeline` (the project's model, held fixed).
    progress
        ``progress(stage, done, total)``: the audio features per clip, then each cross-validation
        fold (see :mod:`labeling.platform.progress`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CANDIDATE_COLUMNS`, sorted by ``self_confidence`` (the out-of-fold probability
        of the given label) ascending.
    """
    with ws.db.read() as s:
        info = get_project(s, project)
        clips = labelled_clips(s, info.id)
    if clips.empty:
        raise LabelIssueError(f"project {info.name!r} has no clips with a final class label")
    features = project_features(
        ws,
        info.id,
        clip_ids=clips["clip_id"].tolist(),
        progress=None if progress is None else (lambda d, t: progress(FEATURES_STAGE, d, t)),
    )
    labels = pd.Series(clips["label"].astype(object).to_numpy(), index=features.index)
    try:
        proba = out_of_fold_probabilities(
            features, labels, params=params, n_folds=n_folds, random_state=random_state, progress=progress
        )
    except ValueError as exc:
        raise LabelIssueError(f"cannot estimate out-of-fold probabilities: {exc}") from exc
    issues = find_label_issues(proba, labels)
    meta = clips.set_index("clip_id")[["original_name", "split"]]
    out = issues.rename(columns={"key": "clip_id"}).join(meta, on="clip_id")
    return out[list(CANDIDATE_COLUMNS)].reset_index(drop=True)


def flag_label_issues(
    s: Session,
    project_id: int,
    candidates: pd.DataFrame,
    *,
    actor_id: int | None = None,
    priority: int = REVIEW_PRIORITY,
) -> int:
    """Flag candidate clips (``label_issue``) and raise their queue priority; returns clips newly flagged.

    A clip already flagged and still open is left as it is; a flag resolved earlier is reopened with the
    new evidence.
    """
    if candidates.empty:
        return 0
    ids = [int(c) for c in candidates["clip_id"]]
    known = set(s.scalars(select(Clip.id).where(Clip.project_id == project_id, Clip.id.in_(ids))))
    if len(known) != len(set(ids)):
        raise LabelIssueError(f"{len(set(ids) - known)} candidate clips are not clips of this project")
    existing = {
        f.clip_id: f
        for f in s.scalars(select(ClipFlag).where(ClipFlag.kind == FLAG_KIND, ClipFlag.clip_id.in_(ids)))
    }
    now = utcnow()
    changed = []
    for row in candidates.itertuples(index=False):
        detail = {
            "given_label": str(row.given_label),
            "suggested_label": str(row.suggested_label),
            "self_confidence": round(float(row.self_confidence), 4),
            "suggested_confidence": round(float(row.suggested_confidence), 4),
            "method": "confident learning (out-of-fold probabilities of the fixed model)",
        }
        flag = existing.get(int(row.clip_id))
        if flag is None:
            s.add(
                ClipFlag(
                    clip_id=int(row.clip_id),
                    kind=FLAG_KIND,
                    detail=detail,
                    created_by=actor_id,
                    created_at=now,
                )
            )
        elif flag.resolved_at is not None:
            s.execute(
                update(ClipFlag)
                .where(ClipFlag.id == flag.id)
                .values(resolved_at=None, detail=detail, created_at=now)
            )
        else:
            continue
        changed.append((int(row.clip_id), detail))
    s.flush()
    record_many(
        s,
        (
            {"entity": "clip_flag", "entity_id": cid, "action": "create", "new": {"kind": FLAG_KIND, **d}}
            for cid, d in changed
        ),
        actor_id=actor_id,
        project_id=project_id,
    )
    set_priority(s, project_id, ids, priority, actor_id=actor_id)
    return len(changed)


def review_label_issues(
    ws: Workspace,
    project: str | int,
    *,
    actor_id: int | None = None,
    params: Mapping[str, Any] | None = None,
    progress: StageProgress | None = None,
) -> tuple[pd.DataFrame, int]:
    """Find the candidates and send them to review in one call: (candidates, clips newly flagged)."""
    candidates = find_label_issue_candidates(ws, project, params=params, progress=progress)
    with ws.db.write() as s:
        info = get_project(s, project)
        n = flag_label_issues(s, info.id, candidates, actor_id=actor_id)
    return candidates, n


def open_label_issues(s: Session, project_id: int) -> pd.DataFrame:
    """Open ``label_issue`` flags of a project (what the review page lists), most suspicious first:
    ``clip_id, original_name, given_label, suggested_label, self_confidence, flagged_at``."""
    rows = s.execute(
        select(ClipFlag.clip_id, Clip.original_name, ClipFlag.detail, ClipFlag.created_at)
        .join(Clip, Clip.id == ClipFlag.clip_id)
        .where(Clip.project_id == project_id, ClipFlag.kind == FLAG_KIND, ClipFlag.resolved_at.is_(None))
    ).all()
    frame = pd.DataFrame(
        [
            {
                "clip_id": cid,
                "original_name": name,
                "given_label": (d or {}).get("given_label"),
                "suggested_label": (d or {}).get("suggested_label"),
                "self_confidence": (d or {}).get("self_confidence"),
                "flagged_at": at,
            }
            for cid, name, d, at in rows
        ],
        columns=[
            "clip_id",
            "original_name",
            "given_label",
            "suggested_label",
            "self_confidence",
            "flagged_at",
        ],
    )
    return frame.sort_values(["self_confidence", "clip_id"], ignore_index=True)
