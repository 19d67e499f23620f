"""AppTest fixtures: a populated workspace the app opens through its usual environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.models import Job
from labeling.data.importer import import_path
from labeling.platform.auth import add_user, get_user, issue_session_token, session_secret
from labeling.platform.config import Settings
from tests.audio import speechlike, write_wav

ROOT = Path(__file__).resolve().parents[2]


def demo_project(ws, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """One small project, "demo": 12 recordings from ``folder/src`` (yes/no, three speakers), and an admin."""
    src = folder / "src"
    for i in range(12):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 3}_{i}.wav", speechlike(i))
    import_path(ws, src, "demo", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        add_user(s, name="admin", role="admin")
        s.execute(delete(Job))  # the report refreshes the import queued: as once a worker caught up


def exposed(ws, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Yield ``ws`` to the app through EARMARK_* variables, with Streamlit's caches empty; close it after."""
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield ws
    st.cache_resource.clear()
    st.cache_data.clear()
    ws.close()


@pytest.fixture
def app_env(templates, tmp_path, monkeypatch):
    """A workspace with the "demo" project (:func:`demo_project`), exposed to the app through EARMARK_*
    variables: a copy of its own of the database, the audio store and the recordings."""
    yield from exposed(templates.open("demo", demo_project, tmp_path), monkeypatch)


def new_app(user: str | None = "admin") -> AppTest:
    """The app, signed in as ``user`` (None: nobody is signed in and the app shows its sign-in page)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if user is not None:
        sign_in(at, user)
    return at


def sign_in(at: AppTest, name: str) -> AppTest:
    """Give the app's session the token the sign-in form would have set for ``name``."""
    db = Database.from_url(os.environ["EARMARK_DATABASE_URL"])
    try:
        with db.write() as s:
            secret = session_secret(Settings.from_env())
            at.session_state["auth.token"] = issue_session_token(s, get_user(s, name).id, secret)
    except SQLAlchemyError:
        pass  # no schema (a test of the schema refusal): the app stops before anyone signs in
    finally:
        db.dispose()
    return at


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest leaves the app script installed as ``__main__``; later tests that spawn processes
    would have their children run it. Put the real one back."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
