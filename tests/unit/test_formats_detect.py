"""``--format auto``: telling sources apart by their names and first bytes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from labeling.data.formats.base import FormatError
from labeling.data.formats.detect import FORMATS, READERS, detect_format
from tests.audio import speechlike, write_wav


def test_folders(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    write_wav(plain / "a.wav", speechlike(1))
    hf = tmp_path / "hf"
    (hf / "train").mkdir(parents=True)
    (hf / "train" / "metadata.jsonl").write_text('{"file_name": "a.wav"}\n', encoding="utf-8")
    cv = tmp_path / "cv"
    (cv / "clips").mkdir(parents=True)
    (cv / "validated.tsv").write_text("client_id\tpath\tsentence\n", encoding="utf-8")

    assert detect_format(plain) == "folder"
    assert detect_format(hf) == "audiofolder"
    assert detect_format(cv) == "commonvoice"


def test_files(tmp_path: Path) -> None:
    def put(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    task = {"id": 1, "data": {"audio": "/data/upload/1/a.wav"}, "annotations": []}
    assert detect_format(put("ls.json", json.dumps([task], indent=2))) == "labelstudio"
    assert detect_format(put("one.json", json.dumps(task, indent=2))) == "labelstudio"
    assert detect_format(put("none.json", "[]")) == "labelstudio"
    assert detect_format(put("min.json", json.dumps([{"audio": "/data/upload/1/a.wav", "label": "x"}]))) == (
        "labelstudio_min"
    )
    assert detect_format(put("ls.csv", "\ufeffannotation_id,annotator,audio,id,label\n")) == "labelstudio_csv"
    assert detect_format(put("train.tsv", "client_id\tpath\tsentence\tup_votes\n")) == "commonvoice"
    assert detect_format(put("metadata.csv", "file_name,label\r\n")) == "audiofolder"
    assert detect_format(put("train_manifest.json", '{"audio_filepath": "a.wav", "text": "x"}\n')) == "nemo"
    assert detect_format(put("metadata.jsonl", '{"file_name": "a.wav"}\n')) == "audiofolder"
    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.wav", b"RIFF")
    assert detect_format(archive) == "zip"


def test_unknown_sources_are_refused_with_the_formats_to_choose(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello", encoding="utf-8")

    with pytest.raises(FormatError, match=r"could not tell the format of notes.txt.*labelstudio"):
        detect_format(other)
    with pytest.raises(FormatError, match="does not exist"):
        detect_format(tmp_path / "missing.json")


def test_every_detected_file_format_has_a_reader() -> None:
    assert set(READERS) == set(FORMATS) - {"folder", "zip"}
