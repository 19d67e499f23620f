"""Adjudicating regions into a final set, replacing it, and cutting final regions into a clip project."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from db.models import AuditEvent, Clip, Resolution
from labeling.annotate.region_review import adjudicate_regions, final_changes, recording_review
from labeling.cli import main
from labeling.data.clips import clip_frame
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project, get_project
from labeling.data.region_clips import cut_final_regions, preview_cut
from labeling.data.regions import RegionsError, list_regions, save_regions
from labeling.quality.region_agreement import region_review_queue
from tests.audio import write_wav

SR = 16000
SECONDS = {"a.wav": 8.0, "b.wav": 5.0}
DRAWN = {
    ("a.wav", "ann"): [(0.5, 2.0, "speech"), (3.0, 6.0, "speech"), (6.5, 7.5, "noise")],
    ("a.wav", "bob"): [(0.6, 2.0, "speech"), (3.4, 6.1, "speech"), (6.2, 7.5, "speech")],
    ("b.wav", "ann"): [(1.0, 4.0, "speech")],
    ("b.wav", "bob"): [(1.0, 4.0, "speech")],
}


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "rec"
    rng = np.random.default_rng(7)
    for name, seconds in SECONDS.items():
        write_wav(src / name, 0.3 * rng.standard_normal(round(seconds * SR)).clip(-1, 1))
    with workspace.db.write() as s:
        info = create_project(s, name="meet", task_kind="regions", classes=["speech", "noise"])
        users = ensure_users(s, {"ann", "bob", "rev"})
    import_path(workspace, src, "meet", create=False)
    with workspace.db.write() as s:
        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
        for (name, who), regions in DRAWN.items():
            rows = [{"start": a, "end": b, "label": c} for a, b, c in regions]
            save_regions(s, info.id, clips[name], rows, annotator_id=users[who])
    return workspace, info.id, clips, users, src


def test_the_queue_puts_the_recording_annotators_disagree_on_first(project):
    ws, pid, _, _, _ = project
    with ws.db.read() as s:
        queue = region_review_queue(s, pid)
    assert queue["recording"].tolist() == ["a.wav", "b.wav"]
    assert queue["disagreement"].iloc[1] == 0.0  # identical sets: every frame unanimous
    assert queue["disagreement"].iloc[0] > 0
    assert queue["final"].isna().all()


def test_spans_say_where_annotators_split(project):
    ws, pid, clips, _, _ = project
    with ws.db.read() as s:
        review = recording_review(s, pid, clips["a.wav"])
    assert review.annotators == ["ann", "bob"]
    spans = review.spans.set_index("span")
    # 0.5-2.0 vs 0.6-2.0: within ±200 ms; 3.0 vs 3.4: 400 ms apart, then both mark speech to 6.0, so
    # 3.0-6.1 is cut in the middle of 3.4-6.0 and 6.0 vs 6.1 agrees; noise vs speech at the end.
    assert spans["agreed"].tolist() == [True, False, True, False]
    assert spans[["start", "end"]].to_numpy().tolist() == [[0.5, 2.0], [3.0, 4.7], [4.7, 6.1], [6.2, 7.5]]


def test_adjudication_keeps_the_chosen_regions_per_span_audited(project):
    ws, pid, clips, users, _ = project
    from analysis.region_review import compose_final

    with ws.db.read() as s:
        review = recording_review(s, pid, clips["a.wav"])
    choices = {0: "ann", 1: "bob", 2: "bob", 3: "ann"}
    final = compose_final(review.regions, choices)
    with ws.db.write() as s:
        changes = adjudicate_regions(s, pid, clips["a.wav"], final, reviewer_id=users["rev"], choices=choices)
    assert changes["change"].tolist() == ["added"] * 3
    with ws.db.read() as s:
        stored = list_regions(s, pid, clip_id=clips["a.wav"], sources=["final"])
        event = s.execute(
            select(AuditEvent.actor_id, AuditEvent.new)
            .where(AuditEvent.entity == "regions")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).one()
    assert stored[["start", "end", "label"]].to_numpy().tolist() == [
        [0.5, 2.0, "speech"],
        [3.4, 6.1, "speech"],
        [6.5, 7.5, "noise"],
    ]
    assert stored["annotator"].isna().all()
    assert event.actor_id == users["rev"]
    assert event.new["kept"] == {"0": "ann", "1": "bob", "2": "bob", "3": "ann"}

    # Replaced later: the preview says what goes and what comes, and the save does exactly that.
    again = compose_final(review.regions, {0: "ann", 1: "ann", 2: "ann", 3: None})
    with ws.db.read() as s:
        preview = final_changes(s, pid, clips["a.wav"], again)
    assert sorted(map(tuple, preview[["start", "end", "change"]].to_numpy().tolist())) == [
        (0.5, 2.0, "kept"),
        (3.0, 6.0, "added"),
        (3.4, 6.1, "removed"),
        (6.5, 7.5, "removed"),
    ]
    with ws.db.write() as s:
        adjudicate_regions(s, pid, clips["a.wav"], again, reviewer_id=users["rev"])
    with ws.db.read() as s:
        stored = list_regions(s, pid, clip_id=clips["a.wav"], sources=["final"])
        people = list_regions(s, pid, clip_id=clips["a.wav"], sources=["annotator"])
    assert stored[["start", "end"]].to_numpy().tolist() == [[0.5, 2.0], [3.0, 6.0]]
    assert len(people) == 6  # the annotators' own sets are untouched


def test_a_bad_final_set_is_refused_and_nothing_is_written(project):
    ws, pid, clips, users, _ = project
    with ws.db.write() as s, pytest.raises(RegionsError, match="music"):
        adjudicate_regions(
            s, pid, clips["a.wav"], [{"start": 1.0, "end": 2.0, "label": "music"}], reviewer_id=users["rev"]
        )
    with ws.db.read() as s:
        assert list_regions(s, pid, sources=["final"]).empty


def _adjudicate_all(ws, pid, clips, users):
    with ws.db.write() as s:
        adjudicate_regions(
            s,
            pid,
            clips["a.wav"],
            [
                {"start": 0.5, "end": 2.0, "label": "speech", "text": "hello there"},
                {"start": 3.25, "end": 6.1, "label": "speech", "text": None},
                {"start": 6.5, "end": 7.5, "label": "noise", "text": None},
            ],
            reviewer_id=users["rev"],
        )
        adjudicate_regions(
            s,
            pid,
            clips["b.wav"],
            [{"start": 1.0, "end": 4.0, "label": "speech", "text": "goodbye"}],
            reviewer_id=users["rev"],
        )


def test_cut_makes_a_classification_project_whose_audio_is_the_recordings_span(project):
    ws, pid, clips, users, src = project
    _adjudicate_all(ws, pid, clips, users)
    report = cut_final_regions(ws, "meet", "meet-clips", actor_id=users["rev"])
    assert len(report.clips) == 4
    with ws.db.read() as s:
        info = get_project(s, "meet-clips")
        rows = s.execute(
            select(Clip.id, Clip.storage_key, Clip.meta, Clip.sample_rate, Resolution.label)
            .join(Resolution, Resolution.clip_id == Clip.id)
            .where(Clip.project_id == info.id)
            .order_by(Clip.id)
        ).all()
    assert info.task_kind == "classification"
    assert sorted(info.classes) == ["noise", "speech"]
    assert [r.label for r in rows] == ["speech", "speech", "noise", "speech"]
    for row in rows:
        meta = row.meta
        assert int(meta["recording_id"]) == clips[meta["recording"]]
        start, end = float(meta["start_s"]), float(meta["end_s"])
        # The recording read by soundfile from the file that was imported, sliced here.
        whole, sr = sf.read(str(src / meta["recording"]), dtype="float64")
        expected = whole[round(start * sr) : round(end * sr)]
        cut, cut_sr = sf.read(str(ws.store.path(row.storage_key)), dtype="float64")
        assert cut_sr == sr == row.sample_rate
        np.testing.assert_array_equal(cut, expected)


def test_cut_into_transcription_carries_transcripts_and_queues_the_rest(project):
    ws, pid, clips, users, _ = project
    _adjudicate_all(ws, pid, clips, users)
    cut_final_regions(ws, "meet", "meet-asr", kind="transcription")
    with ws.db.read() as s:
        frame = clip_frame(s, get_project(s, "meet-asr").id)
        finals = dict(
            s.execute(
                select(Clip.original_name, Resolution.transcript).join(
                    Resolution, Resolution.clip_id == Clip.id
                )
            ).all()
        )
    assert len(frame) == 4
    assert sorted(finals.values()) == ["goodbye", "hello there"]
    assert sorted(frame["annotations_needed"].tolist()) == [0, 0, 1, 1]


def test_cut_is_refused_without_final_regions_or_onto_an_existing_name(project, monkeypatch, capsys):
    ws, pid, clips, users, _ = project
    with pytest.raises(RegionsError, match="no final regions"):
        cut_final_regions(ws, "meet", "meet-clips")
    _adjudicate_all(ws, pid, clips, users)
    with pytest.raises(RegionsError, match="already exists"):
        cut_final_regions(ws, "meet", "meet")
    with ws.db.read() as s:
        assert (
            preview_cut(s, "meet", "meet-clips")
            .summary()
            .startswith(
                "classification project 'meet-clips' would make from 'meet': 4 clips from 2 recordings"
            )
        )
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert main(["regions", "cut", "--project", "meet", "--to", "meet-clips", "--dry-run"]) == 0
    assert "would make" in capsys.readouterr().out
    with ws.db.read() as s, pytest.raises(Exception, match="meet-clips"):
        get_project(s, "meet-clips")
    assert main(["regions", "cut", "--project", "meet", "--to", "meet-clips", "--kind", "transcription"]) == 0
    assert "transcription project 'meet-clips' made from 'meet': 4 clips" in capsys.readouterr().out
