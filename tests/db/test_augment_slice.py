"""Augmenting a slice: new training clips linked to their parents, tagged, labelled, never in dev/test."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select, update

from db.models import Clip, ClipTag, Resolution
from labeling.data.augment import AugmentError, Recipe, augment_slice, preview_augmentation
from labeling.data.importer import import_path
from labeling.data.versions import VersionFilters, create_version, version_frame
from tests.audio import speechlike, write_wav

PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav"


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 4}_{i}.wav", speechlike(i), sr=8000)
    import_path(workspace, src, "demo", pattern=PATTERN)
    with workspace.db.write() as s:
        ids = s.scalars(select(Clip.id).order_by(Clip.id)).all()
        for n, cid in enumerate(ids):
            split = "dev" if n == 3 else "test" if n == 7 else "train"
            s.execute(update(Clip).where(Clip.id == cid).values(split=split))
            s.add(ClipTag(clip_id=cid, tag="noise:clean" if n < 4 else "noise:car"))
            s.add(ClipTag(clip_id=cid, tag="accent:scottish"))
    return workspace, ids


def test_car_noise_copies_of_a_slice_are_new_training_clips(project):
    ws, ids = project
    calls = []
    report = augment_slice(
        ws,
        "demo",
        recipe=Recipe("car", snr_db=10.0),
        tag="noise:clean",
        progress=lambda d, t: calls.append((d, t)),
    )
    # Clips 0-2 are clean training clips; clip 3 is clean but in dev, so it is left alone.
    assert report.n_parents == 3
    assert report.n_created == 3
    assert calls[-1] == (3, 3)
    with ws.db.read() as s:
        made = s.scalars(select(Clip).where(Clip.id.in_(report.clip_ids)).order_by(Clip.id)).all()
        for clip in made:
            parent = s.get(Clip, clip.parent_clip_id)
            assert parent.id in ids[:3]
            assert clip.split == "train"
            assert clip.derivation["kind"] == "augment"
            assert clip.derivation["recipe"] == {"kind": "car", "snr_db": 10.0}
            tags = set(s.scalars(select(ClipTag.tag).where(ClipTag.clip_id == clip.id)))
            assert tags == {"noise:car", "augmented:car@10dB", "accent:scottish"}
            res, parent_res = s.get(Resolution, clip.id), s.get(Resolution, parent.id)
            assert (res.label, res.method) == (parent_res.label, "imported")
            assert clip.annotations_needed == 0
            # The stored audio is the parent plus noise 10 dB below it (16-bit rounding aside).
            y, _ = sf.read(ws.store.path(clip.storage_key))
            x, _ = sf.read(ws.store.path(parent.storage_key))
            snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
            assert snr == pytest.approx(10.0, abs=0.2)
            assert not ws.store.path(parent.storage_key).stat().st_mode & 0o222  # originals stay read-only


def test_running_it_again_adds_nothing_and_versions_keep_augmented_clips_in_train(project):
    ws, _ = project
    first = augment_slice(ws, "demo", recipe=Recipe("telephone"), tag="noise:clean")
    again = augment_slice(ws, "demo", recipe=Recipe("telephone"), tag="noise:clean")
    assert (again.n_created, again.n_existing) == (0, first.n_created)
    with ws.db.write() as s:
        with_aug = create_version(s, "demo", name="with")
        without = create_version(s, "demo", name="without", filters=VersionFilters(include_augmented=False))
        rows = version_frame(s, with_aug.id)
    assert with_aug.n_clips == without.n_clips + first.n_created
    augmented = rows[rows["clip_id"].isin(first.clip_ids)]
    assert set(augmented["split"]) == {"train"}
    assert with_aug.changes["augmented"] == first.n_created


def test_babble_uses_other_speakers_and_metadata_slices_work(project):
    ws, _ = project
    report = augment_slice(ws, "demo", recipe=Recipe("babble", snr_db=5.0), where={"speaker": "spk1"})
    assert report.n_parents == 2  # spk1 clips 1 and 5 are both in train
    assert report.tag == "augmented:babble@5dB"
    with pytest.raises(AugmentError, match="no labelled training clip"):
        augment_slice(ws, "demo", recipe=Recipe("pitch"), tag="noise:nothing")
    with pytest.raises(AugmentError, match="unknown augmentation"):
        Recipe("reverse")


def test_augmented_copies_are_not_label_issue_candidates(project):
    from labeling.quality.label_issues import labelled_clips

    ws, ids = project
    report = augment_slice(ws, "demo", recipe=Recipe("speed", factor=1.1), tag="noise:clean")
    with ws.db.read() as s:
        pid = s.scalar(select(Clip.project_id).limit(1))
        considered = set(labelled_clips(s, pid)["clip_id"])
    assert considered == set(ids)
    assert not considered & set(report.clip_ids)


def test_a_copy_s_metadata_agrees_with_its_condition_tag(project):
    ws, ids = project
    with ws.db.write() as s:
        for cid in ids:
            clip = s.get(Clip, cid)
            clip.meta = {**clip.meta, "channel": "wideband", "noise": "clean"}
            s.add(ClipTag(clip_id=cid, tag="channel:wideband"))
    report = augment_slice(ws, "demo", recipe=Recipe("telephone"), tag="noise:clean")
    with ws.db.read() as s:
        for clip in s.scalars(select(Clip).where(Clip.id.in_(report.clip_ids))):
            tags = set(s.scalars(select(ClipTag.tag).where(ClipTag.clip_id == clip.id)))
            assert "channel:telephone" in tags
            assert "channel:wideband" not in tags
            # The slice channel=wideband must not hold telephone copies; what the recipe left alone stays.
            assert clip.meta["channel"] == "telephone"
            assert clip.meta["noise"] == "clean"
            assert clip.meta["speaker"] == s.get(Clip, clip.parent_clip_id).meta["speaker"]


def test_a_preview_is_the_copy_the_slice_would_get_and_stores_nothing(project):
    ws, ids = project
    with ws.db.read() as s:
        before = s.scalars(select(Clip.id)).all()
    preview = preview_augmentation(ws, "demo", recipe=Recipe("car", snr_db=5.0), tag="noise:clean")
    with ws.db.read() as s:
        assert s.scalars(select(Clip.id)).all() == before
    assert preview.clip_id == ids[0]
    assert preview.n_parents == 3
    original, _sr = sf.read(ws.store.path(_key(ws, ids[0])))
    np.testing.assert_allclose(preview.original, original, atol=1e-4)
    snr = 10 * np.log10(np.mean(original**2) / np.mean((preview.augmented - original) ** 2))
    assert snr == pytest.approx(5.0, abs=0.2)
    made = augment_slice(ws, "demo", recipe=Recipe("car", snr_db=5.0), tag="noise:clean")
    with ws.db.read() as s:
        first = s.scalar(select(Clip).where(Clip.id.in_(made.clip_ids), Clip.parent_clip_id == ids[0]))
        stored, _ = sf.read(ws.store.path(first.storage_key))
    np.testing.assert_allclose(stored, preview.augmented, atol=1 / 2**15 * 2)
    with pytest.raises(AugmentError, match="no labelled training clip"):
        preview_augmentation(ws, "demo", recipe=Recipe("car"), tag="noise:nothing")


def _key(ws, clip_id):
    with ws.db.read() as s:
        return s.get(Clip, clip_id).storage_key
