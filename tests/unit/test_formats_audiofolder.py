"""Reading Hugging Face audiofolder datasets as the "Create an audio dataset" guide lays them out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.data.formats.audiofolder import read_audiofolder
from labeling.data.formats.base import FormatError
from tests.audio import speechlike, write_wav


def test_split_folders_with_metadata_csv(tmp_path: Path) -> None:
    for split, n in (("train", 0), ("validation", 1), ("test", 2)):
        write_wav(tmp_path / "data" / split / "audio" / f"{n}.wav", speechlike(n))
        (tmp_path / "data" / split / "metadata.csv").write_text(
            f'file_name,transcription,accent\r\naudio/{n}.wav,"hello, {split}",scottish\r\n', encoding="utf-8"
        )

    plan = read_audiofolder(tmp_path)

    assert plan.source_format == "audiofolder"
    got = sorted((i.split, i.name, i.transcript, i.metadata["accent"]) for i in plan.items)
    assert got == [
        ("dev", "audio/1.wav", "hello, validation", "scottish"),
        ("test", "audio/2.wav", "hello, test", "scottish"),
        ("train", "audio/0.wav", "hello, train", "scottish"),
    ]
    assert all(i.label is None for i in plan.items)  # "audio/" is a folder, not a class


def test_metadata_jsonl_without_labels_takes_none_from_folders(tmp_path: Path) -> None:
    # As audiofolder does: once metadata files exist, folder names are not labels.
    write_wav(tmp_path / "train" / "dog" / "1.wav", speechlike(1))
    write_wav(tmp_path / "train" / "cat" / "2.wav", speechlike(2))
    lines = [
        {"file_name": "dog/1.wav", "text": "woof", "n": 1},
        {"file_name": "cat/2.wav", "sentence": "meow"},
    ]
    (tmp_path / "train" / "metadata.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8"
    )

    plan = read_audiofolder(tmp_path)

    assert sorted((i.name, i.label, i.transcript, i.split, i.metadata.get("n")) for i in plan.items) == [
        ("cat/2.wav", None, "meow", "train", None),
        ("dog/1.wav", None, "woof", "train", "1"),
    ]


def test_without_metadata_class_folders_name_the_labels(tmp_path: Path) -> None:
    write_wav(tmp_path / "train" / "electronic" / "01.wav", speechlike(1))
    write_wav(tmp_path / "train" / "punk" / "01.wav", speechlike(2))
    write_wav(tmp_path / "test" / "punk" / "09.wav", speechlike(3))

    plan = read_audiofolder(tmp_path)

    assert sorted((i.split, i.label, i.name) for i in plan.items) == [
        ("test", "punk", "test/punk/09.wav"),
        ("train", "electronic", "train/electronic/01.wav"),
        ("train", "punk", "train/punk/01.wav"),
    ]


def test_label_column_tags_and_unlisted_files(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", speechlike(1))
    write_wav(tmp_path / "b.wav", speechlike(2))
    write_wav(tmp_path / "stray.wav", speechlike(3))
    (tmp_path / "metadata.csv").write_text(
        "file_name,label,tags,speaker\na.wav,yes,noise:car;channel:phone,s1\nb.wav,no,,s2\n", encoding="utf-8"
    )

    plan = read_audiofolder(tmp_path)

    assert [(i.name, i.label, i.tags, i.metadata) for i in plan.items] == [
        ("a.wav", "yes", ("noise:car", "channel:phone"), {"speaker": "s1"}),
        ("b.wav", "no", (), {"speaker": "s2"}),
    ]
    assert [(p.ref, p.reason) for p in plan.problems] == [
        ("stray.wav", "not listed in any metadata file; not imported")
    ]


def test_missing_file_name_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text("path,label\na.wav,x\n", encoding="utf-8")

    with pytest.raises(FormatError, match=r"no file_name column.*'path', 'label'"):
        read_audiofolder(tmp_path)


def test_both_metadata_files_in_one_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text("file_name\n", encoding="utf-8")
    (tmp_path / "metadata.jsonl").write_text("", encoding="utf-8")

    with pytest.raises(FormatError, match=r"both metadata\.csv and metadata\.jsonl"):
        read_audiofolder(tmp_path)
