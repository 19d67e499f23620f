"""The labeling queue and annotation services on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.models import Annotation, AuditEvent, Clip, ModelRun, Prediction, Resolution, utcnow
from labeling import api
from labeling.annotate.annotations import (
    AnnotationError,
    annotations_frame,
    edit_annotation,
    label_task,
    my_annotations,
    submit_annotation,
)
from labeling.annotate.queue import next_clip, progress, set_priority, skip_clip
from labeling.data.conventions import save_convention
from labeling.data.projects import create_project
from labeling.platform.auth import add_user


def add_clips(s, project_id: int, n: int, *, k: int, priority: int = 0) -> list[int]:
    """Clip rows without audio files: the queue never opens the audio. Their hashes are SHA-256 digests,
    as every stored clip's are (the ``random`` queue order relies on it)."""
    start = s.scalar(select(func.count()).select_from(Clip)) or 0
    shas = [hashlib.sha256(f"clip {start + i}".encode()).hexdigest() for i in range(n)]
    rows = [
        {
            "project_id": project_id,
            "sha256": shas[i],
            "storage_key": f"{shas[i][:2]}/{shas[i]}.wav",
            "original_name": f"clip{start + i}.wav",
            "duration_s": 1.0,
            "sample_rate": 8000,
            "channels": 1,
            "frames": 8000,
            "audio_format": "WAV",
            "meta": {},
            "split": "train",
            "annotations_needed": k,
            "annotation_count": 0,
            "priority": priority,
            "created_at": utcnow(),
        }
        for i in range(n)
    ]
    return list(s.scalars(insert(Clip).returning(Clip.id), rows))


@contextmanager
def two_annotators(url: str, *, clips: int, **engine: Any) -> Iterator[tuple[Database, int, list[int]]]:
    """A k = 2 project with ``clips`` clips and two annotators on the database at ``url`` (a copy of the
    migrated schema), opened with ``engine`` options: (database, project id, annotator ids)."""
    db = Database.from_url(url, **engine)
    try:
        with db.write() as s:
            project = create_project(s, name="queue", classes=["yes", "no"], annotations_per_clip=2)
            users = [add_user(s, name=f"a{i}", role="annotator").id for i in range(2)]
            add_clips(s, project.id, clips, k=2)
        yield db, project.id, users
    finally:
        db.dispose()


@pytest.fixture
def setup(workspace):
    """A k=3 project with four annotators."""
    with workspace.db.write() as s:
        p = create_project(
            s,
            name="digits",
            task_kind="classification",
            classes=list("0123456789"),
            tag_groups={"noise": ["car", "none"]},
            annotations_per_clip=3,
        )
        users = [add_user(s, name=n, role="annotator").id for n in ("ana", "ben", "cho", "dan")]
    return workspace, p.id, users


def _next(ws, pid, uid, **kw):
    with ws.db.write() as s:
        return next_clip(s, pid, uid, **kw)


def _submit(ws, pid, uid, cid, **kw):
    kw.setdefault("label", "1")
    with ws.db.write() as s:
        return submit_annotation(s, pid, uid, cid, **kw)


def test_fewest_annotations_first_then_priority_then_age(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        a, b = add_clips(s, pid, 2, k=3)
        (c,) = add_clips(s, pid, 1, k=3, priority=5)
        (d,) = add_clips(s, pid, 1, k=3)
    assert _submit(ws, pid, ben, a).status == "created"  # a now has one annotation

    order = []
    while (item := _next(ws, pid, ana)) is not None:
        order.append(item.clip_id)
        assert _submit(ws, pid, ana, item.clip_id).status == "created"
    assert order == [c, b, d, a]


def test_raised_priority_moves_a_slice_up_and_is_audited(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        ids = add_clips(s, pid, 5, k=3)
        assert set_priority(s, pid, ids[3:], 10) == 2
    assert _next(ws, pid, ana).clip_id == ids[3]
    with ws.db.read() as s:
        events = s.execute(select(AuditEvent.entity_id, AuditEvent.new).where(AuditEvent.entity == "clip"))
        assert sorted(tuple(r) for r in events) == [(str(i), {"priority": 10}) for i in ids[3:]]


def test_refresh_returns_the_same_clip_and_leases_expire(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        x, y = add_clips(s, pid, 2, k=1)
    now = utcnow()
    first = _next(ws, pid, ana, now=now)
    again = _next(ws, pid, ana, now=now + timedelta(seconds=5))  # renews the lease to +605 s
    assert (first.clip_id, first.resumed) == (x, False)
    assert (again.clip_id, again.resumed) == (x, True)
    # k=1 and ana holds x: ben is sent elsewhere, and once y is done there is nothing for him.
    assert _next(ws, pid, ben, now=now).clip_id == y
    assert _submit(ws, pid, ben, y).ok
    assert _next(ws, pid, ben, now=now + timedelta(seconds=600)) is None
    # Ana walked away: when her ten-minute lease runs out, x goes back into the queue.
    assert _next(ws, pid, ben, now=now + timedelta(seconds=606)).clip_id == x


def test_lease_length_is_a_project_setting(setup):
    ws, pid, (ana, *_) = setup
    from labeling.data.projects import update_project

    with ws.db.write() as s:
        update_project(s, pid, settings={"lease_seconds": 60})
        add_clips(s, pid, 1, k=3)
    now = utcnow()
    item = _next(ws, pid, ana, now=now)
    assert item.expires_at == now + timedelta(seconds=60)


def test_last_slot_is_not_handed_to_a_second_annotator(setup):
    ws, pid, (ana, ben, cho, dan) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    assert _submit(ws, pid, ana, x).ok
    assert _submit(ws, pid, ben, x).ok
    assert _next(ws, pid, cho).clip_id == x
    assert _next(ws, pid, dan) is None  # the only open slot is cho's for now
    assert _submit(ws, pid, cho, x).ok
    assert _next(ws, pid, dan) is None


def test_skip_sets_a_clip_aside_without_holding_its_slot(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        x, y = add_clips(s, pid, 2, k=1)
    now = utcnow()
    assert _next(ws, pid, ana, now=now).clip_id == x
    with ws.db.write() as s:
        skip_clip(s, pid, ana, x, now=now)
    assert _next(ws, pid, ana, now=now).clip_id == y
    assert _next(ws, pid, ben, now=now).clip_id == x  # ana's skip holds no slot
    assert _submit(ws, pid, ana, y).ok
    assert _next(ws, pid, ana, now=now) is None  # x is ben's now, y is done


def test_deleted_and_finished_clips_are_not_offered(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        x, y = add_clips(s, pid, 2, k=1)
        s.execute(update(Clip).where(Clip.id == x).values(deleted_at=utcnow()))
    assert _next(ws, pid, ana).clip_id == y
    assert _submit(ws, pid, ana, y).ok
    assert _next(ws, pid, ana) is None
    assert _submit(ws, pid, ana, x).status == "unavailable"


def test_repeated_submit_with_the_same_key_stores_one_annotation(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    first = _submit(ws, pid, ana, x, label="7", idempotency_key="tab-1")
    again = _submit(ws, pid, ana, x, label="7", idempotency_key="tab-1")
    other_tab = _submit(ws, pid, ana, x, label="8", idempotency_key="tab-2")
    assert (first.status, again.status, other_tab.status) == ("created", "duplicate", "already_labelled")
    assert first.annotation_id == again.annotation_id == other_tab.annotation_id
    with ws.db.read() as s:
        assert s.scalar(select(func.count(Annotation.id))) == 1
        assert s.get(Clip, x).annotation_count == 1
        assert s.scalar(select(Annotation.label)) == "7"


def test_idempotency_keys_belong_to_one_annotator_in_one_project(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        x, y = add_clips(s, pid, 2, k=3)
        other = create_project(s, name="other", classes=list("0123456789"), annotations_per_clip=3).id
        (z,) = add_clips(s, other, 1, k=3)
    # Two bots following the same example key do not collide.
    assert _submit(ws, pid, ana, x, idempotency_key="run-42/clip-17").status == "created"
    assert _submit(ws, pid, ben, x, idempotency_key="run-42/clip-17").status == "created"
    assert _submit(ws, other, ana, z, idempotency_key="run-42/clip-17").status == "created"
    assert _submit(ws, pid, ben, x, idempotency_key="run-42/clip-17").status == "duplicate"
    # One annotator reusing a key of theirs for another clip is a mistake, said so.
    with pytest.raises(AnnotationError, match="idempotency key"):
        _submit(ws, pid, ana, y, idempotency_key="run-42/clip-17")
    with ws.db.read() as s:
        assert s.scalar(select(func.count(Annotation.id))) == 3
        assert s.get(Clip, y).annotation_count == 0


def test_never_more_than_k_annotations(setup):
    ws, pid, users = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    statuses = [_submit(ws, pid, u, x).status for u in users]
    assert statuses == ["created", "created", "created", "full"]
    with ws.db.read() as s:
        assert s.get(Clip, x).annotation_count == 3
        assert s.scalar(select(func.count(Annotation.id))) == 3


def test_the_database_itself_refuses_a_fourth_annotation_count(setup):
    ws, pid, _ = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    with pytest.raises(IntegrityError), ws.db.write() as s:
        s.execute(update(Clip).where(Clip.id == x).values(annotation_count=4))


def test_bad_input_is_refused_and_changes_nothing(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    for kwargs, message in (
        ({"label": "eleven"}, "not one of this project's classes"),
        ({"label": None}, "choose a class"),
        ({"label": "1", "tags": ["noise:jet"]}, "unknown tag"),
        ({"label": "1", "time_spent_ms": -5}, "negative"),
    ):
        with pytest.raises(AnnotationError, match=message):
            _submit(ws, pid, ana, x, **kwargs)
    with ws.db.read() as s:
        assert s.scalar(select(func.count(Annotation.id))) == 0
        assert s.get(Clip, x).annotation_count == 0
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity == "annotation")) == 0


def test_cannot_label_is_stored_with_its_reason_and_no_label(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    result = _submit(ws, pid, ana, x, label="3", cannot_label_reason="unintelligible", tags=["noise:car"])
    assert result.ok
    with ws.db.read() as s:
        a = s.get(Annotation, result.annotation_id)
        assert (a.label, a.cannot_label_reason, a.tags) == (None, "unintelligible", ["noise:car"])


def test_submit_writes_its_audit_row_in_the_same_transaction(setup):
    ws, pid, (ana, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)

    def request_dies_before_commit():
        with ws.db.write() as s:
            assert submit_annotation(s, pid, ana, x, label="4", time_spent_ms=1234).ok
            raise RuntimeError("the request died before commit")

    with pytest.raises(RuntimeError):
        request_dies_before_commit()
    with ws.db.read() as s:
        assert s.scalar(select(func.count(Annotation.id))) == 0
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity == "annotation")) == 0
    result = _submit(ws, pid, ana, x, label="4", time_spent_ms=1234)
    with ws.db.read() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.entity == "annotation"))
        assert (event.action, event.actor_id, event.entity_id) == ("create", ana, str(result.annotation_id))
        assert event.new["label"] == "4"
        assert s.get(Annotation, result.annotation_id).time_spent_ms == 1234


def test_own_annotation_can_be_edited_until_adjudicated(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    created = _submit(ws, pid, ana, x, label="4")
    with ws.db.write() as s:
        assert edit_annotation(s, created.annotation_id, ben, label="5").status == "unavailable"
        assert edit_annotation(s, created.annotation_id, ana, label="5", unsure=True).status == "updated"
    with ws.db.read() as s:
        a = s.get(Annotation, created.annotation_id)
        assert (a.label, a.unsure) == ("5", True)
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "update"))
        assert (event.old["label"], event.new["label"]) == ("4", "5")
        assert my_annotations(s, pid, ana)["locked"].tolist() == [False]

    with ws.db.write() as s:
        now = utcnow()
        s.add(Resolution(clip_id=x, project_id=pid, label="5", method="adjudicated", created_at=now))
    with ws.db.write() as s:
        assert edit_annotation(s, created.annotation_id, ana, label="6").status == "locked"
        assert my_annotations(s, pid, ana)["locked"].tolist() == [True]
    with ws.db.read() as s:
        assert s.get(Annotation, created.annotation_id).label == "5"


def test_label_task_is_blind_to_other_annotators_and_the_model(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        (x,) = add_clips(s, pid, 1, k=3)
    with ws.db.read() as s:
        before = label_task(s, ws.store, pid, ben, x)
    _submit(ws, pid, ana, x, label="9", tags=["noise:car"])
    with ws.db.write() as s:
        run = ModelRun(project_id=pid, name="baseline", code_fingerprint="f" * 64, created_at=utcnow())
        s.add(run)
        s.flush()
        s.add(Prediction(run_id=run.id, clip_id=x, label="8", confidence=0.75))
        s.add(Resolution(clip_id=x, project_id=pid, label="7", method="imported", created_at=utcnow()))
    with ws.db.read() as s:
        after = label_task(s, ws.store, pid, ben, x)
    # Nothing anyone else did to the clip changes what ben is shown.
    assert after == before
    assert after.mine is None
    assert after.prediction is None
    # Ana sees her own label back (to edit it), still nobody else's.
    with ws.db.read() as s:
        assert label_task(s, ws.store, pid, ana, x).mine["label"] == "9"

    from labeling.data.projects import update_project

    with ws.db.write() as s:
        update_project(s, pid, settings={"pre_annotation": True})
    with ws.db.read() as s:
        task = label_task(s, ws.store, pid, ben, x)
    assert task.prediction == {"label": "8", "transcript": None, "confidence": 0.75, "model": "baseline"}


def test_annotations_are_long_format_with_the_convention_version(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        a, b = add_clips(s, pid, 2, k=3)
        save_convention(s, pid, text="Label the spoken digit.")
    _submit(ws, pid, ana, a, label="1")
    with ws.db.write() as s:
        save_convention(s, pid, text="Label the spoken digit. Ignore coughs.", note="coughs")
    _submit(ws, pid, ben, a, label="1", tags=["noise:none"])
    _submit(ws, pid, ben, b, label="2", unsure=True)
    with ws.db.read() as s:
        frame = annotations_frame(s, pid)
        mine = progress(s, pid, ben)
    assert frame[["clip_id", "annotator", "label", "convention_version"]].values.tolist() == [
        [a, "ana", "1", 1],
        [a, "ben", "1", 2],
        [b, "ben", "2", 2],
    ]
    assert frame["tags"].tolist() == [[], ["noise:none"], []]
    assert frame["unsure"].tolist() == [False, False, True]
    # Both clips still need a third label, but ben has labelled both: nothing is open for him.
    assert (mine.done, mine.today, mine.open_clips) == (2, 2, 0)


def test_open_clips_count_what_is_left_for_this_annotator(setup):
    ws, pid, (ana, ben, *_) = setup
    with ws.db.write() as s:
        a, b, _ = add_clips(s, pid, 3, k=2)
    _submit(ws, pid, ana, a, label="1")
    with ws.db.write() as s:
        skip_clip(s, pid, ana, b)
    with ws.db.read() as s:
        ana_left, ben_left = progress(s, pid, ana).open_clips, progress(s, pid, ben).open_clips
    assert ana_left == 1  # c: a is labelled by her and b set aside
    assert ben_left == 3  # a still needs a second label, from someone else than ana


def test_python_api_round_trip(tmp_path, db_url):
    from db.migrate import SchemaOutOfDate

    with pytest.raises(SchemaOutOfDate, match="earmark db upgrade"):
        api.connect(db_url, data_dir=tmp_path)
    with api.connect(db_url, data_dir=tmp_path, upgrade=True) as ws:
        p = ws.create_project("words", task_kind="transcription", annotations_per_clip=2)
        ws.add_user("ana")
        ws.add_user("ben")
        with ws.workspace.db.write() as s:
            (x,) = add_clips(s, p.id, 1, k=2)
        clip = ws.next_clip("words", "ana")
        assert clip.clip_id == x
        result = ws.submit("words", "ana", x, transcript="today's  weather", idempotency_key="run1-1")
        assert ws.submit("words", "ana", x, transcript="today's weather", idempotency_key="run1-1") == (
            result.__class__("duplicate", x, result.annotation_id, "already saved (repeated submit)")
        )
        assert ws.next_clip("words", "ana") is None
        assert ws.next_clip("words", "ben").clip_id == x
        frame = ws.annotations("words")
    assert frame[["clip_id", "annotator", "transcript"]].values.tolist() == [[x, "ana", "today's weather"]]
    assert list(frame.columns[:7]) == [
        "annotation_id",
        "clip_id",
        "annotator_id",
        "annotator",
        "label",
        "transcript",
        "tags",
    ]


@pytest.mark.parametrize(
    ("classes", "keys", "actions"),
    [
        (list("0123456789"), list("0123456789"), {"skip": "s", "cannot": "x"}),
        (["yes", "no", "maybe"], ["1", "2", "3"], {"skip": "s", "cannot": "x"}),
        (["a", "s", "x"], ["a", "s", "x"], {"skip": "shift+s", "cannot": "shift+x"}),
        (["a", "b", "c"], ["1", "2", "3"], {"skip": "s", "cannot": "x"}),  # "c" belongs to Streamlit
        ([f"class{i}" for i in range(11)], [None] * 11, {"skip": "s", "cannot": "x"}),
    ],
)
def test_keyboard_layout_of_the_label_page(classes, keys, actions):
    from labeling.annotate.annotations import action_shortcuts, class_shortcuts

    assert class_shortcuts(classes) == keys
    assert action_shortcuts(keys) == actions
