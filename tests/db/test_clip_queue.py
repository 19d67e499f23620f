"""The scored queue orders sort ``clip_queue``, a narrow copy of the clips' queue keys that the
database keeps: whatever changes a clip (a submit, a final label, a deletion, a priority set by hand),
the copy follows, on SQLite and PostgreSQL, and an upgraded database starts with every clip in it."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from db.engine import Database
from db.migrate import upgrade
from db.models import Clip, ClipQueue, Project, Resolution, utcnow
from labeling.annotate.annotations import submit_annotation, undo_annotation
from labeling.annotate.queue import next_clip, set_priority
from labeling.data.projects import apply_settings, create_project
from labeling.platform.auth import add_user
from tests.db.test_queue import add_clips

KEYS = ("project_id", "resolved", "annotation_count", "annotations_needed", "deleted_at")


def _clips(s) -> dict[int, tuple]:  # type: ignore[no-untyped-def]
    return {r[0]: tuple(r[1:]) for r in s.execute(select(Clip.id, *(getattr(Clip, k) for k in KEYS)))}


def _copies(s) -> dict[int, tuple]:  # type: ignore[no-untyped-def]
    cols = (getattr(ClipQueue, k) for k in KEYS)
    return {r[0]: tuple(r[1:]) for r in s.execute(select(ClipQueue.clip_id, *cols))}


def _priorities(s) -> dict[int, int]:  # type: ignore[no-untyped-def]
    return dict(s.execute(select(ClipQueue.clip_id, ClipQueue.priority)).all())


def test_the_copy_follows_every_change_of_a_clip(workspace):
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="q", classes=["yes", "no"], annotations_per_clip=2)
        apply_settings(s, p.id, {"settings": {"queue_order": "margin"}})
        clips = add_clips(s, p.id, 5, k=2, priority=3)
        ana, ben = (add_user(s, name=n, role="annotator").id for n in ("ana", "ben"))
    with ws.db.read() as s:
        assert _copies(s) == _clips(s)
        assert set(_priorities(s).values()) == {3}
    # Two submits close a clip (k = 2); an undo opens it again.
    for uid in (ana, ben):
        with ws.db.write() as s:
            result = submit_annotation(s, p.id, uid, clips[0], label="yes")
    with ws.db.read() as s:
        assert _copies(s) == _clips(s)
        assert _copies(s)[clips[0]][2] == 2
    with ws.db.write() as s:
        undo_annotation(s, p.id, ben, result.annotation_id)
    # A final label arrives and goes; a clip is soft-deleted; k changes for one clip.
    with ws.db.write() as s:
        s.execute(insert(Resolution).values(clip_id=clips[1], project_id=p.id, label="no", method="imported"))
        s.execute(update(Clip).where(Clip.id == clips[2]).values(deleted_at=utcnow()))
        s.execute(update(Clip).where(Clip.id == clips[3]).values(annotations_needed=3))
    with ws.db.read() as s:
        assert _copies(s) == _clips(s)
        assert _copies(s)[clips[1]][1] is True
    with ws.db.write() as s:
        s.execute(delete(Resolution).where(Resolution.clip_id == clips[1]))
    with ws.db.read() as s:
        assert _copies(s) == _clips(s)
        assert _copies(s)[clips[1]][1] is False
    # The scoring job writes the copy's priority only; the clip's own priority set by hand reaches it.
    with ws.db.write() as s:
        s.execute(update(ClipQueue).where(ClipQueue.clip_id == clips[4]).values(priority=900))
        s.execute(update(Clip).where(Clip.id == clips[4]).values(annotations_needed=4))  # not a priority
    with ws.db.read() as s:
        assert _priorities(s)[clips[4]] == 900
        assert s.scalar(select(Clip.priority).where(Clip.id == clips[4])) == 3
    with ws.db.write() as s:
        set_priority(s, p.id, [clips[4]], 7)
    with ws.db.read() as s:
        assert _priorities(s)[clips[4]] == 7
    # A hard delete (the project's) takes the copies with it.
    with ws.db.write() as s:
        s.execute(delete(Project).where(Project.id == p.id))
    with ws.db.read() as s:
        assert _copies(s) == {}


def test_the_scored_order_hands_out_by_the_copy(workspace):
    """Clips without a final label first, then fewest annotations, the highest priority, the oldest."""
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="order", classes=["yes", "no"], annotations_per_clip=3)
        apply_settings(s, p.id, {"settings": {"queue_order": "entropy"}})
        a, b, c, d, e = add_clips(s, p.id, 5, k=3)
        s.execute(insert(Resolution).values(clip_id=a, project_id=p.id, label="no", method="imported"))
        for clip_id, priority in ((a, 99), (b, 5), (c, 50), (d, 50)):
            s.execute(update(ClipQueue).where(ClipQueue.clip_id == clip_id).values(priority=priority))
        users = [add_user(s, name=f"u{i}", role="annotator").id for i in range(2)]
    # e has one annotation already: after every clip with none, whatever its priority.
    with ws.db.write() as s:
        submit_annotation(s, p.id, users[1], e, label="yes")
    served = []
    for _ in range(5):  # one annotator labelling what they are given
        with ws.db.write() as s:
            item = next_clip(s, p.id, users[0])
            assert item is not None
            served.append((item.clip_id, item.priority))
            submit_annotation(s, p.id, users[0], item.clip_id, label="yes")
    assert served == [(c, 50), (d, 50), (b, 5), (e, 0), (a, 99)]


def test_an_upgraded_database_starts_with_every_clip_in_the_copy(db_url):
    db = Database.from_url(db_url)
    upgrade(db, "0019_clip_lease_seq")
    with db.engine.begin() as conn:
        conn.execute(insert(Project).values(name="old", classes=["yes", "no"]))
        for i, (count, gone) in enumerate(((0, False), (1, False), (0, True))):
            conn.execute(
                insert(Clip).values(
                    project_id=1,
                    sha256=f"{i:064x}",
                    storage_key=f"k{i}",
                    original_name=f"c{i}.wav",
                    duration_s=1.0,
                    sample_rate=8000,
                    channels=1,
                    frames=8000,
                    audio_format="WAV",
                    annotations_needed=1,
                    annotation_count=count,
                    priority=i,
                    deleted_at=utcnow() if gone else None,
                )
            )
        conn.execute(insert(Resolution).values(clip_id=2, project_id=1, label="yes", method="imported"))
    upgrade(db)
    with db.read() as s:
        assert _copies(s) == _clips(s)
        assert len(_copies(s)) == 3
        assert _priorities(s) == {1: 0, 2: 1, 3: 2}
    with db.write() as s:  # and the triggers are there
        s.execute(update(Clip).where(Clip.id == 1).values(annotation_count=1))
    with db.read() as s:
        assert _copies(s) == _clips(s)
    db.dispose()
