import io
import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sqlalchemy import func, select

from db.models import AuditEvent, Clip, ImportBatch, Resolution
from labeling.cli import main as cli
from labeling.data.clips import clip_frame
from labeling.data.formats.folder import SourceError
from labeling.data.importer import import_path, import_uploads, not_imported_table
from tests.audio import speechlike, tone, write_wav

FSDD_PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


def count(ws, model=Clip):
    with ws.db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.fsdd
def test_fsdd_imports_with_pattern_and_speaker_metadata(workspace, fsdd_dir):
    report = import_path(
        workspace, fsdd_dir, "fsdd", pattern=FSDD_PATTERN, metadata=fsdd_dir / "speakers.csv", join="speaker"
    )
    assert report.n_imported == 2000
    assert report.rejected == []
    with workspace.db.read() as s:
        frame = clip_frame(s, report_project_id(s))
    speakers = pd.read_csv(fsdd_dir / "speakers.csv")
    assert len(frame) == 2000
    assert set(frame["speaker"]) == set(speakers["speaker"])
    expected_accent = dict(zip(speakers["speaker"], speakers["accent"], strict=True))
    assert (frame["accent"] == frame["speaker"].map(expected_accent)).all()
    # The digit in the file name is the label; the index is metadata.
    names = frame["original_name"].str.extract(r"(\d)_([a-z]+)_(\d+)\.wav")
    assert (frame["label"] == names[0]).all()
    assert (frame["index"] == names[2]).all()
    # Sample rate and duration as libsndfile reports them, independently.
    first = fsdd_dir / frame.loc[0, "original_name"]
    info = sf.info(str(first))
    assert frame.loc[0, "sample_rate"] == info.samplerate == 8000
    assert frame.loc[0, "duration_s"] == pytest.approx(info.duration)
    # No speaker is in two splits.
    assert frame.groupby("speaker")["split"].nunique().max() == 1
    with workspace.db.read() as s:
        assert (
            s.scalar(select(func.count()).select_from(Resolution).where(Resolution.method == "imported"))
            == 2000
        )

    again = import_path(
        workspace, fsdd_dir, "fsdd", pattern=FSDD_PATTERN, metadata=fsdd_dir / "speakers.csv", join="speaker"
    )
    assert again.n_imported == 0
    assert again.n_duplicates == 2000
    assert count(workspace) == 2000


def report_project_id(s):
    from labeling.data.projects import get_project

    return get_project(s, "fsdd").id


def bad_files(root: Path) -> dict[str, str]:
    """A folder of files that must each be rejected, with the word the reason should contain."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("this is a text file named .wav")
    good = io.BytesIO()
    sf.write(good, tone(0.5), 16000, format="WAV", subtype="PCM_16")
    (root / "truncated.wav").write_bytes(good.getvalue()[:30])
    header_only = io.BytesIO()
    sf.write(header_only, np.zeros(0, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
    (root / "silent_header.wav").write_bytes(header_only.getvalue())
    absurd = bytearray(good.getvalue())
    absurd[24:28] = (5).to_bytes(4, "little")  # the RIFF header's sample rate: 5 Hz
    (root / "absurd_rate.wav").write_bytes(bytes(absurd))
    return {
        "empty.wav": "empty",
        "notes.wav": "not readable audio",
        "truncated.wav": "",
        "silent_header.wav": "",
        "absurd_rate.wav": "sample rate",
    }


def test_bad_files_are_listed_with_reasons_and_the_rest_imports(workspace, tmp_path):
    src = tmp_path / "mixed"
    expected = bad_files(src)
    for i in range(3):
        write_wav(src / f"good_{i}.wav", speechlike(i))
    sf.write(str(src / "good.flac"), speechlike(10), 16000)
    sf.write(str(src / "good.ogg"), speechlike(11), 16000)
    (src / "README.txt").write_text("not audio")
    report = import_path(workspace, src, "mixed")
    assert report.n_imported == 5
    reasons = {p.ref: p.reason for p in report.rejected}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
        # The reason speaks of the file, not of the decoder's in-memory buffer.
        assert "BytesIO" not in reasons[name], reasons[name]
        assert " at 0x" not in reasons[name], reasons[name]
    assert report.n_ignored == 1
    assert count(workspace) == 5
    with workspace.db.read() as s:
        formats = set(s.scalars(select(Clip.audio_format)))
        batch_report = s.scalars(select(ImportBatch)).one().report
    assert {"WAV", "FLAC", "OGG"} <= formats
    assert {r["ref"] for r in batch_report["rejected"]} == set(expected)


def test_with_a_file_name_pattern_a_broken_file_still_says_what_is_wrong_with_it(workspace, tmp_path):
    src = tmp_path / "mixed"
    expected = bad_files(src)
    write_wav(src / "good_1.wav", speechlike(1))
    write_wav(src / "misnamed.wav", speechlike(2))
    (src / "README.md").write_text("not audio")
    report = import_path(workspace, src, "mixed", pattern=r"(?P<kind>good)_(?P<index>\d+)\.wav")
    assert report.n_imported == 1
    reasons = {p.ref: p.reason for p in report.rejected}
    assert set(reasons) == {*expected, "misnamed.wav"}
    # A file that would be refused anyway says why first; the pattern is named in words, not as a flag.
    assert reasons["empty.wav"] == "empty file; its name does not match the file-name pattern either"
    assert reasons["notes.wav"].startswith("not readable audio (")
    assert reasons["absurd_rate.wav"].startswith("implausible sample rate 5 Hz")
    for name in expected:
        assert reasons[name].endswith("; its name does not match the file-name pattern either")
    assert reasons["misnamed.wav"] == "name does not match the file-name pattern"
    # Files that are not audio at all are named, not only counted.
    assert report.ignored == ["README.md"]
    table = not_imported_table(report.to_dict())
    assert table.set_index("what").loc["README.md", "reason"].startswith("not an audio file")
    assert set(table["what"]) == {*expected, "misnamed.wav", "README.md"}


def test_same_bytes_twice_are_one_clip_and_originals_are_stored_read_only(workspace, tmp_path):
    src = tmp_path / "dupes"
    write_wav(src / "a.wav", speechlike(1))
    write_wav(src / "sub" / "copy_of_a.wav", speechlike(1))
    write_wav(src / "b.wav", speechlike(2))
    report = import_path(workspace, src, "dupes")
    assert (report.n_imported, report.n_duplicates) == (2, 1)
    with workspace.db.read() as s:
        keys = list(s.scalars(select(Clip.storage_key)))
    for key in keys:
        stored = workspace.store.path(key)
        assert stored.read_bytes() in {(src / "a.wav").read_bytes(), (src / "b.wav").read_bytes()}
        assert not stored.stat().st_mode & 0o222
    assert (src / "a.wav").exists()  # the source is left alone


def test_a_zip_entry_escaping_its_folder_refuses_the_whole_zip(workspace, tmp_path):
    archive = tmp_path / "evil.zip"
    buf = io.BytesIO()
    sf.write(buf, speechlike(3), 16000, format="WAV", subtype="PCM_16")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/clip.wav", buf.getvalue())
        zf.writestr("../../outside.wav", buf.getvalue())
    with pytest.raises(SourceError, match="escapes"):
        import_path(workspace, archive, "zipped")
    assert count(workspace) == 0
    assert not (tmp_path.parent / "outside.wav").exists()


def test_zip_import_and_metadata_csv_on_file_name(workspace, tmp_path):
    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            buf = io.BytesIO()
            sf.write(buf, speechlike(20 + i), 16000, format="WAV", subtype="PCM_16")
            zf.writestr(f"clips/c{i}.wav", buf.getvalue())
    meta = tmp_path / "metadata.csv"
    meta.write_text(
        "file_name,speaker,label,split\n"
        + "".join(
            f"clips/c{i}.wav,s{i % 2},{'yes' if i % 2 else 'no'},{'test' if i == 3 else 'train'}\n"
            for i in range(4)
        )
    )
    report = import_path(workspace, archive, "zipped", metadata=meta)
    assert report.n_imported == 4
    with workspace.db.read() as s:
        from labeling.data.projects import get_project

        project = get_project(s, "zipped")
        frame = clip_frame(s, project.id).set_index("original_name")
    assert frame.loc["clips/c3.wav", "split"] == "test"
    assert frame.loc["clips/c1.wav", "label"] == "yes"
    assert frame.loc["clips/c2.wav", "speaker"] == "s0"
    assert project.classes == ["no", "yes"]


def test_metadata_errors_name_the_problem_and_write_nothing(workspace, tmp_path):
    src = tmp_path / "m"
    write_wav(src / "x_1.wav", speechlike(5))
    meta = tmp_path / "meta.csv"
    meta.write_text("speaker,accent\nx,scottish\n")
    with pytest.raises(SourceError, match="file_name"):
        import_path(workspace, src, "m", metadata=meta)
    with pytest.raises(SourceError, match="join"):
        import_path(workspace, src, "m", metadata=meta, join="nope")
    meta.write_bytes(b"file_name,speaker\nx_1.wav,\xff\xfe\n")
    with pytest.raises(SourceError, match="UTF-8"):
        import_path(workspace, src, "m", metadata=meta)
    with pytest.raises(SourceError, match="named groups"):
        import_path(workspace, src, "m", pattern=r"x_\d+")
    assert count(workspace) == 0


def test_hostile_upload_names_stay_inside_the_upload_folder(workspace, tmp_path):
    buf = io.BytesIO()
    sf.write(buf, speechlike(7), 16000, format="WAV", subtype="PCM_16")
    report = import_uploads(
        workspace,
        "up",
        [("../../../etc/evil.wav", buf.getvalue()), ("..\\..\\win.wav", buf.getvalue() + b"")],
    )
    assert report.n_imported == 1
    assert report.n_duplicates == 1
    with workspace.db.read() as s:
        names = list(s.scalars(select(Clip.original_name)))
    assert names == ["evil.wav"]


def test_every_import_writes_audit_events(workspace, tmp_path):
    src = tmp_path / "a"
    for i in range(3):
        write_wav(src / f"{i}.wav", speechlike(30 + i))
    import_path(workspace, src, "audited")
    with workspace.db.read() as s:
        entities = list(s.scalars(select(AuditEvent.entity)))
    assert entities.count("clip") == 3
    assert "import_batch" in entities
    assert "project" in entities


def test_cli_import_json_check_and_backup(sqlite_workspace, tmp_path, monkeypatch, capsys):
    ws = sqlite_workspace
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    src = tmp_path / "cli"
    for i in range(3):
        write_wav(src / f"{i}.wav", speechlike(40 + i))
    assert cli(["import", str(src), "--project", "cli", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_imported"] == 3
    assert cli(["db", "check"]) == 0
    backup = tmp_path / "backup.db"
    assert cli(["db", "backup", str(backup)]) == 0
    with sqlite3.connect(backup) as conn:
        assert conn.execute("select count(*) from clips").fetchone()[0] == 3
    assert cli(["db", "backup", str(backup)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert cli(["import", str(tmp_path / "missing"), "--project", "cli"]) == 1
    assert "does not exist" in capsys.readouterr().err
