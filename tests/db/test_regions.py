"""Time regions of long recordings, stored on both engines."""

from __future__ import annotations

import numpy as np
import pytest

from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import ProjectError, apply_settings, create_project
from labeling.data.regions import RegionsError, list_regions, propose_regions, save_regions
from labeling.platform.audit import audit_frame
from tests.audio import write_wav

SR = 16000
BURSTS = ((1.0, 3.0), (5.0, 8.5))


def bursts_recording(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """Faint noise with loud tones at :data:`BURSTS`: where the energy VAD must find speech."""
    rng = np.random.default_rng(seed)
    y = (0.001 * rng.standard_normal(round(seconds * SR))).astype(np.float32)
    for start, end in BURSTS:
        end = min(end, seconds)
        t = np.arange(round((end - start) * SR)) / SR
        y[round(start * SR) : round(start * SR) + len(t)] += 0.4 * np.sin(2 * np.pi * 220 * t)
    return y


@pytest.fixture
def recordings(workspace, tmp_path):
    """A regions project with two recordings and two annotators: (workspace, project id, clip ids, users)."""
    src = tmp_path / "calls"
    write_wav(src / "call_a.wav", bursts_recording(seed=1))
    write_wav(src / "call_b.wav", bursts_recording(seconds=6.0, seed=2))
    with workspace.db.write() as s:
        info = create_project(
            s,
            name="calls",
            task_kind="regions",
            classes=["speech", "noise"],
            tag_groups={"noise": ["car"]},
            annotations_per_clip=2,
        )
        users = ensure_users(s, {"ann", "bob"})
    import_path(workspace, src, "calls", create=False)
    with workspace.db.read() as s:
        from labeling.data.clips import clip_frame

        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
    return workspace, info.id, clips, users


def test_an_annotators_regions_are_saved_replaced_and_audited(recordings):
    ws, pid, clips, users = recordings
    a = clips["call_a.wav"]
    with ws.db.write() as s:
        save_regions(
            s,
            pid,
            a,
            [
                {"start": 5.0, "end": 8.5, "label": "speech", "text": "second turn"},
                {"start": 1.0, "end": 3.0, "label": "speech", "tags": ["noise:car"]},
            ],
            annotator_id=users["ann"],
        )
        save_regions(s, pid, a, [{"start": 0.5, "end": 2.0, "label": "noise"}], annotator_id=users["bob"])
    with ws.db.write() as s:
        saved = save_regions(
            s, pid, a, [{"start": 1.1, "end": 3.0, "label": "speech"}], annotator_id=users["ann"]
        )
    assert (saved.before, saved.after) == (2, 1)
    with ws.db.read() as s:
        frame = list_regions(s, pid)
        events = audit_frame(s, project_id=pid, entity="regions")
    ann = frame[frame["annotator"] == "ann"]
    assert ann[["start", "end", "label"]].values.tolist() == [[1.1, 3.0, "speech"]]
    assert frame[frame["annotator"] == "bob"]["label"].tolist() == ["noise"]
    assert set(frame["recording"]) == {"call_a.wav"}
    assert events["action"].tolist() == ["update", "create", "create"]
    latest = events.iloc[0]
    assert latest["old"]["regions"][0] == [1.0, 3.0, "speech", None, ["noise:car"]]
    assert latest["new"]["regions"] == [[1.1, 3.0, "speech", None, []]]


def test_bad_regions_are_refused_whole_and_the_saved_set_stays(recordings):
    ws, pid, clips, users = recordings
    b = clips["call_b.wav"]  # six seconds long
    with ws.db.write() as s:
        save_regions(s, pid, b, [{"start": 0.0, "end": 1.0, "label": "speech"}], annotator_id=users["ann"])
    bad_sets = [
        ([{"start": 2.0, "end": 1.0, "label": "speech"}], "does not start before it ends"),
        ([{"start": 5.0, "end": 7.0, "label": "speech"}], "ends after the recording"),
        ([{"start": 1.0, "end": 2.0, "label": "music"}], "not among the project's classes"),
        ([{"start": 1.0, "end": 2.0, "label": "speech", "tags": ["noise:rain"]}], "vocabulary"),
        ([{"start": 1.0, "end": 2.0, "label": " "}], "missing label"),
    ]
    for regions, why in bad_sets:
        with pytest.raises(RegionsError, match=why), ws.db.write() as s:
            save_regions(
                s,
                pid,
                b,
                [{"start": 0.0, "end": 0.5, "label": "speech"}, *regions],
                annotator_id=users["ann"],
            )
    with ws.db.read() as s:
        kept = list_regions(s, pid, clip_id=b)
    assert kept[["start", "end"]].values.tolist() == [[0.0, 1.0]]


def test_saving_the_same_set_again_changes_nothing(recordings):
    ws, pid, clips, users = recordings
    regions = [{"start": 1.0, "end": 3.0, "label": "speech"}]
    for _ in range(2):
        with ws.db.write() as s:
            save_regions(s, pid, clips["call_a.wav"], regions, annotator_id=users["ann"])
    with ws.db.read() as s:
        assert len(audit_frame(s, project_id=pid, entity="regions")) == 1
        assert len(list_regions(s, pid)) == 1


def test_the_energy_vad_proposes_the_loud_spans_and_leaves_annotators_alone(recordings):
    ws, pid, clips, users = recordings
    a = clips["call_a.wav"]
    with ws.db.write() as s:
        save_regions(s, pid, a, [{"start": 0.0, "end": 1.0, "label": "noise"}], annotator_id=users["ann"])
    for _ in range(2):  # proposing again replaces the proposal
        with ws.db.write() as s:
            propose_regions(s, ws.store, pid, a)
    with ws.db.read() as s:
        proposal = list_regions(s, pid, sources=["proposal"])
        mine = list_regions(s, pid, sources=["annotator"])
    assert proposal["annotator"].isna().all()
    assert proposal["label"].tolist() == ["speech", "speech"]
    np.testing.assert_allclose(proposal[["start", "end"]].to_numpy(), np.array(BURSTS), atol=0.03)
    assert mine["label"].tolist() == ["noise"]


def test_regions_need_a_regions_project_and_keep_it_one(recordings, tmp_path):
    ws, pid, clips, users = recordings
    with ws.db.write() as s:
        save_regions(
            s,
            pid,
            clips["call_a.wav"],
            [{"start": 1, "end": 2, "label": "speech"}],
            annotator_id=users["ann"],
        )
    with pytest.raises(ProjectError, match="cannot keep its time regions: 1 region"), ws.db.write() as s:
        apply_settings(s, pid, {"task_kind": "classification"})
    with ws.db.write() as s:
        other = create_project(s, name="digits", classes=["one"])
    with pytest.raises(RegionsError, match="kind 'regions'"), ws.db.read() as s:
        list_regions(s, other.id)
