"""Files as other tools write them, read without losing a label, an annotator or a character.

The fixtures under ``tests/fixtures`` are written by hand in the layout each tool documents (Label
Studio's JSON_MIN/CSV/TSV and UI exports, its ``/api/users`` answer, a Kaldi recipe's ``data/``
directories, a LibriSpeech subset, NeMo manifests made on Colab, a Hugging Face audiofolder). Only the
audio is generated here, with soundfile.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from labeling.commands.imports import FORMATS as CLI_FORMATS
from labeling.data.formats._common import escape_cell, unescape_cell
from labeling.data.formats.audiofolder import read_audiofolder
from labeling.data.formats.base import FormatError, ReadLimits
from labeling.data.formats.detect import detect_format
from labeling.data.formats.identities import email_for, identity_from_email
from labeling.data.formats.kaldi import read_kaldi
from labeling.data.formats.labelstudio import read_label_config, read_labelstudio
from labeling.data.formats.librispeech import read_librispeech
from labeling.data.formats.nemo import read_nemo
from tests.audio import speechlike, write_wav

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DIGITS = [str(d) for d in range(10)]
NOISE = {"noise": ["clean", "car", "people"]}
MIN_EXPORT = "project-1-at-2025-06-02-10-14-9a8b7c6d-min.json"
CSV_EXPORT = "project-1-at-2025-06-02-10-15-3c2b1a09.csv"
TSV_NAMED_CSV = "project-1-at-2025-06-02-10-16-5e4d3c2b.csv"
UI_EXPORT = "project-2-at-2025-06-03-16-02-77aa11bb.json"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


@pytest.fixture
def labelstudio(tmp_path: Path) -> Path:
    """The Label Studio exports, with the files they name in Label Studio's upload folder."""
    folder = copy_fixture("labelstudio", tmp_path)
    upload = folder / "media" / "upload" / "1"
    for n, name in enumerate(
        ["0f3a9c21-0_jackson_0.wav", "7b1e2d90-3_theo_1.wav", "c4d5e6f7-1_nicolas_2.wav"]
    ):
        write_wav(upload / name, speechlike(300 + n))
    local = folder / "voice-labelstudio"
    for n, name in enumerate(["0_jackson_0.wav", "3_theo_1.wav"]):
        write_wav(local / name, speechlike(310 + n))
    return folder


def _by_clip(plan) -> dict[str, dict]:
    return {
        item.name: {
            "label": item.label,
            "tags": item.tags,
            "metadata": item.metadata,
            "annotations": sorted((a.annotator, a.label, a.tags) for a in item.annotations),
        }
        for item in plan.items
    }


EXPECTED_DIGITS = {
    "0_jackson_0.wav": [
        ("labelstudio-user-1", "0", ("noise:clean",)),
        ("labelstudio-user-2", "0", ("noise:clean",)),
    ],
    "3_theo_1.wav": [
        ("labelstudio-user-1", "3", ("noise:car", "noise:people")),
        ("labelstudio-user-2", "8", ("noise:car",)),
    ],
    "1_nicolas_2.wav": [
        ("labelstudio-user-1", "1", ("noise:people",)),
        ("labelstudio-user-2", "1", ("noise:clean",)),
    ],
}


@pytest.mark.parametrize("export", [MIN_EXPORT, CSV_EXPORT, TSV_NAMED_CSV])
def test_label_studio_min_and_csv_labels_come_from_the_project_classes_and_tags(
    labelstudio: Path, export: str
) -> None:
    plan = read_labelstudio(
        labelstudio / export, audio_root=labelstudio / "media", classes=DIGITS, tag_groups=NOISE
    )

    got = _by_clip(plan)
    assert {name: clip["annotations"] for name, clip in got.items()} == EXPECTED_DIGITS
    assert {name: clip["metadata"] for name, clip in got.items()} == {
        "0_jackson_0.wav": {"speaker": "jackson"},
        "3_theo_1.wav": {"speaker": "theo"},
        "1_nicolas_2.wav": {"speaker": "nicolas"},
    }
    assert plan.problems == []
    (said,) = [w.reason for w in plan.warnings if w.ref == "columns"]
    assert "'digit' → label" in said
    assert "'noise' → tags (noise:…)" in said
    assert "'speaker' → clip metadata" in said


@pytest.mark.parametrize("export", [MIN_EXPORT, CSV_EXPORT])
def test_label_studio_min_without_config_or_classes_is_refused_naming_the_columns(
    labelstudio: Path, export: str
) -> None:
    (labelstudio / "label_config.xml").unlink()  # not beside the export, not given

    with pytest.raises(FormatError) as refused:
        read_labelstudio(labelstudio / export, audio_root=labelstudio / "media")

    message = str(refused.value)
    assert "'digit'" in message
    assert "--config" in message
    assert "nothing was imported" in message


def test_the_label_column_can_be_named(labelstudio: Path) -> None:
    (labelstudio / "label_config.xml").unlink()

    plan = read_labelstudio(labelstudio / MIN_EXPORT, audio_root=labelstudio / "media", label_from="digit")

    got = {
        n: [(a.annotator, a.label) for a in sorted(i.annotations, key=lambda a: a.annotator)]
        for n, i in ((i.name, i) for i in plan.items)
    }
    assert got == {n: [(a, label) for a, label, _ in anns] for n, anns in EXPECTED_DIGITS.items()}


def test_label_studio_config_names_the_controls_and_declares_every_class(labelstudio: Path) -> None:
    config = read_label_config(labelstudio / "label_config.xml")
    moved = labelstudio / "elsewhere"
    moved.mkdir()
    shutil.move(labelstudio / "label_config.xml", moved / "label_config.xml")

    plan = read_labelstudio(labelstudio / MIN_EXPORT, audio_root=labelstudio / "media", config=config)

    assert {n: c["annotations"] for n, c in _by_clip(plan).items()} == EXPECTED_DIGITS
    assert plan.declared_classes == DIGITS  # 2, 4, 5, 6, 7 and 9 were never chosen, yet are classes
    assert config.audio_keys == ("audio",)


def test_label_studio_config_beside_the_export_is_read(labelstudio: Path) -> None:
    plan = read_labelstudio(labelstudio / CSV_EXPORT, audio_root=labelstudio / "media")

    assert {n: c["annotations"] for n, c in _by_clip(plan).items()} == EXPECTED_DIGITS
    assert any("read from the labeling config" in w.reason for w in plan.warnings)


def test_label_studio_config_with_entities_is_refused(tmp_path: Path) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaa">]><View><Header value="&a;"/></View>'
    (tmp_path / "label_config.xml").write_text(bomb, encoding="utf-8")

    with pytest.raises(FormatError, match="document type or entities"):
        read_label_config(tmp_path / "label_config.xml")


def test_a_tsv_named_csv_is_told_by_its_delimiter(labelstudio: Path) -> None:
    assert detect_format(labelstudio / TSV_NAMED_CSV) == "labelstudio_csv"
    assert detect_format(labelstudio / CSV_EXPORT) == "labelstudio_csv"


def test_unknown_formats_are_answered_with_formats_import_accepts(tmp_path: Path) -> None:
    odd = tmp_path / "notes.csv"
    odd.write_text("when,what\nmonday,nothing\n", encoding="utf-8")

    with pytest.raises(FormatError) as unknown:
        detect_format(odd)

    listed = str(unknown.value).split("one of ", 1)[1].split(";")[0]
    named = [n.strip(" )") for n in listed.split(",")]
    assert named
    assert all(n in CLI_FORMATS for n in named)


# ---------------------------------------------------------------- who annotated


def test_earmark_identities_survive_label_studio_lower_casing() -> None:
    for name in ["ana", "Ana López", "rosa.m", "李", "earmark+final-label", "a@b"]:
        email = email_for(name)
        assert identity_from_email(email) == name
        assert identity_from_email(email.lower()) == name
        local = email.rpartition("@")[0]
        assert set(local) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-%ABCDEF")
    assert identity_from_email("ben") == "labelstudio:ben"  # never the account named ben
    assert identity_from_email("ben@example.org") == "labelstudio:ben@example.org"


def test_label_studio_ui_export_names_people_with_its_user_list_and_keeps_ground_truth_apart(
    labelstudio: Path,
) -> None:
    export = labelstudio / UI_EXPORT

    named = read_labelstudio(export, audio_root=labelstudio, users=labelstudio / "users.json")
    by_ids = read_labelstudio(export, audio_root=labelstudio)

    assert _by_clip(named) == {
        "voice-labelstudio/0_jackson_0.wav": {
            "label": "0",
            "tags": ("noise:clean",),
            "metadata": {"speaker": "jackson"},
            "annotations": [("ana", "0", ()), ("ben", "0", ("noise:clean",)), ("cho", "6", ())],
        },
        "voice-labelstudio/3_theo_1.wav": {
            "label": "3",
            "tags": ("noise:car", "noise:people"),
            "metadata": {"speaker": "theo"},
            "annotations": [("ana", "3", ("noise:car",)), ("ben", "8", ()), ("cho", "3", ("noise:people",))],
        },
    }
    assert named.problems == []
    # Without the list the people stay apart by id, and the final labels' author is no annotator.
    assert {n: [a[0] for a in c["annotations"]] for n, c in _by_clip(by_ids).items()} == {
        "voice-labelstudio/0_jackson_0.wav": [
            "labelstudio-user-2",
            "labelstudio-user-3",
            "labelstudio-user-4",
        ],
        "voice-labelstudio/3_theo_1.wav": ["labelstudio-user-2", "labelstudio-user-3", "labelstudio-user-4"],
    }
    assert [i.label for i in by_ids.items] == ["0", "3"]
    assert [w.ref for w in by_ids.warnings] == ["label_config.xml", "labelstudio-user-5"]
    assert not any("more than once" in p.reason for p in by_ids.problems)


# ---------------------------------------------------------------- hostile sizes


def test_a_huge_label_studio_value_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", speechlike(1))
    task = {"data": {"audio": "a.wav", "speaker": "x" * (2 * 1024**2)}, "annotations": []}
    (tmp_path / "big.json").write_text(json.dumps([task]), encoding="utf-8")
    escaped = {"data": {"audio": "a.wav", "note": 'x\\"' * (512 * 1024)}, "annotations": []}
    (tmp_path / "escaped.json").write_text(json.dumps([escaped]), encoding="utf-8")

    with pytest.raises(FormatError, match=r"longer than 1\.0 MiB"):
        read_labelstudio(tmp_path / "big.json")
    with pytest.raises(FormatError, match=r"longer than 1\.0 MiB"):
        read_labelstudio(tmp_path / "escaped.json")
    small = ReadLimits(max_field_bytes=1024)
    with pytest.raises(FormatError, match=r"longer than 1\.0 KiB"):
        read_labelstudio(tmp_path / "big.json", limits=small)


# ---------------------------------------------------------------- NeMo


@pytest.fixture
def nemo(tmp_path: Path) -> tuple[Path, Path]:
    """NeMo manifests made on Colab (``/content/…``) and a local copy of the audio."""
    manifests = copy_fixture("nemo", tmp_path)
    local = tmp_path / "an4-copy"
    names = [
        "wav/an4_clstk/fash/an251-fash-b.wav",
        "wav/an4_clstk/fash/an253-fash-b.wav",
        "wav/an4_clstk/fash/an254-fash-b.wav",
        "wav/an4test_clstk/fcaw/cen1-fcaw-b.wav",
        "wav/an4test_clstk/fcaw/cen2-fcaw-b.wav",
    ]
    for n, name in enumerate(names):
        write_wav(local / name, speechlike(400 + n))
    return manifests, local


def test_nemo_paths_from_another_machine_are_read_through_a_path_map(nemo: tuple[Path, Path]) -> None:
    manifests, local = nemo

    unmapped = read_nemo(manifests / "train_manifest.json")
    mapped = read_nemo(manifests / "train_manifest.json", path_map=[f"/content/an4={local}"])

    assert unmapped.items == []
    assert all("--path-map" in p.reason for p in unmapped.problems)
    assert [(i.name, i.transcript, i.split) for i in mapped.items] == [
        ("wav/an4_clstk/fash/an251-fash-b.wav", "yes", "train"),
        ("wav/an4_clstk/fash/an253-fash-b.wav", "go", "train"),
    ]


def test_a_folder_of_nemo_manifests_is_nemo_and_pred_text_keeps_its_space(nemo: tuple[Path, Path]) -> None:
    manifests, local = nemo

    assert detect_format(manifests) == "nemo"
    plan = read_nemo(manifests / "test_manifest.json", path_map=[f"/content/an4={local}"])

    assert [i.metadata.get("pred_text") for i in plan.items] == [" rub out", "enter"]
    assert [i.transcript for i in plan.items] == ["rubout", "enter"]


# ---------------------------------------------------------------- Kaldi


@pytest.fixture
def kaldi(tmp_path: Path) -> Path:
    """A recipe folder (``s5``) whose ``data/train`` cuts two recordings into segments."""
    s5 = copy_fixture("kaldi", tmp_path) / "s5"
    write_wav(s5 / "wav" / "rec-a.wav", speechlike(500, seconds=1.3))
    sf.write(str(s5 / "wav" / "rec-b.flac"), speechlike(501, seconds=1.0), 16000, subtype="PCM_16")
    write_wav(s5 / "wav" / "utt3.wav", speechlike(502))
    return s5


def test_kaldi_segments_are_cut_on_import_and_pipes_never_run(kaldi: Path, tmp_path: Path) -> None:
    marker = tmp_path / "the-command-ran"
    with (kaldi / "data" / "test" / "wav.scp").open("a", encoding="utf-8") as f:
        f.write(f"utt5 touch {marker} |\n")

    assert detect_format(kaldi) == "kaldi"
    plan = read_kaldi(kaldi)

    assert not marker.exists()
    items = {i.name: i for i in plan.items}
    assert sorted(items) == [
        "spk1-rec-a-0001.wav",
        "spk1-rec-a-0002.wav",
        "spk2-rec-b-0001.wav",
        "wav/utt3.wav",
    ]
    whole_a, rate = sf.read(str(kaldi / "wav" / "rec-a.wav"), dtype="int16")
    whole_b, _ = sf.read(str(kaldi / "wav" / "rec-b.flac"), dtype="int16")
    for name, expected in [
        ("spk1-rec-a-0001.wav", whole_a[0:8000]),
        ("spk1-rec-a-0002.wav", whole_a[8000:19200]),
        ("spk2-rec-b-0001.wav", whole_b[4000:]),  # an end of -1: to the end of the recording
    ]:
        cut, cut_rate = sf.read(str(items[name].path), dtype="int16")
        assert cut_rate == rate
        np.testing.assert_array_equal(cut, expected)
    assert items["spk1-rec-a-0002.wav"].transcript == 'SAY "YES", TWICE'
    assert items["spk2-rec-b-0001.wav"].transcript == "ünïcode and مرحبا"
    assert items["spk2-rec-b-0001.wav"].metadata == {
        "speaker": "spk2",
        "gender": "m",
        "recording": "rec-b",
        "start": "0.25",
        "end": "-1",
    }
    assert items["wav/utt3.wav"].metadata == {}  # utt2spk says utt3 is its own speaker: not known
    assert {i.split for i in plan.items} == {"train", "test"}
    reasons = {p.ref: p.reason for p in plan.problems}
    assert "shell command, which Earmark never runs" in reasons["data/test/wav.scp line 2"]
    assert "shell command, which Earmark never runs" in reasons["data/test/wav.scp line 3"]
    assert "spk9-gone-0001 has a transcript" in reasons["data/train/text line 4"]


# ---------------------------------------------------------------- LibriSpeech


@pytest.fixture
def librispeech(tmp_path: Path) -> Path:
    root = copy_fixture("librispeech", tmp_path) / "LibriSpeech"
    chapter = root / "dev-clean" / "84" / "121123"
    for n in (0, 1):  # 84-121123-0002 has a line but no file
        sf.write(str(chapter / f"84-121123-000{n}.flac"), speechlike(600 + n), 16000)
    other = root / "dev-clean" / "174" / "50561"
    for n in (0, 1):  # 174-50561-0001 has a file but no line
        sf.write(str(other / f"174-50561-000{n}.flac"), speechlike(610 + n), 16000)
    return root


def test_librispeech_transcripts_speakers_chapters_and_both_mismatches(librispeech: Path) -> None:
    assert detect_format(librispeech) == "librispeech"
    plan = read_librispeech(librispeech)

    items = {i.name: i for i in plan.items}
    assert sorted(items) == [
        "dev-clean/174/50561/174-50561-0000.flac",
        "dev-clean/174/50561/174-50561-0001.flac",
        "dev-clean/84/121123/84-121123-0000.flac",
        "dev-clean/84/121123/84-121123-0001.flac",
    ]
    first = items["dev-clean/84/121123/84-121123-0001.flac"]
    assert first.transcript == (
        "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED BENEATH AN EXTRAORDINARY WEIGHT"
    )
    assert first.metadata == {"speaker": "84", "chapter": "121123", "subset": "dev-clean", "gender": "f"}
    assert first.split == "dev"
    assert items["dev-clean/174/50561/174-50561-0001.flac"].transcript is None
    [missing] = plan.problems
    assert missing.ref == "dev-clean/84/121123/84-121123.trans.txt line 3"
    assert "84-121123-0002" in missing.reason
    [unlisted] = plan.warnings
    assert unlisted.ref == "dev-clean/174/50561/174-50561-0001.flac"


# ---------------------------------------------------------------- audiofolder and apostrophes


def test_a_csv_earmark_did_not_write_keeps_its_apostrophes(tmp_path: Path) -> None:
    dataset = copy_fixture("audiofolder", tmp_path) / "my_dataset"
    for n in range(3):
        write_wav(dataset / "train" / f"{n}.wav", speechlike(700 + n))

    plan = read_audiofolder(dataset)

    assert [i.transcript for i in sorted(plan.items, key=lambda i: i.name)] == [
        "''Tis the season",
        "-four, =said",
        "'=quoted on purpose",
    ]


def test_the_spreadsheet_csv_has_no_formula_whatever_the_separator(tmp_path: Path) -> None:
    from labeling.data.formats.writers import write_csv
    from tests.unit.test_formats_writers import _frame

    frame = _frame(tmp_path, n=2)
    frame.loc[0, "transcript"] = "hello;=1+1"
    frame.loc[1, "transcript"] = "tab\t@x; '=not escaped twice"
    frame.loc[0, "original_name"] = "-2+3.wav"

    write_csv(frame, tmp_path / "out", copy_audio=True)
    text = (tmp_path / "out" / "metadata.csv").read_text(encoding="utf-8")

    for delimiter in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            assert not any(cell.startswith(tuple("=+-@")) for cell in row), (delimiter, row)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["transcription"] == "hello;'=1+1"  # what a spreadsheet shows, as text
    assert '"hello;\'=1+1"' in text  # quoted: it holds a separator
    # A file name is not a formula: the copy is named so its cell needs no escaping.
    assert rows[0]["file_name"] == "_-2+3.wav"
    assert (tmp_path / "out" / rows[0]["file_name"]).is_file()
    assert rows[0]["original_name"] == "'-2+3.wav"
    back = {i.name: i.transcript for i in read_audiofolder(tmp_path / "out").items}
    assert back == {"-2+3.wav": "hello;=1+1", "clip_1.wav": "tab\t@x; '=not escaped twice"}


@given(st.text(alphabet=st.sampled_from(list("ab=+-@'\t\r\n,; ＝")), max_size=12))
def test_escaping_for_spreadsheets_is_undone_exactly(text: str) -> None:
    escaped = escape_cell(text)
    assert unescape_cell(escaped) == text
    for cell in re.split("[,;\t\r\n]", escaped):
        assert not cell.startswith(tuple("=+-@＝"))


def test_cut_segments_live_as_long_as_the_plan(kaldi: Path) -> None:
    import gc

    plan = read_kaldi(kaldi)
    cut = next(i.path for i in plan.items if i.name == "spk1-rec-a-0001.wav")
    assert cut.is_file()
    assert not cut.is_relative_to(kaldi)

    del plan
    gc.collect()
    assert not cut.exists()


def test_the_kaldi_export_is_a_valid_sorted_data_directory(tmp_path: Path) -> None:
    from labeling.data.formats.writers import write_kaldi
    from tests.unit.test_formats_writers import _frame

    frame = _frame(tmp_path, n=4)
    speakers = ["b-1", "b", "c", "a speaker"]
    frame["metadata"] = [{"speaker": s, "gender": "female"} for s in speakers]
    frame["split"] = "train"
    frame.loc[0, "transcript"] = "two\nlines"

    write_kaldi(frame, tmp_path / "out", copy_audio=True)
    data = tmp_path / "out" / "data" / "train"

    def table(name: str) -> list[list[str]]:
        return [line.split(" ", 1) for line in (data / name).read_text(encoding="utf-8").splitlines()]

    utt2spk = table("utt2spk")
    for name in ("wav.scp", "utt2spk", "spk2utt", "text", "utt2dur", "spk2gender"):
        keys = [row[0] for row in table(name)]
        assert keys == sorted(keys, key=lambda k: k.encode()), name  # LC_ALL=C sort
    assert [r[0] for r in table("wav.scp")] == [r[0] for r in utt2spk] == [r[0] for r in table("text")]
    # spk2utt is utt2spk grouped, as Kaldi's utt2spk_to_spk2utt.pl makes it
    grouped: dict[str, list[str]] = {}
    for utt, spk in utt2spk:
        grouped.setdefault(spk, []).append(utt)
    assert {r[0]: r[1].split() for r in table("spk2utt")} == grouped
    assert all(utt.startswith(spk) for utt, spk in utt2spk)  # utterance ids carry the speaker
    assert all(" " not in spk for _, spk in utt2spk)
    assert {r[0]: r[1] for r in table("spk2gender")} == {"b-1": "f", "b": "f", "c": "f", "a_speaker": "f"}
    assert "two lines" in (data / "text").read_text(encoding="utf-8")
    for _, audio in table("wav.scp"):
        assert (tmp_path / "out" / audio).is_file()
