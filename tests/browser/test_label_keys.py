"""The label page in Chromium: sign in, number keys choose the class, typing never triggers a key,
another page's URL is refused, and a trusted proxy header signs a user in."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Annotation
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def team(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(6):
        write_wav(src / f"clip_spk{i % 2}_{i}.wav", speechlike(200 + i))
    import_path(ws, src, "keys", pattern=r"clip_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        update_project(s, "keys", task_kind="both", classes=["yes", "no", "maybe"])
        add_user(s, name="ana", role="annotator", password=PASSWORD)
        add_user(s, name="rosa", role="reviewer", external_id="rosa@example.org")
    return ws


def annotations(ws) -> list[tuple]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return [
            tuple(r) for r in s.execute(select(Annotation.clip_id, Annotation.label, Annotation.transcript))
        ]


def test_number_keys_label_and_typing_does_not(browser, serve, team):
    server = serve(team)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    assert page.get_by_role("heading", name="Label").is_visible()
    clip = page.get_by_role("heading", name="Clip ").first.inner_text()

    # Digits typed into the transcript are text, not shortcuts.
    box = page.get_by_label("Transcript")
    box.click()
    box.type("take 2")
    page.wait_for_timeout(800)
    assert annotations(team) == []

    # Leave the text box, then "2" chooses the second class and submits.
    page.get_by_role("heading", name="Label").click()
    page.keyboard.press("2")
    settle(page)
    assert_no_exception(page)
    (stored,) = annotations(team)
    assert stored == (int(clip.removeprefix("Clip ")), "no", "take 2")
    assert page.get_by_text(f"{clip}: saved").is_visible()
    assert page.get_by_role("heading", name="Clip ").first.inner_text() != clip

    # Another page's address gets a refusal, not the page.
    page.goto(f"{server.url}/clips")
    settle(page)
    assert page.get_by_text("cannot open").first.is_visible()
    assert page.locator('[data-testid="stDataFrame"]').count() == 0


def test_a_trusted_proxy_header_signs_the_user_in(browser, serve, team):
    server = serve(team, EARMARK_TRUSTED_HEADER="X-Forwarded-User")
    page = browser.new_page(
        viewport={"width": 1400, "height": 1000}, extra_http_headers={"X-Forwarded-User": "rosa@example.org"}
    )
    page.goto(server.url)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("Signed in as").first.inner_text().startswith("Signed in as rosa")
