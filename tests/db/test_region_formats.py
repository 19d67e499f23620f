"""Regions in every format, each written file read back by the format's own rules: Audacity's label
reader, Python's csv/json, Kaldi's data-directory rules (with coreutils' ``sort -c``), NeMo's manifest
parser, lhotse's manifest loader, Label Studio's result layout (and Earmark's Label Studio reader),
pyannote's RTTM loader; and each format import → export → import round trip."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest
from pyannote.database.util import load_rttm

from labeling.cli import main
from labeling.commands import regions as cli_regions
from labeling.data.clips import clip_frame
from labeling.data.formats.labelstudio import read_labelstudio_regions
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project, get_project
from labeling.data.regions import RegionsError, list_regions, recording, replace_region_set, save_regions
from labeling.data.regions_io import EVERY_SET_FORMATS, REGION_FORMATS, export_regions, import_regions
from tests.audio import tone, write_wav
from tests.db.test_trainer_manifests import load_manifest

# recording → annotator → regions (start, end, class, transcript, tags)
SETS = {
    "call_a.wav": {
        "ann": [
            (0.5, 2.25, "spk_A", "hello there", ["noise:car"]),
            (1.75, 4.0, "spk_B", None, []),
            (5.125, 9.5, "spk_A", 'so, "quoted" =sum', ["noise:car", "noise:wind"]),
        ],
        "bob": [(0.625, 2.25, "spk_A", "hello", [])],
    },
    "call_b.wav": {"ann": [(0.0, 1.5, "spk_B", "a long turn", [])]},
}
FINAL = {"call_a.wav": [(0.5, 2.25, "spk_A", "hello there", [])]}
DURATIONS = {"call_a.wav": 10.0, "call_b.wav": 6.0}
TAGS = {"noise": ["car", "wind"]}


def _project(ws, src, name):
    with ws.db.write() as s:
        info = create_project(
            s,
            name=name,
            task_kind="regions",
            classes=["spk_A", "spk_B"],
            tag_groups=TAGS,
            annotations_per_clip=2,
        )
    import_path(ws, src, name, create=False)
    return info.id


@pytest.fixture
def project(workspace, tmp_path):
    """A regions project with ann's and bob's regions and final regions, and an empty twin ``copy``
    holding the same recordings, to import into."""
    src = tmp_path / "calls"
    for n, (name, seconds) in enumerate(DURATIONS.items()):
        write_wav(src / name, tone(seconds, freq=300 + 200 * n))
    pid = _project(workspace, src, "calls")
    copy = _project(workspace, src, "copy")
    with workspace.db.write() as s:
        ids = ensure_users(s, {"ann", "bob"})
        frame = clip_frame(s, pid)
        clips = dict(zip(frame["original_name"], frame["clip_id"], strict=True))
        for name, sets in SETS.items():
            for who, regions in sets.items():
                rows = [dict(zip(("start", "end", "label", "text", "tags"), r, strict=True)) for r in regions]
                save_regions(s, pid, int(clips[name]), rows, annotator_id=ids[who])
        info = get_project(s, pid)
        for name, regions in FINAL.items():
            rec = recording(s, info, int(clips[name]))
            rows = [
                {"start_s": a, "end_s": b, "label": c, "transcript": t, "tags": g}
                for a, b, c, t, g in regions
            ]
            replace_region_set(s, info, rec, rows, annotator_id=None, source="final", actor_id=None)
    return workspace, pid, copy


def regions_of(ws, pid, annotator, fields=("text", "tags")):
    """One annotator's stored regions: ``(recording, start, end, class, *fields)``."""
    with ws.db.read() as s:
        frame = list_regions(s, pid)
    return {
        (
            r.recording,
            r.start,
            r.end,
            r.label,
            *(tuple(getattr(r, f)) if f == "tags" else getattr(r, f) for f in fields),
        )
        for r in frame[frame["annotator"] == annotator].itertuples()
    }


def expected(who, fields=("text", "tags")):
    """``who``'s regions of :data:`SETS`, as :func:`regions_of` gives them."""
    at = {"text": 0, "tags": 1}
    return {
        (name, a, b, c, *(tuple(rest[at[f]]) if f == "tags" else rest[at[f]] for f in fields))
        for name, sets in SETS.items()
        for a, b, c, *rest in sets.get(who, [])
    }


# ---------------------------------------------------------------- each format by its own rules


def audacity_reads(path: Path) -> list[tuple[float, float, str]]:
    """Audacity's ``LabelStruct::Import``: tab-split, ``t0``, ``t1`` (``t0`` when not a number, the
    field being the title then), title; lines starting with a backslash continue the label above."""
    labels = []
    for line in path.read_text().splitlines():
        if line.startswith("\\"):
            continue
        tokens = line.split("\t")
        t0 = float(tokens[0])
        try:
            t1, title = float(tokens[1]), tokens[2] if len(tokens) > 2 else ""
        except ValueError:
            t1, title = t0, tokens[1]
        labels.append((t0, t1, title))
    return labels


def test_audacity_tracks_are_read_by_audacitys_rules(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "tracks"
    with ws.db.read() as s:
        assert export_regions(s, pid, out, fmt="audacity", annotator="ann") == 4
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["call_a.txt", "call_b.txt"]
    assert (out / "call_a.txt").read_text().splitlines()[0] == "0.500000\t2.250000\tspk_A"
    assert audacity_reads(out / "call_a.txt") == [(a, b, c) for a, b, c, *_ in SETS["call_a.wav"]["ann"]]
    assert audacity_reads(out / "call_b.txt") == [(0.0, 1.5, "spk_B")]


def test_the_manuals_audacity_example_imports_without_its_point_labels(project, tmp_path):
    """The extended-format example of Audacity's manual ("Importing and Exporting Labels"): a point
    label, a region label, each followed by its frequency line."""
    ws, _, copy = project
    track = tmp_path / "call_a.txt"
    track.write_text(
        "1.000000\t1.000000\tThis point was clicked at 6928.456055 Hz\n"
        "\\\t6928.456055\t6928.456055\n"
        "2.000000\t4.000000\tspk_A\n"
        "\\\t300.000000\t3400.000000\n"
        "5,5\t6,25\tspk B with spaces\n"
    )
    with ws.db.write() as s:
        report = import_regions(s, copy, track, fmt="audacity", annotator="ann")
    assert [p.reason for p in report.problems] == ["a point label is no region; not read"]
    assert regions_of(ws, copy, "ann", fields=()) == {
        ("call_a.wav", 2.0, 4.0, "spk_A"),
        ("call_a.wav", 5.5, 6.25, "spk B with spaces"),
    }


def test_csv_and_jsonl_are_read_by_pythons_own_readers(project, tmp_path):
    ws, pid, _ = project
    with ws.db.read() as s:
        export_regions(s, pid, tmp_path / "r.csv", fmt="csv", every=True)
        export_regions(s, pid, tmp_path / "r.jsonl", fmt="jsonl", every=True)
    with (tmp_path / "r.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert list(rows[0]) == ["recording", "annotator", "start", "end", "label", "text", "tags"]
    assert len(rows) == len(lines) == 6
    tricky = next(r for r in lines if r["start"] == 5.125)
    assert tricky == {
        "recording": "call_a.wav",
        "annotator": "ann",
        "start": 5.125,
        "end": 9.5,
        "label": "spk_A",
        "text": 'so, "quoted" =sum',
        "tags": ["noise:car", "noise:wind"],
    }
    as_csv = next(r for r in rows if r["start"] == "5.125")
    assert as_csv["text"] == 'so, "quoted" =sum'  # not at a cell's start: nothing to escape
    assert as_csv["tags"] == "noise:car;noise:wind"
    final = [r for r in lines if r["annotator"] is None]
    assert [(r["start"], r["end"], r["text"]) for r in final] == [(0.5, 2.25, "hello there")]


def kaldi_directory_problems(folder: Path) -> list[str]:
    """What Kaldi's ``utils/validate_data_dir.sh`` and lhotse's ``load_kaldi_data_dir`` would refuse in
    a data directory with ``segments``, as their sources state the rules: every file sorted as
    ``LC_ALL=C sort`` sorts; ``text``, when present, lists exactly the utterances of ``utt2spk`` and
    ``segments`` (Kaldi compares the id lists); every ``text`` line splits into an id and a transcript
    (lhotse builds a dict of ``line.strip().split(maxsplit=1)``, and looks every segment up in it)."""
    problems = []
    names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    for name in names:
        check = subprocess.run(
            ["sort", "-c", folder / name], env={**os.environ, "LC_ALL": "C"}, capture_output=True
        )
        if check.returncode:
            problems.append(f"{name} not sorted")
    ids = {n: [line.split()[0] for line in (folder / n).read_text().splitlines()] for n in names}
    if "text" in names:
        if ids["text"] != ids["utt2spk"] or ids["text"] != ids["segments"]:
            problems.append("text does not list exactly the utterances of utt2spk and segments")
        for line in (folder / "text").read_text().splitlines():
            if len(line.strip().split(maxsplit=1)) != 2:
                problems.append(f"text line without a transcript: {line!r}")
    return problems


def test_kaldi_segments_keep_kaldis_data_directory_rules(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "kaldi_dir"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="kaldi", annotator="ann", audio_root="wav")
    files = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    # ann's set is partly transcribed: the directory holds every region and no text ...
    assert files == {"segments", "utt2spk", "spk2utt", "wav.scp", "reco2dur"}
    assert kaldi_directory_problems(out) == []
    table = {n: [line.split(maxsplit=1) for line in (out / n).read_text().splitlines()] for n in files}
    utt2spk = dict(table["utt2spk"])
    for utt, spk in utt2spk.items():  # the speaker id is a prefix of the utterance id
        assert utt.startswith(spk + "-")
    spk2utt = {spk: utts.split() for spk, utts in table["spk2utt"]}
    assert {u: s for s, us in spk2utt.items() for u in us} == utt2spk
    assert dict(table["wav.scp"]) == {"call_a": "wav/call_a.wav", "call_b": "wav/call_b.wav"}
    segments = {u: rest.split() for u, rest in table["segments"]}
    assert list(segments) == list(utt2spk)
    got = {(utt2spk[u], reco, float(a), float(b)) for u, (reco, a, b) in segments.items()}
    assert got == {(c, n.removesuffix(".wav"), a, b) for n, a, b, c, *_ in _flat("ann")}
    assert "spk_A-call_a-00005125-00009500" in segments
    # ... and the transcribed regions again as a directory of their own, text on every line.
    sub = out / "transcribed"
    assert kaldi_directory_problems(sub) == []
    texts = dict(line.split(maxsplit=1) for line in (sub / "text").read_text().splitlines())
    assert texts == {
        "spk_A-call_a-00000500-00002250": "hello there",
        "spk_A-call_a-00005125-00009500": 'so, "quoted" =sum',
        "spk_B-call_b-00000000-00001500": "a long turn",
    }
    assert dict(line.split() for line in (sub / "wav.scp").read_text().splitlines()) == {
        "call_a": "wav/call_a.wav",
        "call_b": "wav/call_b.wav",
    }


def test_a_wholly_transcribed_kaldi_set_has_its_text_beside_its_segments(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "final_dir"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="kaldi", source="final", audio_root="wav")
    assert (out / "text").read_text() == "spk_A-call_a-00000500-00002250 hello there\n"
    assert not (out / "transcribed").exists()
    assert kaldi_directory_problems(out) == []


def test_a_kaldi_segment_to_the_end_and_one_of_unknown_speaker(project, tmp_path):
    ws, _, copy = project
    data = tmp_path / "kaldi_dir"
    data.mkdir()
    (data / "segments").write_text("spk_B-call_b-1 call_b 1.5 -1\nu2 call_a 0 1\n")
    (data / "utt2spk").write_text("spk_B-call_b-1 spk_B\nu2 u2\n")
    with ws.db.write() as s:
        report = import_regions(s, copy, data, fmt="kaldi", annotator="ann")
    assert [(p.ref, p.reason.split(",")[0]) for p in report.problems] == [
        ("u2", "its speaker is not known (the utterance id)")
    ]
    assert regions_of(ws, copy, "ann", fields=()) == {("call_b.wav", 1.5, 6.0, "spk_B")}


def _flat(who):
    return [(name, *r) for name, sets in SETS.items() for r in sets.get(who, [])]


def nemo_parses(line: str) -> dict:
    """NeMo's ``__parse_item`` (nemo/collections/common/parts/preprocessing/manifest.py)."""
    item = json.loads(line)
    if "audio_filename" in item:
        item["audio_file"] = item.pop("audio_filename")
    elif "audio_filepath" in item:
        item["audio_file"] = item.pop("audio_filepath")
    else:
        raise ValueError("without proper audio file key")
    if "duration" not in item:
        raise ValueError("without proper duration key")
    return {
        "audio_file": item["audio_file"],
        "duration": item["duration"],
        "text": item.get("text", ""),
        "offset": item.get("offset", None),
        "speaker": item.get("speaker", None),
        "label": item.get("label"),  # the classification datasets' key
    }


def test_nemo_manifest_is_parsed_by_nemos_rules(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "regions_manifest.json"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="nemo", annotator="ann", audio_root="/corpus")
    parsed = [nemo_parses(line) for line in out.read_text().splitlines()]
    got = {(p["audio_file"], p["offset"], p["offset"] + p["duration"], p["label"], p["text"]) for p in parsed}
    assert got == {(f"/corpus/{n}", a, b, c, t or "") for n, a, b, c, t, _ in _flat("ann")}


def test_lhotse_supervisions_load_as_lhotse_loads_them(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "lhotse"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="lhotse", every=True, audio_root="audio")
    recordings = load_manifest(out / "recordings.jsonl.gz")
    supervisions = load_manifest(out / "supervisions.jsonl.gz")
    assert (recordings.kind, supervisions.kind) == ("recordings", "supervisions")
    assert recordings.items["call_a"]["duration"] == 10.0
    assert recordings.items["call_a"]["sources"][0]["source"] == "audio/call_a.wav"
    for sup in supervisions.items.values():
        assert sup["recording_id"] in recordings.items
        assert isinstance(sup["start"], float)
        assert isinstance(sup["duration"], float)
        assert sup["speaker"] == sup["custom"]["label"]
    got = {
        (
            s["recording_id"],
            s["custom"].get("annotator"),
            s["start"],
            s["start"] + s["duration"],
            s["speaker"],
        )
        for s in supervisions.items.values()
    }
    want = {(n.removesuffix(".wav"), w, a, b, c) for w in ("ann", "bob") for n, a, b, c, *_ in _flat(w)}
    assert got == want | {("call_a", None, 0.5, 2.25, "spk_A")}
    assert supervisions.items["call_a-000001"]["custom"]["tags"] == ["noise:car"]


def test_label_studio_export_has_the_templates_layout_and_reads_back(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "ls.json"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="labelstudio", every=True)
    tasks = json.loads(out.read_text())
    assert [t["data"]["original_name"] for t in tasks] == ["call_a.wav", "call_b.wav"]
    ann = next(a for a in tasks[0]["annotations"] if a["completed_by"] == {"email": "ann@earmark.invalid"})
    first = [r for r in ann["result"] if r["value"]["start"] == 0.5]
    assert {r["type"] for r in first} == {"labels", "textarea", "choices"}
    assert len({r["id"] for r in first}) == 1  # one region: the transcript is linked by its id
    label = next(r for r in first if r["type"] == "labels")
    assert label["value"] == {"start": 0.5, "end": 2.25, "channel": 0, "labels": ["spk_A"]}
    assert {k: label[k] for k in ("from_name", "to_name")} == {"from_name": "labels", "to_name": "audio"}
    assert [a["ground_truth"] for a in tasks[0]["annotations"]] == [True, False, False]  # final, ann, bob
    users = json.loads((tmp_path / "ls_users.json").read_text())
    assert {u["email"]: u["username"] for u in users} == {
        "earmark+final-label@earmark.invalid": "earmark+final-label",
        "ann@earmark.invalid": "ann",
        "bob@earmark.invalid": "bob",
    }
    config = (tmp_path / "ls_config.xml").read_text()
    assert '<TextArea name="transcription" toName="audio" perRegion="true"' in config
    read = read_labelstudio_regions(out).regions
    got = {
        (
            r.recording,
            r.annotator,
            r.final,
            r.start,
            r.end,
            r.label,
            r.text if isinstance(r.text, str) else None,
        )
        for r in read.itertuples()
    }
    want = {(n, w, False, a, b, c, t) for w in ("ann", "bob") for n, a, b, c, t, _ in _flat(w)}
    assert {g for g in got if not g[2]} == want
    assert {g[3:] for g in got if g[2]} == {(0.5, 2.25, "spk_A", "hello there")}


def test_rttm_export_loads_in_pyannote_as_stored(project, tmp_path):
    ws, pid, _ = project
    out = tmp_path / "ann.rttm"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="rttm", annotator="ann")
    loaded = load_rttm(str(out))
    assert sorted(loaded) == ["call_a", "call_b"]
    got = {
        (uri, round(seg.start, 3), round(seg.end, 3), spk)
        for uri, ann in loaded.items()
        for seg, _, spk in ann.itertracks(yield_label=True)
    }
    assert got == {(n.removesuffix(".wav"), a, b, c) for n, a, b, c, *_ in _flat("ann")}


# ---------------------------------------------------------------- round trips

CARRIED = {
    "rttm": (),
    "audacity": (),
    "kaldi": ("text",),
    "csv": ("text", "tags"),
    "jsonl": ("text", "tags"),
    "nemo": ("text", "tags"),
    "lhotse": ("text", "tags"),
    "labelstudio": ("text", "tags"),
}
FOLDERS = {"audacity", "kaldi", "lhotse"}


@pytest.mark.parametrize("fmt", REGION_FORMATS)
def test_export_import_export_round_trips(project, tmp_path, fmt):
    ws, pid, copy = project
    first, second = tmp_path / "first", tmp_path / "second"
    suffix = "" if fmt in FOLDERS else {"labelstudio": ".json", "nemo": ".json"}.get(fmt, f".{fmt}")
    first_path, second_path = first.with_suffix(suffix), second.with_suffix(suffix)
    every = fmt in EVERY_SET_FORMATS
    with ws.db.read() as s:
        export_regions(
            s, pid, first_path, fmt=fmt, annotator=None if every else "ann", every=every, audio_root="a"
        )
    with ws.db.write() as s:
        import_regions(s, copy, first_path, fmt=fmt, annotator=None if every else "ann")
    fields = CARRIED[fmt]
    assert regions_of(ws, copy, "ann", fields) == expected("ann", fields)
    if every:
        assert regions_of(ws, copy, "bob", fields) == expected("bob", fields)
    with ws.db.read() as s:
        export_regions(
            s, copy, second_path, fmt=fmt, annotator=None if every else "ann", every=every, audio_root="a"
        )
    if fmt == "labelstudio":  # the final set came back as the final set, the rest as annotations
        assert json.loads(first_path.read_text()) == json.loads(second_path.read_text())
    elif fmt in FOLDERS:
        written = sorted(f.relative_to(first_path) for f in first_path.rglob("*") if f.is_file())
        assert written == sorted(f.relative_to(second_path) for f in second_path.rglob("*") if f.is_file())
        for rel in written:
            data = (first_path / rel).read_bytes()
            assert (gzip.decompress(data) if rel.suffix == ".gz" else data) == (
                gzip.decompress((second_path / rel).read_bytes())
                if rel.suffix == ".gz"
                else (second_path / rel).read_bytes()
            ), rel
    else:
        assert first_path.read_text() == second_path.read_text()


# ---------------------------------------------------------------- refusals and the command line


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("r.csv", "recording,start,end\ncall_a.wav,0,1\n", r"no column\(s\) \['label'\]"),
        (
            "r.jsonl",
            '{"recording": "call_a.wav", "start": "x", "end": 1, "label": "a"}\n',
            "start 'x' is not a number",
        ),
        (
            "r.jsonl",
            '{"recording": "call_z.wav", "start": 0, "end": 1, "label": "a"}\n',
            "no recording named",
        ),
        (
            "r.jsonl",
            '{"recording": "call_b.wav", "start": 5, "end": 7, "label": "a"}\n',
            "ends after the recording",
        ),
    ],
)
def test_bad_region_files_are_refused_and_nothing_is_written(project, tmp_path, name, text, why):
    ws, _, copy = project
    path = tmp_path / name
    path.write_text(text)
    fmt = name.rsplit(".", 1)[1]
    with pytest.raises(RegionsError, match=why), ws.db.write() as s:
        import_regions(s, copy, path, fmt=fmt)
    with ws.db.read() as s:
        assert list_regions(s, copy).empty
        assert get_project(s, copy).classes == ["spk_A", "spk_B"]


def test_a_one_set_format_refuses_every_set(project, tmp_path):
    ws, pid, _ = project
    with pytest.raises(RegionsError, match="rttm holds one set per recording"), ws.db.read() as s:
        export_regions(s, pid, tmp_path / "x.rttm", fmt="rttm", every=True)
    assert not (tmp_path / "x.rttm").exists()


def test_the_command_line_exports_and_imports_every_format_by_name(project, tmp_path, monkeypatch, capsys):
    ws, _, _ = project
    assert (cli_regions.REGION_FORMATS, cli_regions.EVERY_SET_FORMATS) == (REGION_FORMATS, EVERY_SET_FORMATS)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    out = tmp_path / "all.jsonl"
    assert main(["regions", "export", str(out), "--project", "calls", "--format", "jsonl", "--all"]) == 0
    assert "wrote 6 regions" in capsys.readouterr().out
    assert main(["regions", "import", str(out), "--project", "copy", "--format", "jsonl"]) == 0
    assert "6 regions in 4 sets on 2 recordings" in capsys.readouterr().out
    tracks = tmp_path / "tracks"
    assert (
        main(["regions", "export", str(tracks), "--project", "calls", "--format", "audacity", "--all"]) == 1
    )
    assert "audacity holds one set per recording" in capsys.readouterr().err
    assert not tracks.exists()
