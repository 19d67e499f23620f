"""Retraining on a frozen version from the Runs page, after a fix retired the clips it holds: the new
run reads the version as frozen, and the page says nothing changed (same data, same code, same seed)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, update

from db.models import Clip
from labeling.data.checks import fix_clips
from labeling.data.importer import import_path
from labeling.data.versions import create_version
from labeling.model.runs import train_run
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_next_job
from tests.audio import write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser

SR = 16000


def _tone(freq: float, seed: int) -> np.ndarray:
    """0.9 s of silence (for the silence fix to trim), then a 0.5 s tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * SR)) / SR
    voiced = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
    voiced += 0.01 * rng.standard_normal(len(t))
    return np.concatenate([np.zeros(int(0.9 * SR)), voiced]).astype(np.float32)


@pytest.fixture
def trained_then_fixed(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(40):
        label = ("low", "high")[i % 2]
        write_wav(src / f"{label}_{i}.wav", _tone(180.0 if label == "low" else 420.0, i))
    import_path(ws, src, "tones", pattern=r"(?P<label>[a-z]+)_\d+\.wav")
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        s.execute(update(Clip).values(split="train"))
        s.execute(update(Clip).where(Clip.id % 4 == 0).values(split="test"))
        create_version(s, "tones", name="v1")
    first = train_run(ws, "tones", version="v1", name="first on v1")
    with ws.db.read() as s:
        train_ids = list(s.scalars(select(Clip.id).where(Clip.split == "train")))
    report = fix_clips(ws, "tones", train_ids, actions=["silence"])
    assert len(report.fixed) == len(train_ids)  # every training clip of v1 is retired now
    return ws, first


def test_retraining_a_version_after_a_fix_reports_no_change(browser, serve, trained_then_fixed):
    ws, first = trained_then_fixed
    server = serve(ws)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/runs")
    settle(page)
    page.get_by_role("button", name="Train the model").click()
    settle(page)
    done = run_next_job(ws, worker="test-worker", kinds=["train"])  # the worker's part, here in the test
    assert done is not None
    assert (done.kind, done.status) == ("train", "succeeded"), done.error

    page.get_by_text("No change").first.wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("v1 → v1: +0 −0 clips").first.is_visible()
    assert not page.get_by_text("read different data").first.is_visible()
    assert selected(page, "Baseline run A").startswith(f"#{first.id} first on v1")
    assert selected(page, "Run B").startswith(f"#{first.id + 1} fixed model on v1")
