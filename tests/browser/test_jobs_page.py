"""The Jobs page in Chromium: a running job that was asked to stop never reads "running" again."""

from __future__ import annotations

import pytest

from labeling.data.importer import import_path
from labeling.data.projects import get_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import claim_job, get_job, submit_job
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def running_job(sqlite_workspace, tmp_path):  # type: ignore[no-untyped-def]
    """A project, an engineer, and a feature job a worker has claimed (and is still busy with)."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(4):
        write_wav(src / f"{['yes', 'no'][i % 2]}_{i}.wav", speechlike(i))
    import_path(ws, src, "jobs", pattern=r"(?P<label>[a-z]+)_\d+\.wav")
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        job = submit_job(s, "features", project_id=get_project(s, "jobs").id, owner_id=None)
    assert claim_job(ws, worker="busy-worker") is not None
    return ws, job.id


def test_a_running_job_asked_to_stop_never_reads_running_again(browser, serve, running_job):
    ws, job_id = running_job
    server = serve(ws)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/jobs")
    settle(page)
    picker = page.get_by_role("combobox", name="Details of").first
    picker.click()
    page.get_by_role("option", name=f"#{job_id} Feature extraction").click()
    settle(page)
    page.get_by_text(f"Job {job_id} · Feature extraction · running").wait_for(timeout=30_000)

    page.get_by_role("button", name="Cancel").click()
    page.get_by_text(f"Job {job_id} · Feature extraction · cancel requested").wait_for(timeout=30_000)
    settle(page)
    assert_no_exception(page)
    # Nothing on the page still calls it running (the picker keeps the label it was chosen with, so
    # the state is not part of it), and there is nothing left to cancel.
    assert selected(page, "Details of") == f"#{job_id} Feature extraction"
    assert "running" not in page.locator('[data-testid="stMain"]').inner_text()
    assert page.get_by_role("button", name="Cancel").count() == 0
    with ws.db.read() as s:
        assert get_job(s, job_id).cancel_requested
