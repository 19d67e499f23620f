"""A real Streamlit server and Debian's Chromium, driven by Playwright.

The server runs ``streamlit run app.py --server.headless true`` against a workspace prepared by the
test; we wait on ``/_stcore/health`` and then, per page, on the app reporting that its script finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("EARMARK_CHROMIUM", "/usr/bin/chromium"))
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerFarm:
    """A process that has imported Streamlit and the app's modules and forks a server on request
    (see tests/browser/server_farm.py): a server then starts in about a second, not ten."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.server_farm"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._fh,
            text=True,
        )

    def fork(self, env: dict[str, str], args: list[str], log: Path) -> int:
        """Start ``streamlit <args>`` with ``env`` and its output in ``log``; its process id."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        request = {"env": env, "args": args, "log": str(log), "cwd": str(ROOT)}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except OSError:
            reply = ""
        if not reply.strip().isdigit():
            raise RuntimeError(f"the server farm stopped:\n{self.log.read_text()}")
        return int(reply)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._fh.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # the farm reaps its children, so a stopped server leaves no process behind
    except ProcessLookupError:
        return False
    return True


class StreamlitServer:
    def __init__(self, farm: ServerFarm, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.pid = farm.fork(
            env,
            [
                "run",
                str(ROOT / "app.py"),
                "--server.headless",
                "true",
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not _alive(self.pid):
                raise RuntimeError(f"streamlit exited:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text()}")

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait_s
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(self.pid):
                return


@pytest.fixture(scope="session")
def server_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFarm]:
    farm = ServerFarm(tmp_path_factory.mktemp("farm") / "server-farm.log")
    yield farm
    farm.close()


_launched: list = []  # the browser this test process launched, once it has


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    need(CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        _launched.append(b)
        yield b
        _launched.remove(b)
        b.close()


@pytest.fixture(autouse=True)
def _close_pages(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close what a test opened in the shared browser: a page left open goes on talking to (or
    trying to reconnect to) its server, and the browser works for it through every later test.
    The pages close before the test's servers stop (set up after them, torn down before), so that
    a server has no connection left to wait for as it shuts down."""
    if "serve" in request.fixturenames:
        request.getfixturevalue("serve")
    yield
    for browser in _launched:
        for context in browser.contexts:
            with contextlib.suppress(Exception):
                context.close()


@pytest.fixture
def serve(tmp_path: Path, server_farm: ServerFarm) -> Iterator[Callable[..., StreamlitServer]]:
    """Start the app on a workspace: ``serve(ws, **extra_env)``."""
    servers: list[StreamlitServer] = []

    def start(ws, **extra: str) -> StreamlitServer:  # type: ignore[no-untyped-def]
        env = {
            **os.environ,
            "EARMARK_DATA_DIR": str(ws.settings.data_dir),
            "EARMARK_DATABASE_URL": ws.settings.database_url,
            **extra,
        }
        server = StreamlitServer(server_farm, env, tmp_path / f"streamlit-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def open_page(browser, url: str, *, viewport=(1400, 1000)):  # type: ignore[no-untyped-def]
    """Open ``url`` in a fresh page and wait until Streamlit has finished running the script."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(url)
    try:
        settle(page)
    except PlaywrightTimeout:
        # The first page a just-started server sends has, on a loaded machine, now and then never
        # finished its first run (the server's log shows no error); a person reloads, and so do we,
        # once. A page that hangs again fails the test.
        page.reload()
        settle(page)
    return page


def settle(page, timeout: float = 60_000) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(READY, timeout=timeout)
    page.wait_for_timeout(300)  # a rerun triggered by the first render starts within a moment
    page.wait_for_selector(READY, timeout=timeout)


def assert_no_exception(page) -> None:  # type: ignore[no-untyped-def]
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def sign_in(page, name: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Fill the sign-in form; the session cookie keeps the browser signed in across page loads."""
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    settle(page)


def menu_links(page) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The sidebar menu: (title, address) of each page link, in order."""
    links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]')
    # Each link reads "<icon ligature>\n\n<title>" (or "<icon ligature>  <title>").
    return [
        (link.inner_text().strip().splitlines()[-1].split("  ")[-1].strip(), link.get_attribute("href") or "")
        for link in links.all()
    ]


def selected(page, label: str) -> str:  # type: ignore[no-untyped-def]
    """The value a selectbox labelled ``label`` shows."""
    return page.get_by_role("combobox", name=label).first.input_value()


def stored_annotations(ws, *columns: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    """What the database holds, oldest first: one tuple of the named ``Annotation`` columns per row."""
    from sqlalchemy import select

    from db.models import Annotation

    with ws.db.read() as s:
        query = select(*(getattr(Annotation, c) for c in columns)).order_by(Annotation.id)
        return [tuple(r) for r in s.execute(query)]
