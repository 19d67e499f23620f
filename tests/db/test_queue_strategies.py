"""Active-learning queue orders and adaptive overlap, on SQLite and PostgreSQL.

Clips are ranked by the queue-scoring job from a model run's class probabilities; whatever the
ranking, the queue keeps its promises: no clip gets more annotations than it needs (k, or max k
with adaptive overlap), and no annotator is shown another's label.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, insert, select

import labeling.job_kinds  # noqa: F401  (registers the job kinds)
from db.models import Annotation, Clip, ClipQueue, Job, ModelRun, Prediction, Resolution
from labeling.annotate.annotations import label_task, submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import apply_settings, create_project, preview_settings
from labeling.data.queue_order import QUEUE_ORDERS
from labeling.model.queue_scores import score_queue
from labeling.model.runs import learning_curve_points, learning_curve_summary
from labeling.platform.auth import add_user
from labeling.platform.jobs import queue_once, queue_report_refreshes, run_worker
from tests.audio import speechlike, write_wav
from tests.db.test_queue import add_clips

#: P(yes) per clip, by position: the margin strategy should serve 0.5 first, then 0.6 / 0.4 …
P_YES = [0.99, 0.9, 0.6, 0.5, 0.97, 0.8, 0.45, 0.1, 0.02, 0.7, 0.3, 0.95]


@pytest.fixture
def scored(workspace):
    """A yes/no project with k = 2, twelve clips, a model run's probabilities, three annotators."""
    ws = workspace
    with ws.db.write() as s:
        p = create_project(
            s, name="al", task_kind="classification", classes=["yes", "no"], annotations_per_clip=2
        )
        clips = add_clips(s, p.id, len(P_YES), k=2)
        # Twenty clips whose final labels came with them: what a committee and diversity learn from.
        known = add_clips(s, p.id, 20, k=0)
        s.execute(
            insert(Resolution),
            [
                {"clip_id": c, "project_id": p.id, "label": "yes" if i % 2 else "no", "method": "imported"}
                for i, c in enumerate(known)
            ],
        )
        for i, key in enumerate(s.scalars(select(Clip.storage_key).where(Clip.project_id == p.id))):
            write_wav(ws.store.path(key), speechlike(i, 0.3, sr=8000), sr=8000)
        run = ModelRun(project_id=p.id, kind="builtin", name="r", code_fingerprint="x", classes=["yes", "no"])
        s.add(run)
        s.flush()
        s.execute(
            insert(Prediction),
            [
                {
                    "run_id": run.id,
                    "clip_id": c,
                    "label": "yes" if q >= 0.5 else "no",
                    "probabilities": [q, 1 - q],
                }
                for c, q in zip(clips, P_YES, strict=True)
            ],
        )
        users = [add_user(s, name=n, role="annotator").id for n in ("ana", "ben", "cho")]
        admin = add_user(s, name="boss", role="admin").id
    return ws, p.id, clips, users, admin


def _settings(ws, pid, admin, **settings):
    """Apply workflow settings as the settings page does: preview, then confirm with its token."""
    with ws.db.write() as s:
        preview = preview_settings(s, pid, {"settings": settings})
        apply_settings(s, pid, {"settings": settings}, actor_id=admin, token=preview.token)


def _next(ws, pid, uid):
    with ws.db.write() as s:
        item = next_clip(s, pid, uid)
    return None if item is None else item.clip_id


def test_margin_serves_the_clip_the_model_is_least_sure_of_first(scored):
    ws, pid, clips, (ana, ben, _), admin = scored
    # Unscored, the queue goes by id.
    assert _next(ws, pid, ana) == clips[0]
    with ws.db.write() as s:
        assert queue_report_refreshes(s, pid) == [
            "data_summaries",
            "data_checks",
            "agreement",
            "review_queue",
        ]  # no scoring wanted yet
    _settings(ws, pid, admin, queue_order="margin", queue_random_share=0)
    result = score_queue(ws, pid)
    assert result.scored
    assert result.n_scored == len(clips)
    # |P(yes) - P(no)| is 0 for 0.5, 0.1 for 0.45, 0.2 for 0.6 and 0.4, … (worked by hand).
    assert _next(ws, pid, ben) == clips[3]
    with ws.db.read() as s:
        prio = dict(
            s.execute(select(ClipQueue.clip_id, ClipQueue.priority).where(ClipQueue.project_id == pid)).all()
        )
    by_priority = sorted(clips, key=lambda c: -prio[c])
    assert by_priority[:2] == [clips[3], clips[6]]
    assert set(by_priority[-2:]) == {clips[0], clips[8]}  # 0.99 and 0.02: margin 0.98 and 0.96
    assert by_priority[-1] == clips[0]


def test_the_job_scores_again_only_after_enough_new_labels(scored):
    ws, pid, _clips, (ana, ben, cho), admin = scored
    _settings(ws, pid, admin, queue_order="entropy", queue_rescore_every=3)
    with ws.db.write() as s:
        assert not queue_once(s, "queue_scores", pid)  # saving the setting queued it already
    assert run_worker(ws, once=True, kinds=["queue_scores"]) == 1
    for uid in (ana, ben):
        clip = _next(ws, pid, uid)
        with ws.db.write() as s:
            assert submit_annotation(s, pid, uid, clip, label="yes").status == "created"
    run_worker(ws, once=True, kinds=["queue_scores"])  # the labels queued it
    with ws.db.read() as s:
        results = [
            j for j in s.scalars(select(Job.result).where(Job.kind == "queue_scores").order_by(Job.id))
        ]
    assert results[0]["scored"] is True
    assert results[-1]["scored"] is False
    assert "2 of 3 new labels" in results[-1]["summary"]
    clip = _next(ws, pid, cho)
    with ws.db.write() as s:
        submit_annotation(s, pid, cho, clip, label="no")
    run_worker(ws, once=True, kinds=["queue_scores"])
    with ws.db.read() as s:
        last = s.scalar(select(Job.result).where(Job.kind == "queue_scores").order_by(Job.id.desc()).limit(1))
    assert last["scored"] is True
    assert last["reason"] == "3 new labels"


ORDERS = list(QUEUE_ORDERS)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed_k", "adaptive"])
def test_every_order_keeps_k_and_blindness(scored, order, adaptive):
    ws, pid, clips, users, admin = scored
    settings = {"queue_order": order, "queue_random_share": 0.25}
    if adaptive:
        settings["adaptive_overlap"] = {"min_k": 1, "max_k": 3, "target": 0.9}
    _settings(ws, pid, admin, **settings)
    first = score_queue(ws, pid)
    if QUEUE_ORDERS[order].strategy:  # ranked by the strategy itself, not a fallback
        assert first.scored
        assert first.strategy == f"{order}+random25"
    most = 3 if adaptive else 2
    given = 0
    while True:
        served = 0
        for i, uid in enumerate(users):
            clip = _next(ws, pid, uid)
            if clip is None:
                continue
            served += 1
            with ws.db.read() as s:
                task = label_task(s, ws.store, pid, uid, clip)
            # Blind: the page shows the annotator nothing of anyone's label, their own only once made.
            assert task.mine is None
            assert task.prediction is None
            label = "yes" if (clip + i) % 3 else "no"  # annotators disagree now and then
            with ws.db.write() as s:
                assert submit_annotation(s, pid, uid, clip, label=label).status == "created"
            given += 1
            if given % 4 == 0:
                score_queue(ws, pid, force=True)  # the job, between labels
        if not served:
            break
    with ws.db.read() as s:
        per_clip = dict(
            s.execute(select(Annotation.clip_id, func.count()).group_by(Annotation.clip_id)).all()
        )
        rows = s.execute(
            select(Clip.id, Clip.annotation_count, Clip.annotations_needed).where(Clip.id.in_(clips))
        ).all()
        pairs = s.execute(
            select(
                func.count(), func.count(func.distinct(Annotation.clip_id * 1000 + Annotation.annotator_id))
            )
        ).one()
    assert pairs[0] == pairs[1]  # nobody labelled a clip twice
    for clip_id, count, needed in rows:
        assert per_clip.get(clip_id, 0) == count <= needed <= most
        assert count >= 1  # every clip was labelled
    if not adaptive:
        assert all(count == 2 for _, count, _ in rows)
    else:
        assert {count for _, count, _ in rows} <= {1, 2, 3}


def test_runs_are_learning_curve_points_per_strategy(scored):
    ws, pid, _clips, _users, _admin = scored
    with ws.db.write() as s:
        for strategy, labels, accuracy in (
            ("margin+random10", 10, 0.6),
            ("margin+random10", 30, 0.8),
            ("unlabelled_first", 20, 0.5),
        ):
            s.add(
                ModelRun(
                    project_id=pid,
                    kind="builtin",
                    name=f"{strategy} {labels}",
                    code_fingerprint="x",
                    classes=["yes", "no"],
                    metrics={"test": {"n": 10, "accuracy": accuracy}},
                    queue_strategy=strategy,
                    labels_spent=labels,
                )
            )
    with ws.db.read() as s:
        points = learning_curve_points(s, pid)
    # The run of the fixture recorded neither, so it is not a point.
    assert points[["strategy", "labels_spent", "accuracy"]].values.tolist() == [
        ["margin+random10", 10, 0.6],
        ["margin+random10", 30, 0.8],
        ["unlabelled_first", 20, 0.5],
    ]
    summary = learning_curve_summary(points).set_index("strategy")
    # Trapezoid between (10, 0.6) and (30, 0.8), divided by the width: (0.6 + 0.8) / 2.
    assert summary.loc["margin+random10", "mean_accuracy"] == pytest.approx(0.7)
    assert np.isnan(summary.loc["unlabelled_first", "mean_accuracy"])  # one point has no area


def test_adaptive_overlap_asks_again_only_where_the_majority_is_doubtful(scored):
    """Worked by hand: ``ben`` is right on 14 of 20 known clips (0.7 per class), so one answer of his
    multiplies the odds of his class by 0.7 / 0.3 ≈ 2.33; the prior mixes the class shares (1/2)
    and the model half and half. Clip 0 (model P(yes) 0.99), ben "yes": prior 0.745, posterior
    0.745·2.33 / (0.745·2.33 + 0.255) ≈ 0.87 ≥ 0.8, done at one. Clip 3 (0.5): 0.5 → 0.7 < 0.8, one
    more. Clip 7 (0.1), ben "yes": prior 0.3 → 0.5, one more."""
    ws, pid, clips, (ana, ben, cho), admin = scored
    with ws.db.write() as s:
        known = s.execute(select(Resolution.clip_id, Resolution.label).order_by(Resolution.clip_id)).all()
        wrong = {c for c, _ in known[:3]} | {c for c, _ in known[-3:]}  # three of each class
        flip = {"yes": "no", "no": "yes"}
        s.execute(
            insert(Annotation),
            [
                {
                    "project_id": pid,
                    "clip_id": c,
                    "annotator_id": who,
                    "label": flip[label] if who == ben and c in wrong else label,
                }
                for c, label in known
                for who in (ana, ben, cho)
            ],
        )
    _settings(ws, pid, admin, adaptive_overlap={"min_k": 1, "max_k": 3, "target": 0.8})
    score_queue(ws, pid)
    with ws.db.read() as s:
        needed = dict(s.execute(select(Clip.id, Clip.annotations_needed).where(Clip.id.in_(clips))).all())
    assert set(needed.values()) == {1}  # nobody answered yet: min_k
    for clip in (clips[0], clips[3], clips[7]):
        with ws.db.write() as s:
            assert submit_annotation(s, pid, ben, clip, label="yes").status == "created"
    result = score_queue(ws, pid)
    assert result.overlap["how"] == "Dawid–Skene posteriors"
    with ws.db.read() as s:
        needed = dict(s.execute(select(Clip.id, Clip.annotations_needed).where(Clip.id.in_(clips))).all())
    assert (needed[clips[0]], needed[clips[3]], needed[clips[7]]) == (1, 2, 2)
    # The queue now offers clip 3 and 7 to someone else, never clip 0, and never to ben again.
    assert _next(ws, pid, ben) not in {clips[0], clips[3], clips[7]}
    served = {_next(ws, pid, who) for who in (ana, cho)}
    assert clips[0] not in served


def _queued_scorings(ws, pid):
    with ws.db.read() as s:
        return s.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == "queue_scores", Job.project_id == pid, Job.status == "queued")
        )


def test_training_from_the_command_line_records_the_strategy_and_queues_scoring(scored, monkeypatch):
    """Whoever trains, the run records the queue order in force and the annotations given so far,
    and a project whose queue a model ranks gets the scoring job queued in the same step."""
    from labeling.cli import main

    ws, pid, _clips, (ana, ben, _), admin = scored
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    # Default order: nothing to rank, so nothing is queued.
    assert main(["train", "--project", "al", "--name", "plain"]) == 0
    assert _queued_scorings(ws, pid) == 0
    _settings(ws, pid, admin, queue_order="margin", queue_random_share=0.1)
    run_worker(ws, once=True, kinds=["queue_scores"])  # the scoring the setting change queued
    for uid in (ana, ben):
        clip = _next(ws, pid, uid)
        with ws.db.write() as s:
            submit_annotation(s, pid, uid, clip, label="yes")
    run_worker(ws, once=True, kinds=["queue_scores"])
    assert _queued_scorings(ws, pid) == 0
    assert main(["train", "--project", "al", "--name", "ranked"]) == 0
    assert _queued_scorings(ws, pid) == 1
    with ws.db.read() as s:
        runs = dict(
            (name, (strategy, spent))
            for name, strategy, spent in s.execute(
                select(ModelRun.name, ModelRun.queue_strategy, ModelRun.labels_spent)
            )
        )
        newest = s.scalar(select(func.max(ModelRun.id)))
    assert runs["plain"] == ("unlabelled_first", 0)
    assert runs["ranked"] == ("margin+random10", 2)
    assert run_worker(ws, once=True, kinds=["queue_scores"]) == 1
    with ws.db.read() as s:
        last = s.scalar(select(Job.result).where(Job.kind == "queue_scores").order_by(Job.id.desc()).limit(1))
    assert last["scored"] is True
    assert last["reason"] == "a new model run"
    assert last["run_id"] == newest


def test_turning_adaptive_overlap_off_gives_clips_the_projects_k_again(scored):
    """k = 2. Adaptive overlap asked one annotation of most clips and three of a few; once it is off,
    each goes back to two, except where that would refuse work already given or being given."""
    from db.models import AuditEvent
    from labeling.annotate.queue import hold_clip
    from labeling.data.projects import SettingsNeedConfirmation

    ws, pid, clips, (ana, ben, cho), admin = scored
    _settings(ws, pid, admin, adaptive_overlap={"min_k": 1, "max_k": 3, "target": 0.9})
    score_queue(ws, pid)
    raised_open, raised_full, raised_held, lowered_done = clips[:4]
    with ws.db.write() as s:
        assert set(s.scalars(select(Clip.annotations_needed).where(Clip.id.in_(clips)))) == {1}
        s.execute(
            Clip.__table__.update()
            .where(Clip.id.in_([raised_open, raised_full, raised_held]))
            .values(annotations_needed=3)
        )
    for uid in (ana, ben, cho):
        with ws.db.write() as s:
            submit_annotation(s, pid, uid, raised_full, label="yes")
    for uid in (ana, ben):
        with ws.db.write() as s:
            submit_annotation(s, pid, uid, raised_held, label="yes")
    with ws.db.write() as s:
        hold_clip(s, pid, cho, raised_held)  # cho is labelling it now
        submit_annotation(s, pid, ana, lowered_done, label="no")
    off = {"settings": {"adaptive_overlap": {}}}
    with ws.db.read() as s:
        preview = preview_settings(s, pid, off)
    assert preview.confirm
    said = " ".join(preview.effects)
    assert "9 clips it asked fewer annotations of go back to k = 2 (9 more annotations" in said
    assert "1 clip it asked more annotations of goes back to k = 2" in said
    assert "2 clips keep more than k = 2" in said
    with pytest.raises(SettingsNeedConfirmation), ws.db.write() as s:
        apply_settings(s, pid, off, actor_id=admin)
    with ws.db.write() as s:
        apply_settings(s, pid, off, actor_id=admin, token=preview.token)
    with ws.db.read() as s:
        needed = dict(s.execute(select(Clip.id, Clip.annotations_needed).where(Clip.id.in_(clips))).all())
        audit = s.scalars(
            select(AuditEvent.new).where(AuditEvent.entity == "project").order_by(AuditEvent.id.desc())
        ).first()
    assert needed.pop(raised_full) == 3  # three given: none is taken back
    assert needed.pop(raised_held) == 3  # two given and cho's in hand
    assert set(needed.values()) == {2}
    assert audit["clips_back_to_k"] == 10
    # The clip ana labelled alone is open again, for someone else.
    assert _next(ws, pid, ana) != lowered_done
    with ws.db.write() as s:
        cho_clip = next_clip(s, pid, cho)
    assert cho_clip is not None
    assert cho_clip.clip_id == raised_held  # cho's claim still stands
    # Switching it on again and off again changes nothing more.
    _settings(ws, pid, admin, adaptive_overlap={"min_k": 2, "max_k": 3, "target": 0.9})
    with ws.db.read() as s:
        assert preview_settings(s, pid, off).confirm is False
