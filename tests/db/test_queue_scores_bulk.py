"""The queue-scoring job reads a run's stored probabilities in bulk: what a user sees must not change
when some stored rows are odd, and the queue's indexes must survive the bulk write."""

from __future__ import annotations

from sqlalchemy import insert, inspect, select

from db.models import ClipQueue, ModelRun, Prediction
from labeling.data.projects import apply_settings, create_project
from labeling.model.queue_scores import run_probabilities, score_queue
from tests.db.test_queue import add_clips


def _project_with_run(ws, probabilities):
    with ws.db.write() as s:
        p = create_project(s, name="bulk", classes=["yes", "no"], annotations_per_clip=1)
        clips = add_clips(s, p.id, len(probabilities), k=1)
        run = ModelRun(project_id=p.id, kind="builtin", name="r", code_fingerprint="x", classes=["yes", "no"])
        s.add(run)
        s.flush()
        s.execute(
            insert(Prediction),
            [
                {"run_id": run.id, "clip_id": c, "probabilities": probs}
                for c, probs in zip(clips, probabilities, strict=True)
            ],
        )
        apply_settings(s, p.id, {"settings": {"queue_order": "margin", "queue_random_share": 0}})
    return p.id, run.id, clips


def test_rows_that_are_not_one_number_per_class_are_left_out(workspace):
    _, run_id, clips = _project_with_run(
        workspace, [[0.9, 0.1], [0.5, 0.5, 0.0], None, [0.25, 0.75], [1e-05, 0.99999]]
    )
    with workspace.db.read() as s:
        proba = run_probabilities(s, run_id)
    assert proba is not None
    assert proba.index.tolist() == [clips[0], clips[3], clips[4]]
    assert proba.to_numpy().tolist() == [[0.9, 0.1], [0.25, 0.75], [1e-05, 0.99999]]


def test_a_row_holding_text_leaves_the_numeric_rows_readable(workspace):
    _, run_id, clips = _project_with_run(workspace, [[0.6, 0.4], ["a", "b"], [0.3, 0.7]])
    with workspace.db.read() as s:
        proba = run_probabilities(s, run_id)
    assert proba is not None
    assert proba.index.tolist() == [clips[0], clips[2]]
    assert proba.to_numpy().tolist() == [[0.6, 0.4], [0.3, 0.7]]


def test_scoring_every_clip_keeps_the_queue_indexes_and_orders_by_margin(workspace):
    p_yes = [0.99, 0.5, 0.8, 0.62, 0.05]
    pid, _, clips = _project_with_run(workspace, [[q, round(1 - q, 6)] for q in p_yes])
    tables = ("clips", "clip_queue")
    before = {t: {ix["name"] for ix in inspect(workspace.db.engine).get_indexes(t)} for t in tables}
    result = score_queue(workspace, pid)
    assert result.n_changed == len(clips)
    after = {t: {ix["name"] for ix in inspect(workspace.db.engine).get_indexes(t)} for t in tables}
    assert after == before
    with workspace.db.read() as s:
        # The scored orders sort clip_queue, where the job writes their priorities.
        order = s.scalars(
            select(ClipQueue.clip_id).where(ClipQueue.project_id == pid).order_by(ClipQueue.priority.desc())
        ).all()
    # Smallest gap between the two classes first: 0.5, 0.62, 0.8, 0.99 / 0.05 (gap 0.9 each).
    assert order[:3] == [clips[1], clips[3], clips[2]]
    assert set(order[3:]) == {clips[0], clips[4]}
    again = score_queue(workspace, pid, force=True)
    assert again.n_changed == 0
