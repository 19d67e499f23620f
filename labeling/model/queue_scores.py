"""The queue-scoring job's work: active-learning priorities and adaptive overlap, in the background.

Call :func:`score_queue` (the ``queue_scores`` job kind does, after each training run and once the
labels settle after a burst of labelling). It does two things, each only when the project asks for it:

- **priorities** (the queue order is an active-learning strategy, :data:`~labeling.data.queue_order.
  SCORED_ORDERS`): the clips without a final label are ranked by
  :func:`analysis.active.clip_priorities` from the given run's (the live model's) or else the newest
  run's class probabilities — for a committee, copies of the fixed model fitted on cross-validation
  folds of the final labels; for diversity, the clips' audio features — and the ranks are written to
  ``clip_queue.priority`` in bulk, in about a thousand equal steps (:func:`~analysis.active.
  bucketed_priorities`; exact ranks for a queue of fewer than 2,048 clips), so a scoring touches the
  queue index in few places and a rescore rewrites only the clips that changed step. ``clip_queue``
  (:class:`db.models.ClipQueue`) is the narrow table the scored orders sort: a write there is a small
  row and two small indexes per clip, where ``clips`` has a wide row and nine indexes. The clips'
  own ``priority`` (set by hand or by label-issue flagging) is left alone. This is
  redone when the run changes, the strategy changes, or ``queue_rescore_every`` labels were added
  since the last scoring; otherwise the job stops at once.
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

import itertools
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Text, cast, func, null, select
from sqlalchemy.orm import Session

from analysis.active import STRATEGIES, bucketed_priorities, clip_priorities, committee_probabilities
from analysis.overlap import dawid_skene, overlap_decisions
from db.models import (
    Annotation,
    Claim,
    Clip,
    ClipQueue,
    Job,
    ModelRun,
    Prediction,
    Project,
    Resolution,
    utcnow,
)
from labeling.data.features import project_features
from labeling.data.queue_order import (
    OverlapSettings,
    overlap_settings,
    queue_strategy,
    rescore_every,
)
from labeling.platform.columnar import read_frame
from labeling.platform.workspace import Workspace

KIND = "queue_scores"
#: SQLite page cache (KiB) while the job rewrites priorities: the queue indexes of a million clips fit.
SQLITE_WRITE_CACHE_KIB = 256 * 1024
#: Share of the clips table (by largest id) above which SQLite's queue indexes are built again rather
#: than updated clip by clip (PostgreSQL would lock the table for it; it updates them in place).
SQLITE_REBUILD_SHARE = 0.25


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


def scoring_wanted(settings: Mapping[str, Any] | None) -> bool:
    """Whether a project's labels changing calls for the job: with these settings its queue order is
    an active-learning strategy or adaptive overlap is on."""
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


def _parsed(texts: list[Any], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored JSON probability lists as an ``(n_ok, k)`` array, and which of ``texts`` it holds.

    A list of ``k`` numbers is what runs store; other rows (NULL, another length) are left out. All
    the well-formed rows are parsed in one C call (:func:`numpy.fromstring` over their joined text);
    only if that text holds something other than numbers is each row decoded on its own.
    """
    n = len(texts)
    strings = [t if isinstance(t, str) else "" for t in texts]
    commas = np.fromiter(map(str.count, strings, itertools.repeat(",")), dtype=np.int64, count=n)
    ok = (commas == k - 1) & np.fromiter(
        (t[:1] == "[" and t[-1:] == "]" for t in strings), dtype=bool, count=n
    )
    keep = [strings[i] for i in np.flatnonzero(ok)]
    body = ",".join(keep).replace("[", "").replace("]", "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about text it could not read
            values = np.fromstring(body, dtype=np.float64, sep=",") if keep else np.empty(0)
        if values.size == len(keep) * k:
            return values.reshape(len(keep), k), ok
    except (ValueError, DeprecationWarning):
        pass
    rows: list[list[float]] = []
    for i in np.flatnonzero(ok):
        try:
            row = json.loads(strings[i])
            rows.append([float(x) for x in row])
        except (ValueError, TypeError):
            ok[i] = False
    return np.array(rows, dtype=np.float64).reshape(len(rows), k), ok


def _joined_probabilities(s: Session, run_id: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Clip ids and probabilities of a run's well-formed rows from one string the database joins
    (``id,p1,…,pk,id,p1,…``), parsed by one C call; None if some row holds other than numbers."""
    text_ = cast(Prediction.probabilities, Text)
    item = cast(Prediction.clip_id, Text) + "," + func.substr(text_, 2, func.length(text_) - 2)
    postgres = s.get_bind().dialect.name == "postgresql"
    joined = func.string_agg(item, ",") if postgres else func.group_concat(item, ",")
    body = s.scalar(
        select(joined).where(
            Prediction.run_id == run_id,
            text_.like("[%]"),
            func.length(text_) - func.length(func.replace(text_, ",", "")) == k - 1,
        )
    )
    if not body:
        return np.empty(0, dtype=np.int64), np.empty((0, k))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about text it could not read
            values = np.fromstring(body, dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning):
        return None
    if values.size % (k + 1):
        return None
    table = values.reshape(-1, k + 1)
    return table[:, 0].astype(np.int64), table[:, 1:]


def run_probabilities(s: Session, run_id: int) -> pd.DataFrame | None:
    """A run's class probabilities, index ``clip_id``, one column per class; None when it has none.

    Rows that are not a list of one number per class are left out. The stored JSON lists are read in
    bulk (joined into one string by the database and parsed at once; or, if some row holds anything
    but numbers, as a column of texts), never decoded row by row through the ORM."""
    classes = [str(c) for c in (s.scalar(select(ModelRun.classes).where(ModelRun.id == run_id)) or [])]
    if len(classes) < 2:
        return None
    fast = _joined_probabilities(s, run_id, len(classes))
    if fast is not None:
        ids, matrix = fast
    else:
        frame = read_frame(
            s,
            select(Prediction.clip_id, Prediction.probabilities).where(Prediction.run_id == run_id),
            {"clip_id": "int64", "probabilities": "object"},
        )
        matrix, ok = _parsed(frame["probabilities"].tolist(), len(classes))
        ids = frame["clip_id"].to_numpy()[ok]
    if not len(matrix):
        return None
    return pd.DataFrame(matrix, index=pd.Index(ids, name="clip_id"), columns=classes)


def _pool(s: Session, project_id: int, *, labelled: bool = True) -> pd.DataFrame:
    """Live clips with their counts and final-label state (``needed`` 0: not for the queue, e.g. an
    augmented copy or a clip whose final label came with it).

    ``labelled=False`` reads only the clips a strategy ranks (no final label, ``needed`` above 0),
    without their final labels: all that a strategy that learns nothing from labelled clips needs."""
    if not labelled:
        # All from the narrow copy: a tenth of the pages of clips to read.
        q = select(
            ClipQueue.clip_id,
            ClipQueue.annotation_count,
            ClipQueue.annotations_needed,
            ClipQueue.priority,
            ClipQueue.resolved,
            null(),
        ).where(
            ClipQueue.project_id == project_id,
            ClipQueue.deleted_at.is_(None),
            ClipQueue.resolved.is_(False),
            ClipQueue.annotations_needed > 0,
        )
    else:
        final = select(Resolution.clip_id, Resolution.label).subquery()
        q = (
            select(
                Clip.id,
                Clip.annotation_count,
                Clip.annotations_needed,
                ClipQueue.priority,
                final.c.clip_id.is_not(None),
                final.c.label,
            )
            .join(ClipQueue, ClipQueue.clip_id == Clip.id)
            .outerjoin(final, final.c.clip_id == Clip.id)
            .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
        )
    return read_frame(
        s,
        q,
        {
            "clip_id": "int64",
            "count": "int64",
            "needed": "int64",
            "priority": "int64",
            "resolved": "bool",
            "final": "object",
        },
    )


#: What the job writes: column -> (table, its clip id column). The scored priorities go to the narrow
#: ``clip_queue`` (the scored orders sort it; see :class:`db.models.ClipQueue`), the adaptive
#: overlap's ``annotations_needed`` to ``clips``, whose triggers copy it to ``clip_queue``.
_WRITABLE = {"priority": ("clip_queue", "clip_id"), "annotations_needed": ("clips", "id")}


def _sqlite_indexes_to_rebuild(
    cursor: Any, table: str, key: str, column: str, n_rows: int
) -> list[tuple[str, str]]:
    """The indexes of ``table`` that mention ``column`` (name, SQL), when ``n_rows`` is a large share
    of the table (by largest ``key``): building such an index again from a sort is faster than moving
    most of its entries one by one. SQLite's DDL is transactional and readers keep their snapshot, so
    this is invisible to everyone else (writers wait for the job's transaction either way)."""
    largest = cursor.execute(f"SELECT max({key}) FROM {table}").fetchone()[0] or 0
    if n_rows < SQLITE_REBUILD_SHARE * largest:
        return []
    rows = cursor.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,),
    ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows if column in sql]


def _write(
    s: Session, column: str, ids: np.ndarray, values: np.ndarray, counts: np.ndarray | None = None
) -> int:
    """Set ``column`` of the clips ``ids`` to ``values`` in one statement (and only where the clip's
    count is still ``counts``, if given); returns the rows written.

    The new values go to a temporary table (executemany on SQLite, COPY on PostgreSQL), then one
    ``UPDATE … FROM`` joins it on the primary key: no statement per clip."""
    if column not in _WRITABLE:
        raise ValueError(f"cannot write clips.{column}")
    if not len(ids):
        return 0
    table, key = _WRITABLE[column]
    guard = f" AND {table}.annotation_count = t.c" if counts is not None else ""
    update_sql = (
        f"UPDATE {table} SET {column} = t.v FROM queue_scores_new AS t WHERE {table}.{key} = t.id{guard}"
    )
    c = counts if counts is not None else np.zeros(len(ids), dtype=np.int64)
    # In clip order: each page of the table is then rewritten once, not once per clip on it.
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    rows = zip(
        np.asarray(ids, dtype=np.int64)[order].tolist(),
        np.asarray(values, dtype=np.int64)[order].tolist(),
        np.asarray(c, dtype=np.int64)[order].tolist(),
        strict=True,
    )
    conn = s.connection()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("DROP TABLE IF EXISTS queue_scores_new")
        if conn.dialect.name == "postgresql":
            cursor.execute(
                "CREATE TEMPORARY TABLE queue_scores_new (id bigint PRIMARY KEY, v integer, c integer) "
                "ON COMMIT DROP"
            )
            with cursor.copy("COPY queue_scores_new (id, v, c) FROM STDIN") as copy:
                copy.write("".join(map("%d\t%d\t%d\n".__mod__, rows)))
            cursor.execute("ANALYZE queue_scores_new")
            cursor.execute(update_sql)
            done = int(cursor.rowcount or 0)
        else:
            # No key on the scratch table: SQLite walks it in insertion order and finds each clip by
            # its rowid. A larger page cache for this statement keeps the queue indexes it rewrites
            # (at random places: they sort by priority) in memory instead of spilling them.
            cursor.execute("CREATE TEMPORARY TABLE queue_scores_new (id INTEGER, v INTEGER, c INTEGER)")
            cursor.executemany("INSERT INTO queue_scores_new (id, v, c) VALUES (?, ?, ?)", rows)
            rebuilt = _sqlite_indexes_to_rebuild(cursor, table, key, column, len(ids))
            for name, _ in rebuilt:
                cursor.execute(f'DROP INDEX "{name}"')
            cache = cursor.execute("PRAGMA cache_size").fetchone()[0]
            cursor.execute(f"PRAGMA cache_size = {-SQLITE_WRITE_CACHE_KIB}")
            try:
                cursor.execute(update_sql)
                done = int(cursor.rowcount or 0)
                for _, sql in rebuilt:
                    cursor.execute(sql)
            finally:
                cursor.execute(f"PRAGMA cache_size = {int(cache)}")
        cursor.execute("DROP TABLE queue_scores_new")
    finally:
        cursor.close()
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
    ann = read_frame(
        s,
        select(Annotation.clip_id, Annotation.annotator_id, Annotation.label, Annotation.unsure)
        .join(Clip, Clip.id == Annotation.clip_id)
        .where(Annotation.project_id == project_id, Annotation.label.is_not(None), Clip.deleted_at.is_(None)),
        {"clip_id": "int64", "annotator_id": "int64", "label": "object", "unsure": "bool"},
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
    written = _write(
        s, "annotations_needed", todo.index.to_numpy()[changed], new[changed], counts=count[changed]
    )
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
            # Read again under the write lock: adaptive overlap turned off meanwhile has given its
            # clips k again, which this pass must not undo.
            now = overlap_settings(s.scalar(select(Project.settings).where(Project.id == project_id)))
            if now is not None:
                proba = run_probabilities(s, run) if run is not None else None
                overlap = _adaptive_overlap(s, project_id, now, proba)
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
        clips = _pool(s, project_id, labelled=strategy.needs_committee or strategy.diversity)
    priority, lane, how = _priorities(ws, project_id, settings, run, clips, progress)
    current = clips.set_index("clip_id")["priority"].reindex(priority.index)
    values = bucketed_priorities(priority.to_numpy())
    moved = np.flatnonzero(values != current.to_numpy())
    with ws.db.write() as s:
        changed = _write(s, "priority", priority.index.to_numpy()[moved], values[moved])
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
