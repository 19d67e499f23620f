"""Two app servers over one PostgreSQL and one object store serve the same project: a session signed on
one is accepted by the other, labels made through either show on both, and audio plays from the bucket."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select

from db.models import Annotation
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, settle, sign_in
from tests.conftest import make_workspace

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
PASSWORD = "correct horse"
SECRET = "one-secret-for-every-server"


@pytest.fixture
def shared(tmp_path, postgres_url, s3_audio_url):
    """A project on PostgreSQL with its audio in the object store: one clip that needs two labels."""
    ws = make_workspace(tmp_path / "importer", postgres_url, audio_url=s3_audio_url)
    write_wav(tmp_path / "src" / "clip_spk0_0.wav", speechlike(300))
    import_path(ws, tmp_path / "src", "team", pattern=r"clip_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        update_project(s, "team", classes=["yes", "no"], annotations_per_clip=2)
        add_user(s, name="eli", role="engineer", password=PASSWORD)
        add_user(s, name="rosa", role="reviewer", password=PASSWORD)
    yield ws
    ws.close()


def open_in_new_context(browser, url: str):  # type: ignore[no-untyped-def]
    """A page with cookies of its own (another person's browser)."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    settle(page)
    return page


def visit(page, server, title: str) -> None:  # type: ignore[no-untyped-def]
    """Load the app from ``server`` (a reload, or the load balancer's choice) and open a page by its link."""
    page.goto(server.url)
    settle(page, timeout=180_000)  # a server's first run of a page imports a lot; the machine may be busy
    page.get_by_role("link", name=title, exact=True).click(timeout=120_000)  # the menu comes with the rerun
    settle(page, timeout=180_000)


def n_annotations(ws) -> int:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return int(s.scalar(select(func.count(Annotation.id))))


def label_with_key(page, key: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("heading", name="Label").click()
    page.keyboard.press(key)
    settle(page)


def test_two_servers_share_sessions_labels_and_audio(browser, serve, shared, tmp_path, s3_audio_url):
    env = {"EARMARK_DATABASE_URL": shared.settings.database_url, "EARMARK_AUDIO_URL": s3_audio_url}
    # Each server has a data folder of its own, holding nothing but caches.
    a = serve(shared, EARMARK_DATA_DIR=str(tmp_path / "server-a"), EARMARK_SECRET=SECRET, **env)
    b = serve(shared, EARMARK_DATA_DIR=str(tmp_path / "server-b"), EARMARK_SECRET=SECRET, **env)

    eli = open_in_new_context(browser, a.url)
    sign_in(eli, "eli", PASSWORD)
    rosa = open_in_new_context(browser, a.url)
    sign_in(rosa, "rosa", PASSWORD)
    visit(rosa, a, "Review")
    assert rosa.get_by_text("No open disagreements").is_visible()  # server A's cache now holds this

    # Signed in through server A, rosa is signed in on server B too (the load balancer's case).
    visit(rosa, b, "Label")
    assert_no_exception(rosa)
    assert rosa.get_by_text("Signed in as rosa").is_visible()
    audio = rosa.locator("audio").first
    src = audio.get_attribute("src")
    assert src.startswith("data:audio/")  # the player carries the clip itself: nothing to fetch later
    assert base64.b64decode(src.split(",", 1)[1])[:4] == b"RIFF"  # read from the bucket through B's cache

    visit(eli, a, "Label")
    label_with_key(eli, "1")  # "yes" through server A
    assert n_annotations(shared) == 1
    label_with_key(rosa, "2")  # "no" through server B
    assert n_annotations(shared) == 2
    assert_no_exception(eli)
    assert_no_exception(rosa)

    # Reloading on server A shows the disagreement made across both servers: its cached ranking was
    # keyed on the data fingerprint, which moved.
    visit(rosa, a, "Review")
    assert_no_exception(rosa)
    assert rosa.get_by_role("heading", name="Clip ").first.is_visible()
    assert not rosa.get_by_text("No open disagreements").is_visible()
    for server in ("server-a", "server-b"):
        assert not (tmp_path / server / "audio").exists()  # no audio on an app server's disk
