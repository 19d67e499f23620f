"""A data folder that cannot be written: the CLI says so in a line, the app in a short message
without paths (anyone can see it, signed in or not)."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from labeling.cli import main as cli
from tests.app.conftest import ROOT
from tests.audio import speechlike, write_wav


@pytest.fixture
def blocked_data_dir(tmp_path):
    """A data folder that cannot be created: its parent is a file (refused even to root)."""
    (tmp_path / "not-a-folder").write_text("a file")
    return tmp_path / "not-a-folder" / "data"


def test_the_cli_names_an_unusable_data_folder_in_one_line(db_url, blocked_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(blocked_data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", db_url)
    assert cli(["project", "list"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "data folder" in err
    assert "EARMARK_DATA_DIR" in err


def test_an_import_into_an_unwritable_audio_store_is_refused_with_a_message(
    workspace, tmp_path, monkeypatch, capsys
):
    src = tmp_path / "src"
    write_wav(src / "a.wav", speechlike(1))
    # The store's folder is taken by a file: nothing can be written there, even by root.
    (tmp_path / "blocked").write_text("a file")
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    monkeypatch.setenv("EARMARK_AUDIO_URL", str(tmp_path / "blocked"))
    assert cli(["import", str(src), "--project", "p"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "cannot write to the audio store" in err


def test_the_app_shows_a_short_error_without_paths(sqlite_url, blocked_data_dir, monkeypatch):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(blocked_data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", sqlite_url)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        st.cache_resource.clear()
    assert not at.exception
    (error,) = at.error
    assert "cannot open its data folder" in error.value
    assert str(blocked_data_dir.parent) not in error.value
