"""The Runs page's pickers in Chromium: they open on (the run before the newest, the newest), move to
(previous newest, new run) once a training finishes, and otherwise keep what the user chose."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select, update

from db.models import Clip, User
from labeling.data.importer import import_path
from labeling.model.runs import import_external_predictions
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_next_job, submit_job
from tests.audio import tone, write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser
A, B = "Baseline run A", "Run B"
BOTH_WAYS = "created with a default value but also had its value set via the Session State API"


def train_in_a_worker(ws) -> None:  # type: ignore[no-untyped-def]
    """What `earmark worker` does with the job the page (or the test) queued."""
    job = run_next_job(ws, kinds=["train"])
    assert job is not None
    assert job.status == "succeeded", job.error


@pytest.fixture
def two_runs(sqlite_workspace, tmp_path):
    """24 clips: "yes" a low tone, "no" a high one, so the fixed model learns them. Run 1 is someone
    else's model saying "yes" to every clip; run 2, the newest, is the fixed model trained by a job."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    rng = np.random.default_rng(7)
    names = []
    for i in range(24):
        word = ["yes", "no"][i % 2]
        y = tone(0.6, freq=(250 if word == "yes" else 1800) + 5 * i) + 0.01 * rng.standard_normal(9600)
        names.append(f"{word}_spk{i % 4}_{i}.wav")
        write_wav(src / names[-1], y.astype(np.float32))
    import_path(ws, src, "runs", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    pred = tmp_path / "yes-sayer.csv"
    pred.write_text("file_name,label\n" + "".join(f"{n},yes\n" for n in names))
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        s.execute(update(Clip).values(split="train"))
        s.execute(
            update(Clip)
            .where(Clip.original_name.contains("_spk2_") | Clip.original_name.contains("_spk3_"))
            .values(split="test")
        )
    import_external_predictions(ws, "runs", pred, name="yes-sayer")
    with ws.db.write() as s:
        eli = s.scalar(select(User.id).where(User.name == "eli"))
        project_id = s.scalar(select(Clip.project_id).limit(1))
        submit_job(s, "train", project_id=project_id, owner_id=eli)
    train_in_a_worker(ws)
    return ws


def choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("combobox", name=label).first.click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(option)}")).first.click()
    settle(page)


def wait_for(page, label: str, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    expect(page.get_by_role("combobox", name=label).first).to_have_value(
        re.compile(f"^{re.escape(prefix)}"), timeout=120_000
    )


def test_the_pickers_compare_the_newest_run_with_the_one_before(browser, serve, two_runs):
    server = serve(two_runs)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/runs")
    settle(page)
    assert_no_exception(page)

    # A fresh visit, with a finished training job on record: the one before the newest, and the newest.
    assert selected(page, A).startswith("#1 yes-sayer")
    assert selected(page, B).startswith("#2 ")
    assert page.get_by_text("No change").count() == 0
    assert page.get_by_text("NOT a data-only change").is_visible()  # someone else's model vs ours

    # A training started on the page and finished by a worker: (previous newest, new run), once.
    page.get_by_text("Train the fixed model").click()
    page.get_by_role("button", name="Train the model").click()
    settle(page)
    train_in_a_worker(two_runs)
    wait_for(page, B, "#3 ")
    settle(page)
    assert selected(page, A).startswith("#2 ")
    assert_no_exception(page)

    # The user's own choice stands through the reruns that follow.
    choose(page, A, "#1 yes-sayer")
    choose(page, B, "#2 ")
    assert selected(page, A).startswith("#1 yes-sayer")
    assert selected(page, B).startswith("#2 ")
    assert page.get_by_text("No change").count() == 0

    # A run trained elsewhere (here: by the service, between page loads) shows on the next visit.
    with two_runs.db.write() as s:
        eli = s.scalar(select(User.id).where(User.name == "eli"))
        project_id = s.scalar(select(Clip.project_id).limit(1))
        submit_job(s, "train", project_id=project_id, owner_id=eli)
    train_in_a_worker(two_runs)
    page.reload()
    settle(page)
    assert selected(page, A).startswith("#3 ")
    assert selected(page, B).startswith("#4 ")
    assert_no_exception(page)

    assert BOTH_WAYS not in server.log.read_text()
