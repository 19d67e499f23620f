"""Shared fixtures: the FSDD recordings, and throwaway SQLite / PostgreSQL databases.

Shared data lives beside the project (``../shared``), which a user's clone does not have: tests that
need it skip there, but fail under CI (``CI=true``), where it must be present.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import labeling.job_kinds  # noqa: F401  (the built-in background job kinds, as the app registers them)

# numba (under librosa) caches compiled kernels beside its sources; parallel test workers compiling
# the same kernel at once have crashed. Give each test process a cache of its own.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="earmark-numba-"))

ROOT = Path(__file__).resolve().parents[1]
FSDD_DIR = ROOT.parent / "shared" / "data" / "fsdd"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip when a resource is missing on a user's machine; fail when it is missing in CI."""
    if condition:
        return
    if running_in_ci():
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    need((FSDD_DIR / "recordings").is_dir(), "the shared FSDD recordings are not beside this clone")
    return FSDD_DIR


# --- databases --------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get(
    "EARMARK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    try:
        import psycopg  # noqa: F401
    except ImportError:
        need(False, "psycopg is not installed (pip install 'earmark[postgres]')")
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        need(False, f"PostgreSQL is unreachable at {POSTGRES_URL}: {exc.__class__.__name__}")
    return engine


@pytest.fixture(scope="session")
def postgres_admin():  # type: ignore[no-untyped-def]
    engine = _postgres_admin()
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty PostgreSQL database of this test's own, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"earmark_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with postgres_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'earmark.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine."""
    return request.getfixturevalue(f"{request.param}_url")


def make_workspace(data_dir: Path, url: str, *, audio_url: str | None = None):  # type: ignore[no-untyped-def]
    from db.engine import Database
    from db.migrate import upgrade
    from labeling.platform.config import Settings
    from labeling.platform.workspace import Workspace

    db = Database.from_url(url)
    upgrade(db)
    db.dispose()
    return Workspace.open(Settings(data_dir=data_dir, database_url=url, audio_url=audio_url))


@pytest.fixture
def workspace(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    """A migrated workspace (database + audio store) on each engine."""
    ws = make_workspace(tmp_path / "data", db_url)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    """A migrated workspace on SQLite only, for tests about behaviour that does not depend on the engine."""
    ws = make_workspace(tmp_path / "data", sqlite_url)
    yield ws
    ws.close()


# --- object storage ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():  # type: ignore[no-untyped-def]
    """moto's standalone S3 server, started for this test process; the AWS variables point at it."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        need(False, f"the S3 tests need moto[server] and s3fs ({exc.name} is missing)")
    from tests.s3server import S3Server, environment

    server = S3Server.start()
    with environment(server.environ()):
        yield server
    server.stop()


@pytest.fixture
def s3_audio_url(s3_server) -> str:  # type: ignore[no-untyped-def]
    """An ``s3://`` prefix in a fresh bucket."""
    return f"s3://{s3_server.new_bucket()}/audio"
