"""Imports that used to lose what a file says: spaces at the ends of transcripts and metadata, a
stray file beside NeMo manifests, untranscribed clips in a Kaldi export, tags outside the vocabulary.

Expected values are what the test writes into the source files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Clip, Resolution
from labeling.data.export import export_project
from labeling.data.importer import import_source
from labeling.data.projects import get_project
from tests.audio import speechlike, write_wav

#: (file, transcript, metadata, tags): spaces at either end are the source's, and stay.
CLIPS = [
    ("a.wav", "  two leading", {"device": " mic ", "speaker": "s1"}, ["noise:car"]),
    ("b.wav", "trailing  ", {"speaker": "s2"}, []),
    ("c.wav", " both ", {"speaker": "s3", "note": "\tindented"}, ["room:echo"]),
    ("d.wav", None, {"speaker": "s3"}, []),  # no transcript
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(ws, project: str) -> dict[str, tuple]:
    with ws.db.read() as s:
        pid = get_project(s, project).id
        rows = s.execute(
            select(Clip.sha256, Clip.original_name, Resolution.transcript, Clip.meta)
            .outerjoin(Resolution, Resolution.clip_id == Clip.id)
            .where(Clip.project_id == pid)
        ).all()
    return {sha: (name, transcript, dict(meta)) for sha, name, transcript, meta in rows}


@pytest.fixture
def spaced(workspace, tmp_path: Path) -> dict[str, tuple]:
    source = tmp_path / "source"
    expected = {}
    source.mkdir()
    with (source / "metadata.jsonl").open("w", encoding="utf-8") as f:
        for n, (name, transcript, meta, tags) in enumerate(CLIPS):
            sha = _sha(write_wav(source / name, speechlike(800 + n)))
            expected[sha] = (name, transcript, meta)
            row = {"file_name": name, "transcription": transcript, "tags": tags, "split": "train", **meta}
            f.write(json.dumps(row) + "\n")
    report = import_source(workspace, source, "spaced")
    assert report.rejected == []
    return expected


def test_transcripts_and_metadata_are_stored_as_the_file_writes_them(workspace, spaced):
    assert state(workspace, "spaced") == spaced
    with workspace.db.read() as s:
        # the tags the clips carry join the new project's vocabulary
        assert get_project(s, "spaced").tag_groups == {"noise": ["car"], "room": ["echo"]}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "audiofolder", "nemo", "labelstudio"])
def test_spaces_survive_a_round_trip(workspace, spaced, tmp_path, fmt):
    out = tmp_path / fmt
    export_project(workspace, "spaced", fmt=fmt, out=out)

    report = import_source(workspace, out, "again")

    assert report.rejected == []
    assert state(workspace, "again") == spaced


def test_a_kaldi_export_with_untranscribed_clips_imports_back_whole(workspace, spaced, tmp_path):
    for copy_audio in (True, False):
        out = tmp_path / f"kaldi-{copy_audio}"
        export_project(workspace, "spaced", fmt="kaldi", out=out, copy_audio=copy_audio)
        assert sorted(p.name for p in (out / "data").iterdir()) == ["train", "train_untranscribed"]

        report = import_source(workspace, out, f"again-{copy_audio}")

        assert report.rejected == []
        got = state(workspace, f"again-{copy_audio}")
        # Kaldi carries the speaker only, and a transcript as one line after the utterance id
        assert {sha: (name, t and t.lstrip()) for sha, (name, t, _) in got.items()} == {
            sha: (name, t and t.lstrip()) for sha, (name, t, _) in spaced.items()
        }  # every clip, each by its own name, also where wav.scp names the stored file
        with workspace.db.read() as s:
            pid = get_project(s, f"again-{copy_audio}").id
            assert set(s.scalars(select(Clip.split).where(Clip.project_id == pid))) == {"train"}


def test_a_stray_file_beside_nemo_manifests_is_skipped_and_named(workspace, tmp_path):
    folder = tmp_path / "nemo"
    lines = []
    for n, name in enumerate(["x.wav", "y.wav"]):
        write_wav(folder / name, speechlike(900 + n))
        lines.append(json.dumps({"audio_filepath": name, "duration": 0.6, "text": f"word {n}"}))
    (folder / "train_manifest.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "train_manifest.json.bak").write_text("[not a manifest at all\n", encoding="utf-8")
    (folder / "notes.json").write_text('"a JSON string, not a manifest"\n', encoding="utf-8")
    (folder / "old.jsonl").write_text("{broken\n", encoding="utf-8")

    report = import_source(workspace, folder, "nemo")

    assert report.n_imported == 2
    assert [p.ref for p in report.rejected] == ["old.jsonl", "train_manifest.json.bak", "notes.json line 1"]
    assert all(p.reason.endswith("skipped") for p in report.rejected)
