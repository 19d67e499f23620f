"""AppTest fixtures: a populated workspace the app opens through its usual environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from labeling.importer import import_path
from tests.audio import speechlike, write_wav

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(sqlite_workspace, tmp_path, monkeypatch):
    """A workspace with one small project, exposed to the app through EARMARK_* variables."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(12):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 3}_{i}.wav", speechlike(i))
    import_path(ws, src, "demo", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield ws
    st.cache_resource.clear()
    st.cache_data.clear()


def new_app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
