"""Reading a Common Voice release: TSVs beside ``clips/``, split from the TSV's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeling.data.formats.base import FormatError
from labeling.data.formats.commonvoice import read_commonvoice
from tests.audio import speechlike, write_wav

# Common Voice 17's columns; sentences carry quotes, which the TSVs leave unquoted.
HEADER = (
    "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\t"
    "accents\tvariant\tlocale\tsegment"
)


def _release(tmp_path: Path) -> Path:
    for i in range(3):
        write_wav(tmp_path / "clips" / f"common_voice_en_{i}.wav", speechlike(i))
    rows = [
        'a1b2\tcommon_voice_en_0.wav\ts0\tSay "yes" twice.\t\t2\t0\ttwenties\tfemale_feminine\t'
        "Scottish English\t\ten\t",
        "c3d4\tcommon_voice_en_1.wav\ts1\tNo way.\t\t3\t1\tteens\t\t\t\ten\t",
    ]
    (tmp_path / "train.tsv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    (tmp_path / "validated.tsv").write_text(
        "\n".join([HEADER, rows[0], rows[1].replace("_1.", "_2.")]) + "\n", encoding="utf-8"
    )
    return tmp_path


def test_rows_become_transcribed_clips_with_speaker_and_metadata(tmp_path: Path) -> None:
    plan = read_commonvoice(_release(tmp_path) / "train.tsv")

    assert plan.source_format == "commonvoice"
    first, second = plan.items
    assert first.name == "common_voice_en_0.wav"
    assert first.path == (tmp_path / "clips" / "common_voice_en_0.wav").resolve()
    assert first.transcript == 'Say "yes" twice.'
    assert first.split == "train"
    assert first.metadata == {
        "speaker": "a1b2",
        "sentence_id": "s0",
        "up_votes": "2",
        "down_votes": "0",
        "age": "twenties",
        "gender": "female_feminine",
        "accents": "Scottish English",
        "locale": "en",
    }
    assert second.metadata["age"] == "teens"
    assert "gender" not in second.metadata
    assert plan.problems == []


def test_validated_sets_no_split(tmp_path: Path) -> None:
    plan = read_commonvoice(_release(tmp_path) / "validated.tsv")

    assert [i.split for i in plan.items] == [None, None]


def test_older_accent_column_and_missing_clip(tmp_path: Path) -> None:
    write_wav(tmp_path / "clips" / "a.mp3.wav", speechlike(9))
    (tmp_path / "dev.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n"
        "x\ta.mp3.wav\tHello\t1\t0\t\tmale\tus\n"
        "y\tgone.mp3\tBye\t1\t0\t\t\t\n",
        encoding="utf-8",
    )

    plan = read_commonvoice(tmp_path / "dev.tsv")

    assert [(i.split, i.metadata.get("accent")) for i in plan.items] == [("dev", "us")]
    assert plan.problems[0].ref == "dev.tsv line 3"
    assert "gone.mp3: file not found" in plan.problems[0].reason


def test_missing_columns_are_named(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "test.tsv").write_text("client_id\tfile\ttext\nx\ta.wav\thi\n", encoding="utf-8")

    with pytest.raises(FormatError, match=r"no column 'path'.*'client_id', 'file', 'text'"):
        read_commonvoice(tmp_path / "test.tsv")


def test_without_a_clips_folder_the_user_is_told_to_name_one(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text(HEADER + "\n", encoding="utf-8")

    with pytest.raises(FormatError, match="clips folder"):
        read_commonvoice(tmp_path / "train.tsv")
