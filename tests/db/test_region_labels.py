"""Labeling recordings of a regions project through the queue, on both engines: Submit stores the set
and completes the hand-out, bad regions are refused whole with a message, and the task is blind."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Annotation
from labeling.annotate.queue import next_clip, progress
from labeling.annotate.region_labels import my_recordings, region_task, submit_regions
from labeling.data.regions import RegionsError, list_regions, propose_regions, save_regions
from tests.db.test_regions import recordings  # noqa: F401  (the fixture)


def test_submit_stores_the_set_and_completes_the_hand_out(recordings):  # noqa: F811
    ws, pid, clips, users = recordings
    handed = []
    with ws.db.write() as s:
        handed.append(next_clip(s, pid, users["ann"]).clip_id)
    with ws.db.write() as s:
        result = submit_regions(
            s,
            pid,
            users["ann"],
            handed[0],
            [
                {"start": 5.0, "end": 8.5, "label": "speech", "text": " second turn "},
                {"start": 1.0, "end": 3.0, "label": "noise", "text": ""},
            ],
            time_spent_ms=4000,
            idempotency_key="tab-1",
        )
    assert result.status == "created"
    with ws.db.read() as s:
        stored = list_regions(s, pid, clip_id=handed[0])
        mine = progress(s, pid, users["ann"])
        done = my_recordings(s, pid, users["ann"])
    assert stored[["start", "end", "label", "text", "annotator"]].values.tolist() == [
        [1.0, 3.0, "noise", None, "ann"],
        [5.0, 8.5, "speech", "second turn", "ann"],
    ]
    assert mine.done == 1
    assert done["clip_id"].tolist() == [handed[0]]
    with ws.db.write() as s:  # the next hand-out is the other recording, then nothing
        handed.append(next_clip(s, pid, users["ann"]).clip_id)
    assert sorted(handed) == sorted(clips.values())


def test_bad_regions_are_refused_with_a_message_and_nothing_is_written(recordings):  # noqa: F811
    ws, pid, _, users = recordings
    with ws.db.write() as s:
        clip_id = next_clip(s, pid, users["ann"]).clip_id
    bad = [
        {"start": 1.0, "end": 3.0, "label": "speech"},
        {"start": 2.0, "end": 1.0, "label": "speech"},
        {"start": 4.0, "end": 5.0, "label": "laughter"},
    ]
    with pytest.raises(RegionsError, match=r"does not start before it ends \(rows 1\)"), ws.db.write() as s:
        submit_regions(s, pid, users["ann"], clip_id, bad)
    with ws.db.read() as s:
        assert list_regions(s, pid).empty
        assert s.scalar(select(func.count()).select_from(Annotation)) == 0
    with ws.db.write() as s:  # still theirs to finish
        assert next_clip(s, pid, users["ann"]).clip_id == clip_id
    for regions, said in (
        (
            [{"start": 4.0, "end": 5.0, "label": "laughter"}],
            r"\['laughter'\] are not among the project's classes",
        ),
        ([{"start": 4.0, "end": 12.5, "label": "speech"}], r"ends after the recording"),
    ):
        with pytest.raises(RegionsError, match=said), ws.db.write() as s:
            submit_regions(s, pid, users["ann"], clip_id, regions)
    with ws.db.read() as s:
        assert list_regions(s, pid).empty


def test_the_task_shows_the_proposal_or_ones_own_regions_never_anothers(recordings):  # noqa: F811
    ws, pid, clips, users = recordings
    a = clips["call_a.wav"]
    with ws.db.write() as s:
        propose_regions(s, ws.store, pid, a)
        save_regions(s, pid, a, [{"start": 0.2, "end": 0.4, "label": "noise"}], annotator_id=users["bob"])
    with ws.db.read() as s:
        task = region_task(s, ws.store, pid, users["ann"], a)
    assert task.proposals
    assert {r["label"] for r in task.regions} == {"speech"}  # the VAD's, not bob's noise
    assert task.audio_path.is_file()
    with ws.db.write() as s:
        submit_regions(s, pid, users["ann"], a, [])  # nothing to mark: a submitted, empty set
    with ws.db.read() as s:
        task = region_task(s, ws.store, pid, users["ann"], a)
    assert (task.proposals, task.regions, task.submitted) == (False, [], True)
    with ws.db.write() as s:  # opened again and corrected: replaced, still one hand-out
        result = submit_regions(s, pid, users["ann"], a, [{"start": 1.0, "end": 2.0, "label": "speech"}])
    assert result.status == "already_labelled"
    with ws.db.read() as s:
        assert region_task(s, ws.store, pid, users["ann"], a).regions == [
            {"start": 1.0, "end": 2.0, "label": "speech", "text": "", "tags": []}
        ]
        assert s.scalar(select(func.count()).select_from(Annotation)) == 1


def test_tags_sent_by_the_editor_are_stored_and_handed_back(recordings):  # noqa: F811
    ws, pid, _clips, users = recordings
    with ws.db.write() as s:
        clip = next_clip(s, pid, users["ann"]).clip_id
        submit_regions(
            s,
            pid,
            users["ann"],
            clip,
            [
                {"start": 1.0, "end": 2.0, "label": "speech", "text": "", "tags": ["noise:car"]},
                {"start": 3.0, "end": 4.0, "label": "speech", "text": "", "tags": []},
            ],
        )
    with ws.db.read() as s:
        stored = list_regions(s, pid, clip_id=clip)
        task = region_task(s, ws.store, pid, users["ann"], clip)
    assert [list(t) for t in stored["tags"]] == [["noise:car"], []]
    assert [r["tags"] for r in task.regions] == [["noise:car"], []]
    with ws.db.write() as s, pytest.raises(RegionsError, match="not in the project's vocabulary"):
        submit_regions(
            s, pid, users["ann"], clip, [{"start": 1.0, "end": 2.0, "label": "speech", "tags": ["noise:dog"]}]
        )
