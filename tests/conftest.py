"""Shared fixtures: the FSDD recordings, and throwaway SQLite / PostgreSQL databases.

Shared data lives beside the project (``../shared``), which a user's clone does not have: tests that
need it skip there, but fail under CI (``CI=true``), where it must be present.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from pathlib import Path

import pytest

import labeling.job_kinds  # noqa: F401  (the built-in background job kinds, as the app registers them)

# The suite starts many interpreters (xdist workers, fork servers, the command line, app servers, a
# librosa reference), each importing much of the app and its libraries: a few CPU seconds each when
# the compiled bytecode is not on disk. Where PYTHONDONTWRITEBYTECODE is set, none of them would
# write it, and every start compiled them all again.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    sys.dont_write_bytecode = False


def _numba_cache_dir() -> str:
    """numba (under librosa) compiles its kernels on first use, some 25 s of CPU per process, and
    caches them beside its sources; parallel test workers compiling the same kernel at once have
    crashed. Each worker (gw0, gw1…) has a cache of its own, kept between runs, which its app servers
    and command lines share; a second run going on at the same time gets a new, empty one. The kept
    caches live in the virtual environment (numba loads what a cache holds, so never in a folder
    another user of the machine could have made); outside one, every run gets empty ones."""
    import fcntl

    if sys.prefix == sys.base_prefix:
        return tempfile.mkdtemp(prefix="earmark-numba-")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    folder = Path(sys.prefix) / "numba-cache" / worker
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = (folder / ".lock").open("w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until this process exits
    except OSError:
        return tempfile.mkdtemp(prefix="earmark-numba-")
    atexit.register(lock.close)
    return str(folder)


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()

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


def child_processes(*preload: str) -> BaseContext:
    """Start child processes the way ``spawn`` does (a fresh interpreter, nothing inherited from this
    test process but the arguments), only sooner: a fork server imports ``preload`` once and forks
    each child from it, where ``spawn`` would have every child import the app's modules again (some
    seconds of CPU each). The fork server keeps the environment it started with, so a child must get
    what it needs through its arguments, not through variables a test sets. The app's command line
    (and with it nearly all of the app) is always preloaded, as a test process starts one fork server
    and the first test to ask decides what it imports."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["labeling.cli", *preload])  # no effect once this process's fork server runs
    return ctx


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Workspaces built once per test process and copied for each test (tests/workspaces.py)."""
    from tests.workspaces import Templates

    return Templates(tmp_path_factory.mktemp("templates"))


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


def _postgres_database(admin, *, template: str | None = None) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"earmark_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_admin) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty PostgreSQL database of this test's own, dropped afterwards."""
    yield from _postgres_database(postgres_admin)


# Running the migrations takes over a second on PostgreSQL (a few tenths on SQLite) and most tests
# start from a migrated workspace. Each test process migrates one database per engine once; a test
# gets a copy of it: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL. The
# migrations themselves are tested from an empty database in tests/db/test_migrations.py.


@pytest.fixture(scope="session")
def postgres_schema_template(postgres_admin) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The name of a database migrated to head, for this test process to copy from."""
    from sqlalchemy.engine import make_url

    from db.engine import Database
    from db.migrate import upgrade

    for url in _postgres_database(postgres_admin):
        db = Database.from_url(url)
        upgrade(db)
        db.dispose()  # PostgreSQL copies a template only while nobody is connected to it
        yield make_url(url).database


@pytest.fixture
def migrated_postgres_url(postgres_admin, postgres_schema_template) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A PostgreSQL database of this test's own with the schema at head, dropped afterwards."""
    yield from _postgres_database(postgres_admin, template=postgres_schema_template)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'earmark.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine."""
    return request.getfixturevalue(f"{request.param}_url")


_sqlite_template: Path | None = None


def _migrated_sqlite_template() -> Path:
    """A SQLite file migrated to head, made once per test process."""
    global _sqlite_template
    if _sqlite_template is None:
        from db.engine import Database
        from db.migrate import upgrade

        folder = Path(tempfile.mkdtemp(prefix="earmark-schema-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        db = Database.from_url(f"sqlite:///{folder / 'head.db'}")
        upgrade(db)
        db.dispose()  # the last connection to close checkpoints the WAL into the file
        _sqlite_template = folder / "head.db"
    return _sqlite_template


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def migrate(url: str) -> None:
    """Bring the database at ``url`` to head: a new SQLite file is copied from a migrated one."""
    from db.engine import Database
    from db.migrate import upgrade

    path = _sqlite_file(url)
    if path is not None and not (path.exists() and path.stat().st_size > 0):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy(_migrated_sqlite_template(), path)  # keeps the template's 0600 mode
        return
    db = Database.from_url(url)
    upgrade(db)
    db.dispose()


def make_workspace(data_dir: Path, url: str, *, audio_url: str | None = None):  # type: ignore[no-untyped-def]
    from labeling.platform.config import Settings
    from labeling.platform.workspace import Workspace

    migrate(url)
    return Workspace.open(Settings(data_dir=data_dir, database_url=url, audio_url=audio_url))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_db_url(request: pytest.FixtureRequest) -> str:
    """A database with the schema at head on each engine."""
    if request.param == "postgres":
        return request.getfixturevalue("migrated_postgres_url")
    return request.getfixturevalue("sqlite_url")  # make_workspace copies the migrated file


@pytest.fixture
def workspace(tmp_path: Path, migrated_db_url: str):  # type: ignore[no-untyped-def]
    """A migrated workspace (database + audio store) on each engine."""
    ws = make_workspace(tmp_path / "data", migrated_db_url)
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
