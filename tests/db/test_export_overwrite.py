"""Exports into a folder that already holds files: refused, naming them, unless asked to overwrite;
an overwrite replaces what an earlier export wrote there and nothing else, for clip exports
(``earmark export``) and region exports (``earmark regions export``) alike."""

from __future__ import annotations

import json

import pytest

from labeling.cli import main as cli
from labeling.data.export import ExportError, export_project
from labeling.data.formats.writers import verify_export
from labeling.data.regions import RegionsError
from labeling.data.regions_io import export_regions
from tests.db.test_export import CLIPS, project, source  # noqa: F401 - fixtures
from tests.db.test_region_formats import kaldi_directory_problems
from tests.db.test_region_formats import project as regions  # noqa: F401 - a fixture


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def cli_env(workspace, monkeypatch):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    return workspace


def test_a_clip_export_into_a_folder_with_files_is_refused_unless_overwriting(workspace, project, tmp_path):  # noqa: F811
    out = tmp_path / "release"
    export_project(workspace, "voice", fmt="jsonl", out=out)
    earlier = _files(out)
    (out / "README.txt").write_text("my notes")  # someone's own file beside the export
    with pytest.raises(ExportError, match="is not empty") as refused:
        export_project(workspace, "voice", fmt="csv", out=out)
    assert "MANIFEST.json" in str(refused.value)
    assert "README.txt" in str(refused.value)
    assert _files(out) == sorted([*earlier, "README.txt"])  # nothing changed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left beside it

    report = export_project(workspace, "voice", fmt="csv", out=out, overwrite=True)
    assert (out / "README.txt").read_text() == "my notes"
    assert (out / "metadata.csv").is_file()
    assert not (out / "metadata.jsonl").exists()
    assert "metadata.jsonl" in report.overwritten["removed"]
    assert report.overwritten["kept"] == ["README.txt"]
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["format"] == "csv"
    # The folder is the csv export, whole, plus the file no export wrote.
    assert verify_export(out) == []
    listed = {e["path"] for e in manifest["files"]} | {"MANIFEST.json", "README.txt"}
    assert set(_files(out)) == listed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_overwrite_never_replaces_a_file_no_export_wrote(workspace, project, tmp_path):  # noqa: F811
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metadata.csv").write_text("my own table")
    with pytest.raises(ExportError, match="no export wrote where this export writes"):
        export_project(workspace, "voice", fmt="csv", out=out, overwrite=True)
    assert _files(out) == ["metadata.csv"]
    assert (out / "metadata.csv").read_text() == "my own table"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_export_command_names_the_files_and_overwrites_with_the_flag(cli_env, project, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "release"
    assert cli(["export", "--project", "voice", "--format", "nemo", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli(["export", "--project", "voice", "--format", "nemo", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "is not empty" in err
    assert "MANIFEST.json" in err
    assert "--overwrite" in err
    argv = ["export", "--project", "voice", "--format", "nemo", "--out", str(out), "--overwrite"]
    assert cli(argv) == 0
    said = capsys.readouterr().out
    assert f"{len(CLIPS)} clips" in said
    assert "overwrote" in said
    assert "replaced: MANIFEST.json" in said
    assert verify_export(out) == []


def test_a_region_folder_export_is_refused_unless_overwriting_and_leaves_no_stale_text(regions, tmp_path):  # noqa: F811
    ws, pid, _ = regions
    out = tmp_path / "kaldi_dir"
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="kaldi", source="final", audio_root="wav")
    assert (out / "text").is_file()  # the final set is transcribed whole
    (out / "local.sh").write_text("echo mine\n")
    with ws.db.read() as s, pytest.raises(RegionsError, match="is not empty") as refused:
        export_regions(s, pid, out, fmt="kaldi", annotator="ann", audio_root="wav")
    assert "segments" in str(refused.value)
    assert "local.sh" in str(refused.value)
    with ws.db.read() as s:
        export_regions(s, pid, out, fmt="kaldi", annotator="ann", audio_root="wav", overwrite=True)
    # ann's set is partly transcribed: the earlier text would break the directory, so it is gone.
    assert not (out / "text").exists()
    assert kaldi_directory_problems(out) == []
    assert (out / "local.sh").read_text() == "echo mine\n"
    assert len((out / "segments").read_text().splitlines()) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_regions_export_command_overwrites_with_the_flag(cli_env, regions, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "tracks"
    argv = ["regions", "export", str(out), "--project", "calls", "--format", "audacity", "--annotator", "ann"]
    assert cli(argv) == 0
    (out / "call_a.txt").write_text("changed by hand\n")  # no longer what the export wrote: kept
    capsys.readouterr()
    assert cli(argv) != 0
    assert "is not empty" in capsys.readouterr().err
    assert cli([*argv, "--overwrite"]) != 0  # it would land on the file changed by hand
    assert "call_a.txt" in capsys.readouterr().err
    (out / "call_a.txt").unlink()
    assert cli([*argv, "--overwrite"]) == 0
    assert "overwrote the folder" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".earmark-export.json", "call_a.txt", "call_b.txt"]


@pytest.mark.parametrize("fmt", ["rttm", "csv", "labelstudio"])
def test_a_region_file_export_onto_an_existing_file_is_refused_unless_overwriting(regions, tmp_path, fmt):  # noqa: F811
    ws, pid, _ = regions
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / f"regions.{fmt}"
    out.write_text("someone's notes\n")
    with ws.db.read() as s, pytest.raises(RegionsError, match="already exists") as refused:
        export_regions(s, pid, out, fmt=fmt, annotator="ann")
    assert out.name in str(refused.value)
    assert "--overwrite" in str(refused.value)
    assert out.read_text() == "someone's notes\n"
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # nothing written beside it either
    with ws.db.read() as s:
        n = export_regions(s, pid, out, fmt=fmt, annotator="ann", overwrite=True)
    assert n > 0
    assert out.read_text() != "someone's notes\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_a_label_studio_export_refuses_when_only_its_side_file_exists(regions, tmp_path):  # noqa: F811
    ws, pid, _ = regions
    (tmp_path / "out").mkdir()
    side = tmp_path / "out" / "tasks_config.xml"
    side.write_text("<View/>\n")
    with ws.db.read() as s, pytest.raises(RegionsError, match=r"tasks_config\.xml already exists"):
        export_regions(s, pid, tmp_path / "out" / "tasks.json", fmt="labelstudio", annotator="ann")
    assert side.read_text() == "<View/>\n"
    assert [p.name for p in side.parent.iterdir()] == [side.name]


def test_the_rttm_command_refuses_an_existing_file_and_replaces_it_with_the_flag(
    cli_env,
    regions,  # noqa: F811
    tmp_path,
    capsys,
):
    out = tmp_path / "turns.rttm"
    argv = ["regions", "export-rttm", str(out), "--project", "calls", "--annotator", "ann"]
    assert cli(argv) == 0
    first = out.read_text()
    assert first.startswith("SPEAKER ")
    out.write_text("edited\n")
    capsys.readouterr()
    assert cli(argv) != 0
    assert "turns.rttm already exists" in capsys.readouterr().err
    assert out.read_text() == "edited\n"
    assert cli([*argv, "--overwrite"]) == 0
    assert out.read_text() == first
