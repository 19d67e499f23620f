"""Hostile or broken sources get a clear Problem or FormatError — never a traceback, never a file
outside the folder the user named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.data.formats.audiofolder import read_audiofolder
from labeling.data.formats.base import FormatError, ReadLimits
from labeling.data.formats.commonvoice import read_commonvoice
from labeling.data.formats.labels import read_labels
from labeling.data.formats.labelstudio import read_labelstudio
from labeling.data.formats.nemo import read_nemo
from tests.audio import speechlike, write_wav


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A real audio file next to, not inside, the import folder."""
    return write_wav(tmp_path / "secret" / "private.wav", speechlike(99))


@pytest.fixture
def dataset(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "dataset"
    write_wav(root / "ok.wav", speechlike(1))
    (root / "link.wav").symlink_to(outside)
    (root / "sub").mkdir()
    (root / "sub" / "loop.wav").symlink_to(root / "sub" / "loop.wav")
    return root


ESCAPES = ["../secret/private.wav", "sub/../../secret/private.wav", "link.wav", "sub/loop.wav"]


def _reasons(plan) -> list[str]:
    return [p.reason for p in plan.problems]


def test_audiofolder_refuses_paths_leaving_the_folder(dataset: Path, outside: Path) -> None:
    rows = ["ok.wav", str(outside), *ESCAPES, "missing.wav"]
    (dataset / "metadata.csv").write_text("file_name\n" + "\n".join(rows) + "\n", encoding="utf-8")

    plan = read_audiofolder(dataset)

    assert [i.name for i in plan.items] == ["ok.wav"]
    reasons = _reasons(plan)
    assert sum("outside the import folder" in r for r in reasons) == 4
    assert any(r.startswith("link.wav: a symbolic link leads outside") for r in reasons)
    assert any("sub/loop.wav" in r for r in reasons)
    assert any(r == "missing.wav: file not found" for r in reasons)
    assert all(outside.resolve() != i.path for i in plan.items)


def test_nemo_and_commonvoice_refuse_the_same(dataset: Path, outside: Path) -> None:
    lines = [{"audio_filepath": p, "text": "x"} for p in ["ok.wav", str(outside), *ESCAPES]]
    (dataset / "m.json").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    (dataset / "train.tsv").write_text(
        "client_id\tpath\tsentence\n" + "".join(f"c\t{p}\thi\n" for p in ["ok.wav", str(outside), *ESCAPES]),
        encoding="utf-8",
    )

    nemo = read_nemo(dataset / "m.json")
    cv = read_commonvoice(dataset / "train.tsv", audio_root=dataset)

    assert [i.name for i in nemo.items] == [i.name for i in cv.items] == ["ok.wav"]
    assert len(nemo.problems) == len(cv.problems) == 5


def test_label_studio_local_files_and_uploads_cannot_climb_out(dataset: Path) -> None:
    doc = [
        {"id": 1, "data": {"audio": "/data/local-files/?d=..%2Fsecret%2Fprivate.wav"}},
        {"id": 2, "data": {"audio": "/data/upload/1/../../secret/private.wav"}},
        {"id": 3, "data": {"audio": "/data/local-files/?d=link.wav"}},
        {"id": 4, "data": {"audio": "/data/local-files/?d=ok.wav"}},
    ]
    (dataset / "e.json").write_text(json.dumps(doc), encoding="utf-8")

    plan = read_labelstudio(dataset / "e.json")

    assert [i.name for i in plan.items] == ["ok.wav"]
    assert [p.ref for p in plan.problems] == ["task 1", "task 2", "task 3"]
    assert all("outside the import folder" in r for r in _reasons(plan))


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"data": {"audio": "a.wav"}}] * 50), encoding="utf-8")
    table = tmp_path / "metadata.csv"
    table.write_text("file_name\n" + "a.wav\n" * 100, encoding="utf-8")

    with pytest.raises(
        FormatError, match=r"big\.json is \d\.\d KiB; Earmark reads JSON files of at most 1\.0 KiB"
    ):
        read_labelstudio(big, limits=ReadLimits(max_json_bytes=1024))
    with pytest.raises(FormatError, match="at most 100 bytes"):
        read_audiofolder(table, limits=ReadLimits(max_table_bytes=100))
    with pytest.raises(FormatError, match="line 1 is longer than"):
        read_audiofolder(table, limits=ReadLimits(max_line_bytes=5))


@pytest.mark.parametrize("depth", [65, 200_000])
def test_deeply_nested_json_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text(
        '[{"data": {"audio": "a.wav", "x": ' + "[" * depth + "]" * depth + "}}]", encoding="utf-8"
    )

    with pytest.raises(FormatError, match="nested deeper than 64 levels"):
        read_labelstudio(path)


def test_deep_json_lines_are_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio_filepath": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")

    with pytest.raises(FormatError, match="nested deeper"):
        read_nemo(path)


def test_invalid_utf8_names_the_byte_and_line(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    cases = [
        (read_labelstudio, "e.json", b'[\n {"data": {"audio": "caf\xe9.wav"}}\n]', 2),
        (read_commonvoice, "train.tsv", b"client_id\tpath\tsentence\nc\ta.wav\tok\nc\tb.wav\tna\xefve\n", 3),
        (read_nemo, "m.jsonl", b'{"audio_filepath": "a.wav"}\n{"audio_filepath": "\xff.wav"}\n', 2),
    ]
    for reader, name, data, line in cases:
        (tmp_path / name).write_bytes(data)
        bad = next(i for i, b in enumerate(data) if b >= 0x80)  # the first non-ASCII byte is the invalid one
        expected = rf"{re.escape(name)} is not valid UTF-8: byte {bad} \(line {line}\) is 0x{data[bad]:02x}"

        with pytest.raises(FormatError, match=expected):
            reader(tmp_path / name)


def test_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("file_name,label\na.wav,x\n", encoding="utf-16")

    with pytest.raises(FormatError, match="is UTF-16; save it as UTF-8"):
        read_labels(path)


def test_duplicate_json_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('[{"data": {"audio": "a.wav"}, "annotations": [], "annotations": []}]', encoding="utf-8")
    lines = tmp_path / "m.jsonl"
    lines.write_text('{"audio_filepath": "a.wav"}\n{"audio_filepath": "a.wav", "text": "a", "text": "b"}\n')

    with pytest.raises(FormatError, match='the key "annotations" appears twice'):
        read_labelstudio(path)
    plan = read_nemo(lines)
    assert 'the key "text" appears twice' in plan.problems[-1].reason


def test_duplicate_rows_for_one_file_are_problems(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", speechlike(1))
    (tmp_path / "metadata.csv").write_text("file_name,label\na.wav,x\n./a.wav,y\n", encoding="utf-8")
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "a.wav"}\n{"audio_filepath": "a.wav"}\n')

    folder = read_audiofolder(tmp_path)
    nemo = read_nemo(tmp_path / "m.jsonl")

    assert [i.label for i in folder.items] == ["x"]
    assert folder.problems[0].ref == "metadata.csv line 3"
    assert "listed again" in folder.problems[0].reason
    assert len(nemo.items) == 1
    assert "listed again (first on line 1)" in nemo.problems[0].reason


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    write_wav(tmp_path / "clips" / "a.wav", speechlike(1))
    write_wav(tmp_path / "a.wav", speechlike(1))
    (tmp_path / "metadata.csv").write_bytes(b"\xef\xbb\xbffile_name,label\r\na.wav,yes\r\n")
    (tmp_path / "test.tsv").write_bytes(b"\xef\xbb\xbfclient_id\tpath\tsentence\r\nc\ta.wav\thello\r\n")
    (tmp_path / "labels.csv").write_bytes(b"\xef\xbb\xbfsha256,label\r\n" + b"ab" * 32 + b",no\r\n")
    (tmp_path / "e.json").write_bytes(b'\xef\xbb\xbf[{"data": {"audio": "a.wav"}}]\r\n')

    assert [i.label for i in read_audiofolder(tmp_path / "metadata.csv").items] == ["yes"]
    assert [i.transcript for i in read_commonvoice(tmp_path / "test.tsv").items] == ["hello"]
    assert [r.label for r in read_labels(tmp_path / "labels.csv").rows] == ["no"]
    assert [i.name for i in read_labelstudio(tmp_path / "e.json").items] == ["a.wav"]


def test_rows_with_too_many_cells_and_repeated_columns(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", speechlike(1))
    (tmp_path / "metadata.csv").write_text("file_name,label\na.wav,x,extra\n", encoding="utf-8")
    (tmp_path / "labels.csv").write_text("file_name,label,label\na.wav,x,y\n", encoding="utf-8")

    plan = read_audiofolder(tmp_path / "metadata.csv")

    assert plan.items == []
    assert "more cells than the header" in plan.problems[0].reason
    with pytest.raises(FormatError, match="repeats the column"):
        read_labels(tmp_path / "labels.csv")


def test_an_integer_of_thousands_of_digits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('[{"id": ' + "9" * 5000 + ', "data": {"audio": "a.wav"}}]', encoding="utf-8")

    with pytest.raises(FormatError, match="is not JSON Earmark reads"):
        read_labelstudio(path)


def test_empty_and_headerless_files(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text("", encoding="utf-8")
    (tmp_path / "e.json").write_text("", encoding="utf-8")
    (tmp_path / "m.jsonl").write_text("not json\n", encoding="utf-8")

    with pytest.raises(FormatError, match="is empty"):
        read_audiofolder(tmp_path / "metadata.csv")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_labelstudio(tmp_path / "e.json")
    with pytest.raises(FormatError, match="is not JSON Lines"):
        read_nemo(tmp_path / "m.jsonl")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
TASKISH = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON,
            "data": st.dictionaries(st.sampled_from(["audio", "speaker", "split"]), JSON, max_size=3) | JSON,
            "annotations": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "completed_by": JSON,
                        "was_cancelled": JSON,
                        "ground_truth": JSON,
                        "result": st.lists(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "from_name": JSON | st.sampled_from(["label", "tags", "transcription"]),
                                    "type": JSON | st.sampled_from(["choices", "textarea", "labels"]),
                                    "value": JSON,
                                },
                            ),
                            max_size=3,
                        )
                        | JSON,
                    },
                ),
                max_size=3,
            )
            | JSON,
            "predictions": JSON,
        },
    ),
    max_size=4,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(doc=TASKISH | JSON)
def test_any_json_gives_a_plan_or_a_format_error(tmp_path: Path, doc) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc), encoding="utf-8")

    try:
        plan = read_labelstudio(path)
    except FormatError:
        return
    for item in plan.items:
        assert item.path.resolve().is_relative_to(tmp_path.resolve())


def test_symlinked_import_folder_itself_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_wav(real / "a.wav", speechlike(1))
    (real / "metadata.csv").write_text("file_name\na.wav\n", encoding="utf-8")
    alias = tmp_path / "alias"
    alias.symlink_to(real)

    plan = read_audiofolder(alias)

    assert [i.name for i in plan.items] == ["a.wav"]
    assert plan.problems == []


def test_a_label_studio_field_over_the_limit_is_refused_without_reading_the_file_whole(
    tmp_path: Path,
) -> None:
    import tracemalloc

    # A task whose audio reference runs on for 256 MiB: a sparse file, so the test writes almost
    # nothing, yet reading it whole would hold all of it.
    export = tmp_path / "export.json"
    head = b'[{"id": 1, "data": {"audio": "'
    tail = b'"}, "annotations": []}]'
    with export.open("wb") as fh:
        fh.write(head)
        fh.seek(len(head) + 256 * 2**20)
        fh.write(tail)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"longer than 1\.0 MiB"):
            read_labelstudio(export)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"held {peak / 2**20:.0f} MiB to refuse one field"
