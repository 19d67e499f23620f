"""Tables that show user data offer no built-in "Download as CSV" (it writes ``=…`` cells as they are);
My labels offers a download of its own whose cells a spreadsheet will not run as formulas."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from db.models import Clip, Project
from labeling.annotate.annotations import submit_annotation
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
HOSTILE = ["=cmd|' /C calc'!A0", "+x", "@x", "hello;=1+1"]


@pytest.fixture
def labelled(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    for i in range(len(HOSTILE)):
        write_wav(tmp_path / "src" / f"c{i}.wav", speechlike(100 + i))
    import_path(ws, tmp_path / "src", "sheets")
    with ws.db.write() as s:
        update_project(s, "sheets", task_kind="transcription", annotations_per_clip=1)
        ana = add_user(s, name="ana", role="annotator", password="correct horse")
        pid = s.scalar(select(Project.id).where(Project.name == "sheets"))
        clips = s.scalars(select(Clip.id).where(Clip.project_id == pid).order_by(Clip.id)).all()
        for clip_id, text in zip(clips, HOSTILE, strict=True):
            submit_annotation(s, pid, ana.id, clip_id, transcript=text)
    return ws


def test_my_labels_downloads_neutralised_csv_and_no_raw_one(browser, serve, labelled):
    server = serve(labelled)
    page = open_page(browser, server.url)
    sign_in(page, "ana", "correct horse")
    page.get_by_role("link", name="My labels").click()
    settle(page)
    assert_no_exception(page)
    table = page.locator('[data-testid="stDataFrame"]')
    table.hover()
    toolbar = page.locator('[data-testid="stElementToolbar"]')
    expect(toolbar.first).to_be_attached()
    # The table's own toolbar offers no raw CSV download.
    expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)

    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    text = info.value.path().read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    got = sorted(r["transcript"] for r in rows)
    assert got == sorted(["'=cmd|' /C calc'!A0", "'+x", "'@x", "hello;'=1+1"])
    # A spreadsheet splitting on ';' still reads the cell as text: it is quoted as a whole.
    assert '"hello;\'=1+1"' in text
