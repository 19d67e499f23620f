"""In Chromium: the Agreement page shows the stored report as it was once labels change, says so, and
replaces it by itself when the background job has recomputed it (no reload, no click)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from db.models import Clip, StoredReport
from labeling.annotate.annotations import submit_annotation
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_next_job
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def labelled(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(6):
        write_wav(src / f"clip{i}.wav", speechlike(500 + i, seconds=0.4), 16000)
    import_path(ws, src, "talk")
    with ws.db.write() as s:
        project = update_project(s, "talk", classes=["yes", "no"], annotations_per_clip=2)
        users = {
            n: add_user(s, name=n, role=r, password=PASSWORD).id
            for n, r in (
                ("ana", "annotator"),
                ("ben", "annotator"),
                ("cho", "annotator"),
                ("rosa", "reviewer"),
            )
        }
        clips = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).all()
        for i, clip in enumerate(clips):
            submit_annotation(s, project.id, users["ana"], clip, label="yes")
            submit_annotation(s, project.id, users["ben"], clip, label="yes" if i % 3 else "no")
    return ws, project.id, users, clips


def test_an_older_report_is_said_to_be_older_and_the_new_one_replaces_it_by_itself(browser, serve, labelled):
    ws, pid, users, clips = labelled
    server = serve(ws)
    page = open_page(browser, server.url)
    sign_in(page, "rosa", PASSWORD)
    page.goto(f"{server.url}/agreement")
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("(12 labels)").first.is_visible()

    with ws.db.write() as s:
        s.execute(update(StoredReport).values(seconds=30.0))  # as a large project's report would take
        update_project(s, pid, annotations_per_clip=3)
        submit_annotation(s, pid, users["cho"], clips[0], label="no")
    page.goto(f"{server.url}/agreement")
    settle(page)
    assert_no_exception(page)
    notice = page.get_by_text("labels have changed since").first
    assert notice.is_visible()
    assert page.get_by_text("(12 labels)").first.is_visible()

    done = run_next_job(
        ws, worker="test-worker", kinds=["agreement"], quiet=False
    )  # the worker's part, here in the test
    assert done is not None
    assert (done.kind, done.status) == ("agreement", "succeeded"), done.error
    page.get_by_text("(13 labels)").first.wait_for(timeout=60_000)  # the page looked again by itself
    settle(page)
    assert_no_exception(page)
    assert not page.get_by_text("labels have changed since").first.is_visible()
