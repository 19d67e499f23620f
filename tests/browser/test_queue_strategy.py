"""Choosing an active-learning strategy on Project settings changes which clip the Label page serves
next, once the queue-scoring job has ranked the clips."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert, select

from db.models import Clip, Job, ModelRun, Prediction
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_worker
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
#: P(yes) of the clips by id: the model is sure of the first two and unsure of the last.
P_YES = [0.99, 0.95, 0.5]


@pytest.fixture
def with_run(sqlite_workspace, tmp_path):
    """Three unlabelled clips and a model run that is least sure of the last one."""
    ws = sqlite_workspace
    for i in range(3):
        write_wav(tmp_path / "new" / f"new_{i}.wav", speechlike(20 + i))
    import_path(ws, tmp_path / "new", "active")
    with ws.db.write() as s:
        info = update_project(s, "active", classes=["yes", "no"])
        add_user(s, name="ana", role="annotator", password=PASSWORD)
        add_user(s, name="eli", role="engineer", password=PASSWORD)
        clips = sorted(s.scalars(select(Clip.id)))
        run = ModelRun(
            project_id=info.id, kind="builtin", name="r", code_fingerprint="x", classes=["yes", "no"]
        )
        s.add(run)
        s.flush()
        s.execute(
            insert(Prediction),
            [
                {"run_id": run.id, "clip_id": c, "label": "yes", "probabilities": [q, 1 - q]}
                for c, q in zip(clips, P_YES, strict=True)
            ],
        )
    return ws, clips


def clip_on_screen(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_by_role("heading", name="Clip ").first.inner_text().removeprefix("Clip "))


def test_switching_to_uncertainty_serves_the_clip_the_model_doubts(browser, serve, with_run):
    ws, clips = with_run
    server = serve(ws)
    annotator = open_page(browser, server.url)
    sign_in(annotator, "ana", PASSWORD)
    assert_no_exception(annotator)
    assert clip_on_screen(annotator) == clips[0]  # unlabelled first: by id

    engineer = open_page(browser, server.url)
    sign_in(engineer, "eli", PASSWORD)
    engineer.goto(f"{server.url}/settings?project=active")
    settle(engineer)
    engineer.get_by_role("combobox", name="Queue order").first.click()
    engineer.get_by_role("option", name="Uncertainty (margin)", exact=True).click()
    engineer.get_by_role("spinbutton", name="Random share (%)").fill("0")
    engineer.get_by_role("button", name="Save settings").click()
    settle(engineer)
    assert_no_exception(engineer)
    assert engineer.get_by_text(re.compile(r"Saved: workflow settings")).is_visible()
    assert selected(engineer, "Queue order") == "Uncertainty (margin)"

    # Saving queued the scoring job; a worker runs it, outside any page request.
    with ws.db.read() as s:
        assert s.scalar(select(Job.status).where(Job.kind == "queue_scores")) == "queued"
    assert run_worker(ws, once=True, kinds=["queue_scores"]) == 1

    # The clip on screen stays the annotator's; the next is the one the model is least sure of,
    # where "unlabelled first" would have served the next by id.
    annotator.keyboard.press("1")
    settle(annotator)
    assert_no_exception(annotator)
    assert clip_on_screen(annotator) == clips[2]
    assert annotator.get_by_text(re.compile(r"Order: uncertainty \(margin\)")).is_visible()
