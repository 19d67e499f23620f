"""The last tracebacks become messages: ids beyond what a row can have, a SQLite file locked for longer
than the busy timeout, an S3 store without credentials, a file that only looks like a SQLite backup;
and a data folder made by hand that lets other accounts in is reported."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from db.backup import SQLITE_MAGIC, BackupError, restore
from db.engine import Database
from labeling.cli import main
from labeling.data.projects import create_project
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace
from tests.audio import speechlike, write_wav
from tests.conftest import make_workspace

ROOT = Path(__file__).resolve().parents[2]


def _env(ws) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "EARMARK_DATABASE_URL": ws.settings.database_url,
        "EARMARK_DATA_DIR": str(ws.settings.data_dir),
        "EARMARK_SECRET": "test-secret",
    }


@pytest.mark.parametrize("huge", [2**31, 2**64])
def test_ids_no_row_can_have_get_a_message(workspace, monkeypatch, capsys, huge):
    with workspace.db.write() as s:
        create_project(s, name="digits", classes=["0", "1"])
    for key, value in _env(workspace).items():
        monkeypatch.setenv(key, value)
    for argv, said in [
        (["drift", "--project", str(huge), "--batch", "b"], f"no project named '{huge}'"),
        (["drift", "--project", "digits", "--batch", str(huge)], f"no production batch '{huge}'"),
        (["monitor", "--project", str(huge)], f"no project named '{huge}'"),
        (["version", "list", "--project", str(huge)], f"no project named '{huge}'"),
    ]:
        assert main(argv) == 1, argv
        assert said in capsys.readouterr().err
    for argv in (["live", "--project", "digits", "--run", str(huge)], ["jobs", "show", str(huge)]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert "not an id Earmark gives out" in capsys.readouterr().err


def test_a_file_that_only_begins_like_a_sqlite_database_is_refused(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "earmark.backup"
    fake.write_bytes(SQLITE_MAGIC + os.urandom(4096))
    target = tmp_path / "restored" / "earmark.db"
    db = Database.from_url(f"sqlite:///{target}")
    try:
        with pytest.raises(BackupError, match="not a SQLite database"):
            restore(db, fake)
    finally:
        db.dispose()
    monkeypatch.setenv("EARMARK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EARMARK_DATABASE_URL", f"sqlite:///{tmp_path / 'other' / 'earmark.db'}")
    assert main(["db", "restore", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "not a SQLite database" in err
    assert "Traceback" not in err


def test_an_s3_store_without_credentials_is_named(sqlite_workspace, tmp_path):
    write_wav(tmp_path / "in" / "a.wav", speechlike(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in {"AWS_CA_BUNDLE"}}
    env.update(
        _env(sqlite_workspace),
        EARMARK_AUDIO_URL="s3://earmark-nowhere/audio",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    done = subprocess.run(
        [sys.executable, "-m", "labeling.cli", "import", str(tmp_path / "in"), "--project", "p"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert "needs credentials and none were found" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_sqlite_file_locked_past_the_busy_timeout_gets_a_message(sqlite_workspace):
    path = Path(sqlite_workspace.settings.database_url.removeprefix("sqlite:///"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "labeling.cli",
                "user",
                "add",
                "zed",
                "--role",
                "annotator",
                "--no-password",
            ],
            cwd=ROOT,
            # The product's own bound on waiting to write (10 s unless set), short: the message is
            # the same whatever the bound, and waiting out the default proves nothing more.
            env={**os.environ, **_env(sqlite_workspace), "EARMARK_SQLITE_WRITE_WAIT_S": "1"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 1
    assert "the database is busy" in done.stderr
    assert "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_data_folder_others_can_read_is_reported_and_what_earmark_adds_is_private(tmp_path):
    data = tmp_path / "shared-data"
    data.mkdir()
    data.chmod(0o755)  # as a plain mkdir under the usual umask leaves it
    url = f"sqlite:///{data / 'earmark.db'}"
    # Listen on Earmark's own logger: what other tests in the process did to the root logger's
    # handlers or to propagation does not decide whether the warning is seen.
    said: list[str] = []
    listener = logging.Handler(logging.WARNING)
    listener.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("earmark")
    logger.addHandler(listener)
    try:
        make_workspace(data, url).close()
        Workspace.open(Settings(data_dir=data, database_url=url)).close()
    finally:
        logger.removeHandler(listener)
    assert any("chmod 700" in m and str(data) in m for m in said)
    for inside in ("audio", "cache"):
        assert stat.S_IMODE((data / inside).stat().st_mode) == 0o700, inside
