"""Reading NeMo manifests: one JSON object per line, audio relative to the manifest or absolute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.data.formats.base import FormatError
from labeling.data.formats.nemo import read_nemo
from tests.audio import speechlike, write_wav


def _manifest(path: Path, lines: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_manifest_lines_become_clips(tmp_path: Path) -> None:
    write_wav(tmp_path / "wavs" / "a.wav", speechlike(1))
    absolute = write_wav(tmp_path / "wavs" / "b.wav", speechlike(2))
    path = _manifest(
        tmp_path / "train_manifest.json",
        [
            {"audio_filepath": "wavs/a.wav", "duration": 0.6, "text": "go left", "speaker": 3, "lang": "en"},
            {"audio_filepath": str(absolute), "duration": 0.6, "text": "", "label": "stop", "offset": 0},
        ],
    )

    plan = read_nemo(path)

    assert plan.source_format == "nemo"
    a, b = plan.items
    assert (a.name, a.transcript, a.split, a.metadata) == (
        "wavs/a.wav",
        "go left",
        "train",
        {"speaker": "3", "lang": "en"},
    )
    assert (b.name, b.transcript, b.label, b.metadata) == ("wavs/b.wav", None, "stop", {})
    assert plan.problems == []


def test_segment_offsets_are_not_supported(tmp_path: Path) -> None:
    write_wav(tmp_path / "long.wav", speechlike(1))
    path = _manifest(
        tmp_path / "m.json",
        [
            {"audio_filepath": "long.wav", "duration": 0.2, "offset": 0.25, "text": "b"},
            {"audio_filepath": "long.wav", "duration": 0.2, "offset": 0.0, "text": "a"},
        ],
    )

    plan = read_nemo(path)

    assert [i.transcript for i in plan.items] == ["a"]
    assert plan.problems[0].ref == "m.json line 1"
    assert "segment offsets not supported" in plan.problems[0].reason


def test_absolute_paths_elsewhere_need_the_audio_folder_named(tmp_path: Path) -> None:
    audio = write_wav(tmp_path / "corpus" / "x.wav", speechlike(1))
    path = _manifest(
        tmp_path / "manifests" / "dev.json", [{"audio_filepath": str(audio), "duration": 1, "text": "x"}]
    )

    refused = read_nemo(path)
    allowed = read_nemo(path, audio_root=tmp_path / "corpus")

    assert refused.items == []
    assert "outside the import folder" in refused.problems[0].reason
    assert [(i.name, i.split) for i in allowed.items] == [("x.wav", "dev")]


def test_a_broken_line_is_a_problem_but_a_file_of_no_manifest_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", speechlike(1))
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"audio_filepath": "a.wav", "text": "a"}\n{"audio_filepath": "b.wav", \n', encoding="utf-8"
    )

    plan = read_nemo(path)

    assert len(plan.items) == 1
    assert plan.problems[0].ref == "m.jsonl line 2"
    assert "not valid JSON" in plan.problems[0].reason

    other = _manifest(tmp_path / "other.jsonl", [{"file": "a.wav"}])
    with pytest.raises(FormatError, match="no line has an audio_filepath"):
        read_nemo(other)
