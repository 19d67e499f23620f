"""A data-check fix hands the clip's whole labeling workflow to its fixed copy, on both engines: no
disagreement is settled, no annotation, flag, gold example, claim or queue place is lost."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sqlalchemy import select

from db.models import Annotation, AuditEvent, Clip, ClipFlag, Resolution, User
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip, skip_clip
from labeling.annotate.review import add_gold_example, resolve_clip
from labeling.data.checks import CheckError, fix_clips, preview_fix
from labeling.data.conventions import gold_examples, save_convention
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav

SR = 16000


@pytest.fixture
def project(workspace, tmp_path):
    ws = workspace
    src = tmp_path / "src"
    for i, name in enumerate(["split", "judged", "half", "flagged", "claimed", "fresh"]):
        write_wav(src / f"{name}.wav", np.concatenate([np.zeros(int(0.9 * SR), np.float32), speechlike(i)]))
    import_path(ws, src, "fix")
    with ws.db.write() as s:
        update_project(s, "fix", classes=["yes", "no"], annotations_per_clip=2)
        for name, role in (
            ("ana", "annotator"),
            ("ben", "annotator"),
            ("cy", "annotator"),
            ("rosa", "reviewer"),
        ):
            add_user(s, name=name, role=role, password="password1")
        users = dict(s.execute(select(User.name, User.id)).all())
        clips = dict(s.execute(select(Clip.original_name, Clip.id)).all())
        clips = {k.removesuffix(".wav"): v for k, v in clips.items()}
        pid = s.scalar(select(Clip.project_id).limit(1))
        save_convention(s, pid, text="yes or no")
        for who, clip, label in [
            ("ana", "split", "yes"),
            ("ben", "split", "no"),
            ("ana", "judged", "yes"),
            ("ben", "judged", "no"),
            ("ana", "half", "no"),
            ("ana", "flagged", "yes"),
        ]:
            assert submit_annotation(s, pid, users[who], clips[clip], label=label).ok
        resolve_clip(s, pid, clips["judged"], label="no", reviewer_id=users["rosa"])
        add_gold_example(s, pid, clips["judged"], label="no", explanation="a sigh", actor_id=users["rosa"])
        s.add(ClipFlag(clip_id=clips["flagged"], kind="label_issue", detail={}))
        skip_clip(s, pid, users["cy"], clips["half"])
    with ws.db.write() as s:
        # cy holds "claimed" now: the queue hands out fewest annotations first, then the lowest id.
        held = next_clip(s, pid, users["cy"])
    assert held is not None
    return ws, pid, users, clips, held.clip_id


def test_the_preview_counts_the_workflow_and_writes_nothing(project):
    ws, _, _, clips, _ = project
    preview = preview_fix(ws, "fix", list(clips.values()), actions=["silence"])
    w = preview.workflow
    assert (w.n_clips, w.annotations, w.annotated_clips) == (6, 6, 4)
    assert (w.disagreements, w.final_labels, w.adjudicated) == (1, 1, 1)
    assert (w.open_flags, w.gold_examples) == (1, 1)
    assert w.waiting == 4  # every clip but the two with k = 2 annotations
    assert w.claims == 2  # cy's claim and cy's skip
    assert "6 annotations" in preview.summary()
    with ws.db.read() as s:
        assert s.scalars(select(Clip.id).where(Clip.deleted_at.is_not(None))).all() == []
    with pytest.raises(CheckError, match="not live clips"):
        preview_fix(ws, "fix", [999_999], actions=["silence"])


def test_fixed_copies_take_over_the_workflow_unchanged(project):
    ws, pid, users, clips, held = project
    with ws.db.read() as s:
        before_ann = {(a.clip_id, a.annotator_id, a.label, a.id) for a in s.scalars(select(Annotation))}
        queue_before = {
            c.id: (c.annotation_count, c.annotations_needed, c.priority) for c in s.scalars(select(Clip))
        }
    report = fix_clips(ws, "fix", list(clips.values()), actions=["silence"], actor_id=users["rosa"])
    assert set(report.fixed) == set(clips.values())
    new = report.fixed
    with ws.db.read() as s:
        after_ann = {(a.clip_id, a.annotator_id, a.label, a.id) for a in s.scalars(select(Annotation))}
        # The same annotation rows (same ids, people and labels), now on the fixed copies.
        assert after_ann == {(new[c], who, label, aid) for c, who, label, aid in before_ann}
        for old, copy in new.items():
            clip = s.get(Clip, copy)
            assert (clip.annotation_count, clip.annotations_needed, clip.priority) == queue_before[old]
            assert s.get(Clip, old).deleted_at is not None
        res = s.get(Resolution, new[clips["judged"]])
        assert (res.label, res.method, res.resolved_by) == ("no", "adjudicated", users["rosa"])
        assert s.get(Resolution, new[clips["split"]]) is None  # the disagreement still waits for a reviewer
        assert [g.clip_id for g in gold_examples(s, pid)] == [new[clips["judged"]]]
        flag = s.scalars(select(ClipFlag)).one()
        assert (flag.clip_id, flag.resolved_at) == (new[clips["flagged"]], None)
        event = s.scalars(
            select(AuditEvent).where(
                AuditEvent.entity == "clip",
                AuditEvent.entity_id == str(clips["split"]),
                AuditEvent.action == "update",
            )
        ).one()
        assert event.new["superseded_by"] == new[clips["split"]]
        assert len(event.new["carried"]["annotations"]) == 2
    # cy's claim moved: asked again, cy gets the fixed copy of the clip they held; their skip moved too.
    with ws.db.write() as s:
        again = next_clip(s, pid, users["cy"])
    assert again is not None
    assert again.clip_id == new[held]
    assert again.resumed
    # A label sent for the retired original (a page still showing it) is refused, not lost elsewhere.
    with ws.db.write() as s:
        late = submit_annotation(s, pid, users["cy"], held, label="yes")
    assert late.status == "unavailable"


def test_a_clip_whose_fix_equals_an_existing_clip_is_left_alone(workspace, tmp_path):
    ws = workspace
    src = tmp_path / "src"
    pcm = np.concatenate([np.zeros(int(0.9 * SR), np.float32), speechlike(7)])
    y = np.round(pcm * 32767).astype(np.int16)  # integers, so both containers hold the same samples
    write_wav(src / "a.wav", y)
    write_wav(src / "b.flac", y)  # the same samples in another container: other bytes, same fix
    import_path(ws, src, "dups")
    with ws.db.read() as s:
        ids = dict(s.execute(select(Clip.original_name, Clip.id)).all())
    report = fix_clips(ws, "dups", list(ids.values()), actions=["silence"])
    assert len(report.fixed) == 1
    assert len(report.kept) == 1
    assert "left as they are" in report.summary()
    (kept,) = report.kept
    with ws.db.read() as s:
        assert s.get(Clip, kept).deleted_at is None


def test_the_command_line_previews_and_fixes_only_on_yes(project, monkeypatch, capsys):
    from labeling.cli import main

    ws, _, _, clips, _ = project
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    args = ["checks", "--project", "fix", "--no-near-duplicates", "--fix", "leading_silence"]
    # No terminal to answer in and no --yes: refused, nothing written.
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "6 annotations" in err
    assert "pass --yes" in err
    with ws.db.read() as s:
        assert s.scalars(select(Clip.id).where(Clip.deleted_at.is_not(None))).all() == []

    assert main([*args, "--yes"]) == 0
    assert "6 clips replaced by fixed copies" in capsys.readouterr().out
    with ws.db.read() as s:
        retired = set(s.scalars(select(Clip.id).where(Clip.deleted_at.is_not(None))))
        on_live = {a.clip_id for a in s.scalars(select(Annotation))}
    assert retired == set(clips.values())
    assert not on_live & retired
