"""Choosing the queue order on Project settings changes which clip the Label page serves next."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from db.models import Clip, Resolution
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def half_labelled(sqlite_workspace, tmp_path):
    """Two clips imported with final labels, then two without (so by id the labelled come first)."""
    ws = sqlite_workspace
    for i in range(2):
        write_wav(tmp_path / "old" / f"yes_{i}.wav", speechlike(i))
        write_wav(tmp_path / "new" / f"new_{i}.wav", speechlike(10 + i))
    import_path(ws, tmp_path / "old", "order", pattern=r"(?P<label>yes)_\d\.wav")
    import_path(ws, tmp_path / "new", "order")
    with ws.db.write() as s:
        update_project(s, "order", classes=["yes", "no"])
        add_user(s, name="ana", role="annotator", password=PASSWORD)
        add_user(s, name="eli", role="engineer", password=PASSWORD)
        labelled = sorted(s.scalars(select(Resolution.clip_id)))
        unlabelled = sorted(s.scalars(select(Clip.id).where(Clip.id.not_in(labelled))))
    assert labelled < unlabelled
    return ws, labelled, unlabelled


def clip_on_screen(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_by_role("heading", name="Clip ").first.inner_text().removeprefix("Clip "))


def test_switching_the_queue_order_changes_the_next_clip(browser, serve, half_labelled):
    ws, labelled, unlabelled = half_labelled
    server = serve(ws)
    annotator = open_page(browser, server.url)
    sign_in(annotator, "ana", PASSWORD)  # an annotator lands on Label, in the only project
    assert_no_exception(annotator)
    # The default: the clips nobody has answered yet come first.
    assert clip_on_screen(annotator) == unlabelled[0]
    assert annotator.get_by_text(re.compile(r"Order: unlabelled first")).is_visible()

    engineer = open_page(browser, server.url)
    sign_in(engineer, "eli", PASSWORD)
    engineer.goto(f"{server.url}/settings?project=order")
    settle(engineer)
    assert selected(engineer, "Queue order") == "Unlabelled first"
    engineer.get_by_role("combobox", name="Queue order").first.click()
    engineer.get_by_role("option", name="Priority", exact=True).click()
    engineer.get_by_role("button", name="Save settings").click()
    settle(engineer)
    assert_no_exception(engineer)
    assert engineer.get_by_text(re.compile(r"Saved: workflow settings")).is_visible()
    assert selected(engineer, "Queue order") == "Priority"

    # The clip on screen stays the annotator's; the next one follows the new order: by id, so a
    # clip that already has a final label, where "unlabelled first" would have served the other new one.
    annotator.keyboard.press("1")
    settle(annotator)
    assert_no_exception(annotator)
    assert clip_on_screen(annotator) == labelled[0]
    assert annotator.get_by_text(re.compile(r"Order: priority")).is_visible()
