"""Regions in and out: RTTM (checked with pyannote's own writer and reader) and Label Studio exports."""

from __future__ import annotations

import json

import pytest
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm

from labeling.cli import main
from labeling.data.importer import import_path
from labeling.data.projects import create_project, get_project
from labeling.data.regions import RegionsError, list_regions
from labeling.data.regions_io import export_rttm, import_labelstudio_regions, import_rttm
from labeling.platform.audit import audit_frame
from tests.audio import tone, write_wav

TURNS = {
    "call_a": [(0.5, 2.25, "spk_A"), (1.75, 4.0, "spk_B"), (5.125, 9.5, "spk_A")],
    "call_b": [(0.0, 1.5, "spk_B"), (2.0, 5.75, "spk_C")],
}


@pytest.fixture
def project(workspace, tmp_path):
    """A regions project holding call_a.wav (10 s) and call_b.wav (6 s)."""
    src = tmp_path / "calls"
    write_wav(src / "call_a.wav", tone(10.0, freq=300))
    write_wav(src / "call_b.wav", tone(6.0, freq=500))
    with workspace.db.write() as s:
        info = create_project(s, name="calls", task_kind="regions", classes=["spk_A"], annotations_per_clip=2)
    import_path(workspace, src, "calls", create=False)
    return workspace, info.id


def pyannote_rttm(path):
    """The turns written by pyannote.core itself, one annotation per recording."""
    with path.open("w") as f:
        for uri, turns in TURNS.items():
            annotation = Annotation(uri=uri)
            for start, end, speaker in turns:
                annotation[Segment(start, end)] = speaker
            annotation.write_rttm(f)
    return path


@pytest.mark.parametrize("annotator", ["ann", None])
def test_rttm_comes_back_out_as_pyannote_wrote_it(project, tmp_path, annotator):
    ws, pid = project
    original = pyannote_rttm(tmp_path / "in.rttm")
    with ws.db.write() as s:
        report = import_rttm(s, pid, original, annotator=annotator)
    assert (report.recordings, report.regions) == (2, 5)
    assert report.added_classes == ["spk_B", "spk_C"]
    out = tmp_path / "out.rttm"
    with ws.db.read() as s:
        assert get_project(s, pid).classes == ["spk_A", "spk_B", "spk_C"]
        export_rttm(s, pid, out, annotator=annotator, source="import")
        stored = list_regions(s, pid)
    assert out.read_text() == original.read_text()
    assert set(stored["source"]) == {"import"}
    assert stored["annotator"].tolist() == [annotator] * 5
    theirs, ours = load_rttm(str(original)), load_rttm(str(out))
    assert sorted(ours) == ["call_a", "call_b"]
    for uri in ours:
        assert list(ours[uri].itertracks(yield_label=True)) == list(theirs[uri].itertracks(yield_label=True))


def test_importing_rttm_again_replaces_the_set(project, tmp_path):
    ws, pid = project
    first = pyannote_rttm(tmp_path / "in.rttm")
    second = tmp_path / "again.rttm"
    second.write_text("SPEAKER call_a 1 1.000 2.000 <NA> <NA> spk_A <NA> <NA>\n")
    with ws.db.write() as s:
        import_rttm(s, pid, first, annotator="ann")
    with ws.db.write() as s:
        import_rttm(s, pid, second, annotator="ann")
    with ws.db.read() as s:
        stored = list_regions(s, pid)
        events = audit_frame(s, project_id=pid, entity="regions")
    assert stored[stored["recording"] == "call_a.wav"][["start", "end"]].values.tolist() == [[1.0, 3.0]]
    assert len(stored[stored["recording"] == "call_b.wav"]) == 2  # a file that does not name it leaves it
    assert events["action"].tolist() == ["update", "create", "create"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("SPEAKER call_z 1 0.000 1.000 <NA> <NA> spk_A <NA> <NA>\n", r"no recording named \['call_z'\]"),
        ("SPEAKER call_a 1 0.000 <NA> <NA> spk_A <NA> <NA>\n", "line 2: 9 fields"),
        ("SPEAKER call_a 1 2.000 -1.000 <NA> <NA> spk_A <NA> <NA>\n", "positive duration"),
        ("SPEAKER call_b 1 5.000 3.000 <NA> <NA> spk_A <NA> <NA>\n", "ends after the recording"),
    ],
)
def test_bad_rttm_is_refused_and_nothing_is_written(project, tmp_path, text, why):
    ws, pid = project
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER call_a 1 0.000 1.000 <NA> <NA> spk_new <NA> <NA>\n" + text)
    with pytest.raises(RegionsError, match=why), ws.db.write() as s:
        import_rttm(s, pid, path, annotator="ann")
    with ws.db.read() as s:
        assert list_regions(s, pid).empty
        assert get_project(s, pid).classes == ["spk_A"]


def labelstudio_task(task_id, audio, annotations):
    return {"id": task_id, "data": {"audio": audio}, "annotations": annotations, "predictions": []}


def labelstudio_annotation(ann_id, email, regions, *, cancelled=False):
    """An annotation as Label Studio's "ASR using segments" template exports it: a ``labels`` result
    and a per-region ``textarea`` sharing the region's id."""
    result = []
    for n, (start, end, label, text) in enumerate(regions):
        rid = f"r{ann_id}_{n}"
        span = {"start": start, "end": end, "channel": 0}
        result.append(
            {
                "id": rid,
                "from_name": "labels",
                "to_name": "audio",
                "type": "labels",
                "origin": "manual",
                "value": {**span, "labels": [label]},
            }
        )
        if text is not None:
            result.append(
                {
                    "id": rid,
                    "from_name": "transcription",
                    "to_name": "audio",
                    "type": "textarea",
                    "origin": "manual",
                    "value": {**span, "text": [text]},
                }
            )
    return {
        "id": ann_id,
        "completed_by": {"id": ann_id, "email": email},
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
    }


def test_a_label_studio_export_with_regions_gives_each_annotator_their_regions(project, tmp_path):
    ws, pid = project
    export = [
        labelstudio_task(
            1,
            "/data/upload/3/0a1b2c3d-call_a.wav",
            [
                labelstudio_annotation(
                    11, "ann@example.com", [(0.5, 2.0, "Speech", "hello there"), (3.0, 4.5, "Noise", None)]
                ),
                labelstudio_annotation(12, "bob@example.com", [(0.6, 2.1, "Speech", "hello there")]),
                labelstudio_annotation(
                    13, "eve@example.com", [(1.0, 2.0, "Speech", "skipped")], cancelled=True
                ),
            ],
        ),
        labelstudio_task(
            2,
            "/data/upload/3/9f8e7d6c-call_b.wav",
            [labelstudio_annotation(14, "ann@example.com", [(1.25, 5.5, "Speech", "a long turn")])],
        ),
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    with ws.db.write() as s:
        report = import_labelstudio_regions(s, pid, path)
    assert (report.sets, report.regions, report.recordings) == (3, 4, 2)
    assert report.added_classes == ["Speech", "Noise"]
    with ws.db.read() as s:
        stored = list_regions(s, pid)
    got = {
        (r.recording, r.annotator): sorted(
            (g.start, g.end, g.label, g.text)
            for g in stored.itertuples()
            if (g.recording, g.annotator) == (r.recording, r.annotator)
        )
        for r in stored.itertuples()
    }
    assert got == {
        ("call_a.wav", "labelstudio:ann@example.com"): [
            (0.5, 2.0, "Speech", "hello there"),
            (3.0, 4.5, "Noise", None),
        ],
        ("call_a.wav", "labelstudio:bob@example.com"): [(0.6, 2.1, "Speech", "hello there")],
        ("call_b.wav", "labelstudio:ann@example.com"): [(1.25, 5.5, "Speech", "a long turn")],
    }
    assert set(stored["source"]) == {"import"}


def test_the_command_line_round_trips_rttm_and_refuses_clearly(project, tmp_path, monkeypatch, capsys):
    ws, _ = project
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    original = pyannote_rttm(tmp_path / "in.rttm")
    assert main(["regions", "import-rttm", str(original), "--project", "calls", "--annotator", "ann"]) == 0
    assert "5 regions in 2 sets on 2 recordings" in capsys.readouterr().out
    out = tmp_path / "out.rttm"
    assert main(["regions", "export-rttm", str(out), "--project", "calls", "--annotator", "ann"]) == 0
    assert out.read_text() == original.read_text()
    assert main(["regions", "export-rttm", str(tmp_path / "none.rttm"), "--project", "calls"]) == 1
    assert "no regions of source 'final' to export; the project holds ann/import" in capsys.readouterr().err
