"""The queue-scoring job's work: active-learning priorities and adaptive overlap, in the background.

Call :func:`score_queue` (the ``queue_scores`` job kind does, after each training run and once the
labels settle after a burst of labelling). It does two things, each only when the project asks for it:

- **priorities** (the queue order is an active-learning strategy, :data:`~labeling.data.queue_order.
  SCORED_ORDERS`): the clips without a final label are ranked by
  :func:`analysis.active.clip_priorities` from the given run's (the live model's) or else the newest
  run's class probabilities — for a committee, copies of the fixed model fitted on cross-validation
  folds of the final labels; for diversity, the clips' audio features — and the ranks are written to
  ``clips.priority`` in bulk. This is redone when the run changes, the strategy changes, or
  ``queue_rescore_every`` labels were added since the last scoring; otherwise the job stops at once.
- **adaptive overlap** (``settings["adaptive_overlap"]``): annotator reliabilities are estimated by
  Dawid–Skene on every class label of the project, and :func:`analysis.overlap.overlap_decisions`
  says for each open clip without a final label whether it needs another annotation; its
  ``annotations_needed`` becomes ``n + 1`` or ``n`` (``min_k`` for clips nobody answered yet). It is
  never set below what a clip has plus the live claims others hold on it, so no one's work is
  refused, and each write checks the count it was computed from, so a submit in between wins.

Nothing here runs while a clip is handed out or a label is submitted: the queue only sorts by the
stored priority and checks the stored ``annotations_needed``, so blindness and the k-overlap
invariants are the queue's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from analysis.active import STRATEGIES, clip_priorities, committee_probabilities
from analysis.overlap import dawid_skene, overlap_decisions
from db.models import Annotation, Claim, Clip, Job, ModelRun, Prediction, Project, Resolution, utcnow
from labeling.data.features import project_features
from labeling.data.queue_order import (
    OverlapSettings,
    overlap_settings,
    queue_strategy,
    rescore_every,
)
from labeling.platform.workspace import Workspace

KIND = "queue_scores"
CHUNK = 2000


@dataclass(frozen=True)
class ScoringResult:
    """What one pass of the queue-scoring job did (the job's result)."""

    scored: bool  # priorities were written this time
    reason: str  # why they were or were not
    strategy: str | None
    run_id: int | None  # the run whose probabilities ranked the clips
    last_annotation_id: int  # the newest annotation the last scoring saw (carried forward)
    scored_with: str | None = None  # the strategy (with its random share) of the last scoring
    n_scored: int = 0
    n_changed: int = 0
    n_random: int = 0
    overlap: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        head = (
            f"Scored {self.n_scored:,} clips by {self.strategy} ({self.n_changed:,} moved)"
            if self.scored
            else f"Priorities unchanged: {self.reason}"
        )
        if self.overlap.get("changed") is not None:
            head += f"; adaptive overlap changed {self.overlap['changed']:,} clips"
        return head

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def scoring_wanted(s: Session, project_id: int) -> bool:
    """Whether a project's labels changing calls for the job: its queue order is an active-learning
    strategy or adaptive overlap is on (one read of the project's settings)."""
    settings = s.scalar(select(Project.settings).where(Project.id == project_id))
    return queue_strategy(settings) is not None or overlap_settings(settings) is not None


def _previous(s: Session, project_id: int) -> dict[str, Any]:
    """The result of the newest finished scoring of this project (its state), or {}."""
    result = s.scalar(
        select(Job.result)
        .where(Job.kind == KIND, Job.project_id == project_id, Job.status == "succeeded")
        .order_by(Job.id.desc())
        .limit(1)
    )
    return dict(result or {})


def newest_scored_run(s: Session, project_id: int) -> int | None:
    """The newest run of a project with class probabilities (two classes or more)."""
    for run_id, classes in s.execute(
        select(ModelRun.id, ModelRun.classes)
        .where(ModelRun.project_id == project_id)
        .order_by(ModelRun.id.desc())
        .limit(20)
    ):
        if len(classes or []) >= 2:
            return int(run_id)
    return None


def run_probabilities(s: Session, run_id: int) -> pd.DataFrame | None:
    """A run's class probabilities, index ``clip_id``, one column per class; None when it has none."""
    classes = [str(c) for c in (s.scalar(select(ModelRun.classes).where(ModelRun.id == run_id)) or [])]
    rows = [
        (cid, probs)
        for cid, probs in s.execute(
            select(Prediction.clip_id, Prediction.probabilities).where(Prediction.run_id == run_id)
        )
        if probs is not None and len(probs) == len(classes)
    ]
    if len(classes) < 2 or not rows:
        return None
    return pd.DataFrame(
        [p for _, p in rows], index=pd.Index([c for c, _ in rows], name="clip_id"), columns=classes
    ).astype("float64")


def _pool(s: Session, project_id: int) -> pd.DataFrame:
    """Live clips with their counts and final-label state (``needed`` 0: not for the queue, e.g. an
    augmented copy or a clip whose final label came with it)."""
    final = select(Resolution.clip_id, Resolution.label).subquery()
    q = (
        select(
            Clip.id,
            Clip.annotation_count,
            Clip.annotations_needed,
            Clip.priority,
            final.c.clip_id.is_not(None),
            final.c.label,
        )
        .outerjoin(final, final.c.clip_id == Clip.id)
        .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
        .order_by(Clip.id)
    )
    frame = pd.DataFrame(
        s.execute(q).all(), columns=["clip_id", "count", "needed", "priority", "resolved", "final"]
    )
    frame["resolved"] = frame["resolved"].astype(bool)
    return frame


def _write(s: Session, column: str, rows: list[dict[str, Any]], guard: bool = False) -> int:
    """Bulk ``UPDATE clips SET column = :v WHERE id = :b_id`` (and the count unchanged, if ``guard``)."""
    stmt = update(Clip).where(Clip.id == bindparam("b_id")).values({column: bindparam("v")})
    if guard:
        stmt = stmt.where(Clip.annotation_count == bindparam("b_count"))
    done = 0
    conn = s.connection()
    for start in range(0, len(rows), CHUNK):
        result = conn.execute(stmt, rows[start : start + CHUNK])
        done += int(result.rowcount or 0)
    return done


def _features(ws: Workspace, project_id: int, clip_ids: list[int]) -> pd.DataFrame | None:
    """The clips' audio features; None when some clip's audio cannot be read."""
    try:
        return project_features(ws, project_id, clip_ids=clip_ids)
    except (ValueError, OSError):
        return None


def _committee(
    ws: Workspace, project_id: int, run_id: int, pool: pd.DataFrame, labelled: pd.DataFrame
) -> np.ndarray | None:
    """Committee probabilities of the pool's clips, in the order of the run's classes; None if no
    committee can be fitted (too few final labels)."""
    from analysis.model import build_pipeline, one_blas_thread

    with ws.db.read() as s:
        run = s.get(ModelRun, run_id)
        params = dict(run.params or {}) if run is not None else {}
        classes = [str(c) for c in (run.classes if run is not None else [])]
    kwargs = {k: v for k, v in params.items() if k in (build_pipeline.__kwdefaults__ or {})}
    ids = [*labelled["clip_id"].tolist(), *pool["clip_id"].tolist()]
    feats = _features(ws, project_id, ids)
    if feats is None:
        return None
    x_lab = feats.reindex(labelled["clip_id"]).to_numpy()
    x_pool = feats.reindex(pool["clip_id"]).to_numpy()
    try:
        with one_blas_thread():
            members, fitted = committee_probabilities(
                build_pipeline(**kwargs), x_lab, labelled["final"].astype(str).to_numpy(), x_pool
            )
    except ValueError:
        return None
    out = np.zeros((members.shape[0], members.shape[1], max(len(classes), len(fitted))))
    order = classes or [str(c) for c in fitted]
    for j, c in enumerate(fitted):
        if str(c) in order:
            out[:, :, order.index(str(c))] = members[:, :, j]
    return out


def _priorities(
    ws: Workspace,
    project_id: int,
    settings: Mapping[str, Any],
    run_id: int | None,
    clips: pd.DataFrame,
    progress: Callable[[int, int], None] | None,
) -> tuple[pd.Series, pd.Series, str]:
    """The priorities of the clips without a final label, the random lane, and what ranked them."""
    strategy = queue_strategy(settings)
    assert strategy is not None
    pool = clips[~clips["resolved"] & (clips["needed"] > 0)]
    labelled = clips[clips["resolved"] & clips["final"].notna()]
    proba = committee = features = labelled_features = None
    how = strategy.name
    if run_id is None:
        how = "random (no model run yet)"
    else:
        with ws.db.read() as s:
            proba = run_probabilities(s, run_id)
        if proba is None:
            how = f"random (run {run_id} has no class probabilities)"
        elif strategy.needs_committee:
            if progress:
                progress(0, 2)
            committee = _committee(ws, project_id, run_id, pool, labelled)
            if committee is None:
                how = "random (no committee: too few final labels, or clips without readable audio)"
        if strategy.diversity and proba is not None:
            features = _features(ws, project_id, [*pool["clip_id"].tolist(), *labelled["clip_id"].tolist()])
            if features is None:
                # Uncertainty alone still ranks the clips; only the spreading-out needs the audio.
                strategy = STRATEGIES["margin"].with_random_share(strategy.random_share)
                how = f"{strategy.name} (no features: clips without readable audio)"
            else:
                labelled_features = features.reindex(labelled["clip_id"]).to_numpy(dtype=np.float64)
    use = None if how.startswith("random") else strategy
    priority, lane = clip_priorities(
        pool["clip_id"].to_numpy(),
        use,
        proba=proba,
        committee=committee,
        features=features,
        labelled_features=labelled_features,
        random_state=project_id,
    )
    return priority, lane, how


def _adaptive_overlap(
    s: Session, project_id: int, rule: OverlapSettings, proba: pd.DataFrame | None
) -> dict[str, Any]:
    """Set ``annotations_needed`` of the open clips without a final label from the evidence so far."""
    clips = _pool(s, project_id)
    ann = pd.DataFrame(
        s.execute(
            select(Annotation.clip_id, Annotation.annotator_id, Annotation.label, Annotation.unsure)
            .join(Clip, Clip.id == Annotation.clip_id)
            .where(
                Annotation.project_id == project_id, Annotation.label.is_not(None), Clip.deleted_at.is_(None)
            )
        ).all(),
        columns=["clip_id", "annotator_id", "label", "unsure"],
    )
    held = dict(
        s.execute(
            select(Claim.clip_id, func.count())
            .join(Clip, Clip.id == Claim.clip_id)
            .where(
                Clip.project_id == project_id,
                Claim.skipped_at.is_(None),
                Claim.expires_at > utcnow(),
            )
            .group_by(Claim.clip_id)
        ).all()
    )
    todo = clips[~clips["resolved"] & (clips["needed"] > 0)].set_index("clip_id")
    decide = np.where(todo["count"] == 0, rule.min_k, todo["count"]).astype(np.int64)
    decided = pd.Series(decide, index=todo.index)
    reason = "min_k for clips nobody answered"
    if ann["label"].nunique() >= 2:
        model = dawid_skene(ann)
        open_ann = ann[ann["clip_id"].isin(todo.index[todo["count"] > 0])]
        if not open_ann.empty:
            prior = None
            if proba is not None and set(proba.columns) >= {str(c) for c in model.classes}:
                prior = proba[[c for c in model.classes]]
            decisions = overlap_decisions(
                open_ann,
                model=model,
                model_proba=prior,
                min_k=rule.min_k,
                max_k=rule.max_k,
                target=rule.target,
            )
            counted = todo["count"].reindex(decisions.index)
            decided.loc[decisions.index] = np.where(decisions["more_needed"], counted + 1, counted)
        reason = "Dawid–Skene posteriors"
    else:
        # Too few classes answered to estimate reliabilities: min_k for everyone, the rest waits.
        decided = decided.clip(lower=np.minimum(todo["count"].clip(lower=rule.min_k), todo["needed"]))
    floor = np.minimum(todo["count"] + pd.Series(held).reindex(todo.index).fillna(0), todo["needed"])
    new = np.maximum(decided.to_numpy(), floor.to_numpy()).astype(np.int64)
    count = todo["count"].to_numpy()
    changed = np.flatnonzero(new != todo["needed"].to_numpy())
    rows = [{"b_id": int(todo.index[i]), "v": int(new[i]), "b_count": int(count[i])} for i in changed]
    written = _write(s, "annotations_needed", rows, guard=True)
    return {
        "changed": written,
        "more_needed": int((new > count).sum()),
        "rule": rule.to_dict(),
        "how": reason,
    }


def score_queue(
    ws: Workspace,
    project_id: int,
    *,
    run_id: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScoringResult:
    """Write the queue's priorities (when due) and apply adaptive overlap (when on); see the module.

    Parameters
    ----------
    run_id
        The run to rank by (the live model's); default the newest run with class probabilities.
    force
        Score even if nothing changed since the last scoring.
    """
    with ws.db.read() as s:
        settings = dict(s.scalar(select(Project.settings).where(Project.id == project_id)) or {})
        previous = _previous(s, project_id)
        newest = int(
            s.scalar(select(func.max(Annotation.id)).where(Annotation.project_id == project_id)) or 0
        )
        last = int(previous.get("last_annotation_id") or 0)
        new_labels = int(
            s.scalar(
                select(func.count())
                .select_from(Annotation)
                .where(Annotation.project_id == project_id, Annotation.id > last)
            )
            or 0
        )
        run = run_id if run_id is not None else newest_scored_run(s, project_id)
    strategy = queue_strategy(settings)
    rule = overlap_settings(settings)
    overlap: dict[str, Any] = {}
    if rule is not None:
        with ws.db.write() as s:
            proba = run_probabilities(s, run) if run is not None else None
            overlap = _adaptive_overlap(s, project_id, rule, proba)
    if strategy is None:
        return ScoringResult(False, "the queue order needs no scores", None, run, newest, overlap=overlap)
    every = rescore_every(settings)
    if force or not previous.get("scored_with"):
        why = "first scoring" if not force else "asked for"
    elif previous.get("scored_with") != strategy.name:
        why = "the strategy changed"
    elif previous.get("run_id") != run:
        why = "a new model run"
    elif new_labels >= every:
        why = f"{new_labels:,} new labels"
    else:
        return ScoringResult(
            False,
            f"{new_labels:,} of {every:,} new labels since the last scoring",
            previous.get("strategy"),
            previous.get("run_id"),
            last,
            scored_with=previous.get("scored_with"),
            overlap=overlap,
        )
    with ws.db.read() as s:
        clips = _pool(s, project_id)
    priority, lane, how = _priorities(ws, project_id, settings, run, clips, progress)
    current = clips.set_index("clip_id")["priority"].reindex(priority.index)
    values = priority.to_numpy()
    moved = np.flatnonzero(values != current.to_numpy())
    rows = [{"b_id": int(priority.index[i]), "v": int(values[i])} for i in moved]
    with ws.db.write() as s:
        changed = _write(s, "priority", rows)
    if progress:
        progress(1, 1)
    return ScoringResult(
        True,
        why,
        how,
        run,
        newest,
        scored_with=strategy.name,
        n_scored=len(priority),
        n_changed=changed,
        n_random=int(lane.sum()),
        overlap=overlap,
    )
