"""An annotator's submitted recordings (My labels), and what happens when they reopen and change one
a reviewer has already settled: the final set is kept, marked as predating their change, and is
settled again by saving it (changed or as it is)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from db.models import AuditEvent
from labeling.annotate.region_labels import my_recordings, region_task, submit_regions
from labeling.annotate.region_review import adjudicate_regions, recording_review
from labeling.data.clips import clip_frame
from labeling.data.export import ExportError, export_project
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project
from labeling.data.regions import changed_after_final, region_fingerprint
from labeling.quality.region_agreement import region_review_queue
from tests.audio import tone, write_wav

ANN = [(0.5, 2.0, "speech"), (2.5, 3.0, "noise"), (3.0, 4.5, "speech")]
BOB = [(0.6, 2.0, "speech"), (3.0, 4.4, "speech")]


@pytest.fixture
def settled(workspace, tmp_path):
    """Two recordings drawn by ann and bob; a.wav adjudicated by rev (ann's set kept)."""
    src = tmp_path / "rec"
    write_wav(src / "a.wav", tone(6.0, freq=220))
    write_wav(src / "b.wav", tone(5.0, freq=330))
    with workspace.db.write() as s:
        info = create_project(
            s, name="meet", task_kind="regions", classes=["speech", "noise"], annotations_per_clip=2
        )
        users = ensure_users(s, {"ann", "bob", "rev"})
    import_path(workspace, src, "meet", create=False)
    with workspace.db.write() as s:
        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
        for who, drawn in (("ann", ANN), ("bob", BOB)):
            for name in ("a.wav", "b.wav"):
                rows = [{"start": a, "end": b, "label": c} for a, b, c in drawn]
                assert submit_regions(s, info.id, users[who], clips[name], rows).ok
        final = [{"start": a, "end": b, "label": c, "text": None} for a, b, c in ANN]
        adjudicate_regions(s, info.id, clips["a.wav"], final, reviewer_id=users["rev"])
    return workspace, info.id, clips, users


def _resubmit(ws, pid, uid, clip, drawn):
    with ws.db.write() as s:
        rows = [{"start": a, "end": b, "label": c} for a, b, c in drawn]
        return submit_regions(s, pid, uid, clip, rows)


def test_my_recordings_count_regions_classes_and_seconds(settled):
    ws, pid, _clips, users = settled
    with ws.db.read() as s:
        mine = my_recordings(s, pid, users["ann"]).set_index("recording")
    assert set(mine.index) == {"a.wav", "b.wav"}
    a = mine.loc["a.wav"]
    assert a["n_regions"] == 3
    assert a["classes"] == "speech ×2, noise ×1"
    assert a["seconds"] == pytest.approx(1.5 + 0.5 + 1.5)
    assert bool(a["adjudicated"])
    assert not bool(mine.loc["b.wav", "adjudicated"])
    assert not mine["changed_after_final"].any()


def test_changing_a_settled_recording_marks_its_final_set_for_review(settled):
    ws, pid, clips, users = settled
    a = clips["a.wav"]
    with ws.db.read() as s:
        assert region_task(s, ws.store, pid, users["bob"], a).adjudicated
        assert changed_after_final(s, pid) == {}
    # Submitting the same regions again changes nothing, so nothing is marked.
    assert _resubmit(ws, pid, users["bob"], a, BOB).status == "already_labelled"
    with ws.db.read() as s:
        assert changed_after_final(s, pid) == {}
    # bob reopens a.wav and hears the noise too: allowed, and the final set now predates his change.
    assert _resubmit(ws, pid, users["bob"], a, [*BOB, (2.5, 3.0, "noise")]).status == "already_labelled"
    with ws.db.read() as s:
        assert changed_after_final(s, pid) == {a: ["bob"]}
        queue = region_review_queue(s, pid).set_index("recording")
        review = recording_review(s, pid, a)
        bob_mine = my_recordings(s, pid, users["bob"]).set_index("recording")
        ann_mine = my_recordings(s, pid, users["ann"]).set_index("recording")
    assert queue.loc["a.wav", "changed_after_final"] == "bob"
    assert pd.isna(queue.loc["b.wav", "changed_after_final"])
    assert queue.loc["a.wav", "final"] == 3  # the final set is kept as it was
    assert review.changed_after_final == ["bob"]
    assert len(review.final) == 3
    assert bool(bob_mine.loc["a.wav", "changed_after_final"])
    assert not bool(ann_mine.loc["a.wav", "changed_after_final"])


def test_saving_the_final_set_again_settles_it_and_is_audited(settled):
    ws, pid, clips, users = settled
    a = clips["a.wav"]
    _resubmit(ws, pid, users["bob"], a, [*BOB, (2.5, 3.0, "noise")])
    with ws.db.read() as s:
        before = region_fingerprint(s, pid)
    final = [{"start": x, "end": y, "label": c, "text": None} for x, y, c in ANN]
    with ws.db.write() as s:
        adjudicate_regions(s, pid, a, final, reviewer_id=users["rev"])  # unchanged: a confirmation
    with ws.db.read() as s:
        assert changed_after_final(s, pid) == {}
        assert region_fingerprint(s, pid) != before  # stored reports see the confirmation
        events = s.execute(
            select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.old, AuditEvent.new)
            .where(AuditEvent.entity == "regions", AuditEvent.entity_id == f"{a}/final")
            .order_by(AuditEvent.id)
        ).all()
    assert [e.action for e in events] == ["create", "update"]
    assert events[-1].new["confirmed"] is True
    assert events[-1].actor_id == users["rev"]
    assert events[-1].old["regions"] == events[-1].new["regions"]


def test_clip_label_exports_refuse_a_regions_project_and_point_to_regions_export(settled, tmp_path):
    ws, _, _, _ = settled
    for fmt in ("annotations", "labelstudio"):
        out = tmp_path / f"out-{fmt}"
        with pytest.raises(ExportError, match="earmark regions export"):
            export_project(ws, "meet", fmt=fmt, out=out)
        assert not out.exists()


def test_a_cut_names_the_recordings_changed_after_their_final_set(settled, monkeypatch, capsys):
    from labeling.cli import main
    from labeling.data.region_clips import cut_final_regions, preview_cut

    ws, pid, clips, users = settled
    with ws.db.read() as s:
        assert preview_cut(s, pid, "meet-clips").changed_after_final_note() is None
    _resubmit(ws, pid, users["bob"], clips["a.wav"], [*BOB, (2.5, 3.0, "noise")])
    with ws.db.read() as s:
        plan = preview_cut(s, pid, "meet-clips")
    assert plan.changed_after_final == {"a.wav": ["bob"]}
    assert "a.wav: changed by bob" in plan.changed_after_final_note()

    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert main(["regions", "cut", "--project", "meet", "--to", "meet-clips", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would make" in dry
    assert "1 recording changed by annotators after its final set was saved" in dry
    assert "a.wav: changed by bob" in dry
    assert main(["regions", "cut", "--project", "meet", "--to", "meet-clips"]) == 0
    made = capsys.readouterr().out
    assert "made from 'meet'" in made
    assert "a.wav: changed by bob" in made
    # The cut itself still takes the final set as it was saved.
    assert len(cut_final_regions(ws, pid, "meet-clips-2").clips) == len(ANN)
