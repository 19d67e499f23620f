"""The region error analysis service on both engines: what it reports is what the pure functions give
on the stored sets, and hand-worked values for a small case."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from analysis.region_errors import region_errors
from labeling.annotate.region_labels import submit_regions
from labeling.data.clips import clip_frame
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.data.regions import clean_region_rows, list_regions, recording, replace_region_set
from labeling.model.region_error_analysis import region_error_report
from labeling.platform.auth import add_user, get_user
from tests.audio import write_wav

FINAL = [
    {"start": 1.0, "end": 3.0, "label": "speech", "text": "Turn left now.", "tags": ["noise:car"]},
    {"start": 5.0, "end": 7.0, "label": "speech", "text": "stop", "tags": []},
]
MODEL = [
    {"start": 1.5, "end": 3.0, "label": "speech", "text": "turn left"},
    {"start": 5.0, "end": 7.5, "label": "speech", "text": "stop"},
    {"start": 8.0, "end": 9.0, "label": "speech", "text": "hello"},
]


def _set(s, info, clip_id, rows, source):
    rec = recording(s, info, clip_id)
    clean = clean_region_rows(pd.DataFrame(rows), info, rec, vocabulary=True)
    replace_region_set(s, info, rec, clean, annotator_id=None, source=source, actor_id=None)


@pytest.fixture
def scored(workspace, tmp_path):
    ws = workspace
    write_wav(tmp_path / "rec" / "call.wav", 0.01 * np.random.default_rng(0).standard_normal(16000 * 10))
    with ws.db.write() as s:
        info = create_project(
            s,
            name="calls",
            task_kind="regions",
            classes=["speech", "music"],
            tag_groups={"noise": ["car"]},
            annotations_per_clip=2,
            normalization={"lowercase": True, "strip_punctuation": True},
        )
        add_user(s, name="ana", role="annotator", password="correct horse")
    import_path(ws, tmp_path / "rec", "calls", create=False)
    with ws.db.write() as s:
        clip_id = int(clip_frame(s, info.id)["clip_id"].iloc[0])
        _set(s, info, clip_id, FINAL, "final")
        _set(s, info, clip_id, MODEL, "import")
        # ana misses the second half of the second region: 1 s of 4 missed, human level 25 %.
        submit_regions(
            s,
            info.id,
            get_user(s, "ana").id,
            clip_id,
            [{"start": 1.0, "end": 3.0, "label": "speech"}, {"start": 5.0, "end": 6.0, "label": "speech"}],
        )
    return ws, info


def test_the_report_is_what_region_errors_gives_on_the_stored_sets(scored):
    ws, info = scored
    with ws.db.read() as s:
        report = region_error_report(s, info.id, model="import", tolerance=0.6)
        regions = list_regions(s, info.id)
    final = regions[regions["source"] == "final"]
    model = regions[(regions["source"] == "import") & regions["annotator_id"].isna()]
    expected = region_errors(final, model, durations=10.0)
    # The transcripts are compared normalised; every time and label is region_errors' own.
    columns = ["side", "recording_id", "start", "end", "label", "duration", "correct", "missed"]
    columns += ["confusion", "false_alarm", "error"]
    pd.testing.assert_frame_equal(
        report.errors[columns].reset_index(drop=True), expected[columns].reset_index(drop=True)
    )

    # By hand: 4 s of final speech; 0.5 s missed at the start, 0.5 + 1 s of false alarm.
    row = report.summary.set_index("system").loc["Imported predictions"]
    assert row["reference_s"] == pytest.approx(4.0)
    assert row["missed"] == pytest.approx(0.5)
    assert row["false_alarm"] == pytest.approx(1.5)
    assert row["confusion"] == pytest.approx(0.0)
    assert row["der"] == pytest.approx(0.5)
    truth, guess = Annotation(), Annotation()
    for r in FINAL:
        truth[Segment(r["start"], r["end"])] = r["label"]
    for r in MODEL:
        guess[Segment(r["start"], r["end"])] = r["label"]
    assert row["der"] == pytest.approx(DiarizationErrorRate()(truth, guess, uem=Timeline([Segment(0, 10)])))
    # Within ±0.6 s both final regions find their partner; the third model region is extra: P 2/3, R 1.
    assert row["f1"] == pytest.approx(0.8)
    # After normalisation: "left now" loses "now" (1), "hello" is inserted (1), over 4 words.
    assert row["wer"] == pytest.approx(0.5)


def test_slices_carry_the_annotators_error_as_human_level(scored):
    ws, info = scored
    with ws.db.read() as s:
        report = region_error_report(s, info.id, model="import")
    ana = report.summary.set_index("system").loc["ana"]
    assert ana["der"] == pytest.approx(0.25)
    assert math.isnan(ana["wer"])  # ana typed no transcript
    speech = report.slices.set_index("slice").loc["class=speech"]
    assert speech["error_rate"] == pytest.approx(0.5)
    assert speech["hlp"] == pytest.approx(0.25)
    assert speech["priority"] == pytest.approx(0.25 * 1.0)
    # The region tagged noise:car (2 s) lost 0.5 s; ana got it whole.
    car = report.slices.set_index("slice").loc["noise:car"]
    assert car["share"] == pytest.approx(0.5)
    assert car["hlp"] == pytest.approx(0.0)


def test_without_final_or_model_regions_the_report_says_what_is_missing(workspace, tmp_path):
    ws = workspace
    write_wav(tmp_path / "rec" / "a.wav", 0.01 * np.ones(16000 * 2))
    with ws.db.write() as s:
        info = create_project(s, name="empty", task_kind="regions", classes=["speech"])
    import_path(ws, tmp_path / "rec", "empty", create=False)
    with ws.db.read() as s:
        assert "No final regions" in (region_error_report(s, info.id).note or "")
    with ws.db.write() as s:
        clip_id = int(clip_frame(s, info.id)["clip_id"].iloc[0])
        _set(s, info, clip_id, [{"start": 0.2, "end": 1.0, "label": "speech"}], "final")
    with ws.db.read() as s:
        report = region_error_report(s, info.id)
    assert "No model regions" in (report.note or "")
    assert report.models == {}
