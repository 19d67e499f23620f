"""Reading labels made elsewhere for clips Earmark already holds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from labeling.data.formats.base import FormatError, LabelRow
from labeling.data.formats.labels import read_labels


def test_csv_rows_by_file_name_with_annotators(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "file_name,label,annotator,tags\r\n"
        "0_jackson_0.wav,zero,ana,noise:car;channel:phone\r\n"
        "0_jackson_0.wav,oh,ben,\r\n"
        "1_theo_3.wav,one,,\r\n",
        encoding="utf-8",
    )

    out = read_labels(path)

    assert out.rows == [
        LabelRow("file_name", "0_jackson_0.wav", "ana", "zero", None, ("noise:car", "channel:phone"), 2),
        LabelRow("file_name", "0_jackson_0.wav", "ben", "oh", None, (), 3),
        LabelRow("file_name", "1_theo_3.wav", None, "one", None, (), 4),
    ]
    assert out.problems == []


def test_jsonl_rows_by_sha256_with_transcripts(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"clip bytes").hexdigest()
    lines = [
        {"sha256": digest.upper(), "transcript": "turn left"},
        {"sha256": "not-a-hash", "transcript": "x"},
        {"sha256": digest, "transcript": "again"},
    ]
    path = tmp_path / "asr.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")

    out = read_labels(path)

    assert [(r.ref_kind, r.ref, r.transcript) for r in out.rows] == [("sha256", digest, "turn left")]
    assert [p.ref for p in out.problems] == ["asr.jsonl line 2", "asr.jsonl line 3"]
    assert "64 hex digits" in out.problems[0].reason
    assert "already on line 1" in out.problems[1].reason


def test_clip_id_is_preferred_when_several_columns_name_the_clip(tmp_path: Path) -> None:
    path = tmp_path / "l.tsv"
    path.write_text("file_name\tclip_id\tlabel\na.wav\t17\tyes\n", encoding="utf-8")

    assert [(r.ref_kind, r.ref) for r in read_labels(path).rows] == [("clip_id", "17")]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("name,class\na.wav,yes\n", encoding="utf-8")

    with pytest.raises(
        FormatError, match=r"clip_id, sha256 or file_name.*label or transcript.*'name', 'class'"
    ):
        read_labels(path)


def test_other_file_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.xlsx"
    path.write_bytes(b"PK")

    with pytest.raises(FormatError, match=r"\.csv, \.tsv or \.jsonl"):
        read_labels(path)


def test_per_annotation_columns_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    path = tmp_path / "annotations.csv"
    path.write_text(
        "file_name,annotator,label,transcript,unsure,time_spent_ms,convention_version,created_at,"
        "updated_at,cannot_label_reason\n"
        "a.wav,ann,yes,,true,1500,2,2026-03-01T09:30:15.25Z,2026-03-01T10:30:15+01:00,\n"
        "b.wav,ann,,,false,,,2026-03-01 09:00:00,,only noise\n"
        "c.wav,ann,yes,,maybe,,,,,\n"
        "d.wav,ann,yes,,,-5,,,,\n"
        "e.wav,ann,yes,,,,,yesterday,,\n",
        encoding="utf-8",
    )
    rows = read_labels(path)

    first, second = rows.rows
    assert (first.unsure, first.time_spent_ms, first.convention_version) == (True, 1500, 2)
    assert first.created_at == datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    assert first.updated_at == datetime(2026, 3, 1, 10, 30, 15, tzinfo=timezone(timedelta(hours=1)))
    assert first.cannot_label_reason is None
    # no label, but a reason: a clip nobody could label, kept; a time without a zone is UTC
    assert (second.label, second.unsure, second.cannot_label_reason) == (None, False, "only noise")
    assert second.created_at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert [(p.ref, p.reason) for p in rows.problems] == [
        ("annotations.csv line 4", "unsure is 'maybe', not true or false; skipped"),
        ("annotations.csv line 5", "time_spent_ms is -5, outside 0 to 2147483647; skipped"),
        ("annotations.csv line 6", "created_at is 'yesterday', not an ISO 8601 time; skipped"),
    ]
