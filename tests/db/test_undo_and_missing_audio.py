"""Undoing one's last label, and flagging clips whose audio file is gone, on both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Annotation, AuditEvent, Clip, ClipFlag, Resolution
from labeling.annotate.annotations import submit_annotation, undo_annotation
from labeling.annotate.queue import hold_clip, next_clip
from labeling.annotate.review import auto_resolve, resolve_clip
from labeling.data.importer import import_path
from labeling.data.missing_audio import flag_missing_audio, missing_audio_frame, recheck_missing_audio
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav


@pytest.fixture
def project(workspace, tmp_path):
    for i in range(3):
        write_wav(tmp_path / "src" / f"c{i}.wav", speechlike(900 + i))
    import_path(workspace, tmp_path / "src", "undo")
    with workspace.db.write() as s:
        info = update_project(s, "undo", classes=["yes", "no"], annotations_per_clip=1)
        ana = add_user(s, name="ana", role="annotator").id
        ben = add_user(s, name="ben", role="annotator").id
        rosa = add_user(s, name="rosa", role="reviewer").id
        clips = list(s.scalars(select(Clip.id).order_by(Clip.id)))
    return workspace, info.id, (ana, ben, rosa), clips


def test_undo_gives_the_slot_back_and_the_clip_returns_to_its_annotator(project):
    ws, pid, (ana, ben, _), clips = project
    with ws.db.write() as s:
        done = submit_annotation(s, pid, ana, clips[0], label="yes")
        auto_resolve(s, pid)  # k = 1: the rule makes it final at once
    with ws.db.write() as s:
        assert s.get(Resolution, clips[0]).method == "unanimous"
        # Only one's own label can be undone.
        assert undo_annotation(s, pid, ben, done.annotation_id).status == "unavailable"
        result = undo_annotation(s, pid, ana, done.annotation_id)
        assert result.status == "undone"
        hold_clip(s, pid, ana, clips[0])
    with ws.db.read() as s:
        assert s.scalars(select(Annotation)).all() == []
        assert s.get(Clip, clips[0]).annotation_count == 0
        assert s.get(Resolution, clips[0]) is None  # the rule's label had no vote left
        actions = set(s.execute(select(AuditEvent.entity, AuditEvent.action)).all())
    assert {("annotation", "delete"), ("resolution", "delete")} <= actions
    with ws.db.write() as s:
        back = next_clip(s, pid, ana)
    assert back is not None
    assert back.clip_id == clips[0]


def test_an_adjudicated_label_cannot_be_undone(project):
    ws, pid, (ana, _, rosa), clips = project
    with ws.db.write() as s:
        done = submit_annotation(s, pid, ana, clips[1], label="yes")
        resolve_clip(s, pid, clips[1], label="no", reviewer_id=rosa)
    with ws.db.write() as s:
        assert undo_annotation(s, pid, ana, done.annotation_id).status == "locked"
    with ws.db.read() as s:
        assert len(s.scalars(select(Annotation)).all()) == 1


def test_missing_audio_is_flagged_once_and_closed_when_the_file_is_back(project):
    ws, pid, (ana, *_), clips = project
    with ws.db.read() as s:
        key = s.get(Clip, clips[2]).storage_key
    path = ws.store.path(key)
    kept = path.read_bytes()
    path.unlink()
    with ws.db.write() as s:
        assert flag_missing_audio(s, clips[2], actor_id=ana)
        assert not flag_missing_audio(s, clips[2], actor_id=ana)  # already open
    with ws.db.read() as s:
        assert missing_audio_frame(s, pid)["clip_id"].tolist() == [clips[2]]
    with ws.db.write() as s:
        assert recheck_missing_audio(s, ws.store, pid) == (0, 1)
    path.write_bytes(kept)
    with ws.db.write() as s:
        assert recheck_missing_audio(s, ws.store, pid) == (1, 0)
    with ws.db.read() as s:
        assert missing_audio_frame(s, pid).empty
        assert s.scalars(select(ClipFlag.resolved_at)).one() is not None
    # Lost again later: the same flag opens again.
    path.unlink()
    with ws.db.write() as s:
        assert flag_missing_audio(s, clips[2])
    with ws.db.read() as s:
        assert missing_audio_frame(s, pid)["clip_id"].tolist() == [clips[2]]
