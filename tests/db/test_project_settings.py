"""Project settings changed from the app: previewed, validated, confirmed when clips are affected, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from db.models import Annotation, Claim, Clip, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.data.projects import (
    ProjectError,
    SettingsNeedConfirmation,
    apply_settings,
    create_project,
    get_project,
    parse_tag_groups,
    preview_settings,
    settings_history,
)
from labeling.platform.auth import add_user
from tests.db.test_queue import add_clips


@pytest.fixture
def labelled(workspace):
    """k=3, four clips: clip 0 has 3 annotations, clip 1 has 2, clip 2 has 1, clip 3 none; plus a
    derived clip (needs no annotation)."""
    with workspace.db.write() as s:
        p = create_project(
            s,
            name="words",
            classes=["yes", "no", "up"],
            tag_groups={"noise": ["car", "babble"], "channel": ["telephone"]},
            annotations_per_clip=3,
        )
        users = [add_user(s, name=n, role="annotator").id for n in ("ana", "ben", "cho", "dan")]
        clips = add_clips(s, p.id, 5, k=3)
        s.execute(
            update(Clip).where(Clip.id == clips[4]).values(annotations_needed=0, parent_clip_id=clips[0])
        )
        for clip, n in zip(clips, (3, 2, 1, 0), strict=False):
            for user in users[:n]:
                r = submit_annotation(s, p.id, user, clip, label="yes", tags=["noise:car"] if n == 3 else [])
                assert r.status == "created"
        admin = add_user(s, name="boss", role="admin").id
    return workspace, p.id, clips, users, admin


def _needed(ws, clips):
    with ws.db.read() as s:
        return dict(s.execute(select(Clip.id, Clip.annotations_needed).where(Clip.id.in_(clips))).all())


def test_removing_a_class_that_annotations_use_is_refused_and_nothing_changes(labelled):
    ws, pid, *_ = labelled
    with ws.db.read() as s:
        preview = preview_settings(s, pid, {"classes": ["no", "up", "down"]})
    assert not preview.ok
    assert preview.refusals == ["class 'yes' cannot be removed: 6 annotations use it"]
    with pytest.raises(ProjectError, match="'yes' cannot be removed"), ws.db.write() as s:
        apply_settings(s, pid, {"classes": ["no", "up", "down"]})
    with ws.db.read() as s:
        assert get_project(s, pid).classes == ["yes", "no", "up"]
    # An unused class can go, and a new one comes, at once and without confirmation.
    with ws.db.write() as s:
        info = apply_settings(s, pid, {"classes": ["yes", "no", "down"]}, actor_id=labelled[4])
    assert info.classes == ["yes", "no", "down"]


def test_removing_a_chosen_tag_is_refused_but_an_unused_one_may_go(labelled):
    ws, pid, *_ = labelled
    with ws.db.read() as s:
        refused = preview_settings(s, pid, {"tag_groups": {"channel": ["telephone"]}})
        fine = preview_settings(s, pid, {"tag_groups": {"noise": ["car"], "channel": ["telephone", "far"]}})
    assert refused.refusals == ["tag 'noise:car' cannot be removed: 3 annotations chose it"]
    assert fine.ok


def test_lowering_k_keeps_every_annotation_and_asks_first(labelled):
    ws, pid, clips, _users, admin = labelled
    with ws.db.read() as s:
        preview = preview_settings(s, pid, {"annotations_per_clip": 2})
    assert preview.confirm
    # Clip 1 (2 annotations, waiting for a third) would count as finished.
    assert "1 clip waiting for more annotations count as finished" in preview.effects[0]
    with pytest.raises(SettingsNeedConfirmation), ws.db.write() as s:
        apply_settings(s, pid, {"annotations_per_clip": 2}, actor_id=admin)
    assert _needed(ws, clips) == {clips[0]: 3, clips[1]: 3, clips[2]: 3, clips[3]: 3, clips[4]: 0}

    with ws.db.write() as s:
        info = apply_settings(s, pid, {"annotations_per_clip": 2}, token=preview.token, actor_id=admin)
    assert info.annotations_per_clip == 2
    # Clip 0 keeps all three annotations and needs no fewer than it has; the derived clip stays out.
    assert _needed(ws, clips) == {clips[0]: 3, clips[1]: 2, clips[2]: 2, clips[3]: 2, clips[4]: 0}
    with ws.db.read() as s:
        assert s.scalar(select(Annotation.id).where(Annotation.clip_id == clips[0]).limit(1)) is not None
        assert len(s.scalars(select(Annotation.id)).all()) == 6


def test_raising_k_says_how_many_clips_reopen(labelled):
    ws, pid, clips, _users, admin = labelled
    with ws.db.read() as s:
        preview = preview_settings(s, pid, {"annotations_per_clip": 4})
    # One more annotation for each of the four clips; clip 0 was finished and reopens.
    assert preview.effects == [
        "k rises from 3 to 4: 4 more annotations will be asked for; 1 finished clip reopens"
    ]
    with ws.db.write() as s:
        apply_settings(s, pid, {"annotations_per_clip": 4}, token=preview.token, actor_id=admin)
    assert _needed(ws, clips)[clips[0]] == 4
    assert _needed(ws, clips)[clips[4]] == 0


def test_a_stale_preview_cannot_confirm_a_change(labelled):
    ws, pid, clips, users, admin = labelled
    with ws.db.read() as s:
        preview = preview_settings(s, pid, {"annotations_per_clip": 2})
    with ws.db.write() as s:  # meanwhile clip 2 gets its second annotation
        assert submit_annotation(s, pid, users[1], clips[2], label="no").status == "created"
    with pytest.raises(SettingsNeedConfirmation) as refused, ws.db.write() as s:
        apply_settings(s, pid, {"annotations_per_clip": 2}, token=preview.token, actor_id=admin)
    assert "2 clips waiting for more annotations" in refused.value.preview.effects[0]


def test_lowering_k_names_clips_someone_is_labelling(labelled):
    ws, pid, clips, users, _ = labelled
    with ws.db.write() as s:  # dan holds clip 2 (one annotation), which k=1 would close
        s.add(Claim(clip_id=clips[2], user_id=users[3], expires_at=utcnow() + timedelta(minutes=10)))
    with ws.db.read() as s:
        preview = preview_settings(s, pid, {"annotations_per_clip": 1})
    assert preview.effects == [
        "k falls from 3 to 1: no annotation is removed (2 clips keep more than 1); 2 clips waiting for more "
        "annotations count as finished with what they have, 1 of them being labelled right now (that label "
        "will be refused)"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"settings": {"auto_resolve": "sometimes"}}, "auto_resolve must be one of"),
        ({"settings": {"lease_seconds": "ten"}}, "whole number of seconds"),
        ({"settings": {"lease_seconds": 5}}, "between 30 seconds"),
        ({"settings": {"pre_annotation": "yes"}}, "true or false"),
        ({"settings": {"colour": "red"}}, "unknown setting"),
        ({"normalization": {"lowercase": "yes"}}, "must be true or false"),
        ({"normalization": {"uppercase": True}}, "unknown normalisation"),
        ({"annotations_per_clip": 0}, "at least one annotation"),
        ({"task_kind": "transcription"}, "cannot keep its class labels: 6 annotations"),
        ({"classes": ["yes", "bad\x07name"]}, "control characters"),
        ({"name": "renamed"}, "cannot change name"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(labelled, changes, message):
    ws, pid, *_ = labelled
    with ws.db.write() as s:
        before = get_project(s, pid)
        with pytest.raises(ProjectError, match=message):
            apply_settings(s, pid, changes)
    with ws.db.read() as s:
        assert get_project(s, pid) == before


def test_settings_keep_keys_they_do_not_edit_and_are_audited(labelled):
    ws, pid, _clips, _users, admin = labelled
    with ws.db.write() as s:
        apply_settings(
            s, pid, {"settings": {"auto_resolve": "majority", "pre_annotation": True}}, actor_id=admin
        )
    with ws.db.write() as s:
        info = apply_settings(
            s, pid, {"settings": {"pre_annotation": None}, "task_kind": "both"}, actor_id=admin
        )
    assert info.settings == {"auto_resolve": "majority"}
    assert info.task_kind == "both"
    with ws.db.read() as s:
        history = settings_history(s, pid)
    latest = history.iloc[0]
    assert set(history["who"].head(2)) == {"boss"}
    assert set(history.head(2)["field"]) == {"workflow settings", "task"}
    assert latest["at"] is not None
    # The creation is the oldest entry: every field, with no old value.
    created = history[history["old"].isna()]
    assert {"classes", "tag groups", "annotations per clip (k)"} <= set(created["field"])
    assert (
        history.index[history["old"].isna()].min()
        > history.index[history["field"] == "workflow settings"].min()
    )


def test_tag_groups_are_typed_as_lines():
    assert parse_tag_groups("noise: car, babble\nchannel=telephone\n\n") == {
        "noise": ["car", "babble"],
        "channel": ["telephone"],
    }
    assert parse_tag_groups("noise=car;accent=scottish, welsh") == {
        "noise": ["car"],
        "accent": ["scottish", "welsh"],
    }
    with pytest.raises(ProjectError, match="group: value"):
        parse_tag_groups("car, babble")
