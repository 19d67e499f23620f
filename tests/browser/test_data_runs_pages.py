"""The Data versions & checks and Runs pages in Chromium: versions diff as a chart, runs compare."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from db.models import Clip
from labeling.data.importer import import_path
from labeling.data.versions import create_version
from labeling.model.runs import import_external_predictions
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def populated(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 2}_{i}.wav", speechlike(200 + i))
    import_path(ws, src, "browser", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        s.execute(update(Clip).where(Clip.id % 2 == 0).values(split="test"))
        create_version(s, "browser", name="v1")
    write_wav(src / "more" / "yes_spk3_9.wav", speechlike(300))
    import_path(ws, src / "more", "browser", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        create_version(s, "browser", name="v2")
    for name, answer in (("yes-sayer", "yes"), ("no-sayer", "no")):
        pred = tmp_path / f"{name}.csv"
        pred.write_text(
            "file_name,label\n"
            + "".join(f"{['yes', 'no'][i % 2]}_spk{i % 2}_{i}.wav,{answer}\n" for i in range(8))
        )
        import_external_predictions(ws, "browser", pred, name=name)
    return ws


def test_data_and_runs_pages_render_in_chromium(browser, serve, populated):
    server = serve(populated)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/data")
    settle(page)
    assert_no_exception(page)
    # The diff of the two versions: one clip added.
    added = page.locator('[data-testid="stMetric"]').filter(has_text="added")
    assert added.locator('[data-testid="stMetricValue"]').inner_text() == "1"

    page.goto(f"{server.url}/runs")
    settle(page)
    assert_no_exception(page)
    # The two runs come from different (external) models: the page must not credit the data.
    assert page.get_by_text("NOT a data-only change").is_visible()
