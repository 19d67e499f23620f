"""Missing audio on the Label page in Chromium: a store that cannot be read (its folder renamed) stops
the page without flagging or skipping anything, while a file lost from a store that answers is flagged
and skipped as before."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from db.models import Claim, Clip, ClipFlag
from labeling.annotate.queue import set_priority
from labeling.data.importer import import_path
from labeling.data.projects import get_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in
from tests.conftest import make_workspace

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
UNREADABLE = "The audio store cannot be read right now"


@pytest.fixture
def stored(tmp_path, sqlite_url):
    """A project of six clips in an audio store of its own folder (``EARMARK_AUDIO_URL``)."""
    ws = make_workspace(tmp_path / "data", sqlite_url, audio_url=str(tmp_path / "store"))
    for i in range(6):
        write_wav(tmp_path / "src" / f"clip_{i}.wav", speechlike(900 + i))
    import_path(ws, tmp_path / "src", "audio")
    with ws.db.write() as s:
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    yield ws
    ws.close()


def state(ws) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the database holds about missing audio and the queue."""
    with ws.db.read() as s:
        return {
            "flagged": sorted(s.scalars(select(ClipFlag.clip_id).where(ClipFlag.kind == "missing_audio"))),
            "skipped": sorted(s.scalars(select(Claim.clip_id).where(Claim.skipped_at.is_not(None)))),
            "claims": s.scalar(select(func.count()).select_from(Claim)),
        }


def first_in_queue(ws, n: int) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Put ``n`` clips at the head of the queue; their (id, storage key), in the order handed out."""
    with ws.db.write() as s:
        project = get_project(s, "audio").id
        rows = s.execute(select(Clip.id, Clip.storage_key).order_by(Clip.id).limit(n)).all()
        for rank, row in enumerate(rows):
            set_priority(s, project, [row.id], 100 - rank)
    return [(r.id, r.storage_key) for r in rows]


def test_a_store_that_cannot_be_read_flags_and_skips_nothing(browser, serve, stored, tmp_path):
    store = tmp_path / "store"
    server = serve(stored, EARMARK_AUDIO_URL=str(store))
    store.rename(tmp_path / "store-elsewhere")  # a folder unmounted, or moved
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    expect(page.get_by_text(UNREADABLE)).to_be_visible()
    assert str(tmp_path) not in page.content(), "the page names where the audio is kept"
    # Looking again while it is still gone changes nothing either.
    page.get_by_role("button", name="Try again").click()
    settle(page)
    expect(page.get_by_text(UNREADABLE)).to_be_visible()
    assert state(stored) == {"flagged": [], "skipped": [], "claims": 1}  # only the clip on screen

    # Once the folder is back, the same clip plays.
    (tmp_path / "store-elsewhere").rename(store)
    page.get_by_role("button", name="Try again").click()
    settle(page)
    expect(page.locator("canvas.em-wave")).to_be_visible()
    assert page.get_by_text(UNREADABLE).count() == 0
    assert state(stored) == {"flagged": [], "skipped": [], "claims": 1}
    assert_no_exception(page)


def test_one_file_lost_from_a_store_that_answers_is_flagged_and_skipped(browser, serve, stored, tmp_path):
    ((lost, key),) = first_in_queue(stored, 1)
    (tmp_path / "store" / key).unlink()
    server = serve(stored, EARMARK_AUDIO_URL=str(tmp_path / "store"))
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    expect(page.get_by_text(f"The audio of clip {lost} is missing")).to_be_visible()
    expect(page.locator("canvas.em-wave")).to_be_visible()  # the next clip plays
    assert page.get_by_text(UNREADABLE).count() == 0
    assert state(stored) == {"flagged": [lost], "skipped": [lost], "claims": 2}


def test_a_second_miss_in_a_row_stops_before_flagging_it(browser, serve, stored, tmp_path):
    # A store whose root answers but whose files are elsewhere (another folder mounted, a wrong prefix)
    # loses every clip: the first is flagged, the second stops the page.
    (first, key1), (second, key2) = first_in_queue(stored, 2)
    for key in (key1, key2):
        (tmp_path / "store" / key).unlink()
    server = serve(stored, EARMARK_AUDIO_URL=str(tmp_path / "store"))
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    expect(page.get_by_text(UNREADABLE)).to_be_visible()
    assert state(stored) == {"flagged": [first], "skipped": [first], "claims": 2}
    with stored.db.read() as s:
        held = s.scalar(select(Claim.clip_id).where(Claim.skipped_at.is_(None)))
    assert held == second  # still the annotator's, not set aside
