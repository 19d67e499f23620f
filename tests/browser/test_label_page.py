"""The Label page in Chromium: a transcript sent with Ctrl+Enter is saved once and counted, letters work
with Shift as without, and the Cannot-label warning shows at its reason box."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from db.models import Claim
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import (
    assert_no_exception,
    open_page,
    settle,
    sign_in,
    stored_annotations,
)

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def projects(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    for n, name in enumerate(("words", "speech")):
        for i in range(4):
            write_wav(tmp_path / name / f"clip_{i}.wav", speechlike(700 + 100 * n + i))
        import_path(ws, tmp_path / name, name)
    with ws.db.write() as s:
        update_project(s, "words", classes=["yes", "no", "maybe"], tag_groups={"noise": ["car", "people"]})
        update_project(s, "speech", task_kind="transcription")
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    return ws


def on_screen(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_by_role("heading", name="Clip ").first.inner_text().removeprefix("Clip "))


def chosen(page, name: str) -> bool:  # type: ignore[no-untyped-def]
    pill = page.locator('button[data-variant="pills"]').filter(has_text=name).first
    return pill.get_attribute("aria-pressed") == "true"


def skipped(ws) -> list[int]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return list(s.scalars(select(Claim.clip_id).where(Claim.skipped_at.is_not(None))))


def test_ctrl_enter_saves_a_transcript_once_and_says_so(browser, serve, projects):
    server = serve(projects)
    page = open_page(browser, f"{server.url}/?project=speech")
    sign_in(page, "ana", PASSWORD)
    first = on_screen(page)
    box = page.get_by_label("Transcript")
    box.click()
    box.type("four")
    page.keyboard.press("Control+Enter")
    settle(page)
    assert_no_exception(page)
    assert stored_annotations(projects, "clip_id", "transcript") == [(first, "four")]
    assert page.get_by_text(f"Clip {first}: saved").is_visible()
    assert page.get_by_text("repeated submit").count() == 0
    assert page.get_by_text("You: 1 labelled, 1 today").is_visible()
    assert on_screen(page) != first


def test_letters_work_with_shift_and_the_sheet_shows_them_as_typed(browser, serve, projects):
    server = serve(projects)
    page = open_page(browser, f"{server.url}/?project=words")
    sign_in(page, "ana", PASSWORD)
    first = on_screen(page)
    page.get_by_role("heading", name="Label").click()

    page.keyboard.press("?")
    sheet = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(sheet).to_be_visible()
    rows = dict(
        tuple(cell.strip() for cell in row.split("\t")) for row in sheet.locator("tr").all_inner_texts()
    )
    assert rows["a"] == "tag noise:car"
    assert rows["u"] == "mark or unmark Unsure"
    assert rows["s"] == "skip this clip"
    page.keyboard.press("Escape")

    page.keyboard.press("Shift+A")  # noise:car
    page.keyboard.press("Shift+U")
    expect(page.locator('button[data-variant="pills"]').filter(has_text="car").first).to_have_attribute(
        "aria-pressed", "true"
    )
    assert chosen(page, "Unsure")
    page.keyboard.press("Shift+A")  # and again takes it back, as "a" would
    expect(page.locator('button[data-variant="pills"]').filter(has_text="car").first).to_have_attribute(
        "aria-pressed", "false"
    )

    page.keyboard.press("Shift+S")  # Skip, a button of the form
    settle(page)
    assert_no_exception(page)
    assert skipped(projects) == [first]
    assert on_screen(page) != first
    assert stored_annotations(projects, "clip_id") == []


def test_the_cannot_label_warning_is_beside_the_reason_box(browser, serve, projects):
    server = serve(projects)
    page = open_page(browser, f"{server.url}/?project=words", viewport=(1280, 620))
    sign_in(page, "ana", PASSWORD)
    first = on_screen(page)
    page.get_by_role("combobox", name="Cannot label because").scroll_into_view_if_needed()
    page.get_by_role("button", name=re.compile(r"^Cannot label")).click()
    settle(page)
    warning = page.get_by_text("Why can it not be labelled?")
    expect(warning).to_be_visible()
    box = warning.bounding_box()
    assert box["y"] >= 0, "the warning is above the view"
    assert box["y"] + box["height"] <= 620, "the warning is below the view"
    reason = page.get_by_role("combobox", name="Why can it not be labelled?")
    assert abs(reason.bounding_box()["y"] - box["y"]) < 80, "the warning is not at the reason box"
    assert stored_annotations(projects, "clip_id") == []
    # Choosing the reason there and pressing Cannot label again stores it.
    reason.click()
    page.get_by_role("option", name="no speech").click()
    page.get_by_role("button", name=re.compile(r"^Cannot label")).click()
    settle(page)
    assert stored_annotations(projects, "clip_id", "cannot_label_reason") == [(first, "no speech")]
