"""In Chromium: after a reviewer resolves a clip, the next clip's form starts from that clip, not from
the answers given to the last one (a carried-over class, gold tick and reason would be saved as the next
clip's final label and gold example by a single click)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Clip, GoldExample
from labeling.annotate.annotations import submit_annotation
from labeling.data.conventions import save_convention
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
GOLD = "Also add this clip to the gold examples"
WHY = "Why this is the right label (shown to annotators with the gold example)"


@pytest.fixture
def split(sqlite_workspace, tmp_path):
    """Three clips two annotators call "yes" and one calls "no"."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(3):
        write_wav(src / f"clip{i}.wav", speechlike(700 + i, seconds=0.4), 16000)
    import_path(ws, src, "talk")
    with ws.db.write() as s:
        project = update_project(s, "talk", classes=["yes", "no"], annotations_per_clip=3)
        users = {
            n: add_user(s, name=n, role=r, password=PASSWORD).id
            for n, r in (
                ("ana", "annotator"),
                ("ben", "annotator"),
                ("cho", "annotator"),
                ("rosa", "reviewer"),
            )
        }
        save_convention(s, project.id, text="Say yes or no.")
        for clip in s.scalars(select(Clip.id).where(Clip.project_id == project.id)).all():
            for who, label in (("ana", "yes"), ("ben", "yes"), ("cho", "no")):
                submit_annotation(s, project.id, users[who], clip, label=label)
    return ws


def test_the_next_clip_s_form_does_not_carry_the_last_clip_s_answers(browser, serve, split):
    server = serve(split)
    page = open_page(browser, server.url)
    sign_in(page, "rosa", PASSWORD)
    page.goto(f"{server.url}/review")
    settle(page)
    assert_no_exception(page)
    first = page.get_by_role("heading", name="Clip ").first.inner_text()
    assert page.get_by_role("radio", name="yes").is_checked()  # the majority's class to start from
    page.locator('[data-testid="stRadio"]').get_by_text("no", exact=True).click()
    page.get_by_role("checkbox", name=GOLD).check(force=True)
    page.get_by_role("textbox", name=WHY).fill("a sigh is no")
    page.get_by_role("button", name="Resolve", exact=True).click()
    settle(page)
    assert_no_exception(page)

    assert page.get_by_role("heading", name="Clip ").first.inner_text() != first
    assert page.get_by_role("radio", name="yes").is_checked()
    assert not page.get_by_role("checkbox", name=GOLD).is_checked()
    assert page.get_by_role("textbox", name=WHY).input_value() == ""
    with split.db.read() as s:
        assert s.scalars(select(GoldExample.explanation)).all() == ["a sigh is no"]  # the first clip's only
