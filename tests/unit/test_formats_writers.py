"""Writers: safe cells and names, the manifest, the Label Studio task shape, and failing cleanly."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeling.data.formats.base import FormatError
from labeling.data.formats.writers import (
    safe_cell,
    safe_name,
    safe_relpath,
    verify_export,
    write_audiofolder,
    write_csv,
    write_labelstudio,
    write_nemo,
)
from tests.audio import speechlike, write_wav

WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in range(1, 10)}


def _frame(tmp_path: Path, n: int = 3, **columns) -> pd.DataFrame:
    rows = []
    for i in range(n):
        path = write_wav(tmp_path / "store" / f"{i}.wav", speechlike(i, seconds=0.2))
        rows.append(
            {
                "clip_id": i + 1,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "original_name": f"clip_{i}.wav",
                "audio_path": str(path),
                "duration_s": 0.2,
                "sample_rate": 16000,
                "channels": 1,
                "split": ["train", "dev", "test"][i % 3],
                "label": f"class{i % 2}",
                "transcript": f"words {i}",
                "tags": [],
                "metadata": {"speaker": f"s{i}"},
            }
        )
    frame = pd.DataFrame(rows)
    for name, values in columns.items():
        frame[name] = values
    return frame


# ---------------------------------------------------------------- cells


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # OWASP "CSV Injection": cells must not start with = + - @ tab or carriage return
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t'=1"),
        ("\r=1", "'\r'=1"),
        # a spreadsheet splitting on ; or tabs starts a cell after them
        ("hello;=1+1", "hello;'=1+1"),
        ("a,+b\t-c\n@d", "a,'+b\t'-c\n'@d"),
        ("it's;'quoted", "it's;''quoted"),
        ("＝1+1", "'＝1+1"),
        ("'already quoted", "''already quoted"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        (None, ""),
        (float("nan"), ""),
        (16000, "16000"),
    ],
)
def test_safe_cell(value, expected: str) -> None:
    assert safe_cell(value) == expected


def test_csv_cells_are_escaped_and_pandas_reads_the_table(tmp_path: Path) -> None:
    frame = _frame(tmp_path, label=["=cmd|' /C calc'!A0", "-1", "@me"])

    write_csv(frame, tmp_path / "out", copy_audio=True)
    table = pd.read_csv(tmp_path / "out" / "metadata.csv", dtype=str, keep_default_na=False)

    assert list(table.label) == ["'=cmd|' /C calc'!A0", "'-1", "'@me"]
    assert list(table.columns[:4]) == ["file_name", "label", "transcription", "tags"]
    assert all((tmp_path / "out" / name).is_file() for name in table.file_name)


# ---------------------------------------------------------------- names


@given(st.text(max_size=400))
def test_safe_name_properties(text: str) -> None:
    name = safe_name(text)

    assert name
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in name
    assert not any(unicodedata.category(ch).startswith("C") for ch in name)
    assert not any(ch in '<>:"|?*' for ch in name)
    assert name.split(".")[0].strip().upper() not in WINDOWS_DEVICES
    assert not name.startswith(".")
    assert not name.endswith((".", " "))
    assert len(name.encode("utf-8")) <= 200
    assert unicodedata.is_normalized("NFC", name)
    assert safe_name(name) == name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("../../etc/passwd", "_._etc_passwd"),
        ("CON", "_CON"),
        ("nul.wav", "_nul.wav"),
        ("a\x00b\u202ec.wav", "a_b_c.wav"),
        ("", "_"),
        ("..", "_"),
        ("Cafe\u0301.wav", "Café.wav"),
        ("x" * 300 + ".wav", "x" * 196 + ".wav"),
    ],
)
def test_safe_name_examples(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_safe_relpath_keeps_folders_and_drops_climbing() -> None:
    assert safe_relpath("speaker 1/../../take:2.wav") == "speaker 1/take_2.wav"
    assert safe_relpath("C:\\Users\\me\\a.wav") == "C_/Users/me/a.wav"
    assert safe_relpath("/") == "_"


# ---------------------------------------------------------------- manifest and folder


def test_manifest_records_hashes_version_and_fingerprints(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "out"

    written = write_nemo(
        frame, out, copy_audio=True, dataset_version="dv-1234", model_fingerprints={"run-7": "f" * 64}
    )
    manifest = json.loads((out / "MANIFEST.json").read_text(encoding="utf-8"))

    assert manifest["dataset_version"] == "dv-1234"
    assert manifest["model_fingerprints"] == {"run-7": "f" * 64}
    assert manifest["clips"] == 3
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) | {"MANIFEST.json"} == {p.relative_to(out).as_posix() for p in written}
    for rel, entry in files.items():
        data = (out / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert verify_export(out) == []

    (out / "clip_0.wav").write_bytes(b"changed")
    assert [p.ref for p in verify_export(out)] == ["clip_0.wav"]


def test_referenced_audio_is_listed_with_its_hash(tmp_path: Path) -> None:
    frame = _frame(tmp_path, n=2)

    write_csv(frame, tmp_path / "out", copy_audio=False)
    manifest = json.loads((tmp_path / "out" / "MANIFEST.json").read_text(encoding="utf-8"))

    assert manifest["audio"] == "referenced"
    assert [r["sha256"] for r in manifest["referenced_audio"]] == list(frame.sha256)
    assert [f["path"] for f in manifest["files"]] == ["metadata.csv"]


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    Path(frame.audio_path[2]).unlink()

    with pytest.raises(FormatError, match=r"clip 3: its stored audio .* is missing"):
        write_nemo(frame, tmp_path / "out", copy_audio=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_an_existing_folder_with_files_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(FormatError, match="not an empty folder"):
        write_csv(_frame(tmp_path), tmp_path / "out", copy_audio=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    seen = []

    write_csv(
        _frame(tmp_path),
        tmp_path / "out",
        copy_audio=False,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert seen[-1] == (3, 3)


def test_audiofolder_layout(tmp_path: Path) -> None:
    frame = _frame(tmp_path)

    write_audiofolder(frame, tmp_path / "out", metadata_format="jsonl")

    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "MANIFEST.json",
        "test/clip_2.wav",
        "test/metadata.jsonl",
        "train/clip_0.wav",
        "train/metadata.jsonl",
        "validation/clip_1.wav",
        "validation/metadata.jsonl",
    ]
    (line,) = (out / "validation" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["file_name"] == "clip_1.wav"
    with pytest.raises(FormatError, match="audio copied"):
        write_audiofolder(frame, tmp_path / "out2", copy_audio=False)


# ---------------------------------------------------------------- Label Studio


def test_label_studio_tasks_have_full_predictions_and_say_who_annotated(tmp_path: Path) -> None:
    frame = _frame(tmp_path, n=1)
    annotations = pd.DataFrame(
        [
            {"clip_id": 1, "annotator": "ana", "label": "class0", "transcript": None, "tags": ["noise:car"]},
            {"clip_id": 1, "annotator": "ben", "label": "class1", "transcript": "words", "tags": []},
        ]
    )
    predictions = pd.DataFrame([{"clip_id": 1, "model": "svm@abc123", "label": "class0", "confidence": 0.9}])

    write_labelstudio(
        frame,
        tmp_path / "out",
        copy_audio=True,
        annotations=annotations,
        predictions=predictions,
        user_ids={"ana": 4},
    )
    (task,) = json.loads((tmp_path / "out" / "tasks.json").read_text(encoding="utf-8"))

    assert task["data"] == {"audio": "/data/local-files/?d=out/clip_0.wav", "split": "train", "speaker": "s0"}
    final, ana, ben = task["annotations"]
    assert final["ground_truth"] is True
    assert final["completed_by"] == {"email": "earmark+final-label@earmark.invalid"}
    assert ana["completed_by"] == 4
    assert ben["completed_by"] == {"email": "ben@earmark.invalid"}
    assert ana["ground_truth"] is ben["ground_truth"] is False
    users = json.loads((tmp_path / "out" / "labelstudio_users.json").read_text(encoding="utf-8"))
    assert {u["email"] for u in users} == {"earmark+final-label@earmark.invalid", "ben@earmark.invalid"}
    for result in [r for a in task["annotations"] for r in a["result"]]:
        assert {"id", "from_name", "to_name", "type", "value"} <= set(result)
        assert result["to_name"] == "audio"
    assert {r["from_name"]: r["value"] for r in ana["result"]} == {
        "label": {"choices": ["class0"]},
        "tags": {"choices": ["noise:car"]},
    }
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "svm@abc123"
    assert prediction["score"] == 0.9
    assert prediction["result"][0]["value"] == {"choices": ["class0"]}
    config = (tmp_path / "out" / "label_config.xml").read_text(encoding="utf-8")
    assert '<Audio name="audio" value="$audio"/>' in config
    assert '<Choice value="class0"/>' in config
    assert '<TextArea name="transcription" toName="audio"' in config


def test_a_shown_table_downloads_as_csv_a_spreadsheet_reads_as_text() -> None:
    from labeling.data.formats.writers import spreadsheet_csv

    frame = pd.DataFrame(
        {
            "label": ["=cmd|' /C calc'!A0", "+x", "@x", "hello;=1+1"],
            "tags": [["a", "=b"], [], ["c"], ["d"]],
            "n": [1, 2, 3, None],
        }
    )
    text = spreadsheet_csv(frame).decode("utf-8-sig")
    # Read back with the standard csv module and with pandas (independent readers).
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["label", "tags", "n"]
    assert [r[0] for r in rows[1:]] == ["'=cmd|' /C calc'!A0", "'+x", "'@x", "hello;'=1+1"]
    assert rows[1][1] == "a;'=b"
    assert pd.read_csv(io.StringIO(text))["label"].tolist()[3] == "hello;'=1+1"
    # Split on ';' as some spreadsheets do: the quoted cell keeps its second half from becoming a cell.
    assert '"hello;\'=1+1"' in text
